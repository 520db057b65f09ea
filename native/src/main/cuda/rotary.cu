// Rotary position embedding, Megatron's non-interleaved "rotate half" form. x [s, b, heads, d],
// freqs F32 [s, r] (r <= d, even). With half = r / 2 and channel c < half paired with c + half:
//   y[c]        = x[c] * cos(f[c])        - x[c + half] * sin(f[c])
//   y[c + half] = x[c + half] * cos(f[c + half]) + x[c] * sin(f[c + half])
// channels [r, d) pass through. One thread per pair, so out may alias x.
#include "common.cuh"

extern "C" __global__ void megatron_rotary(const void* x, int xt, const float* freqs, void* out, int ot,
                                           i64 s, i64 bh, int d, int r, int inverse) {
    int half = r / 2;
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
            if (!inverse) {
                y1 = x1 * c1 - x2 * s1;
                y2 = x2 * c2 + x1 * s2;
            } else {  // the transpose of the rotation: the gradient
                y1 = x1 * c1 + x2 * s2;
                y2 = x2 * c2 - x1 * s1;
            }
            mj_store(out, base + k, ot, y1);
            mj_store(out, base + k + half, ot, y2);
        } else {
            int c = r + (k - half);
            mj_store(out, base + c, ot, mj_load(x, base + c, xt));
        }
    }
}
