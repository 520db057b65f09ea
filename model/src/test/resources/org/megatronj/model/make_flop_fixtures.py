"""Evaluates Megatron-LM's own num_floating_point_operations (megatron/training/training.py) on a few dense and
mixture-of-experts GPT setups (two with Multi-Token Prediction depths) and writes what it returns, for FlopCounterTest:

    python3 make_flop_fixtures.py <Megatron-LM git directory (bare or not)> > flops.json

Two versions of the function are evaluated, each read with `git show`:
  - "logged": today's (main), which FlopCounter.megatronLoggedFlopsPerIteration follows: causal attention at half,
    dense and MoE layers counted apart by --moe-layer-freq;
  - "classic": the last version before Megatron-LM commit 8873b55d6a (2025-03-06), which
    FlopCounter.trainingFlopsPerIteration follows: full s^2 attention, and with --num-experts every layer counted as
    an MoE layer (moe_ffn_hidden_size x topk routed plus the shared experts), whatever --moe-layer-freq says.
Only the function's own definition is taken from the file (with `ast`) and run; the helpers it calls that are not
GPT's (hybrid models, linear attention variants) are stubbed to say "no", so no PyTorch is needed.
"""
import ast
import json
import subprocess
import sys
from argparse import Namespace

REPO = sys.argv[1]
REVISIONS = {"logged": "HEAD", "classic": "8873b55d6aad08f0f535174746d2836df3dfa93b^"}


def load(revision):
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", revision], check=True, capture_output=True,
                            text=True).stdout.strip()
    source = subprocess.run(["git", "-C", REPO, "show", f"{commit}:megatron/training/training.py"], check=True,
                            capture_output=True, text=True).stdout
    tree = ast.parse(source)
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "num_floating_point_operations")
    namespace = {"is_hybrid_model": lambda args: False, "is_linear_attention_variant": lambda v: False,
                 "is_gated_delta_net_variant": lambda v: False}
    exec(compile(ast.Module(body=[node], type_ignores=[]), f"{commit}:training.py", "exec"), namespace)
    return commit, namespace["num_floating_point_operations"]


functions = {name: load(rev) for name, rev in REVISIONS.items()}


def moe_freq(flag):
    """--moe-layer-freq as Megatron's arguments.moe_freq_type reads it: an int, or a list expression."""
    return eval(flag, {"__builtins__": {}}) if "[" in flag else int(flag)


def case(name, batch_size, **kw):
    a = dict(num_layers=24, hidden_size=1024, num_attention_heads=16, kv_channels=64, num_query_groups=16,
             group_query_attention=False, ffn_hidden_size=4096, swiglu=False, padded_vocab_size=50304, seq_length=1024,
             num_experts=None, moe_router_topk=2, moe_ffn_hidden_size=None, moe_layer_freq="1",
             moe_shared_expert_intermediate_size=None)
    a.update(kw)
    if "vocab_size" in a:   # Megatron's _vocab_size_with_padding: a multiple of make_vocab_size_divisible_by x TP
        multiple = a["make_vocab_size_divisible_by"] * a["tensor_model_parallel_size"]
        a["padded_vocab_size"] = -(-a["vocab_size"] // multiple) * multiple
    if a["num_experts"] is not None and a["moe_ffn_hidden_size"] is None:
        a["moe_ffn_hidden_size"] = a["ffn_hidden_size"]   # Megatron's validate_args default
    result = {"name": name, "batch_size": batch_size, "args": dict(a)}
    for kind, (commit, flops) in functions.items():
        args = Namespace(**{"mtp_num_layers": None, **a}, moe_latent_size=None, multi_latent_attention=False,
                         attention_output_gate=False, experimental_attention_variant=None)
        args.moe_layer_freq = moe_freq(a["moe_layer_freq"])
        result[kind] = flops(args, batch_size)
    return result


cases = [
    case("gpt-345m", 8),
    case("gqa-swiglu-kv-channels", 3, num_layers=2, hidden_size=256, num_attention_heads=8, kv_channels=48,
         num_query_groups=2, group_query_attention=True, ffn_hidden_size=512, swiglu=True, padded_vocab_size=1024,
         seq_length=128),
    case("mixtral-like-8x-top2-swiglu", 2, num_layers=32, hidden_size=4096, num_attention_heads=32, kv_channels=128,
         num_query_groups=8, group_query_attention=True, ffn_hidden_size=14336, swiglu=True, padded_vocab_size=32000,
         seq_length=4096, num_experts=8, moe_router_topk=2),
    case("freq-pattern-shared-experts", 4, num_layers=6, hidden_size=512, num_attention_heads=8, kv_channels=64,
         num_query_groups=8, ffn_hidden_size=2048, swiglu=True, padded_vocab_size=32768, seq_length=512,
         num_experts=16, moe_router_topk=4, moe_ffn_hidden_size=384, moe_layer_freq="([0]+[1]*2)*2",
         moe_shared_expert_intermediate_size=768),
    case("freq-2-gelu-top1", 5, num_layers=4, hidden_size=384, num_attention_heads=6, kv_channels=64,
         num_query_groups=6, ffn_hidden_size=1536, swiglu=False, padded_vocab_size=8192, seq_length=256,
         num_experts=4, moe_router_topk=1, moe_ffn_hidden_size=1024, moe_layer_freq="2"),
    case("moe-tp2-gpt2-vocab", 4, num_layers=4, hidden_size=768, num_attention_heads=12, kv_channels=64,
         num_query_groups=12, ffn_hidden_size=3072, vocab_size=50257, make_vocab_size_divisible_by=128,
         tensor_model_parallel_size=2, seq_length=1024, num_experts=4, moe_router_topk=2, moe_ffn_hidden_size=1536,
         moe_layer_freq="2"),
    case("dense-mtp1", 3, num_layers=2, hidden_size=256, num_attention_heads=8, kv_channels=32, num_query_groups=8,
         ffn_hidden_size=1024, padded_vocab_size=1024, seq_length=128, mtp_num_layers=1),
    case("moe-last-layer-mtp2", 2, num_layers=6, hidden_size=512, num_attention_heads=8, kv_channels=64,
         num_query_groups=8, ffn_hidden_size=2048, swiglu=True, padded_vocab_size=32768, seq_length=512,
         num_experts=16, moe_router_topk=4, moe_ffn_hidden_size=384, moe_layer_freq="([0]+[1]*2)*2",
         moe_shared_expert_intermediate_size=768, mtp_num_layers=2),
]


def mla_case(name, batch_size, q_lora_rank, **kw):
    """Multi-latent attention (today's function only: FlopCounter.trainingFlopsPerIteration's MLA terms are its own)."""
    a = dict(num_layers=4, hidden_size=512, num_attention_heads=8, kv_channels=64, num_query_groups=8,
             group_query_attention=False, ffn_hidden_size=1024, swiglu=True, padded_vocab_size=8192, seq_length=256,
             num_experts=None, moe_router_topk=2, moe_ffn_hidden_size=None, moe_layer_freq="1",
             moe_shared_expert_intermediate_size=None, q_lora_rank=q_lora_rank, kv_lora_rank=64, qk_head_dim=32,
             qk_pos_emb_head_dim=16, v_head_dim=32)
    a.update(kw)
    if a["num_experts"] is not None and a["moe_ffn_hidden_size"] is None:
        a["moe_ffn_hidden_size"] = a["ffn_hidden_size"]
    args = Namespace(**a, mtp_num_layers=None, moe_latent_size=None, multi_latent_attention=True,
                     attention_output_gate=False, experimental_attention_variant=None)
    args.moe_layer_freq = moe_freq(a["moe_layer_freq"])
    return {"name": name, "batch_size": batch_size, "args": dict(a), "logged": functions["logged"][1](args, batch_size)}


mla_cases = [
    mla_case("mla-q-lora", 3, 96),
    mla_case("mla-q-proj", 2, None),
    mla_case("mla-moe-deepseek-like", 2, 128, num_layers=6, hidden_size=256, num_attention_heads=4, ffn_hidden_size=512,
             kv_lora_rank=96, qk_head_dim=48, qk_pos_emb_head_dim=16, v_head_dim=48, num_experts=8, moe_router_topk=2,
             moe_ffn_hidden_size=128, moe_layer_freq="([0]+[1]*5)", moe_shared_expert_intermediate_size=256),
]
print(json.dumps({"generator": "make_flop_fixtures.py",
                  "megatron_commits": {kind: commit for kind, (commit, _) in functions.items()},
                  "cases": cases, "mla_cases": mla_cases}, indent=1))
