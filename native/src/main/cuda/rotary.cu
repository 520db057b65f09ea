// Rotary position embedding, Megatron's two layouts. x [s, b, heads, d], freqs F32 [s, r] (r <= d,
// even). Pair k < half = r / 2 rotates channels (c1, c2) = (k, k + half), the "rotate half" form,
// or (2k, 2k + 1) with --rotary-interleaved (RoFormer's), each channel by its own angle:
//   y[c1] = x[c1] * cos(f[c1]) - x[c2] * sin(f[c1])
//   y[c2] = x[c2] * cos(f[c2]) + x[c1] * sin(f[c2])
// channels [r, d) pass through. One thread per pair, so out may alias x.
//
// Fast path (half % 8 == 0, d % 8 == 0, x, out and freqs 16-byte aligned): a work item is one
// position, one chunk of 8 pairs (or 8 pass-through channels) and a group of up to MJ_ROT_ROWS
// of the b * heads rows of that position; the 16 sines and cosines are computed once and applied
// to every row of the group (the angles depend on the position only), with 16-byte accesses.
// Interleaved, 8 pairs are 16 consecutive channels (two chunks), split into c1s and c2s in
// registers. Any grid (grid-stride).
#include "common.cuh"

#define MJ_ROT_ROWS 8

__device__ __forceinline__ void mj_rotate(float x1, float x2, float c1, float s1, float c2, float s2, int inverse,
                                          float& y1, float& y2) {
    if (!inverse) {
        y1 = x1 * c1 - x2 * s1;
        y2 = x2 * c2 + x1 * s2;
    } else {  // the transpose of the rotation: the gradient
        y1 = x1 * c1 + x2 * s2;
        y2 = x2 * c2 - x1 * s1;
    }
}

// The 8 pairs of pair chunk k in the row whose first chunk is rc: channels c1 into v1, c2 into v2.
__device__ __forceinline__ void mj_rot_load(const void* p, i64 rc, int k, int pairChunks, int interleaved, int dt,
                                            float (&v1)[8], float (&v2)[8]) {
    if (!interleaved) {
        mj_load8(p, rc + k, dt, v1);
        mj_load8(p, rc + pairChunks + k, dt, v2);
        return;
    }
    float a[8], b[8];
    mj_load8(p, rc + 2 * k, dt, a);
    mj_load8(p, rc + 2 * k + 1, dt, b);
#pragma unroll
    for (int e = 0; e < 4; e++) {
        v1[e] = a[2 * e];
        v2[e] = a[2 * e + 1];
        v1[4 + e] = b[2 * e];
        v2[4 + e] = b[2 * e + 1];
    }
}

__device__ __forceinline__ void mj_rot_store(void* p, i64 rc, int k, int pairChunks, int interleaved, int dt,
                                             const float (&v1)[8], const float (&v2)[8]) {
    if (!interleaved) {
        mj_store8(p, rc + k, dt, v1);
        mj_store8(p, rc + pairChunks + k, dt, v2);
        return;
    }
    float a[8], b[8];
#pragma unroll
    for (int e = 0; e < 4; e++) {
        a[2 * e] = v1[e];
        a[2 * e + 1] = v2[e];
        b[2 * e] = v1[4 + e];
        b[2 * e + 1] = v2[4 + e];
    }
    mj_store8(p, rc + 2 * k, dt, a);
    mj_store8(p, rc + 2 * k + 1, dt, b);
}

extern "C" __global__ void megatron_rotary(const void* x, int xt, const float* freqs, void* out, int ot,
                                           i64 s, i64 bh, int d, int r, int inverse, int interleaved) {
    int half = r / 2;
    if ((half % MJ_CHUNK) == 0 && (d % MJ_CHUNK) == 0 && mj_al16(x) && mj_al16(out) && mj_al16(freqs)) {
        int pairChunks = half / MJ_CHUNK, passChunks = (d - r) / MJ_CHUNK;
        int perPos = pairChunks + passChunks;
        i64 groups = (bh + MJ_ROT_ROWS - 1) / MJ_ROT_ROWS;
        i64 n = s * groups * perPos;
        int dc = d / MJ_CHUNK;
        MJ_FOR(i, n) {
            int k = (int)(i % perPos);      // fastest: neighbouring threads touch neighbouring chunks
            i64 rest = i / perPos;
            i64 grp = rest % groups, pos = rest / groups;
            i64 row0 = pos * bh + grp * MJ_ROT_ROWS;
            int rows = (int)min((i64)MJ_ROT_ROWS, bh - grp * MJ_ROT_ROWS);
            if (k < pairChunks) {
                float a1[8], a2[8];   // the angles of the pairs' c1 and c2 channels
                mj_rot_load(freqs + pos * r, 0, k, pairChunks, interleaved, MJ_F32, a1, a2);
                float c1[8], s1[8], c2[8], s2[8];
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    c1[e] = cosf(a1[e]); s1[e] = sinf(a1[e]);
                    c2[e] = cosf(a2[e]); s2[e] = sinf(a2[e]);
                }
                for (int q = 0; q < rows; q++) {
                    i64 rc = (row0 + q) * dc;  // chunk index of the row start
                    float v1[8], v2[8];
                    mj_rot_load(x, rc, k, pairChunks, interleaved, xt, v1, v2);
#pragma unroll
                    for (int e = 0; e < 8; e++) {
                        float y1, y2;
                        mj_rotate(v1[e], v2[e], c1[e], s1[e], c2[e], s2[e], inverse, y1, y2);
                        v1[e] = y1;
                        v2[e] = y2;
                    }
                    mj_rot_store(out, rc, k, pairChunks, interleaved, ot, v1, v2);
                }
            } else {
                int c = 2 * pairChunks + (k - pairChunks);  // chunk of channels [r, d)
                for (int q = 0; q < rows; q++) {
                    i64 rc = (row0 + q) * dc;
                    float v[8];
                    mj_load8(x, rc + c, xt, v);
                    mj_store8(out, rc + c, ot, v);
                }
            }
        }
        return;
    }
    int perRow = half + (d - r);  // pairs, then pass-through channels
    i64 n = s * bh * perRow;
    MJ_FOR(i, n) {
        i64 row = i / perRow;          // (position, batch, head)
        int k = (int)(i % perRow);
        i64 pos = row / bh;
        i64 base = row * d;
        if (k < half) {
            int ch1 = interleaved ? 2 * k : k, ch2 = interleaved ? 2 * k + 1 : k + half;
            float f1 = freqs[pos * r + ch1], f2 = freqs[pos * r + ch2];
            float x1 = mj_load(x, base + ch1, xt), x2 = mj_load(x, base + ch2, xt);
            float c1 = cosf(f1), s1 = sinf(f1), c2 = cosf(f2), s2 = sinf(f2);
            float y1, y2;
            mj_rotate(x1, x2, c1, s1, c2, s2, inverse, y1, y2);
            mj_store(out, base + ch1, ot, y1);
            mj_store(out, base + ch2, ot, y2);
        } else {
            int c = r + (k - half);
            mj_store(out, base + c, ot, mj_load(x, base + c, xt));
        }
    }
}
