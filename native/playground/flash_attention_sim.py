#!/usr/bin/env python3
"""A line-by-line NumPy model of native/src/main/cuda/flash_attention.cu, checked against a
float64 reference. It exists because the machine that builds the kernels has no GPU: it runs the
kernels' exact tiling, masking, GQA indexing, online softmax and backward accumulation (one warp's
32 lanes as a vector, the blocks and warps of a launch one after another, which is equivalent
since blocks only meet in commutative atomic adds), so index and masking mistakes show up here.
It does not model the hardware (races, bank conflicts, fp32 rounding order): the GPU tests
(memory/src/test/java/org/megatronj/memory/cuda/CudaBackendTest.java, tag gpu) do that.

    python3 native/playground/flash_attention_sim.py        # prints one line per case, exits 1 on a mismatch
"""
import math
import sys

import numpy as np

WARPS, ROWS_PER_WARP, BK = 4, 4, 32
BQ = WARPS * ROWS_PER_WARP
f32 = np.float32


def key_end(key_lengths, b, sk):
    if key_lengths is None:
        return sk
    n = int(key_lengths[b])
    return 0 if n < 0 else min(n, sk)


def forward(q, k, v, scale, causal, key_lengths):
    """q [s, B, np, D], k/v [sk, B, ng, D] -> out, lse [B, np, s]; the kernel's grid, block by block."""
    s, B, NP, D = q.shape
    sk, _, NG, _ = k.shape
    out = np.zeros_like(q, dtype=f32)
    lse = np.zeros((B, NP, s), dtype=f32)
    shift = sk - s
    lanes = np.arange(32)
    for bx in range((s + BQ - 1) // BQ):
        for bh in range(B * NP):
            b, h = bh // NP, bh % NP
            g = h // (NP // NG)
            q0 = bx * BQ
            kend = key_end(key_lengths, b, sk)
            qs = np.zeros((BQ, D), dtype=f32)
            for r in range(BQ):
                if q0 + r < s:
                    qs[r] = q[q0 + r, b, h].astype(f32) * f32(scale)
            last_q = min(q0 + BQ, s) - 1
            tile_end = min(kend, last_q + shift + 1) if causal else kend
            m = np.full((WARPS, ROWS_PER_WARP), -np.inf, dtype=f32)
            l = np.zeros((WARPS, ROWS_PER_WARP), dtype=f32)
            acc = np.zeros((WARPS, ROWS_PER_WARP, D), dtype=f32)
            k0 = 0
            while k0 < tile_end:
                ks = np.zeros((BK, D), dtype=f32)
                vs = np.zeros((BK, D), dtype=f32)
                for r in range(BK):
                    if k0 + r < sk:
                        ks[r] = k[k0 + r, b, g]
                        vs[r] = v[k0 + r, b, g]
                for w in range(WARPS):
                    for rr in range(ROWS_PER_WARP):
                        r = w * ROWS_PER_WARP + rr
                        i = q0 + r
                        if i >= s:
                            continue
                        row_end = min(kend, i + shift + 1) if causal else kend
                        j = k0 + lanes
                        valid = j < row_end
                        sc = np.where(valid, ks @ qs[r], -np.inf).astype(f32)  # lane j: dot(q_r, k_j)
                        m_new = max(m[w, rr], sc.max())
                        if m_new == -np.inf:
                            continue
                        p = np.where(valid, np.exp(sc - m_new), 0).astype(f32)
                        alpha = f32(np.exp(m[w, rr] - m_new))
                        l[w, rr] = l[w, rr] * alpha + p.sum()
                        m[w, rr] = m_new
                        acc[w, rr] = acc[w, rr] * alpha + p @ vs  # sum_jj shfl(p, jj) * V[jj]
                k0 += BK
            for w in range(WARPS):
                for rr in range(ROWS_PER_WARP):
                    i = q0 + w * ROWS_PER_WARP + rr
                    if i >= s:
                        continue
                    empty = l[w, rr] == 0
                    out[i, b, h] = 0 if empty else acc[w, rr] / l[w, rr]
                    lse[b, h, i] = -np.inf if empty else m[w, rr] + math.log(l[w, rr])
    return out, lse


def backward(q, k, v, out, d_out, lse, scale, causal, key_lengths):
    s, B, NP, D = q.shape
    sk, _, NG, _ = k.shape
    rep = NP // NG
    shift = sk - s
    delta = np.einsum("sbhd,sbhd->bhs", d_out.astype(f32), out.astype(f32)).astype(f32)  # megatron_flash_attention_delta
    dq = np.zeros(q.shape, dtype=f32)
    dk = np.zeros(k.shape, dtype=f32)
    dv = np.zeros(v.shape, dtype=f32)
    lanes = np.arange(32)
    for bx in range((sk + BK - 1) // BK):
        for bg in range(B * NG):
            b, g = bg // NG, bg % NG
            k0 = bx * BK
            kend = key_end(key_lengths, b, sk)
            ks = np.zeros((BK, D), dtype=f32)
            vs = np.zeros((BK, D), dtype=f32)
            for r in range(BK):
                if k0 + r < sk:
                    ks[r] = k[k0 + r, b, g]
                    vs[r] = v[k0 + r, b, g]
            dks = np.zeros((BK, D), dtype=f32)
            dvs = np.zeros((BK, D), dtype=f32)
            j = k0 + lanes
            key_in = j < kend
            if k0 < kend:
                i_start = max(0, k0 - shift) if causal else 0
                for r in range(rep):
                    h = g * rep + r
                    for w in range(WARPS):
                        for i in range(i_start + w, s, WARPS):
                            lse_i = lse[b, h, i]
                            if lse_i == -np.inf:
                                continue
                            q_row = q[i, b, h].astype(f32)
                            do_row = d_out[i, b, h].astype(f32)
                            valid = key_in & ((not causal) | (j <= i + shift))
                            dot = ks @ q_row
                            dp = vs @ do_row
                            p = np.where(valid, np.exp(f32(scale) * dot - lse_i), 0).astype(f32)
                            ds = np.where(valid, p * (dp - delta[b, h, i]), 0).astype(f32)
                            dvs += np.outer(p, do_row)
                            dks += np.outer(f32(scale) * ds, q_row)
                            dq[i, b, h] += f32(scale) * (ds @ ks)
            for r in range(BK):
                if k0 + r < sk:
                    dk[k0 + r, b, g] = dks[r]
                    dv[k0 + r, b, g] = dvs[r]
    return dq, dk, dv


def reference(q, k, v, d_out, scale, causal, key_lengths):
    """Float64 attention and its gradients, written from the definition (no tiling)."""
    s, B, NP, D = q.shape
    sk, _, NG, _ = k.shape
    rep = NP // NG
    out = np.zeros(q.shape)
    lse = np.zeros((B, NP, s))
    dq, dk, dv = np.zeros(q.shape), np.zeros(k.shape), np.zeros(v.shape)
    for b in range(B):
        kend = key_end(key_lengths, b, sk)
        for h in range(NP):
            g = h // rep
            Q, K, V, dO = (x.astype(np.float64) for x in (q[:, b, h], k[:, b, g], v[:, b, g], d_out[:, b, h]))
            S = scale * Q @ K.T
            mask = np.arange(sk)[None, :] < kend
            if causal:
                mask = mask & (np.arange(sk)[None, :] <= np.arange(s)[:, None] + (sk - s))
            S = np.where(mask, S, -np.inf)
            mx = S.max(axis=1, keepdims=True)
            full = np.isinf(mx[:, 0])
            mx[full] = 0
            P = np.exp(S - mx)
            Z = P.sum(axis=1, keepdims=True)
            Z[full] = 1
            P = P / Z
            P[full] = 0
            out[:, b, h] = P @ V
            lse[b, h] = np.where(full, -np.inf, mx[:, 0] + np.log(Z[:, 0]))
            dP = dO @ V.T
            dS = P * (dP - (dP * P).sum(axis=1, keepdims=True))
            dq[:, b, h] = scale * dS @ K
            dk[:, b, g] += scale * dS.T @ Q
            dv[:, b, g] += P.T @ dO
    return out, lse, dq, dk, dv


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    fin = np.isfinite(b)
    if not np.array_equal(np.isfinite(a), fin) or not np.array_equal(a[~fin], b[~fin]):
        return float("inf")
    return float(np.linalg.norm(a[fin] - b[fin]) / max(np.linalg.norm(b[fin]), 1e-30))


def main():
    rng = np.random.default_rng()
    cases = [  # s, sk, B, np, ng, d, causal, padded
        (70, 70, 2, 4, 4, 64, True, False),
        (33, 65, 2, 8, 2, 128, True, True),
        (40, 40, 2, 4, 1, 64, False, True),
        (17, 17, 3, 2, 2, 32, False, False),
        (50, 50, 1, 3, 3, 96, True, False),
        (40, 20, 1, 2, 1, 32, True, False),  # sk < s: the first queries see nothing
    ]
    worst = 0.0
    for s, sk, B, NP, NG, D, causal, padded in cases:
        q = rng.uniform(-1, 1, (s, B, NP, D)).astype(f32)
        k = rng.uniform(-1, 1, (sk, B, NG, D)).astype(f32)
        v = rng.uniform(-1, 1, (sk, B, NG, D)).astype(f32)
        d_out = rng.uniform(-1, 1, (s, B, NP, D)).astype(f32)
        lengths = None
        if padded:
            lengths = np.array([0] + [rng.integers(1, sk + 1) for _ in range(B - 1)], dtype=np.int32)
        scale = 1 / math.sqrt(D)
        out, lse = forward(q, k, v, scale, causal, lengths)
        dq, dk, dv = backward(q, k, v, out, d_out, lse, scale, causal, lengths)
        ref = reference(q, k, v, d_out, scale, causal, lengths)
        errors = [rel(x, y) for x, y in zip((out, lse, dq, dk, dv), ref)]
        worst = max(worst, *errors)
        print(f"s={s} sk={sk} b={B} np={NP} ng={NG} d={D} causal={causal} padded={padded}: "
              + " ".join(f"{n}={e:.1e}" for n, e in zip(("out", "lse", "dq", "dk", "dv"), errors)))
    print(f"worst relative error {worst:.2e} (fp32 accumulation; expected below 1e-5)")
    sys.exit(0 if worst < 1e-5 else 1)


if __name__ == "__main__":
    main()
