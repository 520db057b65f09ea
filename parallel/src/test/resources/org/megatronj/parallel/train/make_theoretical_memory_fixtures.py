"""Runs Megatron-LM's own theoretical_memory_usage.py (report_theoretical_memory, verbose) on a few dense GPT
setups and writes what it prints and returns, for TheoreticalMemoryTest:

    python3 make_theoretical_memory_fixtures.py <Megatron-LM checkout> > theoretical-memory.json

The file needs only `math` and two helpers from megatron.training.utils (stubbed here: no hybrid
model, print_rank_0 = print), so no PyTorch is needed. The fixtures were made from Megatron-LM main
of 2026-08-22.
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


def case(name, **kw):
    a = dict(num_layers=24, hidden_size=1024, num_attention_heads=16, kv_channels=64, num_query_groups=16,
             group_query_attention=False, ffn_hidden_size=4096, swiglu=False, normalization="LayerNorm",
             padded_vocab_size=50304, untie_embeddings_and_output_weights=False, seq_length=1024, micro_batch_size=8,
             tensor_model_parallel_size=1, pipeline_model_parallel_size=1, virtual_pipeline_model_parallel_size=None,
             data_parallel_size=1, use_distributed_optimizer=False, sequence_parallel=False, recompute_granularity=None,
             num_microbatches=1)
    a.update(kw)
    a["world_size"] = a["tensor_model_parallel_size"] * a["pipeline_model_parallel_size"] * a["data_parallel_size"]
    nmb = a.pop("num_microbatches")
    args = Namespace(**a, num_experts=None, moe_shared_expert_intermediate_size=None, mtp_num_layers=None,
                     multi_latent_attention=False, moe_latent_size=None, moe_router_topk=2, add_bias_linear=True,
                     expert_tensor_parallel_size=1, expert_model_parallel_size=1, moe_layer_freq=1)
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
]
print(json.dumps({"generator": "make_theoretical_memory_fixtures.py on Megatron-LM main (2026-08-22)", "cases": cases},
                 indent=1))
