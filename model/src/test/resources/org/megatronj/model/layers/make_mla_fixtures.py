"""Expected MLA outputs and gradients for MultiLatentAttentionMegatronTest, and YaRN's frequencies and factors.

Run with Debian's python3-torch (1.13) beside a Megatron-LM checkout (here: the bare mirror used in development):

    /usr/bin/python3 make_mla_fixtures.py /work/.mirror/NVIDIA+Megatron-LM/repo > mla_fixtures.json

YaRN's helpers (_yarn_find_correction_dim, _yarn_find_correction_range, _yarn_linear_ramp_mask, _yarn_get_mscale,
_yarn_get_concentration_factor) and the rope application (_rotate_half, _apply_rotary_pos_emb_bshd) are taken from
megatron/core/models/common/embeddings/{yarn_rotary_pos_embedding,rope_utils}.py at the checkout's HEAD and run as they
are (decorators dropped). YarnRotaryEmbedding.get_emb, RotaryEmbedding's frequencies and MLASelfAttention's
get_query_key_value_tensors (one rank, unfused rope, no packing) plus core attention and linear_proj are repeated here
in torch, step for step. The attention runs in float64 (the frequencies in float32 as Megatron computes them); the
gradients are torch.autograd's of sum(out * dout) for a random dout.
"""
import ast
import json
import math
import subprocess
import sys
from functools import lru_cache
from typing import Optional

import torch


def load(repo, path, names):
    src = subprocess.run(["git", "-C", repo, "show", "HEAD:" + path], capture_output=True, text=True, check=True).stdout
    tree = ast.parse(src)
    body = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    for n in body:
        n.decorator_list = []
    ns = {"torch": torch, "math": math, "Optional": Optional, "Tensor": torch.Tensor, "lru_cache": lru_cache,
          "warnings": __import__("warnings")}
    exec(compile(ast.Module(body=body, type_ignores=[]), path, "exec"), ns)
    return ns


def yarn_emb(f, dim, base, scaling, orig, beta_fast, beta_slow, mscale, mscale_all_dim, seq_len):
    """YarnRotaryEmbedding.__init__ + get_emb (correction_range_round_to_int=True, offset 0)."""
    inv_freq_extra = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    inv_freq_inter = 1.0 / (scaling * base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    low, high = f["_yarn_find_correction_range"](beta_fast, beta_slow, dim, base, orig, True)
    inv_freq_mask = 1.0 - f["_yarn_linear_ramp_mask"](low, high, dim // 2, device=None).to(dtype=torch.float32)
    inv_freq = inv_freq_inter * (1 - inv_freq_mask) + inv_freq_extra * inv_freq_mask
    seq = torch.arange(seq_len, dtype=torch.float32)
    freqs = torch.outer(seq, inv_freq)
    _mscale = f["_yarn_get_concentration_factor"](scaling, mscale, mscale_all_dim)
    emb = torch.cat((freqs, freqs), dim=-1)[:, None, None, :]
    return inv_freq, emb, _mscale


def rope_emb(dim, base, seq_len):
    """RotaryEmbedding(kv_channels=dim, rotary_percent=1) forward: cat(freqs, freqs)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    freqs = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    return torch.cat((freqs, freqs), dim=-1)[:, None, None, :]


def norm(x, w, b, kind, eps):
    if kind == "RMSNorm":
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def mla_case(fy, fr, name, seed, s=8, b=2, h=32, n=4, q_lora=16, kv_lora=16, qk=8, pe=4, v=8, qk_norm=True,
             kind="RMSNorm", rope_type="yarn", scaling=40.0, mscale=1.0, mscale_all_dim=0.5, bias=False, eps=1e-5):
    g = torch.Generator().manual_seed(seed)
    dt = torch.float64

    def rnd(*shape, scale=0.3):
        return (torch.randn(*shape, generator=g, dtype=torch.float32) * scale).to(dt).requires_grad_(True)

    D = qk + pe
    P = {}
    x = rnd(s, b, h, scale=1.0)
    if q_lora:
        P["linear_q_down_proj.weight"] = rnd(q_lora, h)
        if qk_norm:
            P["q_layernorm.weight"] = (1 + rnd(q_lora, scale=0.1)).detach().requires_grad_(True)
            if kind == "LayerNorm":
                P["q_layernorm.bias"] = rnd(q_lora, scale=0.1)
        P["linear_q_up_proj.weight"] = rnd(n * D, q_lora)
    else:
        P["linear_q_proj.weight"] = rnd(n * D, h)
    P["linear_kv_down_proj.weight"] = rnd(kv_lora + pe, h)
    if qk_norm:
        P["kv_layernorm.weight"] = (1 + rnd(kv_lora, scale=0.1)).detach().requires_grad_(True)
        if kind == "LayerNorm":
            P["kv_layernorm.bias"] = rnd(kv_lora, scale=0.1)
    P["linear_kv_up_proj.weight"] = rnd(n * (qk + v), kv_lora)
    P["linear_proj.weight"] = rnd(h, n * v)
    if bias:
        P["linear_proj.bias"] = rnd(h, scale=0.1)
    dout = torch.randn(s, b, h, generator=g, dtype=torch.float32).to(dt)

    # MultiLatentAttention.__init__: softmax_scale from yarn_get_mscale(rotary_scaling_factor, mscale_all_dim)
    m_all = fy["_yarn_get_mscale"](scaling, mscale_all_dim)
    softmax_scale = m_all * m_all / math.sqrt(D)
    if rope_type == "rope":
        emb, rope_mscale = rope_emb(pe, 10000.0, s), 1.0
    else:
        _, emb, rope_mscale = yarn_emb(fy, pe, 10000.0, scaling, 4096, 32.0, 1.0, mscale, mscale_all_dim, s)
    emb = emb.to(dt)

    # get_query_key_value_tensors
    if q_lora:
        q_compressed = x @ P["linear_q_down_proj.weight"].T
        if qk_norm:
            q_compressed = norm(q_compressed, P["q_layernorm.weight"], P.get("q_layernorm.bias"), kind, eps)
        q = q_compressed @ P["linear_q_up_proj.weight"].T
    else:
        q = x @ P["linear_q_proj.weight"].T
    kv_combined = x @ P["linear_kv_down_proj.weight"].T
    kv_compressed, k_pos_emb = torch.split(kv_combined, [kv_lora, pe], dim=-1)
    if qk_norm:
        kv_compressed = norm(kv_compressed, P["kv_layernorm.weight"], P.get("kv_layernorm.bias"), kind, eps)
    q = q.view(s, b, n, D)
    kv = (kv_compressed @ P["linear_kv_up_proj.weight"].T).view(s, b, n, qk + v)
    k_pos_emb = torch.unsqueeze(k_pos_emb, -2)
    rotary_pos_emb = emb[0:s]
    q_no_pe, q_pos_emb = torch.split(q, [qk, pe], dim=-1)
    k_no_pe, value = torch.split(kv, [qk, v], dim=-1)
    apply = fr["_apply_rotary_pos_emb_bshd"]
    q_pos_emb = apply(q_pos_emb, rotary_pos_emb, rotary_interleaved=False, mla_rotary_interleaved=True, mscale=rope_mscale)
    k_pos_emb = apply(k_pos_emb, rotary_pos_emb, rotary_interleaved=False, mla_rotary_interleaved=True, mscale=rope_mscale)
    query = torch.cat([q_no_pe, q_pos_emb], dim=-1)
    key = torch.cat([k_no_pe, k_pos_emb.expand(-1, -1, n, -1)], dim=-1)
    # core attention (causal), [s, b, n, d] -> [b, n, s, d]
    qh, kh, vh = (t.permute(1, 2, 0, 3) for t in (query, key, value))
    scores = (qh @ kh.transpose(-1, -2)) * softmax_scale
    mask = torch.triu(torch.ones(s, s, dtype=torch.bool), diagonal=1)
    probs = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
    ctx = (probs @ vh).permute(2, 0, 1, 3).reshape(s, b, n * v)
    out = ctx @ P["linear_proj.weight"].T
    if bias:
        out = out + P["linear_proj.bias"]
    (out * dout).sum().backward()
    flat = lambda t: [float("%.9g" % z) for z in t.detach().reshape(-1)]
    return {
        "name": name, "s": s, "b": b, "h": h, "heads": n, "q_lora_rank": q_lora or 0, "kv_lora_rank": kv_lora,
        "qk_head_dim": qk, "qk_pos_emb_head_dim": pe, "v_head_dim": v, "qk_layernorm": qk_norm, "normalization": kind,
        "rope_type": rope_type, "rotary_scaling_factor": scaling, "mscale": mscale, "mscale_all_dim": mscale_all_dim,
        "bias": bias, "eps": eps, "softmax_scale": softmax_scale, "rope_mscale": rope_mscale,
        "x": flat(x), "dout": flat(dout), "out": flat(out), "dx": flat(x.grad),
        "params": {k: flat(p) for k, p in P.items()}, "grads": {k: flat(p.grad) for k, p in P.items()},
    }


def yarn_case(fy, dim, base, scaling, orig, beta_fast, beta_slow, mscale, mscale_all_dim):
    inv_freq, _, conc = yarn_emb(fy, dim, base, scaling, orig, beta_fast, beta_slow, mscale, mscale_all_dim, 1)
    return {"dim": dim, "base": base, "scaling": scaling, "orig": orig, "beta_fast": beta_fast, "beta_slow": beta_slow,
            "mscale": mscale, "mscale_all_dim": mscale_all_dim, "inv_freq": [float(z) for z in inv_freq],
            "concentration": conc, "get_mscale": fy["_yarn_get_mscale"](scaling, mscale_all_dim)}


def main():
    repo = sys.argv[1]
    fy = load(repo, "megatron/core/models/common/embeddings/yarn_rotary_pos_embedding.py",
              ["_yarn_find_correction_dim", "_yarn_find_correction_range", "_yarn_linear_ramp_mask", "_yarn_get_mscale",
               "_yarn_get_concentration_factor"])
    fr = load(repo, "megatron/core/models/common/embeddings/rope_utils.py", ["_rotate_half", "_apply_rotary_pos_emb_bshd"])
    yarn = [yarn_case(fy, 64, 10000.0, 40.0, 4096, 32.0, 1.0, 1.0, 1.0),       # DeepSeek-V3's
            yarn_case(fy, 64, 10000.0, 40.0, 4096, 32.0, 1.0, 0.707, 0.3),
            yarn_case(fy, 4, 10000.0, 40.0, 4096, 32.0, 1.0, 1.0, 0.5),
            yarn_case(fy, 128, 50000.0, 8.0, 8192, 16.0, 2.0, 1.0, 0.0),
            yarn_case(fy, 32, 10000.0, 1.0, 4096, 32.0, 1.0, 1.0, 0.0)]        # scale 1: plain rope
    mla = [mla_case(fy, fr, "q_lora_yarn_rmsnorm", 1),
           mla_case(fy, fr, "q_proj_rope_no_norm_bias", 2, q_lora=None, qk_norm=False, rope_type="rope", scaling=1.0,
                    mscale_all_dim=0.0, bias=True),
           mla_case(fy, fr, "q_lora_yarn_layernorm_v6", 3, kind="LayerNorm", v=6, scaling=4.0, mscale=0.707,
                    mscale_all_dim=0.707)]
    json.dump({"yarn": yarn, "mla": mla}, sys.stdout)


if __name__ == "__main__":
    main()
