// LayerNorm and RMSNorm over the last dimension, one block per row. Biased variance in two
// passes over the row (no E[x^2] - E[x]^2 cancellation), as the CPU backend and Apex do.
// mean and rstd are F32, one per row. dx is written; dGamma/dBeta accumulate through
// megatron_norm_param_grads (one thread per column), so no atomics race on parameters.
#include "common.cuh"

extern "C" __global__ void megatron_layernorm_forward(const void* x, int xt, const void* gamma, int gt,
                                                      const void* beta, int bt, float eps, void* y, int yt,
                                                      float* mean, float* rstd, int cols) {
    i64 row = blockIdx.x;
    i64 base = row * cols;
    float s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) s += mj_load(x, base + c, xt);
    float mu = mj_block_sum(s) / cols;
    float v = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float d = mj_load(x, base + c, xt) - mu;
        v += d * d;
    }
    float var = mj_block_sum(v) / cols;
    float rs = rsqrtf(var + eps);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float o = (mj_load(x, base + c, xt) - mu) * rs * mj_load(gamma, c, gt);
        if (beta != nullptr) o += mj_load(beta, c, bt);
        mj_store(y, base + c, yt, o);
    }
    if (threadIdx.x == 0) {
        mean[row] = mu;
        rstd[row] = rs;
    }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma, xhat = (x - mean) * rstd.
extern "C" __global__ void megatron_layernorm_backward(const void* dy, int dyt, const void* x, int xt,
                                                       const void* gamma, int gt, const float* mean,
                                                       const float* rstd, void* dx, int dxt, int cols) {
    i64 row = blockIdx.x;
    i64 base = row * cols;
    float mu = mean[row], rs = rstd[row];
    float sg = 0.0f, sgx = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float g = mj_load(dy, base + c, dyt) * mj_load(gamma, c, gt);
        float xh = (mj_load(x, base + c, xt) - mu) * rs;
        sg += g;
        sgx += g * xh;
    }
    float meanG = mj_block_sum(sg) / cols;
    float meanGX = mj_block_sum(sgx) / cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float g = mj_load(dy, base + c, dyt) * mj_load(gamma, c, gt);
        float xh = (mj_load(x, base + c, xt) - mu) * rs;
        mj_store(dx, base + c, dxt, rs * (g - meanG - xh * meanGX));
    }
}

extern "C" __global__ void megatron_rmsnorm_forward(const void* x, int xt, const void* gamma, int gt, float eps,
                                                    void* y, int yt, float* rstd, int cols) {
    i64 row = blockIdx.x;
    i64 base = row * cols;
    float s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float v = mj_load(x, base + c, xt);
        s += v * v;
    }
    float rs = rsqrtf(mj_block_sum(s) / cols + eps);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        mj_store(y, base + c, yt, mj_load(x, base + c, xt) * rs * mj_load(gamma, c, gt));
    }
    if (threadIdx.x == 0) rstd[row] = rs;
}

// dx = rstd * (g - xhat * mean(g * xhat)), g = dy * gamma, xhat = x * rstd.
extern "C" __global__ void megatron_rmsnorm_backward(const void* dy, int dyt, const void* x, int xt,
                                                     const void* gamma, int gt, const float* rstd,
                                                     void* dx, int dxt, int cols) {
    i64 row = blockIdx.x;
    i64 base = row * cols;
    float rs = rstd[row];
    float sgx = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float g = mj_load(dy, base + c, dyt) * mj_load(gamma, c, gt);
        sgx += g * mj_load(x, base + c, xt) * rs;
    }
    float meanGX = mj_block_sum(sgx) / cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float g = mj_load(dy, base + c, dyt) * mj_load(gamma, c, gt);
        float xh = mj_load(x, base + c, xt) * rs;
        mj_store(dx, base + c, dxt, rs * (g - xh * meanGX));
    }
}

// dGamma[c] += sum_r dy * xhat, dBeta[c] += sum_r dy (either may be null); mean null for RMSNorm.
// One thread per column, row slices over gridDim.y meeting in atomic adds.
extern "C" __global__ void megatron_norm_param_grads(const void* dy, int dyt, const void* x, int xt,
                                                     const float* mean, const float* rstd,
                                                     float* dGamma, float* dBeta, i64 rows, int cols) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    i64 per = (rows + gridDim.y - 1) / gridDim.y;
    i64 r0 = blockIdx.y * per, r1 = min(rows, r0 + per);
    float sg = 0.0f, sb = 0.0f;
    for (i64 r = r0; r < r1; r++) {
        float d = mj_load(dy, r * cols + c, dyt);
        float xh = (mj_load(x, r * cols + c, xt) - (mean != nullptr ? mean[r] : 0.0f)) * rstd[r];
        sg += d * xh;
        sb += d;
    }
    if (r1 > r0) {
        if (dGamma != nullptr) atomicAdd(dGamma + c, sg);
        if (dBeta != nullptr) atomicAdd(dBeta + c, sb);
    }
}
