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
