// Rotary position embedding, Megatron's non-interleaved "rotate half" form. x [s, b, heads, d],
// freqs F32 [s, r] (r <= d, even). With half = r / 2 and channel c < half paired with c + half:
//   y[c]        = x[c] * cos(f[c])        - x[c + half] * sin(f[c])
//   y[c + half] = x[c + half] * cos(f[c + half]) + x[c] * sin(f[c + half])
// channels [r, d) pass through. One thread per pair, so out may alias x.
//
// Fast path (half % 8 == 0, d % 8 == 0, x, out and freqs 16-byte aligned): a work item is one
// position, one chunk of 8 pairs (or 8 pass-through channels) and a group of up to MJ_ROT_ROWS
// of the b * heads rows of that position; the 16 sines and cosines are computed once and applied
// to every row of the group (the angles depend on the position only), with 16-byte accesses.
// Any grid (grid-stride).
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

extern "C" __global__ void megatron_rotary(const void* x, int xt, const float* freqs, void* out, int ot,
                                           i64 s, i64 bh, int d, int r, int inverse) {
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
                const float4* f = reinterpret_cast<const float4*>(freqs + pos * r + k * MJ_CHUNK);
                const float4* f2 = reinterpret_cast<const float4*>(freqs + pos * r + half + k * MJ_CHUNK);
                float a1[8], a2[8];
                float4 t;
                t = f[0]; a1[0] = t.x; a1[1] = t.y; a1[2] = t.z; a1[3] = t.w;
                t = f[1]; a1[4] = t.x; a1[5] = t.y; a1[6] = t.z; a1[7] = t.w;
                t = f2[0]; a2[0] = t.x; a2[1] = t.y; a2[2] = t.z; a2[3] = t.w;
                t = f2[1]; a2[4] = t.x; a2[5] = t.y; a2[6] = t.z; a2[7] = t.w;
                float c1[8], s1[8], c2[8], s2[8];
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    c1[e] = cosf(a1[e]); s1[e] = sinf(a1[e]);
                    c2[e] = cosf(a2[e]); s2[e] = sinf(a2[e]);
                }
                for (int q = 0; q < rows; q++) {
                    i64 rc = (row0 + q) * dc;  // chunk index of the row start
                    float v1[8], v2[8];
                    mj_load8(x, rc + k, xt, v1);
                    mj_load8(x, rc + pairChunks + k, xt, v2);
#pragma unroll
                    for (int e = 0; e < 8; e++) {
                        float y1, y2;
                        mj_rotate(v1[e], v2[e], c1[e], s1[e], c2[e], s2[e], inverse, y1, y2);
                        v1[e] = y1;
                        v2[e] = y2;
                    }
                    mj_store8(out, rc + k, ot, v1);
                    mj_store8(out, rc + pairChunks + k, ot, v2);
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
            float f1 = freqs[pos * r + k], f2 = freqs[pos * r + k + half];
            float x1 = mj_load(x, base + k, xt), x2 = mj_load(x, base + k + half, xt);
            float c1 = cosf(f1), s1 = sinf(f1), c2 = cosf(f2), s2 = sinf(f2);
            float y1, y2;
            mj_rotate(x1, x2, c1, s1, c2, s2, inverse, y1, y2);
            mj_store(out, base + k, ot, y1);
            mj_store(out, base + k + half, ot, y2);
        } else {
            int c = r + (k - half);
            mj_store(out, base + c, ot, mj_load(x, base + c, xt));
        }
    }
}
