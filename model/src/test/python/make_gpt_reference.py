#!/usr/bin/env python3
"""Independent PyTorch reference for Megatron-J's GPTModel (the golden test GPTReferenceTest).

Builds two tiny GPTs in plain torch, in float64, with deterministic random weights stored under
Megatron-core's parameter names and layouts (linear_qkv fused per query group: [q heads of the
group, k, v]), runs forward + backward of the masked LM loss and writes, per variant, to
model/src/test/resources/org/megatronj/model/reference/<variant>/:

  config.txt   key=value architecture and the micro-batch (tokens, labels, loss mask, batch-major)
  tensors.bin  raw little-endian float32, all tensors back to back
  manifest.txt one line per tensor: <section> <name> <offset in floats> <dim0> [<dim1> ...]
               sections: weight, grad (d loss / d weight), output (logits [b, s, V], loss [1])

Variants: gpt2 (learned positions, LayerNorm, gelu tanh, biases, tied output)
          llama (rope, RMSNorm, swiglu, GQA 4 heads / 2 groups, no biases, untied output)

Run with Debian's python3-torch:  /usr/bin/python3 model/src/test/python/make_gpt_reference.py
"""
import math
import os
import struct
import sys

import torch

torch.set_default_dtype(torch.float64)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "resources", "org", "megatronj", "model", "reference")

COMMON = dict(num_layers=2, hidden=32, heads=4, seq=16, batch=2, vocab=96, padded_vocab=128, eps=1e-5)
VARIANTS = {
    "gpt2": dict(COMMON, groups=4, ffn=128, rope=False, rms=False, swiglu=False, bias=True, untied=False),
    "llama": dict(COMMON, groups=2, ffn=64, rope=True, rms=True, swiglu=True, bias=False, untied=True, rope_base=10000.0),
}


def make_weights(c, gen):
    h, d, np_, ng, V = c["hidden"], c["hidden"] // c["heads"], c["heads"], c["groups"], c["padded_vocab"]
    qkv_rows = (np_ + 2 * ng) * d
    fc1_rows = 2 * c["ffn"] if c["swiglu"] else c["ffn"]

    def normal(*shape, std):
        return (torch.randn(*shape, generator=gen) * std).requires_grad_()

    def around_one(n):
        return (1.0 + 0.1 * torch.randn(n, generator=gen)).requires_grad_()

    w = {}
    w["embedding.word_embeddings.weight"] = normal(V, h, std=0.25)
    if not c["rope"]:
        w["embedding.position_embeddings.weight"] = normal(c["seq"], h, std=0.3)
    for l in range(c["num_layers"]):
        p = f"decoder.layers.{l}."
        for norm in ("input_layernorm", "pre_mlp_layernorm"):
            w[p + norm + ".weight"] = around_one(h)
            if not c["rms"]:
                w[p + norm + ".bias"] = normal(h, std=0.1)
        for name, rows, cols in (("self_attention.linear_qkv", qkv_rows, h), ("self_attention.linear_proj", h, np_ * d),
                                 ("mlp.linear_fc1", fc1_rows, h), ("mlp.linear_fc2", h, c["ffn"])):
            w[p + name + ".weight"] = normal(rows, cols, std=1.0 / math.sqrt(cols))
            if c["bias"]:
                w[p + name + ".bias"] = normal(rows, std=0.1)
    w["decoder.final_layernorm.weight"] = around_one(h)
    if not c["rms"]:
        w["decoder.final_layernorm.bias"] = normal(h, std=0.1)
    if c["untied"]:
        w["output_layer.weight"] = normal(V, h, std=0.15)
    return w


def norm(x, w, b, c):
    if c["rms"]:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + c["eps"]) * w
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, c["eps"])


def rope(x, base):
    """x [b, s, heads, d]: rotate-half rotary embedding over all d channels at positions 0..s-1."""
    s, d = x.shape[1], x.shape[-1]
    inv_freq = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    angles = torch.outer(torch.arange(s, dtype=torch.float64), inv_freq)          # [s, d/2]
    angles = torch.cat([angles, angles], dim=-1)[None, :, None, :]               # [1, s, 1, d]
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * torch.cos(angles) + torch.cat([-x2, x1], dim=-1) * torch.sin(angles)


def forward(w, c, tokens):
    b, s = tokens.shape
    h, np_, ng = c["hidden"], c["heads"], c["groups"]
    d, per = h // np_, np_ // ng
    x = w["embedding.word_embeddings.weight"][tokens]                             # [b, s, h]
    if not c["rope"]:
        x = x + w["embedding.position_embeddings.weight"][torch.arange(s)][None]
    causal = torch.ones(s, s, dtype=torch.bool).tril()
    for l in range(c["num_layers"]):
        p = f"decoder.layers.{l}."
        bias = (lambda name: w[p + name + ".bias"]) if c["bias"] else (lambda name: None)
        y = norm(x, w[p + "input_layernorm.weight"], w.get(p + "input_layernorm.bias"), c)
        # Megatron's fused layout -> separate projections: rows are [ng, per + 2, d] over (q.., k, v).
        wqkv = w[p + "self_attention.linear_qkv.weight"].reshape(ng, per + 2, d, h)
        wq, wk, wv = wqkv[:, :per].reshape(np_ * d, h), wqkv[:, per].reshape(ng * d, h), wqkv[:, per + 1].reshape(ng * d, h)
        if c["bias"]:
            bqkv = bias("self_attention.linear_qkv").reshape(ng, per + 2, d)
            bq, bk, bv = bqkv[:, :per].reshape(-1), bqkv[:, per].reshape(-1), bqkv[:, per + 1].reshape(-1)
        else:
            bq = bk = bv = None
        q = torch.nn.functional.linear(y, wq, bq).reshape(b, s, np_, d)
        k = torch.nn.functional.linear(y, wk, bk).reshape(b, s, ng, d)
        v = torch.nn.functional.linear(y, wv, bv).reshape(b, s, ng, d)
        if c["rope"]:
            q, k = rope(q, c["rope_base"]), rope(k, c["rope_base"])
        k = k.repeat_interleave(per, dim=2)                                       # query head j uses group j // per
        v = v.repeat_interleave(per, dim=2)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d)
        probs = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
        att = torch.einsum("bhqk,bkhd->bqhd", probs, v).reshape(b, s, np_ * d)
        x = x + torch.nn.functional.linear(att, w[p + "self_attention.linear_proj.weight"], bias("self_attention.linear_proj"))
        y = norm(x, w[p + "pre_mlp_layernorm.weight"], w.get(p + "pre_mlp_layernorm.bias"), c)
        u = torch.nn.functional.linear(y, w[p + "mlp.linear_fc1.weight"], bias("mlp.linear_fc1"))
        if c["swiglu"]:
            gate, up = torch.chunk(u, 2, dim=-1)
            u = torch.nn.functional.silu(gate) * up
        else:
            u = torch.nn.functional.gelu(u, approximate="tanh")
        x = x + torch.nn.functional.linear(u, w[p + "mlp.linear_fc2.weight"], bias("mlp.linear_fc2"))
    x = norm(x, w["decoder.final_layernorm.weight"], w.get("decoder.final_layernorm.bias"), c)
    out_w = w["output_layer.weight"] if c["untied"] else w["embedding.word_embeddings.weight"]
    return x @ out_w.T                                                            # [b, s, V]


def main():
    for name, c in VARIANTS.items():
        gen = torch.Generator().manual_seed(1234 + len(name))
        w = make_weights(c, gen)
        b, s = c["batch"], c["seq"]
        tokens = torch.randint(0, c["vocab"], (b, s), generator=gen)
        labels = torch.randint(0, c["vocab"], (b, s), generator=gen)
        mask = (torch.rand(b, s, generator=gen) > 0.25).double()
        logits = forward(w, c, tokens)
        ce = torch.nn.functional.cross_entropy(logits.reshape(b * s, -1), labels.reshape(-1), reduction="none")
        loss = (ce * mask.reshape(-1)).sum() / mask.sum()
        loss.backward()

        folder = os.path.join(OUT, name)
        os.makedirs(folder, exist_ok=True)
        blob, manifest = bytearray(), []

        def put(section, tname, t):
            t = t.detach().to(torch.float32).contiguous()
            manifest.append(f"{section} {tname} {len(blob) // 4} " + " ".join(str(x) for x in t.shape))
            blob.extend(struct.pack(f"<{t.numel()}f", *t.reshape(-1).tolist()))

        for tname, t in w.items():
            put("weight", tname, t)
        for tname, t in w.items():
            put("grad", tname, t.grad)
        put("output", "logits", logits)
        put("output", "loss", loss.reshape(1))
        with open(os.path.join(folder, "tensors.bin"), "wb") as f:
            f.write(blob)
        with open(os.path.join(folder, "manifest.txt"), "w") as f:
            f.write("\n".join(manifest) + "\n")
        cfg = {k: v for k, v in c.items()}
        cfg["tokens"] = " ".join(str(x) for x in tokens.reshape(-1).tolist())
        cfg["labels"] = " ".join(str(x) for x in labels.reshape(-1).tolist())
        cfg["loss_mask"] = " ".join(str(int(x)) for x in mask.reshape(-1).tolist())
        cfg["loss_float64"] = repr(loss.item())
        with open(os.path.join(folder, "config.txt"), "w") as f:
            for k, v in cfg.items():
                f.write(f"{k}={v}\n")
        print(f"{name}: loss {loss.item():.9f}, {len(blob)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
