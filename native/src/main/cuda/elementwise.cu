// Elementwise kernels: fill, add, axpy, scale, bias add and its backward, casts, GELU, SwiGLU
// and dropout. Each is a grid-stride loop; tensors are untyped pointers with dtype codes
// (common.cuh). Activation gradients are written; dBias accumulates (F32).
#include "common.cuh"

extern "C" __global__ void megatron_fill(void* x, int xt, i64 n, float value) {
    MJ_FOR(i, n) mj_store(x, i, xt, value);
}

// out = a + b (out may alias a or b)
extern "C" __global__ void megatron_add(const void* a, int at, const void* b, int bt, void* out, int ot, i64 n) {
    MJ_FOR(i, n) mj_store(out, i, ot, mj_load(a, i, at) + mj_load(b, i, bt));
}

// y += alpha * x
extern "C" __global__ void megatron_axpy(float alpha, const void* x, int xt, void* y, int yt, i64 n) {
    MJ_FOR(i, n) mj_store(y, i, yt, mj_load(y, i, yt) + alpha * mj_load(x, i, xt));
}

// x *= alpha
extern "C" __global__ void megatron_scale(void* x, int xt, float alpha, i64 n) {
    MJ_FOR(i, n) mj_store(x, i, xt, mj_load(x, i, xt) * alpha);
}

// Converts between F32, BF16 and F16 (round to nearest even); same element count.
extern "C" __global__ void megatron_cast(const void* src, int st, void* dst, int dt, i64 n) {
    MJ_FOR(i, n) mj_store(dst, i, dt, mj_load(src, i, st));
}

// x[r, c] += bias[c] over rows x cols
extern "C" __global__ void megatron_bias_add(void* x, int xt, const void* bias, int bt, i64 rows, int cols) {
    i64 n = rows * cols;
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

extern "C" __global__ void megatron_gelu_forward(const void* x, int xt, void* y, int yt, i64 n, int tanhApprox) {
    MJ_FOR(i, n) mj_store(y, i, yt, gelu(mj_load(x, i, xt), tanhApprox));
}

extern "C" __global__ void megatron_gelu_backward(const void* x, int xt, const void* dy, int dyt, void* dx, int dxt,
                                                  i64 n, int tanhApprox) {
    MJ_FOR(i, n) mj_store(dx, i, dxt, mj_load(dy, i, dyt) * gelu_grad(mj_load(x, i, xt), tanhApprox));
}

// ---------------------------------------------------------------- SwiGLU: x [rows, 2f] -> y [rows, f]
extern "C" __global__ void megatron_swiglu_forward(const void* x, int xt, void* y, int yt, i64 rows, int f) {
    i64 n = rows * f;
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
extern "C" __global__ void megatron_dropout(const void* x, int xt, void* y, int yt, i64 n, float p, float scale,
                                            unsigned long long seed, unsigned long long offset) {
    MJ_FOR(i, n) {
        bool keep = mj_uniform(seed, offset + (unsigned long long)i) >= p;
        mj_store(y, i, yt, keep ? mj_load(x, i, xt) * scale : 0.0f);
    }
}
