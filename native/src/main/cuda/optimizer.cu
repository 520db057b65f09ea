// AdamW over flat F32 buffers (Megatron's fused Adam in adam_w_mode), and the reductions the
// optimizer step needs: sum of squares (fp64 accumulation) and the inf/NaN check.
#include "common.cuh"

// bc1 = 1 - beta1^step, bc2 = 1 - beta2^step computed on the host (in double, then float).
extern "C" __global__ void megatron_adamw(float* param, const float* grad, float* expAvg, float* expAvgSq, i64 n,
                                          float lr, float beta1, float beta2, float eps, float weightDecay,
                                          float bc1, float bc2) {
    MJ_FOR(i, n) {
        float g = grad[i];
        float m = beta1 * expAvg[i] + (1.0f - beta1) * g;
        float v = beta2 * expAvgSq[i] + (1.0f - beta2) * g * g;
        expAvg[i] = m;
        expAvgSq[i] = v;
        float p = param[i];
        param[i] = p - lr * ((m / bc1) / (sqrtf(v / bc2) + eps) + weightDecay * p);
    }
}

// *out += sum of x[i]^2 in fp64: per-thread double sums, a block reduction, one atomic per block.
extern "C" __global__ void megatron_sum_squares(const void* x, int xt, i64 n, double* out) {
    __shared__ double partial[1024];
    double s = 0.0;
    MJ_FOR(i, n) {
        double v = mj_load(x, i, xt);
        s += v * v;
    }
    partial[threadIdx.x] = s;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if ((int)threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) atomicAdd(out, partial[0]);
}

// *flag = 1 when any element is NaN or infinite (the caller zeroes flag first).
extern "C" __global__ void megatron_has_inf_nan(const void* x, int xt, i64 n, int* flag) {
    bool bad = false;
    MJ_FOR(i, n) bad |= !isfinite(mj_load(x, i, xt));
    if (__syncthreads_or(bad) && threadIdx.x == 0) atomicExch(flag, 1);
}
