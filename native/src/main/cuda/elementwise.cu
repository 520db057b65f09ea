// Elementwise kernels: fill, add, axpy, scale, bias add and its backward, casts, GELU, squared
// ReLU, SwiGLU, dropout, and a mixture of experts' row scaling and row dot products. Each is a
// grid-stride loop; tensors are untyped pointers with dtype codes (common.cuh). Activation
// gradients are written; dBias accumulates (F32).
//
// Bandwidth: when every pointer is 16-byte aligned the body runs over 8-element chunks
// (mj_load8/mj_store8: one 16-byte access per BF16/F16 chunk, two per F32) and only the last
// n % 8 elements take the scalar path; an unaligned view takes the scalar path throughout (as
// the row scaling and row dot products always do).
// Launch: any grid works (grid-stride); the host sizes it to fill the GPU. The row dot product
// needs a block size that is a multiple of 32 (a warp per row).
#include "common.cuh"


extern "C" __global__ void megatron_fill(void* x, int xt, i64 n, float value) {
    i64 nc = mj_al16(x) ? n / MJ_CHUNK : 0;
    float v[8];
#pragma unroll
    for (int j = 0; j < 8; j++) v[j] = value;
    MJ_FOR(c, nc) mj_store8(x, c, xt, v);
    MJ_FOR_FROM(i, nc * MJ_CHUNK, n) mj_store(x, i, xt, value);
}

// out = a + b (out may alias a or b)
extern "C" __global__ void megatron_add(const void* a, int at, const void* b, int bt, void* out, int ot, i64 n) {
    i64 nc = (mj_al16(a) && mj_al16(b) && mj_al16(out)) ? n / MJ_CHUNK : 0;
    MJ_FOR(c, nc) {
        float x[8], y[8];
        mj_load8(a, c, at, x);
        mj_load8(b, c, bt, y);
#pragma unroll
        for (int j = 0; j < 8; j++) x[j] += y[j];
        mj_store8(out, c, ot, x);
    }
    MJ_FOR_FROM(i, nc * MJ_CHUNK, n) mj_store(out, i, ot, mj_load(a, i, at) + mj_load(b, i, bt));
}

// y += alpha * x
extern "C" __global__ void megatron_axpy(float alpha, const void* x, int xt, void* y, int yt, i64 n) {
    i64 nc = (mj_al16(x) && mj_al16(y)) ? n / MJ_CHUNK : 0;
    MJ_FOR(c, nc) {
        float xv[8], yv[8];
        mj_load8(x, c, xt, xv);
        mj_load8(y, c, yt, yv);
#pragma unroll
        for (int j = 0; j < 8; j++) yv[j] = yv[j] + alpha * xv[j];
        mj_store8(y, c, yt, yv);
    }
    MJ_FOR_FROM(i, nc * MJ_CHUNK, n) mj_store(y, i, yt, mj_load(y, i, yt) + alpha * mj_load(x, i, xt));
}

// x *= alpha
extern "C" __global__ void megatron_scale(void* x, int xt, float alpha, i64 n) {
    i64 nc = mj_al16(x) ? n / MJ_CHUNK : 0;
    MJ_FOR(c, nc) {
        float v[8];
        mj_load8(x, c, xt, v);
#pragma unroll
        for (int j = 0; j < 8; j++) v[j] *= alpha;
        mj_store8(x, c, xt, v);
    }
    MJ_FOR_FROM(i, nc * MJ_CHUNK, n) mj_store(x, i, xt, mj_load(x, i, xt) * alpha);
}

// y[r, :] = x[r, :] * scales[r] (scales F32; y may alias x): a mixture-of-experts layer's routing weights.
extern "C" __global__ void megatron_scale_rows(const void* x, int xt, const float* scales, void* y, int yt, i64 rows,
                                               i64 cols) {
    MJ_FOR(i, rows * cols) mj_store(y, i, yt, mj_load(x, i, xt) * scales[i / cols]);
}

// out[r] = sum over c of a[r, c] * b[r, c] in F32, one warp per row (the gradient of megatron_scale_rows' scales).
// Grid-stride over the rows, so any grid covers them; blockDim.x must be a multiple of 32: then the 32 lanes of a
// warp share `warp` and every row r, enter and leave the row loop together, and all reach the full-mask shuffles.
extern "C" __global__ void megatron_row_dot(const void* a, int at, const void* b, int bt, float* out, i64 rows, i64 cols) {
    i64 warp = ((i64)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    i64 warps = ((i64)gridDim.x * blockDim.x) / 32;
    int lane = threadIdx.x & 31;
    for (i64 r = warp; r < rows; r += warps) {
        float s = 0.f;
        for (i64 c = lane; c < cols; c += 32) s += mj_load(a, r * cols + c, at) * mj_load(b, r * cols + c, bt);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0) out[r] = s;
    }
}

// Converts between F32, BF16 and F16 (round to nearest even); same element count.
extern "C" __global__ void megatron_cast(const void* src, int st, void* dst, int dt, i64 n) {
    i64 nc = (mj_al16(src) && mj_al16(dst)) ? n / MJ_CHUNK : 0;
    MJ_FOR(c, nc) {
        float v[8];
        mj_load8(src, c, st, v);
        mj_store8(dst, c, dt, v);
    }
    MJ_FOR_FROM(i, nc * MJ_CHUNK, n) mj_store(dst, i, dt, mj_load(src, i, st));
}

// x[r, c] += bias[c] over rows x cols
extern "C" __global__ void megatron_bias_add(void* x, int xt, const void* bias, int bt, i64 rows, int cols) {
    i64 n = rows * cols;
    if ((cols % MJ_CHUNK) == 0 && mj_al16(x) && mj_al16(bias)) {
        i64 nc = n / MJ_CHUNK;
        int cc = cols / MJ_CHUNK;  // chunks per row
        MJ_FOR(c, nc) {
            float v[8], bv[8];
            mj_load8(x, c, xt, v);
            mj_load8(bias, c % cc, bt, bv);
#pragma unroll
            for (int j = 0; j < 8; j++) v[j] += bv[j];
            mj_store8(x, c, xt, v);
        }
        return;
    }
    MJ_FOR(i, n) mj_store(x, i, xt, mj_load(x, i, xt) + mj_load(bias, i % cols, bt));
}

// out[c] += sum over rows of x[r, c] (out F32). One thread per column, rows split over
// gridDim.y slices whose partial sums meet in an atomic add (coalesced along c).
extern "C" __global__ void megatron_column_sum(const void* x, int xt, float* out, i64 rows, int cols) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    i64 per = (rows + gridDim.y - 1) / gridDim.y;
    i64 r0 = blockIdx.y * per, r1 = min(rows, r0 + per);
    float s = 0.0f;
    for (i64 r = r0; r < r1; r++) s += mj_load(x, r * cols + c, xt);
    if (r1 > r0) atomicAdd(out + c, s);
}

// ---------------------------------------------------------------- GELU
#define MJ_SQRT_2_OVER_PI 0.7978845608028654f
#define MJ_GELU_C 0.044715f
#define MJ_INV_SQRT2 0.7071067811865476f
#define MJ_INV_SQRT_2PI 0.3989422804014327f

__device__ __forceinline__ float gelu(float x, int tanhApprox) {
    if (tanhApprox) {
        float u = MJ_SQRT_2_OVER_PI * (x + MJ_GELU_C * x * x * x);
        return 0.5f * x * (1.0f + tanhf(u));
    }
    return 0.5f * x * erfcf(-x * MJ_INV_SQRT2);  // erfc: no cancellation for large negative x (as the CPU)
}

__device__ __forceinline__ float gelu_grad(float x, int tanhApprox) {
    if (tanhApprox) {
        float u = MJ_SQRT_2_OVER_PI * (x + MJ_GELU_C * x * x * x);
        float t = tanhf(u);
        float du = MJ_SQRT_2_OVER_PI * (1.0f + 3.0f * MJ_GELU_C * x * x);
        return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
    }
    return 0.5f * erfcf(-x * MJ_INV_SQRT2) + x * MJ_INV_SQRT_2PI * expf(-0.5f * x * x);
}

// y = f(x) and dx = dy * f'(x) over n elements: the chunked body and scalar tail of every
// elementwise activation (f is a lambda of the calling kernel, inlined).
template <typename F>
__device__ __forceinline__ void mj_map(const void* x, int xt, void* y, int yt, i64 n, F f) {
    i64 nc = (mj_al16(x) && mj_al16(y)) ? n / MJ_CHUNK : 0;
    MJ_FOR(c, nc) {
        float v[8];
        mj_load8(x, c, xt, v);
#pragma unroll
        for (int j = 0; j < 8; j++) v[j] = f(v[j]);
        mj_store8(y, c, yt, v);
    }
    MJ_FOR_FROM(i, nc * MJ_CHUNK, n) mj_store(y, i, yt, f(mj_load(x, i, xt)));
}

template <typename F>
__device__ __forceinline__ void mj_map_grad(const void* x, int xt, const void* dy, int dyt, void* dx, int dxt, i64 n,
                                            F grad) {
    i64 nc = (mj_al16(x) && mj_al16(dy) && mj_al16(dx)) ? n / MJ_CHUNK : 0;
    MJ_FOR(c, nc) {
        float xv[8], g[8];
        mj_load8(x, c, xt, xv);
        mj_load8(dy, c, dyt, g);
#pragma unroll
        for (int j = 0; j < 8; j++) g[j] = g[j] * grad(xv[j]);
        mj_store8(dx, c, dxt, g);
    }
    MJ_FOR_FROM(i, nc * MJ_CHUNK, n) mj_store(dx, i, dxt, mj_load(dy, i, dyt) * grad(mj_load(x, i, xt)));
}

extern "C" __global__ void megatron_gelu_forward(const void* x, int xt, void* y, int yt, i64 n, int tanhApprox) {
    mj_map(x, xt, y, yt, n, [=](float v) { return gelu(v, tanhApprox); });
}

extern "C" __global__ void megatron_gelu_backward(const void* x, int xt, const void* dy, int dyt, void* dx, int dxt,
                                                  i64 n, int tanhApprox) {
    mj_map_grad(x, xt, dy, dyt, dx, dxt, n, [=](float v) { return gelu_grad(v, tanhApprox); });
}

// ---------------------------------------------------------------- squared ReLU: relu(x)^2
// Not fmaxf, which returns 0 for NaN: NaN passes, as in torch.relu and the CPU backend.
__device__ __forceinline__ float relu(float x) { return x < 0.0f ? 0.0f : x; }

__device__ __forceinline__ float squared_relu(float x) {
    float r = relu(x);
    return r * r;
}

__device__ __forceinline__ float squared_relu_grad(float x) { return 2.0f * relu(x); }

extern "C" __global__ void megatron_squared_relu_forward(const void* x, int xt, void* y, int yt, i64 n) {
    mj_map(x, xt, y, yt, n, [](float v) { return squared_relu(v); });
}

extern "C" __global__ void megatron_squared_relu_backward(const void* x, int xt, const void* dy, int dyt, void* dx,
                                                          int dxt, i64 n) {
    mj_map_grad(x, xt, dy, dyt, dx, dxt, n, [](float v) { return squared_relu_grad(v); });
}

// ---------------------------------------------------------------- SwiGLU: x [rows, 2f] -> y [rows, f]
// Chunked when f % 8 == 0 (then every row half starts on a chunk boundary) and all aligned.
extern "C" __global__ void megatron_swiglu_forward(const void* x, int xt, void* y, int yt, i64 rows, int f) {
    i64 n = rows * f;
    if ((f % MJ_CHUNK) == 0 && mj_al16(x) && mj_al16(y)) {
        int fc = f / MJ_CHUNK;
        MJ_FOR(c, n / MJ_CHUNK) {
            i64 r = c / fc, k = c % fc;
            float a[8], b[8];
            mj_load8(x, r * 2 * fc + k, xt, a);
            mj_load8(x, r * 2 * fc + fc + k, xt, b);
#pragma unroll
            for (int j = 0; j < 8; j++) a[j] = a[j] / (1.0f + expf(-a[j])) * b[j];
            mj_store8(y, c, yt, a);
        }
        return;
    }
    MJ_FOR(i, n) {
        i64 r = i / f, c = i % f;
        float a = mj_load(x, r * 2 * f + c, xt), b = mj_load(x, r * 2 * f + f + c, xt);
        float silu = a / (1.0f + expf(-a));
        mj_store(y, i, yt, silu * b);
    }
}

extern "C" __global__ void megatron_swiglu_backward(const void* x, int xt, const void* dy, int dyt, void* dx, int dxt,
                                                    i64 rows, int f) {
    i64 n = rows * f;
    if ((f % MJ_CHUNK) == 0 && mj_al16(x) && mj_al16(dy) && mj_al16(dx)) {
        int fc = f / MJ_CHUNK;
        MJ_FOR(c, n / MJ_CHUNK) {
            i64 r = c / fc, k = c % fc;
            float a[8], b[8], g[8];
            mj_load8(x, r * 2 * fc + k, xt, a);
            mj_load8(x, r * 2 * fc + fc + k, xt, b);
            mj_load8(dy, c, dyt, g);
#pragma unroll
            for (int j = 0; j < 8; j++) {
                float sig = 1.0f / (1.0f + expf(-a[j]));
                float silu = a[j] * sig;
                float da = g[j] * b[j] * sig * (1.0f + a[j] * (1.0f - sig));
                b[j] = g[j] * silu;
                a[j] = da;
            }
            mj_store8(dx, r * 2 * fc + k, dxt, a);
            mj_store8(dx, r * 2 * fc + fc + k, dxt, b);
        }
        return;
    }
    MJ_FOR(i, n) {
        i64 r = i / f, c = i % f;
        float a = mj_load(x, r * 2 * f + c, xt), b = mj_load(x, r * 2 * f + f + c, xt);
        float g = mj_load(dy, i, dyt);
        float sig = 1.0f / (1.0f + expf(-a));
        float silu = a * sig;
        mj_store(dx, r * 2 * f + c, dxt, g * b * sig * (1.0f + a * (1.0f - sig)));
        mj_store(dx, r * 2 * f + f + c, dxt, g * silu);
    }
}

// ---------------------------------------------------------------- dropout (Philox, common.cuh)
// y = keep ? x * scale : 0 with scale = 1f / (1f - p) computed once on the host in float.
// Chunked: mj_uniform8 gives the same uniforms as mj_uniform, each Philox block computed once.
extern "C" __global__ void megatron_dropout(const void* x, int xt, void* y, int yt, i64 n, float p, float scale,
                                            unsigned long long seed, unsigned long long offset) {
    i64 nc = (mj_al16(x) && mj_al16(y)) ? n / MJ_CHUNK : 0;
    MJ_FOR(c, nc) {
        float v[8], u[8];
        mj_load8(x, c, xt, v);
        mj_uniform8(seed, offset + (unsigned long long)(c * MJ_CHUNK), u);
#pragma unroll
        for (int j = 0; j < 8; j++) v[j] = u[j] >= p ? v[j] * scale : 0.0f;
        mj_store8(y, c, yt, v);
    }
    MJ_FOR_FROM(i, nc * MJ_CHUNK, n) {
        bool keep = mj_uniform(seed, offset + (unsigned long long)i) >= p;
        mj_store(y, i, yt, keep ? mj_load(x, i, xt) * scale : 0.0f);
    }
}
