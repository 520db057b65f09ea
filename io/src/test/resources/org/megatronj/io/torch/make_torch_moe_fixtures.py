"""Writes tiny Megatron-LM mixture-of-experts GPT checkpoints, in the layouts Megatron-core saves them, and
expected-moe.json with the model's tensors under Megatron-J's names (Debian's python3-torch 1.13; run from this folder,
after make_torch_fixtures.py, whose weights the DCP helpers of make_torch_dist_fixtures.py load on import):

    /usr/bin/python3 make_torch_moe_fixtures.py

The model: 2 layers (hidden 16, 4 heads in 2 query groups, SwiGLU, RMSNorm, rope, tied embeddings, no biases, a
32-row vocabulary), layer 0 a MoE layer (--moe-layer-freq "([1]+[0])*1", which Megatron's argparse evaluates to the
list [1, 0]): a router [4, 16], 4 experts of --moe-ffn-hidden-size 16 and a shared expert of 24 with its sigmoid gate
(--moe-shared-expert-gate: mlp.shared_experts.gate_weight [1, 16]), layer 1 a dense MLP of 32. The files (bf16), per Megatron-core's modules (megatron/core/transformer/moe/experts.py, moe_layer.py, router.py,
megatron/core/models/gpt/gpt_layer_specs.py) and megatron/training/checkpointing.py's get_checkpoint_name:

megatron-moe-tp2ep2/ (--ckpt-format torch, TransformerEngine spec, SequentialMLP experts): 2 tensor x 2 expert-parallel
  ranks, no pipeline, in folders mp_rank_TT_EEE (the second number is the expert rank: without pipeline parallelism
  get_checkpoint_name writes no pipeline rank). Each folder holds the whole model's tensor shard (the non-expert tensors
  repeated in both expert ranks) and its 2 local experts as mlp.experts.local_experts.0/1, global experts 2e and 2e+1.
  TE's spec fuses the input layer norm into linear_qkv in every layer and the pre-MLP norm into linear_fc1 in the dense
  layer only: a MoE layer keeps pre_mlp_layernorm.weight (a TENorm). _extra_state entries for every TE linear.
megatron-moe-pp2ep2-grouped/ (torch, TE spec, --moe-grouped-gemm: TEGroupedMLP): 2 pipeline x 2 expert ranks in
  mp_rank_00_PPP_EEE, stage p holding layer p (numbered 0 in its file); the experts as TE's GroupedLinear keeps them,
  mlp.experts.linear_fc1.weight0, weight1 (one [2 x 16, 16] linear weight per local expert) and linear_fc2.weight0/1,
  one _extra_state per GroupedLinear. The last stage holds the tied output layer's copy as output_layer.weight. Its
  args hold MoE routing values of the older scalar form (a load-balancing type string, a float coefficient) and the
  deprecated device-limited routing (moe_router_topk_limited_devices 1, which Megatron's TransformerConfig turns into
  2 groups, one per expert rank, of which a token takes 1).
megatron-moe-legacy-tp2/ (torch, local spec, legacy GroupedMLP of --moe-grouped-gemm --moe-use-legacy-grouped-gemm):
  2 tensor ranks in mp_rank_TT; the experts as mlp.experts.weight1 [16, 4 x 16] and weight2 [4 x 8, 16] per rank, the
  layout GroupedMLP's forward reads with weight1.view(E, h, -1) and weight2.view(E, -1, h): weight1's memory is the
  experts' transposed fc1 shards one after another ([h, F] each; this is not a split of its columns), weight2's the
  transposed fc2 shards. --moe-layer-freq 2 (an int), sigmoid routing with a scaling factor, capacity, z-loss and
  group-limited routing (2 groups, 1 of them per token) and the router's expert bias (--moe-router-enable-expert-bias:
  mlp.router.expert_bias [4], F32, as Megatron keeps it).
megatron-moe-dist/ (--ckpt-format torch_dist, TE spec, 4 ranks: 2 tensor x 2 data-parallel ranks that are the 2 expert
  ranks): per-layer keys (a --moe-layer-freq pattern makes TransformerBlock's layers non-homogeneous); the experts under
  decoder.layers.0.mlp.experts.experts.linear_fc1.weight [4, 32, 16] and linear_fc2.weight [4, 16, 16], an expert axis
  in front (SequentialMLP.sharded_state_dict: each local expert at its global index), each rank writing its experts'
  tensor shards (linear_fc1's gate and up halves apart, as apply_swiglu_sharded_factory does); the non-expert tensors
  by expert rank 0, the replicated ones (norms, router) by tensor rank 0.
megatron-moe-dist-stacked/ (torch_dist, one rank): layer 0 alone as a 1-layer all-MoE model (--moe-layer-freq 1), its
  tensors stacked under decoder.layers.<name> with the layer axis before the expert axis
  (decoder.layers.mlp.experts.experts.linear_fc1.weight [1, 4, 32, 16]).
"""
import argparse
import json
import os
import shutil
import tempfile
from collections import OrderedDict

import make_torch_dist_fixtures as dcp  # noqa: F401  (its torch 1.13 / Python 3.11 patch, ChunkPlanner, saved_object)
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed._shard.checkpoint import FileSystemWriter, save_state_dict

torch.manual_seed(2026)
H, HEADS, GROUPS, FFN, E, MFFN, SHARED, V, SEQ, LAYERS = 16, 4, 2, 32, 4, 16, 24, 32, 8, 2
D = H // HEADS
PATTERN = [1, 0]


def weights(*shape):
    # multiples of 1/64 up to 2: exact in bf16
    return (torch.randint(-128, 129, shape).float() / 64).to(torch.bfloat16)


# ---- the model under Megatron-J's names (Megatron-core's local spec, SequentialMLP) ---------------------------------
WHOLE = OrderedDict()
WHOLE["embedding.word_embeddings.weight"] = weights(V, H)
for l in range(LAYERS):
    p = f"decoder.layers.{l}."
    WHOLE[p + "input_layernorm.weight"] = weights(H)
    WHOLE[p + "self_attention.linear_qkv.weight"] = weights((HEADS + 2 * GROUPS) * D, H)
    WHOLE[p + "self_attention.linear_proj.weight"] = weights(H, HEADS * D)
    WHOLE[p + "pre_mlp_layernorm.weight"] = weights(H)
    if PATTERN[l]:
        WHOLE[p + "mlp.router.weight"] = weights(E, H)
        for e in range(E):
            WHOLE[p + f"mlp.experts.local_experts.{e}.linear_fc1.weight"] = weights(2 * MFFN, H)
            WHOLE[p + f"mlp.experts.local_experts.{e}.linear_fc2.weight"] = weights(H, MFFN)
        WHOLE[p + "mlp.shared_experts.linear_fc1.weight"] = weights(2 * SHARED, H)
        WHOLE[p + "mlp.shared_experts.linear_fc2.weight"] = weights(H, SHARED)
        WHOLE[p + "mlp.shared_experts.gate_weight"] = weights(1, H)
    else:
        WHOLE[p + "mlp.linear_fc1.weight"] = weights(2 * FFN, H)
        WHOLE[p + "mlp.linear_fc2.weight"] = weights(H, FFN)
WHOLE["decoder.final_layernorm.weight"] = weights(H)
# the legacy fixture's run balanced its experts with DeepSeek-V3's expert bias: a persistent F32 buffer of the router
EXPERT_BIAS = ("decoder.layers.0.mlp.router.expert_bias", weights(E).float())


def args(**overrides):
    """The run's argparse namespace, after Megatron's validate_args (expert_tensor_parallel_size filled in)."""
    base = dict(
        num_layers=LAYERS, hidden_size=H, ffn_hidden_size=FFN, num_attention_heads=HEADS, kv_channels=D,
        group_query_attention=True, num_query_groups=GROUPS, seq_length=SEQ, max_position_embeddings=SEQ,
        position_embedding_type="rope", rotary_percent=1.0, rotary_base=10000, normalization="RMSNorm", swiglu=True,
        add_bias_linear=False, add_qkv_bias=False, qk_layernorm=False, untie_embeddings_and_output_weights=False,
        norm_epsilon=1e-5, apply_layernorm_1p=False, bias_gelu_fusion=False, openai_gelu=False, squared_relu=False,
        padded_vocab_size=V, make_vocab_size_divisible_by=8, tokenizer_type="NullTokenizer", vocab_size=31,
        vocab_file=None, merge_file=None, tokenizer_model=None, init_method_std=0.02, hidden_dropout=0.0,
        attention_dropout=0.0, params_dtype=torch.bfloat16, bf16=True, fp16=False, tensor_model_parallel_size=1,
        pipeline_model_parallel_size=1, virtual_pipeline_model_parallel_size=None, ckpt_format="torch",
        transformer_impl="transformer_engine", micro_batch_size=2, global_batch_size=8, lr=3e-4, train_iters=100,
        seed=1234, iteration=30,
        num_experts=E, moe_router_topk=2, moe_ffn_hidden_size=MFFN, moe_layer_freq=PATTERN,
        moe_router_load_balancing_type=["aux_loss"], moe_aux_loss_coeff=[0.01], moe_z_loss_coeff=None,
        moe_router_pre_softmax=False, moe_router_score_function="softmax", moe_router_topk_scaling_factor=None,
        moe_router_dtype=None, moe_router_enable_expert_bias=False, moe_router_num_groups=None,
        moe_router_group_topk=None, moe_router_topk_limited_devices=None, moe_expert_capacity_factor=None, moe_token_drop_policy="probs",
        moe_pad_expert_input_to_capacity=False, moe_shared_expert_intermediate_size=SHARED,
        moe_shared_expert_gate=True, moe_shared_expert_overlap=False, moe_grouped_gemm=False,
        moe_use_legacy_grouped_gemm=False, moe_token_dispatcher_type="alltoall", moe_latent_size=None,
        moe_input_jitter_eps=None, moe_apply_probs_on_input=False, expert_model_parallel_size=1,
        expert_tensor_parallel_size=1)
    base.update(overrides)
    return argparse.Namespace(**base)


def rows(t, parts, part):
    n = t.shape[0] // parts
    return t[part * n:(part + 1) * n].clone()


def shard(name, t, rank, tp):
    """Tensor rank `rank`'s part, as Megatron-core partitions it (experts too: expert TP = TP)."""
    if name.endswith("linear_qkv.weight") or name.endswith("word_embeddings.weight") or name == "output_layer.weight":
        return rows(t, tp, rank)
    if name.endswith("linear_fc1.weight"):                     # SwiGLU: its rows of the gate, then of the up half
        gate, up = t.chunk(2, 0)
        return torch.cat([rows(gate, tp, rank), rows(up, tp, rank)])
    if name.endswith("linear_proj.weight") or name.endswith("linear_fc2.weight"):
        return t.chunk(tp, 1)[rank].clone()
    return t.clone()                                           # norms, the router: replicated


def expert_of(name):
    """(global expert, the rest of the name) of a SequentialMLP expert tensor, else None."""
    marker = ".mlp.experts.local_experts."
    if marker not in name:
        return None
    head, tail = name.split(marker)
    g, rest = tail.split(".", 1)
    return int(g), head + marker, rest


def te_name(name):
    """TransformerEngine's spec: the input norm fused into linear_qkv; the pre-MLP norm into linear_fc1 of dense layers."""
    name = name.replace(".input_layernorm.weight", ".self_attention.linear_qkv.layer_norm_weight")
    layer = int(name.split(".")[2]) if name.startswith("decoder.layers.") else None
    if layer is not None and not PATTERN[layer]:
        name = name.replace(".pre_mlp_layernorm.weight", ".mlp.linear_fc1.layer_norm_weight")
    return name


def save(folder, model, namespace, iteration=30):
    os.makedirs(folder, exist_ok=True)
    torch.save({"args": namespace, "checkpoint_version": 3.0, "iteration": iteration, "model": model},
               folder + "/model_optim_rng.pt")


def tracker(root, iteration=30):
    with open(os.path.join(root, "latest_checkpointed_iteration.txt"), "w") as f:
        f.write(str(iteration))


# ---- megatron-moe-tp2ep2 --------------------------------------------------------------------------------------------
def write_tp2ep2(root):
    shutil.rmtree(root, ignore_errors=True)
    tp, ep = 2, 2
    local = E // ep
    for t in range(tp):
        for e in range(ep):
            part = OrderedDict()
            for name, w in WHOLE.items():
                expert = expert_of(name)
                if expert is not None:
                    g, head, rest = expert
                    if g // local != e:
                        continue                               # another expert rank's
                    name = f"{head}{g % local}.{rest}"       # numbered within the rank
                part[te_name(name)] = shard(name, w, t, tp)
                if name.endswith(("linear_qkv.weight", "linear_proj.weight", "linear_fc1.weight", "linear_fc2.weight")):
                    part[te_name(name).rsplit(".", 1)[0] + "._extra_state"] = None
            save(f"{root}/iter_0000030/mp_rank_{t:02d}_{e:03d}", part,
                 args(tensor_model_parallel_size=tp, expert_model_parallel_size=ep, expert_tensor_parallel_size=tp))
    tracker(root)


# ---- megatron-moe-pp2ep2-grouped -----------------------------------------------------------------------------------
def write_pp2ep2_grouped(root):
    shutil.rmtree(root, ignore_errors=True)
    pp, ep = 2, 2
    local = E // ep
    for stage in range(pp):
        for e in range(ep):
            part = OrderedDict()
            if stage == 0:
                part["embedding.word_embeddings.weight"] = WHOLE["embedding.word_embeddings.weight"].clone()
            prefix = f"decoder.layers.{stage}."
            grouped = set()
            for name, w in WHOLE.items():
                if not name.startswith(prefix):
                    continue
                ours = name.replace(prefix, "decoder.layers.0.")
                expert = expert_of(ours)
                if expert is None:
                    part[te_name(name).replace(prefix, "decoder.layers.0.")] = w.clone()
                    continue
                g, head, rest = expert
                if g // local != e:
                    continue
                linear, param = rest.rsplit(".", 1)              # linear_fc1, weight
                part[f"decoder.layers.0.mlp.experts.{linear}.{param}{g % local}"] = w.clone()
                grouped.add(f"decoder.layers.0.mlp.experts.{linear}._extra_state")
            for key in sorted(grouped):
                part[key] = None
            if stage == pp - 1:
                part["decoder.final_layernorm.weight"] = WHOLE["decoder.final_layernorm.weight"].clone()
                part["output_layer.weight"] = WHOLE["embedding.word_embeddings.weight"].clone()
            save(f"{root}/iter_0000030/mp_rank_00_{stage:03d}_{e:03d}", part,
                 args(pipeline_model_parallel_size=pp, expert_model_parallel_size=ep, moe_grouped_gemm=True,
                      moe_router_load_balancing_type="aux_loss", moe_aux_loss_coeff=0.0,
                      moe_router_pre_softmax=True, moe_z_loss_coeff=0.001, moe_router_topk_limited_devices=1))
    tracker(root)


# ---- megatron-moe-legacy-tp2 ---------------------------------------------------------------------------------------
def write_legacy_tp2(root):
    shutil.rmtree(root, ignore_errors=True)
    tp = 2
    for t in range(tp):
        part = OrderedDict()
        fc1, fc2 = [], []
        for name, w in WHOLE.items():
            expert = expert_of(name)
            if expert is None:
                part[name] = shard(name, w, t, tp)
            elif name.endswith("linear_fc1.weight"):
                fc1.append(shard(name, w, t, tp))              # [2 x 8, 16]: this rank's gate rows, then up rows
            else:
                fc2.append(shard(name, w, t, tp))              # [16, 8]
        # GroupedMLP keeps the transposes ([h, F] per expert) back to back: weight1 [h, E x F], weight2 [E x F, h]
        weight1 = torch.stack([w.t() for w in fc1]).reshape(H, -1).clone()
        weight2 = torch.stack([w.t() for w in fc2]).reshape(-1, H).clone()
        for e in range(E):                                     # what GroupedMLP.forward hands the grouped GEMM
            assert torch.equal(weight1.view(E, H, -1)[e], fc1[e].t())
            assert torch.equal(weight2.view(E, -1, H)[e], fc2[e].t())
        assert not torch.equal(weight1[:, :2 * MFFN // tp], fc1[0].t()), "a column split would read other values"
        model = OrderedDict()
        for name, w in part.items():
            model[name] = w
            if name.endswith("mlp.router.weight"):
                model[EXPERT_BIAS[0]] = EXPERT_BIAS[1].clone()
                model[name.replace("router.weight", "experts.weight1")] = weight1
                model[name.replace("router.weight", "experts.weight2")] = weight2
        save(f"{root}/iter_0000030/mp_rank_{t:02d}", model,
             args(tensor_model_parallel_size=tp, expert_tensor_parallel_size=tp, transformer_impl="local",
                  moe_grouped_gemm=True, moe_use_legacy_grouped_gemm=True, moe_layer_freq=2,
                  moe_router_load_balancing_type="seq_aux_loss", moe_aux_loss_coeff=0.001, moe_z_loss_coeff=0.001,
                  moe_router_score_function="sigmoid", moe_router_topk_scaling_factor=2.5,
                  moe_expert_capacity_factor=1.5, moe_token_drop_policy="position",
                  moe_pad_expert_input_to_capacity=True, moe_router_num_groups=2, moe_router_group_topk=1,
                  moe_router_enable_expert_bias=True, moe_router_bias_update_rate=0.002))
    tracker(root)


# ---- megatron-moe-dist ----------------------------------------------------------------------------------------------
DIST_TP, DIST_EP = 2, 2


def dist_rank_items(tp, ep):
    """Rank (tp, ep)'s chunks: global key, global size, offsets, chunk."""
    chunks, objects = [], {}
    local = E // DIST_EP

    def swiglu(key, size, lead, t):                             # apply_swiglu_sharded_factory: the halves apart
        half = t.shape[0] // 2
        n = half // DIST_TP
        gate, up = t[:half], t[half:]
        pre = [1] * len(lead)
        chunks.append((key, size, lead + [tp * n, 0], rows(gate, DIST_TP, tp).reshape(pre + [n, t.shape[1]])))
        chunks.append((key, size, lead + [half + tp * n, 0], rows(up, DIST_TP, tp).reshape(pre + [n, t.shape[1]])))

    def columns(key, size, lead, t):
        n = t.shape[1] // DIST_TP
        chunks.append((key, size, lead + [0, tp * n], t[:, tp * n:(tp + 1) * n].reshape([1] * len(lead) + [t.shape[0], n])))

    for name, w in WHOLE.items():
        expert = expert_of(name)
        if expert is not None:
            g, head, rest = expert
            if g // local != ep:
                continue
            key = head.replace("local_experts.", "experts.") + rest    # ...mlp.experts.experts.linear_fc1.weight
            size = [E] + list(w.shape)
            if rest.startswith("linear_fc1"):
                swiglu(key, size, [g], w)
            else:
                columns(key, size, [g], w)
            continue
        if ep != 0:
            continue                                           # data-parallel replicas: expert rank 0 writes them
        key = te_name(name)
        if name.endswith("word_embeddings.weight") or name.endswith("linear_qkv.weight"):
            n = w.shape[0] // DIST_TP
            chunks.append((key, list(w.shape), [tp * n, 0], rows(w, DIST_TP, tp)))
        elif name.endswith("linear_fc1.weight"):
            swiglu(key, list(w.shape), [], w)
        elif name.endswith("linear_proj.weight") or name.endswith("linear_fc2.weight"):
            columns(key, list(w.shape), [], w)
        elif tp == 0:                                          # replicated: norms, the router
            chunks.append((key, list(w.shape), [0] * w.dim(), w.clone()))
    for g in range(ep * local, (ep + 1) * local):
        for linear in ["linear_fc1", "linear_fc2"]:
            objects[f"decoder.layers.0.mlp.experts.experts.{linear}._extra_state/shard_{g}.{tp}_{E}.{DIST_TP}"] = \
                dcp.saved_object(None)
    objects[f"rng_state/shard_{tp + DIST_TP * ep}_{DIST_TP * DIST_EP}"] = dcp.saved_object({"random_rng_state": (3, tp, ep)})
    return chunks, objects


def dist_save_rank(rank, world, folder, store):
    dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=world)
    tp, ep = rank % DIST_TP, rank // DIST_TP                   # tensor ranks adjacent; the data-parallel pair is the expert pair
    chunks, objects = dist_rank_items(tp, ep)
    save_state_dict({}, FileSystemWriter(folder, single_file_per_rank=True), planner=dcp.ChunkPlanner(chunks, objects))
    dist.destroy_process_group()


def write_common(folder, namespace, iteration=30):
    torch.save({"args": namespace, "checkpoint_version": 3.0, "iteration": iteration}, os.path.join(folder, "common.pt"))
    with open(os.path.join(folder, "metadata.json"), "w") as f:
        json.dump({"sharded_backend": "torch_dist", "sharded_backend_version": 1, "common_backend": "torch",
                   "common_backend_version": 1}, f)


def write_dist(root):
    shutil.rmtree(root, ignore_errors=True)
    folder = os.path.join(root, "iter_0000030")
    store = tempfile.mktemp(prefix="dcp-store-")
    mp.spawn(dist_save_rank, args=(DIST_TP * DIST_EP, folder, store), nprocs=DIST_TP * DIST_EP, join=True)
    write_common(folder, args(ckpt_format="torch_dist", tensor_model_parallel_size=DIST_TP,
                              expert_model_parallel_size=DIST_EP, expert_tensor_parallel_size=DIST_TP, use_dist_ckpt=True))
    tracker(root)


# ---- megatron-moe-dist-stacked --------------------------------------------------------------------------------------
def write_dist_stacked(root):
    shutil.rmtree(root, ignore_errors=True)
    folder = os.path.join(root, "iter_0000030")
    chunks = []
    for name, w in WHOLE.items():
        if name.startswith("decoder.layers.1."):
            continue
        if not name.startswith("decoder.layers.0."):
            chunks.append((name, list(w.shape), [0] * w.dim(), w.clone()))
            continue
        expert = expert_of(name)
        if expert is None:
            key = "decoder.layers." + te_name(name)[len("decoder.layers.0."):]
            chunks.append((key, [1] + list(w.shape), [0] * (w.dim() + 1), w[None].clone()))
            continue
        g, head, rest = expert
        key = "decoder.layers.mlp.experts.experts." + rest
        size = [1, E] + list(w.shape)
        if rest.startswith("linear_fc1"):
            half = w.shape[0] // 2
            chunks.append((key, size, [0, g, 0, 0], w[:half][None, None].clone()))
            chunks.append((key, size, [0, g, half, 0], w[half:][None, None].clone()))
        else:
            chunks.append((key, size, [0, g, 0, 0], w[None, None].clone()))
    save_state_dict({}, FileSystemWriter(folder, single_file_per_rank=True), planner=dcp.ChunkPlanner(chunks, {}),
                    no_dist=True)
    write_common(folder, args(num_layers=1, moe_layer_freq=1, ckpt_format="torch_dist", use_dist_ckpt=True))
    tracker(root)


if __name__ == "__main__":
    write_tp2ep2("megatron-moe-tp2ep2")
    write_pp2ep2_grouped("megatron-moe-pp2ep2-grouped")
    write_legacy_tp2("megatron-moe-legacy-tp2")
    write_dist("megatron-moe-dist")
    write_dist_stacked("megatron-moe-dist-stacked")
    expected = {name: {"shape": list(t.shape), "values_x64": (t.float().flatten() * 64).int().tolist()}
                for name, t in WHOLE.items()}   # the values times 64: integers
    bias = {EXPERT_BIAS[0]: {"shape": [E], "values_x64": (EXPERT_BIAS[1] * 64).int().tolist()}}
    with open("expected-moe.json", "w") as f:
        json.dump({"generator": f"torch {torch.__version__} via make_torch_moe_fixtures.py", "tensors": expected,
                   "megatron-moe-legacy-tp2": bias}, f)
