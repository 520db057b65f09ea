#!/usr/bin/env python3
"""Independent PyTorch reference for Megatron-J's Multi-Token Prediction (GPTModelMtpReferenceTest).

A tiny GPT with MTP depths in plain torch, float64, following Megatron-core's code path
(megatron/core/transformer/multi_token_prediction.py and gpt_model.py):

  hidden_0 = decoder.final_layernorm(decoder(embedding(ids)))             (rope, so no position table)
  for depth k = 1..N (weights mtp.layers.<k-1>.*):
      ids, labels, mask = roll_tensor(.., shifts=-1) each once more        (zeros rolled in at the end)
      e        = word_embeddings[ids]                                       (the shared table)
      x        = eh_proj(cat([enorm(e), hnorm(hidden_{k-1})], -1))          ([e; h], no bias)
      hidden_k = final_layernorm(transformer_layer(x))                      (same layer kind as the decoder's)
      loss_k   = sum(mask * CE(hidden_k @ output_weight^T, labels)) / max(sum(mask), 1)
  objective = lm_loss + mtp_loss_scaling_factor / N * sum_k loss_k         (MTPLossAutoScaler)

and writes, per variant, to model/src/test/resources/org/megatronj/model/reference/<variant>/ the same files as
make_gpt_reference.py (config.txt, tensors.bin, manifest.txt): weights, the gradients of the objective, the lm loss,
each depth's loss and its acceptance counts (accepted/counted positions).

Variants: mtp1 (N = 1, default factor 0.1; LayerNorm, gelu, biases, tied output, MHA)
          mtp2 (N = 2, factor 0.3; RMSNorm, swiglu, GQA 4 heads / 2 groups, no biases, untied output)

Run with Debian's python3-torch:  /usr/bin/python3 model/src/test/python/make_mtp_reference.py
"""
import math
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_gpt_reference import norm, rope  # noqa: E402  (the same independent pieces as the GPT reference)

torch.set_default_dtype(torch.float64)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "resources", "org", "megatronj", "model", "reference")

COMMON = dict(num_layers=2, hidden=32, heads=4, seq=8, batch=2, vocab=60, padded_vocab=64, divisible_by=64, eps=1e-5,
              rope=True, rope_base=10000.0)
VARIANTS = {
    "mtp1": dict(COMMON, groups=4, ffn=64, rms=False, swiglu=False, bias=True, untied=False, mtp_layers=1, mtp_factor=0.1),
    "mtp2": dict(COMMON, groups=2, ffn=48, rms=True, swiglu=True, bias=False, untied=True, mtp_layers=2, mtp_factor=0.3),
}


def make_weights(c, gen):
    h, d, np_, ng, V = c["hidden"], c["hidden"] // c["heads"], c["heads"], c["groups"], c["padded_vocab"]

    def normal(*shape, std):
        return (torch.randn(*shape, generator=gen) * std).requires_grad_()

    def around_one(n):
        return (1.0 + 0.1 * torch.randn(n, generator=gen)).requires_grad_()

    def add_norm(w, name):
        w[name + ".weight"] = around_one(h)
        if not c["rms"]:
            w[name + ".bias"] = normal(h, std=0.1)

    def add_layer(w, p):
        qkv_rows = (np_ + 2 * ng) * d
        fc1_rows = 2 * c["ffn"] if c["swiglu"] else c["ffn"]
        add_norm(w, p + "input_layernorm")
        for name, rows, cols in (("self_attention.linear_qkv", qkv_rows, h), ("self_attention.linear_proj", h, np_ * d)):
            w[p + name + ".weight"] = normal(rows, cols, std=1.0 / math.sqrt(cols))
            if c["bias"]:
                w[p + name + ".bias"] = normal(rows, std=0.1)
        add_norm(w, p + "pre_mlp_layernorm")
        for name, rows, cols in (("mlp.linear_fc1", fc1_rows, h), ("mlp.linear_fc2", h, c["ffn"])):
            w[p + name + ".weight"] = normal(rows, cols, std=1.0 / math.sqrt(cols))
            if c["bias"]:
                w[p + name + ".bias"] = normal(rows, std=0.1)

    w = {"embedding.word_embeddings.weight": normal(V, h, std=0.25)}
    for l in range(c["num_layers"]):
        add_layer(w, f"decoder.layers.{l}.")
    add_norm(w, "decoder.final_layernorm")
    for k in range(c["mtp_layers"]):
        p = f"mtp.layers.{k}."
        add_norm(w, p + "enorm")
        add_norm(w, p + "hnorm")
        w[p + "eh_proj.weight"] = normal(h, 2 * h, std=1.0 / math.sqrt(2 * h))
        add_layer(w, p + "transformer_layer.")
        add_norm(w, p + "final_layernorm")
    if c["untied"]:
        w["output_layer.weight"] = normal(V, h, std=0.15)
    return w


def transformer_layer(w, p, c, x):
    """One pre-norm layer of Megatron's GPT spec on x [b, s, h], rope at positions 0..s-1, causal."""
    b, s, h = x.shape
    np_, ng = c["heads"], c["groups"]
    d, per = h // np_, np_ // ng
    bias = (lambda name: w[p + name + ".bias"]) if c["bias"] else (lambda name: None)
    causal = torch.ones(s, s, dtype=torch.bool).tril()
    y = norm(x, w[p + "input_layernorm.weight"], w.get(p + "input_layernorm.bias"), c)
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
    q, k = rope(q, c["rope_base"]), rope(k, c["rope_base"])
    k = k.repeat_interleave(per, dim=2)
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
    return x + torch.nn.functional.linear(u, w[p + "mlp.linear_fc2.weight"], bias("mlp.linear_fc2"))


def roll_left(t):
    """Megatron's roll_tensor(t, shifts=-1, dims=-1) without context parallelism: the last position becomes 0."""
    rolled = torch.roll(t, shifts=-1, dims=-1)
    rolled[..., -1] = 0
    return rolled


def masked_ce(logits, labels, mask):
    b, s = labels.shape
    ce = torch.nn.functional.cross_entropy(logits.reshape(b * s, -1), labels.reshape(-1), reduction="none")
    return (ce * mask.reshape(-1)).sum() / mask.sum().clamp(min=1)


def objective(w, c, tokens, labels, mask):
    emb = w["embedding.word_embeddings.weight"]
    out_w = w["output_layer.weight"] if c["untied"] else emb
    x = emb[tokens]
    for l in range(c["num_layers"]):
        x = transformer_layer(w, f"decoder.layers.{l}.", c, x)
    hidden = norm(x, w["decoder.final_layernorm.weight"], w.get("decoder.final_layernorm.bias"), c)
    lm_loss = masked_ce(hidden @ out_w.T, labels, mask)
    mtp_losses, accepted, predictions = [], [], []
    ids, mtp_labels, mtp_mask = tokens, labels, mask
    for k in range(c["mtp_layers"]):
        p = f"mtp.layers.{k}."
        ids, mtp_labels, mtp_mask = roll_left(ids), roll_left(mtp_labels), roll_left(mtp_mask)
        e = norm(emb[ids], w[p + "enorm.weight"], w.get(p + "enorm.bias"), c)
        hn = norm(hidden, w[p + "hnorm.weight"], w.get(p + "hnorm.bias"), c)
        x = torch.cat([e, hn], dim=-1) @ w[p + "eh_proj.weight"].T
        x = transformer_layer(w, p + "transformer_layer.", c, x)
        hidden = norm(x, w[p + "final_layernorm.weight"], w.get(p + "final_layernorm.bias"), c)
        logits = hidden @ out_w.T
        mtp_losses.append(masked_ce(logits, mtp_labels, mtp_mask))
        # _compute_mtp_acceptance_counts: counted positions whose argmax (padded vocabulary) is the label
        counted = mtp_mask.bool()
        accepted.append((int(((logits.argmax(-1) == mtp_labels) & counted).sum()), int(counted.sum())))
        predictions.append(logits.argmax(-1))
    total = lm_loss + c["mtp_factor"] / c["mtp_layers"] * sum(mtp_losses)
    return total, lm_loss, mtp_losses, accepted, predictions


def main():
    for name, c in VARIANTS.items():
        gen = torch.Generator().manual_seed(4321 + c["mtp_layers"])
        w = make_weights(c, gen)
        b, s = c["batch"], c["seq"]
        tokens = torch.randint(0, c["vocab"], (b, s), generator=gen)
        labels = torch.cat([tokens[:, 1:], torch.randint(0, c["vocab"], (b, 1), generator=gen)], dim=1)
        mask = (torch.rand(b, s, generator=gen) > 0.2).double()
        # Depth 1 predicts label i + 1 at position i: make it right at the even positions, so that the acceptance
        # counts are not all zero (the logits do not depend on the labels).
        with torch.no_grad():
            first = objective(w, c, tokens, labels, mask)[4][0]
        labels[:, 1::2] = first[:, 0:-1:2]
        total, lm_loss, mtp_losses, accepted, _ = objective(w, c, tokens, labels, mask)
        total.backward()

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
        put("output", "loss", lm_loss.reshape(1))
        with open(os.path.join(folder, "tensors.bin"), "wb") as f:
            f.write(blob)
        with open(os.path.join(folder, "manifest.txt"), "w") as f:
            f.write("\n".join(manifest) + "\n")
        cfg = dict(c)
        cfg["tokens"] = " ".join(str(x) for x in tokens.reshape(-1).tolist())
        cfg["labels"] = " ".join(str(x) for x in labels.reshape(-1).tolist())
        cfg["loss_mask"] = " ".join(str(int(x)) for x in mask.reshape(-1).tolist())
        cfg["loss_float64"] = repr(lm_loss.item())
        cfg["mtp_losses_float64"] = " ".join(repr(x.item()) for x in mtp_losses)
        cfg["mtp_accepted"] = " ".join(f"{a}/{n}" for a, n in accepted)
        with open(os.path.join(folder, "config.txt"), "w") as f:
            for k, v in cfg.items():
                f.write(f"{k}={v}\n")
        print(f"{name}: lm loss {lm_loss.item():.9f}, mtp {[round(x.item(), 9) for x in mtp_losses]}, accepted {accepted},"
              f" {len(blob)} bytes",
              file=sys.stderr)


if __name__ == "__main__":
    main()
