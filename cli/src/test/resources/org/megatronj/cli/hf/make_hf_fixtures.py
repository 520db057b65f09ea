#!/usr/bin/env python3
"""Tiny random Hugging Face Llama-family and MoE models with reference logits (CheckpointImportHfLlamaTest).

For each variant writes <variant>/config.json (transformers' field names), <variant>/model.safetensors (written by
hand: 8-byte little-endian header length, JSON header, raw little-endian data; HF tensor names) and
<variant>/expected.json {"tokens": [...], "logits": [[V floats] per position]}: the logits of the HF architecture's
forward for the tokens, computed here in float64 by an independent plain-torch implementation of transformers'
modeling code (RMSNorm, rotate-half rope with HF's inv_freq and llama3 scaling, GQA by repeat_kv, SwiGLU, qkv bias,
Qwen3's q_norm/k_norm, Mixtral's and Qwen2-MoE's routing, Qwen2-MoE's gated shared expert).

Run with Debian's python3-torch:  /usr/bin/python3 cli/src/test/resources/org/megatronj/cli/hf/make_hf_fixtures.py
"""
import json
import math
import os
import struct

import torch

torch.set_default_dtype(torch.float64)
OUT = os.path.dirname(os.path.abspath(__file__))

BASE = dict(vocab_size=61, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-06, hidden_act="silu",
            initializer_range=0.02, attention_dropout=0.0, use_cache=True, bos_token_id=1, eos_token_id=2)

VARIANTS = {
    # Llama 3.1: GQA, untied, llama3 rope scaling (d = 8 with theta 5e5 has frequencies in all three bands), bf16.
    "llama3": ("bfloat16", dict(BASE, architectures=["LlamaForCausalLM"], model_type="llama", rope_theta=500000.0,
                                rope_scaling={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                              "original_max_position_embeddings": 8192, "rope_type": "llama3"},
                                attention_bias=False, mlp_bias=False, tie_word_embeddings=False, pretraining_tp=1)),
    # Llama 2 style: multi-head (no GQA), tied head, fp32.
    "llama2_tied": ("float32", dict(BASE, architectures=["LlamaForCausalLM"], model_type="llama", num_key_value_heads=4,
                                    rope_theta=10000.0, rope_scaling=None, rms_norm_eps=1e-05, attention_bias=False,
                                    tie_word_embeddings=True)),
    "mistral": ("float32", dict(BASE, architectures=["MistralForCausalLM"], model_type="mistral", rope_theta=1000000.0,
                                sliding_window=None, tie_word_embeddings=False)),
    # Qwen2: qkv bias, tied (as Qwen2-0.5B), sliding window configured but off.
    "qwen2": ("bfloat16", dict(BASE, architectures=["Qwen2ForCausalLM"], model_type="qwen2", rope_theta=1000000.0,
                               use_sliding_window=False, sliding_window=32, max_window_layers=2,
                               tie_word_embeddings=True)),
    # Qwen3: head_dim 16 != hidden / heads, q_norm / k_norm, untied.
    "qwen3": ("float32", dict(BASE, architectures=["Qwen3ForCausalLM"], model_type="qwen3", head_dim=16,
                              rope_theta=1000000.0, attention_bias=False, use_sliding_window=False, sliding_window=None,
                              tie_word_embeddings=False)),
    "mixtral": ("float32", dict(BASE, architectures=["MixtralForCausalLM"], model_type="mixtral", rope_theta=1000000.0,
                                num_local_experts=4, num_experts_per_tok=2, output_router_logits=False,
                                router_aux_loss_coef=0.02, router_jitter_noise=0.0, sliding_window=None,
                                tie_word_embeddings=False)),
    # Qwen2-MoE: qkv bias, softmax-then-top-k without renormalisation, a gated shared expert, layer 1 dense.
    "qwen2_moe": ("float32", dict(BASE, architectures=["Qwen2MoeForCausalLM"], model_type="qwen2_moe",
                                  rope_theta=1000000.0, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=24,
                                  shared_expert_intermediate_size=40, norm_topk_prob=False, decoder_sparse_step=1,
                                  mlp_only_layers=[1], output_router_logits=False, router_aux_loss_coef=0.001,
                                  use_sliding_window=False, sliding_window=None, tie_word_embeddings=False)),
    # Qwen3-MoE: q_norm / k_norm, head_dim 16, renormalised top-k, every layer sparse.
    "qwen3_moe": ("float32", dict(BASE, architectures=["Qwen3MoeForCausalLM"], model_type="qwen3_moe", head_dim=16,
                                  rope_theta=1000000.0, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=24,
                                  norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[],
                                  output_router_logits=False, router_aux_loss_coef=0.001, attention_bias=False,
                                  use_sliding_window=False, sliding_window=None, tie_word_embeddings=False)),
}


def head_dim(c):
    return c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]


def sparse_layer(c, l):
    t = c["model_type"]
    if t == "mixtral":
        return True
    if t in ("qwen2_moe", "qwen3_moe"):
        return l not in c["mlp_only_layers"] and c["num_experts"] > 0 and (l + 1) % c["decoder_sparse_step"] == 0
    return False


def make_weights(c, gen):
    h, V, f, d = c["hidden_size"], c["vocab_size"], c["intermediate_size"], head_dim(c)
    np_, ng = c["num_attention_heads"], c["num_key_value_heads"]

    def normal(*shape, std=None):
        return torch.randn(*shape, generator=gen) * (std if std is not None else 1.0 / math.sqrt(shape[-1]))

    def around_one(n):
        return 1.0 + 0.1 * torch.randn(n, generator=gen)

    def mlp(prefix, width, names=("gate_proj", "up_proj", "down_proj")):
        w[prefix + names[0] + ".weight"] = normal(width, h)
        w[prefix + names[1] + ".weight"] = normal(width, h)
        w[prefix + names[2] + ".weight"] = normal(h, width)

    w = {"model.embed_tokens.weight": normal(V, h, std=0.5)}
    qwen2 = c["model_type"] in ("qwen2", "qwen2_moe")
    qk_norm = c["model_type"] in ("qwen3", "qwen3_moe")
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = around_one(h)
        for name, rows in (("q_proj", np_ * d), ("k_proj", ng * d), ("v_proj", ng * d)):
            w[p + "self_attn." + name + ".weight"] = normal(rows, h)
            if qwen2:
                w[p + "self_attn." + name + ".bias"] = normal(rows, std=0.2)
        w[p + "self_attn.o_proj.weight"] = normal(h, np_ * d)
        if qk_norm:
            w[p + "self_attn.q_norm.weight"] = around_one(d)
            w[p + "self_attn.k_norm.weight"] = around_one(d)
        w[p + "post_attention_layernorm.weight"] = around_one(h)
        if c["model_type"] == "mixtral":
            w[p + "block_sparse_moe.gate.weight"] = normal(c["num_local_experts"], h, std=0.5)
            for e in range(c["num_local_experts"]):
                mlp(p + f"block_sparse_moe.experts.{e}.", f, ("w1", "w3", "w2"))
        elif sparse_layer(c, l):
            w[p + "mlp.gate.weight"] = normal(c["num_experts"], h, std=0.5)
            for e in range(c["num_experts"]):
                mlp(p + f"mlp.experts.{e}.", c["moe_intermediate_size"])
            if c.get("shared_expert_intermediate_size", 0) > 0:
                mlp(p + "mlp.shared_expert.", c["shared_expert_intermediate_size"])
                w[p + "mlp.shared_expert_gate.weight"] = normal(1, h)
        else:
            mlp(p + "mlp.", f)
    w["model.norm.weight"] = around_one(h)
    if not c["tie_word_embeddings"]:
        w["lm_head.weight"] = normal(V, h, std=0.3)
    return w


def rms_norm(x, weight, eps):
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def inv_freq(c):
    d = head_dim(c)
    base = c.get("rope_theta", 10000.0)
    freq = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.int64).to(torch.float32) / d))   # transformers: fp32
    rs = c.get("rope_scaling")
    if rs and rs.get("rope_type", rs.get("type")) == "llama3":
        factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old / low, old / high
        wavelen = 2 * math.pi / freq
        scaled = torch.where(wavelen > low_wavelen, freq / factor, freq)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
        freq = torch.where(medium, smoothed, scaled)
    return freq.to(torch.float64)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def swiglu(x, w, prefix, names=("gate_proj", "up_proj", "down_proj")):
    lin = torch.nn.functional.linear
    return lin(torch.nn.functional.silu(lin(x, w[prefix + names[0] + ".weight"])) * lin(x, w[prefix + names[1] + ".weight"]),
               w[prefix + names[2] + ".weight"])


def moe(x, w, c, p):
    """x [s, h] -> [s, h]: transformers' MixtralSparseMoeBlock / Qwen2MoeSparseMoeBlock."""
    lin = torch.nn.functional.linear
    mixtral = c["model_type"] == "mixtral"
    gate = w[p + ("block_sparse_moe.gate.weight" if mixtral else "mlp.gate.weight")]
    probs = torch.softmax(lin(x, gate), dim=-1)
    top, idx = torch.topk(probs, c["num_experts_per_tok"], dim=-1)
    if mixtral or c["norm_topk_prob"]:
        top = top / top.sum(-1, keepdim=True)
    out = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for j in range(idx.shape[1]):
            e = int(idx[t, j])
            if mixtral:
                y = swiglu(x[t:t + 1], w, p + f"block_sparse_moe.experts.{e}.", ("w1", "w3", "w2"))
            else:
                y = swiglu(x[t:t + 1], w, p + f"mlp.experts.{e}.")
            out[t] += top[t, j] * y[0]
    if not mixtral and c.get("shared_expert_intermediate_size", 0) > 0:
        shared = swiglu(x, w, p + "mlp.shared_expert.")
        out = out + torch.sigmoid(lin(x, w[p + "mlp.shared_expert_gate.weight"])) * shared
    return out


def forward(w, c, tokens):
    """tokens [s] -> logits [s, V], one sequence."""
    lin = torch.nn.functional.linear
    s = len(tokens)
    d, np_, ng, eps = head_dim(c), c["num_attention_heads"], c["num_key_value_heads"], c["rms_norm_eps"]
    x = w["model.embed_tokens.weight"][torch.tensor(tokens)]
    angles = torch.outer(torch.arange(s, dtype=torch.float64), inv_freq(c))
    emb = torch.cat((angles, angles), dim=-1)
    cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]                        # [s, 1, d]
    causal = torch.ones(s, s, dtype=torch.bool).tril()
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        a = p + "self_attn."
        y = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = lin(y, w[a + "q_proj.weight"], w.get(a + "q_proj.bias")).reshape(s, np_, d)
        k = lin(y, w[a + "k_proj.weight"], w.get(a + "k_proj.bias")).reshape(s, ng, d)
        v = lin(y, w[a + "v_proj.weight"], w.get(a + "v_proj.bias")).reshape(s, ng, d)
        if a + "q_norm.weight" in w:
            q = rms_norm(q, w[a + "q_norm.weight"], eps)
            k = rms_norm(k, w[a + "k_norm.weight"], eps)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = np_ // ng                                                             # repeat_kv: kv head g -> heads g*rep..
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(d)
        probs = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
        att = torch.einsum("hqk,khd->qhd", probs, v).reshape(s, np_ * d)
        x = x + lin(att, w[a + "o_proj.weight"])
        y = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        x = x + (moe(y, w, c, p) if sparse_layer(c, l) else swiglu(y, w, p + "mlp."))
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if c["tie_word_embeddings"] else w["lm_head.weight"]
    return x @ head.T


def write_safetensors(path, tensors, dtype):
    st = {"float32": ("F32", torch.float32), "bfloat16": ("BF16", torch.bfloat16)}[dtype]
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        t = t.to(st[1]).contiguous()
        raw = (t.view(torch.int16) if st[1] == torch.bfloat16 else t).numpy().astype("<" + ("i2" if st[1] == torch.bfloat16 else "f4")).tobytes()
        header[name] = {"dtype": st[0], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def write_variants(variants, make_weights, forward, seed, num_tokens, out=OUT):
    """Each variant's config.json, model.safetensors and expected.json (its tokens and reference logits) in out/<name>."""
    for i, (name, (dtype, c)) in enumerate(variants.items()):
        gen = torch.Generator().manual_seed(seed + i)
        w = make_weights(c, gen)
        # The reference runs on the stored values (rounded to the file's dtype).
        w = {k: v.to(torch.bfloat16 if dtype == "bfloat16" else torch.float32).to(torch.float64) for k, v in w.items()}
        tokens = torch.randint(0, c["vocab_size"], (num_tokens,), generator=gen).tolist()
        logits = forward(w, c, tokens)
        folder = os.path.join(out, name)
        os.makedirs(folder, exist_ok=True)
        cfg = dict(c, torch_dtype=dtype, transformers_version="4.51.0")
        with open(os.path.join(folder, "config.json"), "w") as f:
            f.write(json.dumps(cfg, indent=2) + "\n")
        write_safetensors(os.path.join(folder, "model.safetensors"), w, dtype)
        with open(os.path.join(folder, "expected.json"), "w") as f:
            json.dump({"tokens": tokens, "logits": [[float(f"{x:.9g}") for x in row] for row in logits.tolist()]}, f)
            f.write("\n")
        print(f"{name}: {len(w)} tensors, logits |max| {logits.abs().max().item():.4f}")


def main():
    write_variants(VARIANTS, make_weights, forward, 4321, 32)


if __name__ == "__main__":
    main()
