"""Writes megatron-gpt/ (a tiny Megatron-LM `--ckpt-format torch` checkpoint, TE layer spec) and expected.json
with PyTorch (Debian's python3-torch 1.13; any torch >= 1.6 writes the same zip format):

    python3 make_torch_fixtures.py

megatron-gpt/ is laid out as Megatron's save_checkpoint lays it out: latest_checkpointed_iteration.txt and
iter_0000010/mp_rank_00/model_optim_rng.pt holding {'args': Namespace, 'checkpoint_version': 3.0, 'iteration',
'model': OrderedDict, 'optimizer', 'opt_param_scheduler', 'rng_state', 'num_floating_point_operations_so_far'}, its
model the state dict of a 1-layer GPT (hidden 8, 2 heads, TransformerEngine's fused layer norms, bf16 weights) with
TE's _extra_state entries. A few tensors test the reader: an fp16 one, an fp32 one, a transposed (non-contiguous)
view and a view at an offset into a shared storage. expected.json lists every tensor's dtype, shape and values.
"""
import argparse
import io
import json
import os
import random
from collections import OrderedDict

import numpy as np
import torch

torch.manual_seed(20261207)
h, heads, ffn, vocab, seq = 8, 2, 32, 16, 8


def weights(*shape, dtype=torch.bfloat16):
    # multiples of 1/64 up to 2: exact in bf16 and fp16
    return (torch.randint(-128, 129, shape).float() / 64).to(dtype)


shared = weights(2 * h)
model = OrderedDict()
model["embedding.word_embeddings.weight"] = weights(vocab, h)
model["embedding.position_embeddings.weight"] = weights(h, seq).t()          # non-contiguous: [seq, h] stride (1, seq)
model["decoder.layers.0.self_attention.linear_proj._extra_state"] = None
model["decoder.layers.0.self_attention.linear_proj.weight"] = weights(h, h)
model["decoder.layers.0.self_attention.linear_proj.bias"] = weights(h, dtype=torch.float16)
model["decoder.layers.0.self_attention.linear_qkv.layer_norm_weight"] = shared[:h]
model["decoder.layers.0.self_attention.linear_qkv.layer_norm_bias"] = shared[h:]   # a view at offset h
model["decoder.layers.0.self_attention.linear_qkv.weight"] = weights(3 * h, h)
model["decoder.layers.0.self_attention.linear_qkv.bias"] = weights(3 * h)
model["decoder.layers.0.self_attention.linear_qkv._extra_state"] = io.BytesIO(b"te-fp8-meta")
model["decoder.layers.0.mlp.linear_fc1.layer_norm_weight"] = weights(h, dtype=torch.float32)
model["decoder.layers.0.mlp.linear_fc1.layer_norm_bias"] = weights(h)
model["decoder.layers.0.mlp.linear_fc1.weight"] = weights(ffn, h)
model["decoder.layers.0.mlp.linear_fc1.bias"] = weights(ffn)
model["decoder.layers.0.mlp.linear_fc2.weight"] = weights(h, ffn)
model["decoder.layers.0.mlp.linear_fc2.bias"] = weights(h)
model["decoder.final_layernorm.weight"] = weights(h)
model["decoder.final_layernorm.bias"] = weights(h)

args = argparse.Namespace(
    num_layers=1, hidden_size=h, ffn_hidden_size=ffn, num_attention_heads=heads, kv_channels=h // heads,
    group_query_attention=False, num_query_groups=1, seq_length=seq, max_position_embeddings=seq,
    position_embedding_type="learned_absolute", rotary_percent=1.0, rotary_base=10000, normalization="LayerNorm",
    swiglu=False, add_bias_linear=True, add_qkv_bias=False, qk_layernorm=False, untie_embeddings_and_output_weights=False,
    layernorm_epsilon=1e-5, apply_layernorm_1p=False, bias_gelu_fusion=True, openai_gelu=False, squared_relu=False,
    padded_vocab_size=vocab, make_vocab_size_divisible_by=8, tokenizer_type="NullTokenizer", vocab_size=15,
    vocab_file=None, merge_file=None, tokenizer_model=None, init_method_std=0.02, hidden_dropout=0.1,
    attention_dropout=0.1, params_dtype=torch.bfloat16, bf16=True, fp16=False, tensor_model_parallel_size=1,
    pipeline_model_parallel_size=1, virtual_pipeline_model_parallel_size=None, ckpt_format="torch",
    transformer_impl="transformer_engine", micro_batch_size=2, global_batch_size=4, lr=3e-4, train_iters=100,
    data_path=["my-corpus_text_document"], split="969,30,1", seed=1234, iteration=10, consumed_train_samples=40)

state = {
    "args": args,
    "checkpoint_version": 3.0,
    "iteration": 10,
    "model": model,
    "optimizer": {"optimizer": {"state": {}, "param_groups": [{"lr": 3e-4, "params": [0, 1]}]},
                  "fp32_from_fp16_params": [[model["decoder.final_layernorm.weight"].float()]]},
    "opt_param_scheduler": {"max_lr": 3e-4, "num_steps": 40},
    "rng_state": [{"random_rng_state": random.getstate(), "np_rng_state": np.random.get_state(),
                   "torch_rng_state": torch.get_rng_state(), "rng_tracker_states": {}}],
    "num_floating_point_operations_so_far": 1.5e12,
}
folder = "megatron-gpt/iter_0000010/mp_rank_00"
os.makedirs(folder, exist_ok=True)
torch.save(state, folder + "/model_optim_rng.pt")
with open("megatron-gpt/latest_checkpointed_iteration.txt", "w") as f:
    f.write("10")

expected = {name: {"dtype": str(t.dtype), "shape": list(t.shape), "values": t.float().flatten().tolist()}
            for name, t in model.items() if isinstance(t, torch.Tensor)}
json.dump({"generator": f"torch {torch.__version__} via make_torch_fixtures.py", "tensors": expected}, open("expected.json", "w"))


# megatron-gpt-tp2pp2/ and megatron-gpt-whole/ (numpy's RNG state above is not seeded, so megatron-gpt's file differs in
# bytes, not in values, from run to run): one 2-layer model (SwiGLU, GQA with 4 heads in 2 groups, RMSNorm, rope,
# tied embeddings, TE names) saved whole and as Megatron-core partitions it over 2 tensor x 2 pipeline ranks:
# column-parallel weights (linear_qkv by query group, linear_fc1's gate and up halves each, the vocabulary) split by
# rows with their biases, row-parallel ones (linear_proj, linear_fc2) by columns, norms replicated, each stage's layers
# numbered from 0, the last stage holding the tied output layer's copy as output_layer.weight.
torch.manual_seed(7)
H, HEADS, GROUPS, FFN, V, SEQ, LAYERS = 16, 4, 2, 32, 32, 8, 2
D = H // HEADS
whole = OrderedDict()
whole["embedding.word_embeddings.weight"] = weights(V, H)
for l in range(LAYERS):
    p = f"decoder.layers.{l}."
    whole[p + "self_attention.linear_qkv.layer_norm_weight"] = weights(H)
    whole[p + "self_attention.linear_qkv.weight"] = weights((HEADS + 2 * GROUPS) * D, H)
    whole[p + "self_attention.linear_proj.weight"] = weights(H, HEADS * D)
    whole[p + "mlp.linear_fc1.layer_norm_weight"] = weights(H)
    whole[p + "mlp.linear_fc1.weight"] = weights(2 * FFN, H)
    whole[p + "mlp.linear_fc2.weight"] = weights(H, FFN)
whole["decoder.final_layernorm.weight"] = weights(H)
base = vars(args).copy()
base.update(num_layers=LAYERS, hidden_size=H, ffn_hidden_size=FFN, num_attention_heads=HEADS, kv_channels=D,
            group_query_attention=True, num_query_groups=GROUPS, seq_length=SEQ, max_position_embeddings=SEQ,
            position_embedding_type="rope", normalization="RMSNorm", swiglu=True, add_bias_linear=False,
            bias_gelu_fusion=False, padded_vocab_size=V, vocab_size=31, make_vocab_size_divisible_by=8)


def save(folder, model, tp, pp):
    state = {"args": argparse.Namespace(**dict(base, tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp)),
             "checkpoint_version": 3.0, "iteration": 20, "model": model}
    os.makedirs(folder, exist_ok=True)
    torch.save(state, folder + "/model_optim_rng.pt")


def shard(name, t, rank, tp):
    rows = lambda x: x.chunk(tp, 0)[rank].clone()
    if name.endswith("linear_qkv.weight") or name.endswith("word_embeddings.weight"):
        return rows(t)                                     # query groups / vocabulary, contiguous per rank
    if name.endswith("linear_fc1.weight"):
        gate, up = t.chunk(2, 0)
        return torch.cat([rows(gate), rows(up)])           # each rank: its rows of the gate, then of the up half
    if name.endswith("linear_proj.weight") or name.endswith("linear_fc2.weight"):
        return t.chunk(tp, 1)[rank].clone()
    return t.clone()                                       # norms: replicated


save("megatron-gpt-whole/iter_0000020/mp_rank_00", whole, 1, 1)
open("megatron-gpt-whole/latest_checkpointed_iteration.txt", "w").write("20")
for stage in range(2):
    for rank in range(2):
        part = OrderedDict()
        if stage == 0:
            part["embedding.word_embeddings.weight"] = shard("embedding.word_embeddings.weight",
                                                             whole["embedding.word_embeddings.weight"], rank, 2)
        for name, t in whole.items():
            if name.startswith(f"decoder.layers.{stage}."):
                local = name.replace(f"decoder.layers.{stage}.", "decoder.layers.0.")
                part[local] = shard(name, t, rank, 2)
                if local.endswith("linear_qkv.weight") or local.endswith("linear_proj.weight"):
                    part[local.rsplit(".", 1)[0] + "._extra_state"] = None
        if stage == 1:
            part["decoder.final_layernorm.weight"] = whole["decoder.final_layernorm.weight"].clone()
            part["output_layer.weight"] = shard("word_embeddings.weight", whole["embedding.word_embeddings.weight"], rank, 2)
        save(f"megatron-gpt-tp2pp2/iter_0000020/mp_rank_{rank:02d}_{stage:03d}", part, 2, 2)
open("megatron-gpt-tp2pp2/latest_checkpointed_iteration.txt", "w").write("20")


# megatron-gpt-layout/: the same 2-layer model over 2 pipeline ranks (TP 1) split by --pipeline-model-parallel-layout
# "Ett|L", as Megatron-core builds it: stage 0 holds the embedding and both layers, stage 1 no layer, only the final
# norm and the tied output layer's copy.
for stage, layers in enumerate([[0, 1], []]):
    part = OrderedDict()
    if stage == 0:
        part["embedding.word_embeddings.weight"] = whole["embedding.word_embeddings.weight"].clone()
    for local, l in enumerate(layers):
        for name, t in whole.items():
            if name.startswith(f"decoder.layers.{l}."):
                part[name.replace(f"decoder.layers.{l}.", f"decoder.layers.{local}.")] = t.clone()
    if stage == 1:
        part["decoder.final_layernorm.weight"] = whole["decoder.final_layernorm.weight"].clone()
        part["output_layer.weight"] = whole["embedding.word_embeddings.weight"].clone()
    folder = f"megatron-gpt-layout/iter_0000020/mp_rank_00_{stage:03d}"
    os.makedirs(folder, exist_ok=True)
    torch.save({"args": argparse.Namespace(**dict(base, tensor_model_parallel_size=1, pipeline_model_parallel_size=2,
                                                   pipeline_model_parallel_layout="Ett|L")),
                "checkpoint_version": 3.0, "iteration": 20, "model": part}, folder + "/model_optim_rng.pt")
open("megatron-gpt-layout/latest_checkpointed_iteration.txt", "w").write("20")
