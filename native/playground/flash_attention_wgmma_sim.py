#!/usr/bin/env python3
"""A NumPy model of native/src/main/cuda/flash_attention_wgmma.cuh (the sm_90a forward and backward), checked
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


def desc_mn_major(rows, tile, kk, col0=0):
    return smem_desc(tile + (col0 >> 6) * rows * 128 + (col0 & 63) * 2 + kk * 16 * 128, rows * 128, 1024)


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
    """The kernels' packing of an accumulator (sacc[SN][4] per thread) into A fragments pf[kk][0..3],
    as the 64 x 16 A matrix of each kk (rounded to 16 bits)."""
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


BWD_BM = 64


def backward(q, k, v, do, lse, delta, scale, causal, key_lengths, nwg):
    """fa3::backward, key block by key block: dq (fp32 workspace), dk, dv."""
    s, B, NP, D = q.shape
    sk, _, NG, _ = k.shape
    BM, BN, CH = BWD_BM, 64 * nwg, D // 8
    DQN, qtile = D // nwg, BM * D * 2
    rep = NP // NG
    shift = sk - s
    acc_s, acc_d, acc_q = acc_index(BM), acc_index(D), acc_index(DQN)
    dq = np.zeros((s, B, NP, D), np.float32)
    dk = np.zeros((sk, B, NG, D), np.float32)
    dv = np.zeros((sk, B, NG, D), np.float32)
    base = 1000
    smem = np.zeros(base + (2 * BN * D + 4 * BM * D + BN * BM) * 2 + SLACK, np.uint8)
    sK = (base + SLACK - 1) & ~(SLACK - 1)
    sV = sK + BN * D * 2
    sQ = sV + BN * D * 2
    sDO = sQ + 2 * qtile
    sDS = sDO + 2 * qtile
    sl2 = scale * math.log2(math.e)
    for bx in range((sk + BN - 1) // BN):
        for bg in range(B * NG):
            b, grp = bg // NG, bg % NG
            n0 = bx * BN
            key_end = sk if key_lengths is None else max(0, min(int(key_lengths[b]), sk))
            first_q = max(0, n0 - shift) if causal else 0
            m_end = (s + BM - 1) // BM
            m_start = min(first_q // BM, m_end)
            total = rep * (m_end - m_start if n0 < key_end else 0)
            smem[:] = 0xFF

            def put(addr, row8):
                smem[addr:addr + 16] = np.asarray(row8, np.float16).view(np.uint8)

            for r in range(BN):
                j = n0 + r
                for c in range(CH):
                    ok = j < key_end
                    put(sK + sw128(BN, r, c), k[j, b, grp, 8 * c:8 * c + 8] if ok else np.zeros(8))
                    put(sV + sw128(BN, r, c), v[j, b, grp, 8 * c:8 * c + 8] if ok else np.zeros(8))
            lse_s, delta_s = np.zeros((2, BM)), np.zeros((2, BM))

            def load_q(h, m0, stage):
                for r in range(BM):
                    i = m0 + r
                    for c in range(CH):
                        put(sQ + stage * qtile + sw128(BM, r, c), q[i, b, h, 8 * c:8 * c + 8] if i < s else np.zeros(8))
                        put(sDO + stage * qtile + sw128(BM, r, c), do[i, b, h, 8 * c:8 * c + 8] if i < s else np.zeros(8))
                    lse_s[stage, r] = np.inf if i >= s or lse[b, h, i] == -np.inf else lse[b, h, i] * math.log2(math.e)
                    delta_s[stage, r] = delta[b, h, i] if i < s else 0

            h, m0 = grp * rep, m_start * BM
            if total > 0:
                load_q(h, m0, 0)
            dk_acc = [np.zeros((64, D), np.float32) for _ in range(nwg)]
            dv_acc = [np.zeros((64, D), np.float32) for _ in range(nwg)]
            for it in range(total):
                stage = it & 1
                if it + 1 < total:
                    wrap = m0 + BM >= m_end * BM
                    load_q(h + 1 if wrap else h, m_start * BM if wrap else m0 + BM, stage ^ 1)
                qS, doS = sQ + stage * qtile, sDO + stage * qtile
                need_mask = n0 + BN > key_end or (causal and n0 + BN - 1 > m0 + shift)
                frags = []
                for wg in range(nwg):
                    st_ = np.zeros((64, BM), np.float32)
                    dp = np.zeros((64, BM), np.float32)
                    for kk in range(D // 16):
                        st_ += read_k_major(smem, desc_k_major(BN, sK, wg * 64, kk), 64).astype(np.float32) @ \
                            read_k_major(smem, desc_k_major(BM, qS, 0, kk), BM).astype(np.float32).T
                        dp += read_k_major(smem, desc_k_major(BN, sV, wg * 64, kk), 64).astype(np.float32) @ \
                            read_k_major(smem, desc_k_major(BM, doS, 0, kk), BM).astype(np.float32).T
                    st_ = from_regs(to_regs(st_, acc_s), acc_s, (64, BM))
                    keys = n0 + wg * 64 + np.arange(64)[:, None]
                    qc = np.arange(BM)[None, :]
                    p = np.exp2(st_ * sl2 - lse_s[stage][None, :])
                    if need_mask:
                        p = np.where((keys >= key_end) | (causal & (keys > m0 + qc + shift)), 0, p)
                    ds = p * (dp - delta_s[stage][None, :])
                    ap = a_fragments(to_regs(p.astype(np.float32), acc_s), BM)
                    a_s = a_fragments(to_regs(ds.astype(np.float32), acc_s), BM)
                    # the per-thread dS^T stores: register (row kRow or + 8, chunk 2 kk or 2 kk + 1, bytes 4 t)
                    sregs = to_regs(ds.astype(np.float32), acc_s)
                    for tid in range(128):
                        w, lane = tid // 32, tid % 32
                        g, t = lane // 4, lane % 4
                        k_row = wg * 64 + w * 16 + g
                        sr = sregs[tid].reshape(-1, 4)
                        for kk in range(BM // 16):
                            for (row, chunk, lo, hi) in ((k_row, 2 * kk, sr[2 * kk][0], sr[2 * kk][1]),
                                                         (k_row + 8, 2 * kk, sr[2 * kk][2], sr[2 * kk][3]),
                                                         (k_row, 2 * kk + 1, sr[2 * kk + 1][0], sr[2 * kk + 1][1]),
                                                         (k_row + 8, 2 * kk + 1, sr[2 * kk + 1][2], sr[2 * kk + 1][3])):
                                a = sDS + sw128(BN, row, chunk) + 4 * t
                                smem[a:a + 4] = np.array([lo, hi], np.float16).view(np.uint8)
                    frags.append((ap, a_s))
                for wg in range(nwg):
                    ap, a_s = frags[wg]
                    for kk in range(BM // 16):
                        dv_acc[wg] += ap[kk] @ read_mn_major(smem, desc_mn_major(BM, doS, kk), D).astype(np.float32)
                        dk_acc[wg] += a_s[kk] @ read_mn_major(smem, desc_mn_major(BM, qS, kk), D).astype(np.float32)
                for wg in range(nwg):  # after the barrier: every warpgroup's dS^T is in shared memory
                    dqa = np.zeros((64, DQN), np.float32)
                    for kk in range(BN // 16):
                        a = read_mn_major(smem, desc_mn_major(BN, sDS, kk), BM).astype(np.float32).T
                        bm = read_mn_major(smem, desc_mn_major(BN, sK, kk, wg * DQN), DQN).astype(np.float32)
                        dqa += a @ bm
                    dqa = from_regs(to_regs(dqa, acc_q), acc_q, (64, DQN))
                    rows = m0 + np.arange(64)
                    ok = rows < s
                    dq[rows[ok], b, h, wg * DQN:(wg + 1) * DQN] += scale * dqa[ok]
                m0 += BM
                if m0 >= m_end * BM:
                    m0, h = m_start * BM, h + 1
            for wg in range(nwg):
                for r in range(64):
                    j = n0 + wg * 64 + r
                    if j < sk:
                        dk[j, b, grp] = dk_acc[wg][r] * scale
                        dv[j, b, grp] = dv_acc[wg][r]
    return dq, dk, dv


def reference_backward(q, k, v, do, scale, causal, key_lengths):
    s, B, NP, D = q.shape
    sk, _, NG, _ = k.shape
    dq, dk, dv = np.zeros(q.shape), np.zeros(k.shape), np.zeros(v.shape)
    for b in range(B):
        key_end = sk if key_lengths is None else max(0, min(int(key_lengths[b]), sk))
        for h in range(NP):
            grp = h // (NP // NG)
            qq, kk, vv, dd = (x.astype(np.float64) for x in (q[:, b, h], k[:, b, grp], v[:, b, grp], do[:, b, h]))
            sc = qq @ kk.T * scale
            i, j = np.arange(s)[:, None], np.arange(sk)[None, :]
            vis = (j < key_end) & (~causal | (j <= i + (sk - s)))
            sc = np.where(vis, sc, -np.inf)
            mx = sc.max(axis=1, keepdims=True)
            e = np.exp(sc - np.where(np.isfinite(mx), mx, 0))
            l = e.sum(axis=1, keepdims=True)
            p = np.where(l > 0, e / np.where(l > 0, l, 1), 0)
            dp = dd @ vv.T
            ds = p * (dp - (dp * p).sum(axis=1, keepdims=True))
            dq[:, b, h] = ds @ kk * scale
            dk[:, b, grp] += ds.T @ qq * scale
            dv[:, b, grp] += p.T @ dd
    return dq, dk, dv


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
    cases = [  # s, sk, B, np, ng, d, causal, key lengths, forward (nwg, bn, pipe), backward nwg
        (70, 70, 1, 2, 1, 64, True, None, (1, 64, False), 1),
        (130, 130, 1, 2, 2, 128, True, None, (2, 128, False), 2),
        (130, 130, 1, 2, 2, 128, True, None, (2, 128, True), 1),
        (200, 200, 2, 2, 1, 64, True, [150, 33], (1, 128, True), 2),
        (40, 300, 1, 4, 2, 128, False, [260], (2, 64, True), 2),
        (300, 100, 1, 2, 2, 64, True, None, (3, 128, False), 1),
        (150, 150, 1, 2, 2, 128, True, None, (1, 64, True), 2),
    ]
    failed = 0
    for s, sk, B, NP, NG, D, causal, kl, (nwg, bn, pipe), bwg in cases:
        q = rng.standard_normal((s, B, NP, D)).astype(np.float16)
        k = rng.standard_normal((sk, B, NG, D)).astype(np.float16)
        v = rng.standard_normal((sk, B, NG, D)).astype(np.float16)
        do = rng.standard_normal((s, B, NP, D)).astype(np.float16)
        scale = 1 / math.sqrt(D)
        kl = None if kl is None else np.array(kl)
        out, lse = forward(q, k, v, scale, causal, kl, nwg, bn, pipe)
        r_out, r_lse = reference(q, k, v, scale, causal, kl)
        # delta = rowsum(dO * out) as megatron_flash_attention_bwd_prep computes it, from the 16-bit out
        delta = np.einsum("sbhd,sbhd->bhs", do.astype(np.float32), out.astype(np.float16).astype(np.float32))
        dq, dk, dv = backward(q, k, v, do, lse, delta, scale, causal, kl, bwg)
        r_dq, r_dk, r_dv = reference_backward(q, k, v, do, scale, causal, kl)
        errs = dict(out=rel(out, r_out), lse=rel(lse, r_lse), dq=rel(dq, r_dq), dk=rel(dk, r_dk), dv=rel(dv, r_dv))
        ok = errs["lse"] < 1e-5 and all(e < 1e-2 for n, e in errs.items() if n != "lse") and \
            not any(np.isnan(x).any() for x in (out, dq, dk, dv))
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} s={s} sk={sk} B={B} np={NP} ng={NG} d={D} causal={causal} kl={kl} "
              f"fwd wg{nwg}n{bn}{'p' if pipe else ''} bwd wg{bwg}b64: " + " ".join(f"{n} {e:.1e}" for n, e in errs.items()))
    print(f"{failed} of {len(cases)} cases failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
