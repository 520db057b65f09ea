#!/usr/bin/env python3
"""Tiny random Hugging Face DeepSeek-V3 models with reference logits (CheckpointImportHfDeepseekTest).

As make_hf_fixtures.py (whose hand-written safetensors writer this reuses): <variant>/config.json (transformers'
DeepseekV3Config field names), <variant>/model.safetensors (HF tensor names) and <variant>/expected.json with the
logits of an independent plain-torch float64 implementation of transformers' modeling_deepseek_v3.py forward:
multi-latent attention (q_a_proj/q_a_layernorm/q_b_proj or q_proj, kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj per
head [k_nope; v]), the latent norms with their fixed eps 1e-6, rope on the last qk_rope_head_dim channels (rope_interleave:
channels de-interleaved to [evens, odds] before rotate-half), YaRN inv_freq and attention factor as
modeling_rope_utils computes them (fp32), the softmax scale times yarn_get_mscale(factor, mscale_all_dim)^2, dense MLPs
before first_k_dense_replace, then sigmoid routing with e_score_correction_bias for the choice, group-limited (groups
scored by their top-2 sum, the others masked to 0), top-k weights renormalised (norm_topk_prob) and multiplied by
routed_scaling_factor, plus the shared experts.

The first variant also stores a multi-token-prediction depth as the official release does (model.layers.<L>: a
decoder layer with enorm, hnorm, eh_proj and shared_head); transformers ignores it at load and so does the reference.

Run with Debian's python3-torch:  /usr/bin/python3 cli/src/test/resources/org/megatronj/cli/hf/make_deepseek_fixtures.py
"""
import json
import math
import os
import sys

import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_hf_fixtures import write_variants  # noqa: E402

torch.set_default_dtype(torch.float64)
OUT = os.path.dirname(os.path.abspath(__file__))

BASE = dict(architectures=["DeepseekV3ForCausalLM"], model_type="deepseek_v3", vocab_size=61, hidden_size=32,
            intermediate_size=48, moe_intermediate_size=16, num_attention_heads=4, num_key_value_heads=4,
            kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=12, hidden_act="silu",
            rms_norm_eps=1e-06, rope_theta=10000.0, attention_bias=False, attention_dropout=0.0,
            initializer_range=0.02, use_cache=True, bos_token_id=0, eos_token_id=1, topk_method="noaux_tc",
            scoring_func="sigmoid")

VARIANTS = {
    # DeepSeek-V3's shape: query latent, layer 0 dense then MoE, 8 experts in 4 groups (2 kept, top-4 = 2 per group),
    # one shared expert, routed_scaling_factor 2.5, YaRN (factor 4 = 16384 / 4096; mscale_all_dim 0.8 so both the
    # cos/sin factor and the softmax scale differ from 1), interleaved rope, untied, one MTP depth stored, bf16.
    "deepseek_v3": ("bfloat16", dict(BASE, num_hidden_layers=3, q_lora_rank=24, first_k_dense_replace=1,
                                     n_routed_experts=8, n_group=4, topk_group=2, num_experts_per_tok=4,
                                     n_shared_experts=1, routed_scaling_factor=2.5, norm_topk_prob=True,
                                     max_position_embeddings=16384,
                                     rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096,
                                                   "beta_fast": 32, "beta_slow": 1, "mscale": 1.0,
                                                   "mscale_all_dim": 0.8},
                                     rope_interleave=True, num_nextn_predict_layers=1, tie_word_embeddings=False)),
    # DeepSeek-V2-Lite-like attention in V3's model type: no query latent, rotate-half rope (rope_interleave false),
    # no rope scaling, every layer MoE, one group, two shared experts, tied embeddings, fp32.
    "deepseek_v3_lite": ("float32", dict(BASE, num_hidden_layers=2, q_lora_rank=None, first_k_dense_replace=0,
                                         n_routed_experts=6, n_group=1, topk_group=1, num_experts_per_tok=2,
                                         n_shared_experts=2, routed_scaling_factor=1.5, norm_topk_prob=True,
                                         max_position_embeddings=64, rope_scaling=None, rope_interleave=False,
                                         num_nextn_predict_layers=0, tie_word_embeddings=True)),
}


def make_weights(c, gen):
    h, V = c["hidden_size"], c["vocab_size"]
    H, nope, rope, vd = c["num_attention_heads"], c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]

    def normal(*shape, std=None):
        return torch.randn(*shape, generator=gen) * (std if std is not None else 1.0 / math.sqrt(shape[-1]))

    def around_one(n):
        return 1.0 + 0.1 * torch.randn(n, generator=gen)

    def mlp(prefix, width):
        w[prefix + "gate_proj.weight"] = normal(width, h)
        w[prefix + "up_proj.weight"] = normal(width, h)
        w[prefix + "down_proj.weight"] = normal(h, width)

    def layer(l):
        p = f"model.layers.{l}."
        a = p + "self_attn."
        w[p + "input_layernorm.weight"] = around_one(h)
        if c["q_lora_rank"]:
            w[a + "q_a_proj.weight"] = normal(c["q_lora_rank"], h)
            w[a + "q_a_layernorm.weight"] = around_one(c["q_lora_rank"])
            w[a + "q_b_proj.weight"] = normal(H * (nope + rope), c["q_lora_rank"])
        else:
            w[a + "q_proj.weight"] = normal(H * (nope + rope), h)
        w[a + "kv_a_proj_with_mqa.weight"] = normal(c["kv_lora_rank"] + rope, h)
        w[a + "kv_a_layernorm.weight"] = around_one(c["kv_lora_rank"])
        w[a + "kv_b_proj.weight"] = normal(H * (nope + vd), c["kv_lora_rank"])
        w[a + "o_proj.weight"] = normal(h, H * vd)
        w[p + "post_attention_layernorm.weight"] = around_one(h)
        if l < c["first_k_dense_replace"]:
            mlp(p + "mlp.", c["intermediate_size"])
        else:
            E = c["n_routed_experts"]
            w[p + "mlp.gate.weight"] = normal(E, h, std=0.5)
            # small against the sigmoid scores, yet enough to change some choices; non-negative so that no chosen
            # expert's score + bias is below the 0 transformers gives the masked groups (Megatron masks with -inf)
            w[p + "mlp.gate.e_score_correction_bias"] = 0.08 * torch.rand(E, generator=gen)
            for e in range(E):
                mlp(p + f"mlp.experts.{e}.", c["moe_intermediate_size"])
            mlp(p + "mlp.shared_experts.", c["moe_intermediate_size"] * c["n_shared_experts"])

    w = {"model.embed_tokens.weight": normal(V, h, std=0.5)}
    L = c["num_hidden_layers"]
    for l in range(L):
        layer(l)
    w["model.norm.weight"] = around_one(h)
    if not c["tie_word_embeddings"]:
        w["lm_head.weight"] = normal(V, h, std=0.3)
    for k in range(c["num_nextn_predict_layers"]):   # the release's MTP depth: a decoder layer plus its own heads
        layer(L + k)
        p = f"model.layers.{L + k}."
        w[p + "enorm.weight"] = around_one(h)
        w[p + "hnorm.weight"] = around_one(h)
        w[p + "eh_proj.weight"] = normal(h, 2 * h)
        w[p + "shared_head.norm.weight"] = around_one(h)
        w[p + "shared_head.head.weight"] = w.get("lm_head.weight", w["model.embed_tokens.weight"]).clone()
        w[p + "embed_tokens.weight"] = w["model.embed_tokens.weight"].clone()
    return w


def rms_norm(x, weight, eps):
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def get_mscale(scale, mscale=1.0):
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def rope_tables(c):
    """inv_freq (fp32, as modeling_rope_utils) and the attention factor on cos/sin."""
    dim, base = c["qk_rope_head_dim"], c["rope_theta"]
    pos_freqs = base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(torch.float32) / dim)
    rs = c.get("rope_scaling")
    if not rs:
        return (1.0 / pos_freqs).to(torch.float64), 1.0
    factor = rs["factor"]
    original = rs.get("original_max_position_embeddings", c["max_position_embeddings"])
    mscale, mscale_all_dim = rs.get("mscale"), rs.get("mscale_all_dim")
    if mscale and mscale_all_dim:
        attention_factor = get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim)
    else:
        attention_factor = get_mscale(factor)
    beta_fast, beta_slow = rs.get("beta_fast") or 32, rs.get("beta_slow") or 1

    def correction_dim(rotations):
        return (dim * math.log(original / (rotations * 2 * math.pi))) / (2 * math.log(base))

    low = max(math.floor(correction_dim(beta_fast)), 0)
    high = min(math.ceil(correction_dim(beta_slow)), dim - 1)
    if low == high:
        high += 0.001
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    extrapolation_factor = 1 - ramp
    inv_extra = 1.0 / pos_freqs
    inv_inter = 1.0 / (factor * pos_freqs)
    inv_freq = inv_inter * (1 - extrapolation_factor) + inv_extra * extrapolation_factor
    return inv_freq.to(torch.float64), attention_factor


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def swiglu(x, w, prefix):
    lin = torch.nn.functional.linear
    return lin(torch.nn.functional.silu(lin(x, w[prefix + "gate_proj.weight"])) * lin(x, w[prefix + "up_proj.weight"]),
               w[prefix + "down_proj.weight"])


def moe(x, w, c, p):
    """x [s, h] -> [s, h]: DeepseekV3MoE (DeepseekV3TopkRouter's noaux_tc choice, then the experts and shared experts)."""
    E, k = c["n_routed_experts"], c["num_experts_per_tok"]
    groups, keep = c["n_group"], c["topk_group"]
    scores = torch.sigmoid(x @ w[p + "mlp.gate.weight"].T)                             # [s, E]
    choice = scores + w[p + "mlp.gate.e_score_correction_bias"][None, :]
    group_scores = choice.view(-1, groups, E // groups).topk(2, dim=-1)[0].sum(dim=-1)
    group_idx = torch.topk(group_scores, k=keep, dim=-1)[1]
    group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
    score_mask = group_mask.unsqueeze(-1).expand(-1, groups, E // groups).reshape(-1, E)
    choice = choice.masked_fill(~score_mask.bool(), 0.0)
    idx = torch.topk(choice, k=k, dim=-1)[1]
    weights = scores.gather(1, idx)
    if c["norm_topk_prob"]:
        weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
    weights = weights * c["routed_scaling_factor"]
    out = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for j in range(k):
            out[t] += weights[t, j] * swiglu(x[t:t + 1], w, p + f"mlp.experts.{int(idx[t, j])}.")[0]
    return out + swiglu(x, w, p + "mlp.shared_experts.")


def forward(w, c, tokens):
    """tokens [s] -> logits [s, V], one sequence."""
    lin = torch.nn.functional.linear
    s = len(tokens)
    H, nope, rope, vd = c["num_attention_heads"], c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
    eps = c["rms_norm_eps"]
    inv_freq, attention_factor = rope_tables(c)
    angles = torch.outer(torch.arange(s, dtype=torch.float64), inv_freq)
    emb = torch.cat((angles, angles), dim=-1)
    cos, sin = emb.cos() * attention_factor, emb.sin() * attention_factor               # [s, rope]
    scaling = (nope + rope) ** -0.5
    rs = c.get("rope_scaling")
    if rs and rs.get("mscale_all_dim", 0):
        scaling *= get_mscale(rs["factor"], rs["mscale_all_dim"]) ** 2
    causal = torch.ones(s, s, dtype=torch.bool).tril()

    def rotate(x):                                                                      # x [s, heads, rope]
        if c["rope_interleave"]:
            x = x.view(s, -1, rope // 2, 2).transpose(3, 2).reshape(s, -1, rope)
        return x * cos[:, None, :] + rotate_half(x) * sin[:, None, :]

    x = w["model.embed_tokens.weight"][torch.tensor(tokens)]
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        a = p + "self_attn."
        y = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        if c["q_lora_rank"]:   # the latent norms are built with DeepseekV3RMSNorm's default eps, 1e-6
            q = lin(rms_norm(lin(y, w[a + "q_a_proj.weight"]), w[a + "q_a_layernorm.weight"], 1e-6), w[a + "q_b_proj.weight"])
        else:
            q = lin(y, w[a + "q_proj.weight"])
        q = q.view(s, H, nope + rope)
        q_pass, q_rot = q[..., :nope], q[..., nope:]
        compressed = lin(y, w[a + "kv_a_proj_with_mqa.weight"])
        latent, k_rot = compressed[:, :c["kv_lora_rank"]], compressed[:, c["kv_lora_rank"]:]
        kv = lin(rms_norm(latent, w[a + "kv_a_layernorm.weight"], 1e-6), w[a + "kv_b_proj.weight"]).view(s, H, nope + vd)
        k_pass, v = kv[..., :nope], kv[..., nope:]
        q_rot = rotate(q_rot)
        k_rot = rotate(k_rot.view(s, 1, rope)).expand(s, H, rope)
        query = torch.cat((q_pass, q_rot), dim=-1)
        key = torch.cat((k_pass, k_rot), dim=-1)
        scores = torch.einsum("qhd,khd->hqk", query, key) * scaling
        probs = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
        att = torch.einsum("hqk,khd->qhd", probs, v).reshape(s, H * vd)
        x = x + lin(att, w[a + "o_proj.weight"])
        y = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        x = x + (swiglu(y, w, p + "mlp.") if l < c["first_k_dense_replace"] else moe(y, w, c, p))
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if c["tie_word_embeddings"] else w["lm_head.weight"]
    return x @ head.T


def main():
    write_variants(VARIANTS, make_weights, forward, 8765, 24)


if __name__ == "__main__":
    main()
