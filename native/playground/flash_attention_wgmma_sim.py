#!/usr/bin/env python3
"""A NumPy model of native/src/main/cuda/flash_attention_wgmma.cuh (the sm_90a forward), checked
against a float64 reference, written before the kernel ever ran on a GPU.

What it models: shared memory as bytes; the kernel's cp.async writes into the 128-byte-swizzle
tiles (sw128); the 64-bit matrix descriptors exactly as smem_desc / desc_k_major / desc_mn_major
build them; wgmma's reads through those descriptors, as CUTLASS's canonical GMMA layouts define
them (K-major SW128: ((8,m),(T,2k)):((8T,SBO),(1,T)); MN-major SW128: ((T,8,m),(8,k)):((1,T,LBO),(8T,SBO)),
in 16-byte units T, then the hardware swizzle: address bits [4,7) ^= bits [7,10)); the accumulator
and A-fragment register layouts (thread t of warp w: rows 16 w + t/4 (+8), columns 8 i + 2 (t%4) (+1));
the per-thread packing of P into A fragments; the loop order, stages and the pipelined P V of the
"p" variants (one step after another: the hazards of asynchrony are the GPU's to show).
So offsets, panels, K steps, stage rotation and fragment indexing are checked; whether the
hardware reads descriptors as assumed here is not (flash_attention_check on an H100 does that).

    python3 native/playground/flash_attention_wgmma_sim.py   # one line per case, exits 1 on a mismatch
"""
import math
import sys

import numpy as np

SLACK = 1024


def sw128(rows, r, c):
    """flash_attention_wgmma.cuh sw128<ROWS>(r, c): byte offset of 16-byte chunk c of row r."""
    return (c >> 3) * rows * 128 + r * 128 + (((c & 7) ^ (r & 7)) << 4)


def smem_desc(addr, lbo, sbo):
    return ((addr >> 4) & 0x3FFF) | ((lbo >> 4) & 0x3FFF) << 16 | ((sbo >> 4) & 0x3FFF) << 32 | 1 << 62


def desc_k_major(rows, tile, row0, kk):
    return smem_desc(tile + (kk >> 2) * rows * 128 + row0 * 128 + (kk & 3) * 32, 16, 1024)


def desc_mn_major(rows, tile, kk):
    return smem_desc(tile + kk * 16 * 128, rows * 128, 1024)


def decode(desc):
    assert desc >> 62 == 1, "128-byte swizzle"
    return (desc & 0x3FFF) << 4, ((desc >> 16) & 0x3FFF) << 4, ((desc >> 32) & 0x3FFF) << 4


def swizzle(addr):
    return addr ^ (((addr >> 7) & 7) << 4)


def read_k_major(smem, desc, rows):
    """rows x 16 elements (row, k) of a K-major SW128 operand."""
    start, _, sbo = decode(desc)
    out = np.empty((rows, 16), np.float16)
    for m in range(rows):
        for k in range(16):
            a = swizzle(start + (m // 8) * sbo + (m % 8) * 128 + k * 2)
            out[m, k] = smem[a:a + 2].view(np.float16)[0]
    return out


def read_mn_major(smem, desc, n):
    """16 x n elements (k, n) of an MN-major SW128 operand."""
    start, lbo, sbo = decode(desc)
    out = np.empty((16, n), np.float16)
    for k in range(16):
        for j in range(n):
            a = swizzle(start + (k // 8) * sbo + (k % 8) * 128 + (j // 64) * lbo + (j % 64) * 2)
            out[k, j] = smem[a:a + 2].view(np.float16)[0]
    return out


def acc_index(n):
    """(thread, register) -> (row, column) of a 64 x n accumulator: d[4 i + e]."""
    idx = np.empty((128, n // 2, 2), np.int64)
    for tid in range(128):
        w, lane = tid // 32, tid % 32
        g, t = lane // 4, lane % 4
        for i in range(n // 8):
            for e in range(4):
                idx[tid, 4 * i + e] = (16 * w + g + (8 if e >= 2 else 0), 8 * i + 2 * t + (e & 1))
    return idx


def to_regs(mat, idx):
    return mat[idx[..., 0], idx[..., 1]]


def from_regs(regs, idx, shape):
    mat = np.full(shape, np.nan, np.float32)
    mat[idx[..., 0], idx[..., 1]] = regs
    assert not np.isnan(mat).any(), "every element held by one register"
    return mat


def a_fragments(sregs, bn):
    """rescaleAndPack's pf[kk][0..3] from sacc[SN][4] (per thread: 2 halves each), as a 64 x 16 A per kk."""
    mats = []
    for kk in range(bn // 16):
        a = np.zeros((64, 16), np.float32)
        for tid in range(128):
            w, lane = tid // 32, tid % 32
            g, t = lane // 4, lane % 4
            s = sregs[tid].reshape(-1, 4)
            # register r: (row g or g + 8, k 2t or 8 + 2t), two halves
            frag = [(s[2 * kk][0], s[2 * kk][1]), (s[2 * kk][2], s[2 * kk][3]),
                    (s[2 * kk + 1][0], s[2 * kk + 1][1]), (s[2 * kk + 1][2], s[2 * kk + 1][3])]
            for r, (lo, hi) in enumerate(frag):
                row = 16 * w + g + (8 if r & 1 else 0)
                col = 2 * t + (8 if r & 2 else 0)
                a[row, col], a[row, col + 1] = lo, hi
        mats.append(a.astype(np.float16).astype(np.float32))
    return mats


def forward(q, k, v, scale, causal, key_lengths, nwg, bn, pipe):
    """q [s, B, np, D], k/v [sk, B, ng, D] (float16) -> out, lse, block by block as the kernel runs."""
    s, B, NP, D = q.shape
    sk, _, NG, _ = k.shape
    BM, CH, stages, tile = 64 * nwg, D // 8, 3 if pipe else 2, bn * D * 2
    out = np.zeros((s, B, NP, D), np.float32)
    lse = np.zeros((B, NP, s), np.float32)
    shift = sk - s
    acc_s, acc_o = acc_index(bn), acc_index(D)
    base = 1000  # a dynamic shared memory start that is not 1024-aligned, as the kernel may get
    smem = np.zeros(base + (BM * D + 2 * stages * bn * D) * 2 + SLACK, np.uint8)
    sQ = (base + SLACK - 1) & ~(SLACK - 1)
    sK = sQ + BM * D * 2
    sV = sK + stages * tile
    grid = (s + BM - 1) // BM
    for bx in range(grid):
        for bh in range(B * NP):
            b, h = bh // NP, bh % NP
            grp = h // (NP // NG)
            m0 = (grid - 1 - bx) * BM
            key_end = sk if key_lengths is None else max(0, min(int(key_lengths[b]), sk))
            last_q = min(m0 + BM, s) - 1
            kv_end = min(key_end, last_q + shift + 1) if causal else key_end
            n_blocks = (kv_end + bn - 1) // bn if kv_end > 0 else 0
            smem[:] = 0xFF  # poison: a chunk read before it was written is NaN

            def put(addr, row8):
                smem[addr:addr + 16] = np.asarray(row8, np.float16).view(np.uint8)

            def load_kv(n, stage):
                for r in range(bn):
                    j = n * bn + r
                    for c in range(CH):
                        ok = j < key_end
                        put(sK + stage * tile + sw128(bn, r, c), k[j, b, grp, 8 * c:8 * c + 8] if ok else np.zeros(8))
                        put(sV + stage * tile + sw128(bn, r, c), v[j, b, grp, 8 * c:8 * c + 8] if ok else np.zeros(8))

            if n_blocks > 0:
                for r in range(BM):
                    for c in range(CH):
                        i = m0 + r
                        put(sQ + sw128(BM, r, c), q[i, b, h, 8 * c:8 * c + 8] if i < s else np.zeros(8))
                load_kv(n_blocks - 1, 0)
            wgs = [dict(g0=m0 + wg * 64, o=np.zeros((64, D), np.float32), m=np.full(64, -np.inf, np.float32),
                        l=np.zeros(64, np.float32), pending=False, pv_stage=0,
                        pf=[np.zeros((64, 16), np.float32)] * (bn // 16)) for wg in range(nwg)]

            def pv(w, stage):
                for kk in range(bn // 16):
                    vt = read_mn_major(smem, desc_mn_major(bn, sV + stage * tile, kk), D).astype(np.float32)
                    w["o"] += w["pf"][kk] @ vt

            loaded = {0: n_blocks - 1}  # stage -> block, to check that every read finds its block
            for it in range(n_blocks):  # the block's barrier: every warpgroup is in the same iteration
                n, stage = n_blocks - 1 - it, it % stages
                assert loaded[stage] == n
                if it + 1 < n_blocks:
                    nxt = (it + 1) % stages
                    assert not (pipe and any(w["pending"] and w["pv_stage"] == nxt for w in wgs)), \
                        "a load overwrites a pending P V's V"
                    load_kv(n - 1, nxt)
                    loaded[nxt] = n - 1
                n0 = n * bn
                for wg, w in enumerate(wgs):
                    g0 = w["g0"]
                    rows = np.arange(64) + g0
                    if g0 >= s or (causal and n0 > g0 + 63 + shift):
                        assert not w["pending"], "a pending P V across a skipped block"
                        continue
                    # S = Q K^T through the descriptors
                    sc = np.zeros((64, bn), np.float32)
                    for kk in range(D // 16):
                        a = read_k_major(smem, desc_k_major(BM, sQ, wg * 64, kk), 64).astype(np.float32)
                        bt = read_k_major(smem, desc_k_major(bn, sK + stage * tile, 0, kk), bn).astype(np.float32)
                        sc += a @ bt.T
                    sc = from_regs(to_regs(sc, acc_s), acc_s, (64, bn))
                    if pipe:  # P V of the previous block (P 0 before the first one)
                        pv(w, w["pv_stage"] if w["pending"] else stage)
                    # mask and online softmax (fa2's, matrix-wise)
                    j = n0 + np.arange(bn)
                    vis = (j[None, :] < key_end) & (~causal | (j[None, :] <= rows[:, None] + shift))
                    sc = np.where(vis, sc, -np.inf)
                    sl2 = scale * math.log2(math.e)
                    m_new = np.maximum(w["m"], sc.max(axis=1))
                    m_s = np.where(m_new == -np.inf, 0, m_new * sl2)
                    alpha = np.exp2(w["m"] * sl2 - m_s)
                    p = np.exp2(sc * sl2 - m_s[:, None])
                    w["l"] = w["l"] * alpha + p.sum(axis=1)
                    w["m"] = m_new
                    w["o"] *= alpha[:, None]
                    w["pf"] = a_fragments(to_regs(p.astype(np.float32), acc_s), bn)
                    if pipe:
                        w["pending"], w["pv_stage"] = True, stage
                    else:
                        pv(w, stage)
            for wg, w in enumerate(wgs):
                if pipe and w["pending"]:
                    pv(w, w["pv_stage"])
                o = from_regs(to_regs(w["o"], acc_o), acc_o, (64, D))
                for r in range(64):
                    i = w["g0"] + r
                    if i >= s:
                        continue
                    l = w["l"][r]
                    empty = not l > 0
                    out[i, b, h] = 0 if empty else o[r] / l
                    lse[b, h, i] = -np.inf if empty else w["m"][r] * scale + math.log(l)
    return out, lse


def reference(q, k, v, scale, causal, key_lengths):
    s, B, NP, D = q.shape
    sk, _, NG, _ = k.shape
    out = np.zeros((s, B, NP, D))
    lse = np.zeros((B, NP, s))
    for b in range(B):
        key_end = sk if key_lengths is None else max(0, min(int(key_lengths[b]), sk))
        for h in range(NP):
            grp = h // (NP // NG)
            sc = q[:, b, h].astype(np.float64) @ k[:, b, grp].astype(np.float64).T * scale
            i, j = np.arange(s)[:, None], np.arange(sk)[None, :]
            vis = (j < key_end) & (~causal | (j <= i + (sk - s)))
            sc = np.where(vis, sc, -np.inf)
            mx = sc.max(axis=1, keepdims=True)
            safe = np.where(np.isfinite(mx), mx, 0)
            e = np.exp(sc - safe)
            l = e.sum(axis=1, keepdims=True)
            out[:, b, h] = np.where(l > 0, e @ v[:, b, grp].astype(np.float64) / np.where(l > 0, l, 1), 0)
            lse[b, h] = np.where(l[:, 0] > 0, safe[:, 0] + np.log(np.where(l[:, 0] > 0, l[:, 0], 1)), -np.inf)
    return out, lse


def rel(x, ref):
    fin = np.isfinite(ref)
    assert (np.isneginf(x) == np.isneginf(ref)).all(), "-inf where the reference has it"
    d = np.linalg.norm(np.where(fin, x - np.where(fin, ref, 0), 0))
    return d / max(np.linalg.norm(ref[fin]), 1e-30)


def main():
    rng = np.random.default_rng(7)
    cases = [  # s, sk, B, np, ng, d, causal, key lengths, (nwg, bn, pipe)
        (70, 70, 1, 2, 1, 64, True, None, (1, 64, False)),
        (130, 130, 1, 2, 2, 128, True, None, (2, 128, False)),
        (130, 130, 1, 2, 2, 128, True, None, (2, 128, True)),
        (200, 200, 2, 2, 1, 64, True, [150, 33], (1, 128, True)),
        (40, 300, 1, 4, 2, 128, False, [260], (2, 64, True)),
        (300, 100, 1, 2, 2, 64, True, None, (3, 128, False)),
        (150, 150, 1, 2, 2, 128, True, None, (1, 64, True)),
    ]
    failed = 0
    for s, sk, B, NP, NG, D, causal, kl, (nwg, bn, pipe) in cases:
        q = rng.standard_normal((s, B, NP, D)).astype(np.float16)
        k = rng.standard_normal((sk, B, NG, D)).astype(np.float16)
        v = rng.standard_normal((sk, B, NG, D)).astype(np.float16)
        scale = 1 / math.sqrt(D)
        kl = None if kl is None else np.array(kl)
        out, lse = forward(q, k, v, scale, causal, kl, nwg, bn, pipe)
        r_out, r_lse = reference(q, k, v, scale, causal, kl)
        e_out, e_lse = rel(out, r_out), rel(lse, r_lse)
        ok = e_out < 5e-3 and e_lse < 1e-5 and not np.isnan(out).any()
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} s={s} sk={sk} B={B} np={NP} ng={NG} d={D} causal={causal} kl={kl} "
              f"wg{nwg}n{bn}{'p' if pipe else ''}: out {e_out:.1e} lse {e_lse:.1e}")
    print(f"{failed} of {len(cases)} cases failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
