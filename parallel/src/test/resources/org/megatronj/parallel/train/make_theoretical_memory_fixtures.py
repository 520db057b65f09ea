"""Runs Megatron-LM's own theoretical_memory_usage.py (report_theoretical_memory, verbose) on a few dense and
mixture-of-experts GPT setups (two with MTP depths) and writes what it prints and returns, for TheoreticalMemoryTest:

    python3 make_theoretical_memory_fixtures.py <Megatron-LM checkout> > theoretical-memory.json

The file needs only `math` and two helpers from megatron.training.utils (stubbed here: no hybrid
model, print_rank_0 = print), so no PyTorch is needed. The fixtures were made from Megatron-LM main
of 2026-08-22 (d98e8a64dd).

The MoE cases take Megatron-J's layout: expert tensor parallelism is the tensor-parallel size (Megatron's
default) and expert model parallelism is 1; MoE needs --disable-bias-linear. --moe-layer-freq is given as its
flag's text and read as Megatron's arguments.moe_freq_type reads it (an int, or a list expression).
"""
import contextlib
import io
import json
import sys
import types
from argparse import Namespace

source = open(f"{sys.argv[1]}/megatron/training/theoretical_memory_usage.py", encoding="utf-8").read()
package = types.ModuleType("mtrain")
package.__path__ = []
utils = types.ModuleType("mtrain.utils")
utils.is_hybrid_model = lambda args: False
utils.print_rank_0 = print
sys.modules["mtrain"], sys.modules["mtrain.utils"] = package, utils
module = types.ModuleType("mtrain.theoretical_memory_usage")
module.__package__ = "mtrain"
exec(compile(source, "theoretical_memory_usage.py", "exec"), module.__dict__)


MOE_DEFAULTS = dict(num_experts=None, moe_ffn_hidden_size=None, moe_router_topk=2, moe_layer_freq="1",
                    moe_shared_expert_intermediate_size=None, moe_shared_expert_gate=False, add_bias_linear=True,
                    context_parallel_size=1)


def moe_freq(flag):
    return eval(flag, {"__builtins__": {}}) if "[" in flag else int(flag)


MLA_DEFAULTS = dict(multi_latent_attention=False, q_lora_rank=None, kv_lora_rank=32, qk_head_dim=128,
                    qk_pos_emb_head_dim=64, v_head_dim=128)


def case(name, **kw):
    a = dict(num_layers=24, hidden_size=1024, num_attention_heads=16, kv_channels=64, num_query_groups=16,
             group_query_attention=False, ffn_hidden_size=4096, swiglu=False, normalization="LayerNorm",
             padded_vocab_size=50304, untie_embeddings_and_output_weights=False, seq_length=1024, micro_batch_size=8,
             tensor_model_parallel_size=1, pipeline_model_parallel_size=1, virtual_pipeline_model_parallel_size=None,
             data_parallel_size=1, use_distributed_optimizer=False, sequence_parallel=False, recompute_granularity=None,
             num_microbatches=1)
    a.update(kw)
    if a.get("num_experts") is not None:   # MoE cases list every MoE argument
        a = {**MOE_DEFAULTS, **a}
        if a["moe_ffn_hidden_size"] is None:
            a["moe_ffn_hidden_size"] = a["ffn_hidden_size"]   # Megatron's validate_args default
    a["world_size"] = (a["tensor_model_parallel_size"] * a["pipeline_model_parallel_size"]
                       * a.get("context_parallel_size", 1) * a["data_parallel_size"])
    nmb = a.pop("num_microbatches")
    full = {**MOE_DEFAULTS, **MLA_DEFAULTS, **a}
    del full["context_parallel_size"]   # Megatron's file reads it only through world_size
    full["moe_layer_freq"] = moe_freq(full["moe_layer_freq"])
    args = Namespace(**{"mtp_num_layers": None, **full}, moe_latent_size=None,
                     expert_tensor_parallel_size=a["tensor_model_parallel_size"], expert_model_parallel_size=1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        w, act, total = module.report_theoretical_memory(args, num_microbatches=nmb, verbose=True)
    a["num_microbatches"] = nmb
    return {"name": name, "args": a, "lines": out.getvalue().split("\n")[:-1], "weight_and_optimizer_mb": w,
            "activation_mb": act, "total_mb": total}


cases = [
    case("gpt-345m"),
    case("gpt2-124m-untied-rms-swiglu", num_layers=12, hidden_size=768, num_attention_heads=12, num_query_groups=12,
         ffn_hidden_size=2048, swiglu=True, normalization="RMSNorm", untie_embeddings_and_output_weights=True,
         micro_batch_size=16),
    case("tp2-sp-selective-gqa", tensor_model_parallel_size=2, sequence_parallel=True, recompute_granularity="selective",
         num_query_groups=4, group_query_attention=True, padded_vocab_size=50432),
    case("pp2-distopt-dp4", pipeline_model_parallel_size=2, data_parallel_size=4, use_distributed_optimizer=True,
         num_microbatches=1, untie_embeddings_and_output_weights=True),
    case("pp4-vp2-tp2", pipeline_model_parallel_size=4, virtual_pipeline_model_parallel_size=2,
         tensor_model_parallel_size=2, num_microbatches=8, padded_vocab_size=50432),
    case("tiny", num_layers=1, hidden_size=16, num_attention_heads=2, kv_channels=8, num_query_groups=2,
         ffn_hidden_size=64, padded_vocab_size=56, seq_length=16, micro_batch_size=2),
    case("moe-mixtral-like-8x-top2-tp2-sp-distopt", num_layers=32, hidden_size=4096, num_attention_heads=32,
         kv_channels=128, num_query_groups=8, group_query_attention=True, ffn_hidden_size=14336, swiglu=True,
         normalization="RMSNorm", untie_embeddings_and_output_weights=True, padded_vocab_size=32000, seq_length=4096,
         micro_batch_size=1, tensor_model_parallel_size=2, sequence_parallel=True, recompute_granularity="selective",
         data_parallel_size=4, use_distributed_optimizer=True, num_microbatches=8,
         num_experts=8, moe_router_topk=2, add_bias_linear=False),
    case("moe-freq-pattern-shared-gate-pp2-cp2-distopt", num_layers=6, swiglu=True, normalization="RMSNorm",
         ffn_hidden_size=2816, pipeline_model_parallel_size=2, context_parallel_size=2, data_parallel_size=2,
         use_distributed_optimizer=True, num_microbatches=4, num_experts=16, moe_router_topk=4,
         moe_ffn_hidden_size=512, moe_layer_freq="[0]+[1]*5", moe_shared_expert_intermediate_size=1024,
         moe_shared_expert_gate=True, add_bias_linear=False),
    case("moe-freq-2-top1-pp4-vp2-tp2", num_layers=8, pipeline_model_parallel_size=4,
         virtual_pipeline_model_parallel_size=2, tensor_model_parallel_size=2, num_microbatches=8,
         padded_vocab_size=50432, num_experts=4, moe_router_topk=1, moe_ffn_hidden_size=2048, moe_layer_freq="2",
         moe_shared_expert_intermediate_size=512, add_bias_linear=False),
    # multi-latent attention (the weights' MLA branch; the activations have none in Megatron's file)
    case("mla-q-lora-rms-tp2-sp", num_layers=4, hidden_size=512, num_attention_heads=8, num_query_groups=8,
         ffn_hidden_size=1024, swiglu=True, normalization="RMSNorm", tensor_model_parallel_size=2, sequence_parallel=True,
         recompute_granularity="selective", add_bias_linear=False, multi_latent_attention=True, q_lora_rank=96,
         kv_lora_rank=64, qk_head_dim=32, qk_pos_emb_head_dim=16, v_head_dim=32),
    case("mla-q-proj-layernorm-moe", num_layers=4, hidden_size=256, num_attention_heads=4, num_query_groups=4,
         ffn_hidden_size=512, swiglu=True, add_bias_linear=False, multi_latent_attention=True, kv_lora_rank=48,
         qk_head_dim=48, qk_pos_emb_head_dim=16, v_head_dim=32, num_experts=4, moe_layer_freq="[0]+[1]*3"),
    case("mtp2-pp2-tp2-sp", pipeline_model_parallel_size=2, tensor_model_parallel_size=2, sequence_parallel=True,
         num_microbatches=4, padded_vocab_size=50432, mtp_num_layers=2),
    case("moe-last-layer-mtp1-distopt", num_layers=4, swiglu=True, normalization="RMSNorm", ffn_hidden_size=2816,
         data_parallel_size=2, use_distributed_optimizer=True, num_experts=8, moe_router_topk=2, moe_ffn_hidden_size=512,
         moe_layer_freq="[0,1,0,1]", add_bias_linear=False, mtp_num_layers=1),
]
print(json.dumps({"generator": "make_theoretical_memory_fixtures.py on Megatron-LM main (2026-08-22)", "cases": cases},
                 indent=1))
