// AdamW over flat F32 buffers (Megatron's fused Adam in adam_w_mode), one tensor or many per launch (the many with the
// gradient clip and the compute-weight cast folded in), and the reductions the optimizer step needs: sum of squares
// (fp64 accumulation) and the inf/NaN check.
// Bandwidth: 16-byte accesses (float4 for AdamW, 8-element chunks for the reductions) when every
// pointer is 16-byte aligned, a scalar tail; grid-stride, any grid.
#include "common.cuh"

// One element. Every rounding is spelled out: left to itself nvcc contracts b1 m + (1 - b1) g into an fma
// around whichever product the surrounding code suggests, so the float4 path, the scalar tail and each kernel
// rounded differently (seen in the H100 SASS). These are the fmas the float4 paths had chosen, so their results
// are unchanged and every path and kernel now gives the same bits.
__device__ __forceinline__ void mj_adamw1(float& p, float g, float& m, float& v, float lr, float beta1, float beta2,
                                          float eps, float weightDecay, float bc1, float bc2) {
    m = __fmaf_rn(1.0f - beta1, g, __fmul_rn(beta1, m));
    v = __fmaf_rn(g, __fmul_rn(1.0f - beta2, g), __fmul_rn(beta2, v));
    float step = __fdiv_rn(__fdiv_rn(m, bc1), __fadd_rn(__fsqrt_rn(__fdiv_rn(v, bc2)), eps));
    float update = __fmaf_rn(p, weightDecay, step);  // + wd p
    p = __fmaf_rn(-update, lr, p);
}

// bc1 = 1 - beta1^step, bc2 = 1 - beta2^step computed on the host (in double, then float).
extern "C" __global__ void megatron_adamw(float* param, const float* grad, float* expAvg, float* expAvgSq, i64 n,
                                          float lr, float beta1, float beta2, float eps, float weightDecay,
                                          float bc1, float bc2) {
    i64 n4 = (mj_al16(param) && mj_al16(grad) && mj_al16(expAvg) && mj_al16(expAvgSq)) ? n / 4 : 0;
    MJ_FOR(c, n4) {
        float4 p = reinterpret_cast<float4*>(param)[c];
        float4 g = reinterpret_cast<const float4*>(grad)[c];
        float4 m = reinterpret_cast<float4*>(expAvg)[c];
        float4 v = reinterpret_cast<float4*>(expAvgSq)[c];
        mj_adamw1(p.x, g.x, m.x, v.x, lr, beta1, beta2, eps, weightDecay, bc1, bc2);
        mj_adamw1(p.y, g.y, m.y, v.y, lr, beta1, beta2, eps, weightDecay, bc1, bc2);
        mj_adamw1(p.z, g.z, m.z, v.z, lr, beta1, beta2, eps, weightDecay, bc1, bc2);
        mj_adamw1(p.w, g.w, m.w, v.w, lr, beta1, beta2, eps, weightDecay, bc1, bc2);
        reinterpret_cast<float4*>(expAvg)[c] = m;
        reinterpret_cast<float4*>(expAvgSq)[c] = v;
        reinterpret_cast<float4*>(param)[c] = p;
    }
    MJ_FOR_FROM(i, n4 * 4, n) {
        float p = param[i], m = expAvg[i], v = expAvgSq[i];
        mj_adamw1(p, grad[i], m, v, lr, beta1, beta2, eps, weightDecay, bc1, bc2);
        expAvg[i] = m;
        expAvgSq[i] = v;
        param[i] = p;
    }
}

// Many tensors in one launch (Megatron's multi_tensor_apply): tensors[] describes each tensor (its
// four buffers, compute copy, size and weight decay; MjAdamTensor is written by CudaMultiTensorAdam.java,
// 56 bytes), chunks[b] = (tensor, chunk) gives block b the elements [chunk * chunkElems, + chunkElems)
// of one tensor. chunkElems is a multiple of 4, so a chunk of 16-byte aligned buffers stays aligned.
// Two whole-model passes are folded in: the gradient clip (each gradient used as g * gradScale, rounded
// as megatron_scale rounds it; the gradients are not written) and the refresh of the 16-bit compute
// weights (the updated param stored into copy, when not null, rounded as megatron_cast rounds it).
// Each element then goes through mj_adamw1 as in megatron_adamw: with gradScale 1 and no copies, the
// same bits as one launch per tensor; otherwise the same bits as scale, this, then cast.
struct MjAdamTensor {
    float* param;
    const float* grad;
    float* expAvg;
    float* expAvgSq;
    void* copy;  // the compute copy, or null
    i64 n;
    float weightDecay;
    int copyType;  // dtype code of copy
};

// Elements 4c .. 4c + 3 of p (dtype dt, 4-element aligned), rounded to nearest even as mj_store.
__device__ __forceinline__ void mj_store4(void* p, i64 c, int dt, float4 v) {
    switch (dt) {
        case MJ_BF16: {
            __nv_bfloat162 a = __floats2bfloat162_rn(v.x, v.y), b = __floats2bfloat162_rn(v.z, v.w);
            static_cast<uint2*>(p)[c] = make_uint2(*reinterpret_cast<uint32_t*>(&a), *reinterpret_cast<uint32_t*>(&b));
            break;
        }
        case MJ_F16: {
            __half2 a = __floats2half2_rn(v.x, v.y), b = __floats2half2_rn(v.z, v.w);
            static_cast<uint2*>(p)[c] = make_uint2(*reinterpret_cast<uint32_t*>(&a), *reinterpret_cast<uint32_t*>(&b));
            break;
        }
        default: static_cast<float4*>(p)[c] = v; break;
    }
}

extern "C" __global__ void megatron_adamw_multi(const MjAdamTensor* tensors, const int2* chunks, i64 chunkElems,
                                                float lr, float beta1, float beta2, float eps, float bc1, float bc2,
                                                float gradScale) {
    int2 tc = chunks[blockIdx.x];
    MjAdamTensor t = tensors[tc.x];
    i64 start = (i64)tc.y * chunkElems;
    i64 len = min(chunkElems, t.n - start);
    float* param = t.param + start;
    const float* grad = t.grad + start;
    float* expAvg = t.expAvg + start;
    float* expAvgSq = t.expAvgSq + start;
    int ct = t.copyType;
    void* copy = t.copy == nullptr ? nullptr : mj_offset(t.copy, start, ct);
    float wd = t.weightDecay;
    bool copyAligned = copy == nullptr || (reinterpret_cast<uintptr_t>(copy) % (4 * mj_esize(ct))) == 0;
    i64 n4 = (mj_al16(param) && mj_al16(grad) && mj_al16(expAvg) && mj_al16(expAvgSq) && copyAligned) ? len / 4 : 0;
    for (i64 c = threadIdx.x; c < n4; c += blockDim.x) {
        float4 p = reinterpret_cast<float4*>(param)[c];
        float4 g = reinterpret_cast<const float4*>(grad)[c];
        float4 m = reinterpret_cast<float4*>(expAvg)[c];
        float4 v = reinterpret_cast<float4*>(expAvgSq)[c];
        // __fmul_rn: the scaled gradient is rounded on its own (never contracted into an fma), as megatron_scale stores it
        mj_adamw1(p.x, __fmul_rn(g.x, gradScale), m.x, v.x, lr, beta1, beta2, eps, wd, bc1, bc2);
        mj_adamw1(p.y, __fmul_rn(g.y, gradScale), m.y, v.y, lr, beta1, beta2, eps, wd, bc1, bc2);
        mj_adamw1(p.z, __fmul_rn(g.z, gradScale), m.z, v.z, lr, beta1, beta2, eps, wd, bc1, bc2);
        mj_adamw1(p.w, __fmul_rn(g.w, gradScale), m.w, v.w, lr, beta1, beta2, eps, wd, bc1, bc2);
        reinterpret_cast<float4*>(expAvg)[c] = m;
        reinterpret_cast<float4*>(expAvgSq)[c] = v;
        reinterpret_cast<float4*>(param)[c] = p;
        if (copy != nullptr) mj_store4(copy, c, ct, p);
    }
    for (i64 i = n4 * 4 + threadIdx.x; i < len; i += blockDim.x) {
        float p = param[i], m = expAvg[i], v = expAvgSq[i];
        mj_adamw1(p, __fmul_rn(grad[i], gradScale), m, v, lr, beta1, beta2, eps, wd, bc1, bc2);
        expAvg[i] = m;
        expAvgSq[i] = v;
        param[i] = p;
        if (copy != nullptr) mj_store(copy, i, ct, p);
    }
}

__device__ __forceinline__ double mj_warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// *out += sum of x[i]^2 in fp64 (every square and sum in double): per-thread sums, warp
// shuffles, one atomic per block.
extern "C" __global__ void megatron_sum_squares(const void* x, int xt, i64 n, double* out) {
    __shared__ double partial[32];
    double s = 0.0;
    i64 nc = mj_al16(x) ? n / MJ_CHUNK : 0;
    MJ_FOR(c, nc) {
        float v[8];
        mj_load8(x, c, xt, v);
#pragma unroll
        for (int e = 0; e < 8; e++) s += (double)v[e] * (double)v[e];
    }
    MJ_FOR_FROM(i, nc * MJ_CHUNK, n) {
        double v = mj_load(x, i, xt);
        s += v * v;
    }
    s = mj_warp_sum_d(s);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) partial[warp] = s;
    __syncthreads();
    if (warp == 0) {
        double w = lane < (int)(blockDim.x >> 5) ? partial[lane] : 0.0;
        w = mj_warp_sum_d(w);
        if (lane == 0) atomicAdd(out, w);
    }
}

// *flag = 1 when any element is NaN or infinite (the caller zeroes flag first).
extern "C" __global__ void megatron_has_inf_nan(const void* x, int xt, i64 n, int* flag) {
    bool bad = false;
    i64 nc = mj_al16(x) ? n / MJ_CHUNK : 0;
    MJ_FOR(c, nc) {
        float v[8];
        mj_load8(x, c, xt, v);
#pragma unroll
        for (int e = 0; e < 8; e++) bad |= !isfinite(v[e]);
    }
    MJ_FOR_FROM(i, nc * MJ_CHUNK, n) bad |= !isfinite(mj_load(x, i, xt));
    if (__syncthreads_or(bad) && threadIdx.x == 0) atomicExch(flag, 1);
}

// *count += the elements equal to zero (+0 or -0; NaN is not): per-thread counts, warp shuffles,
// one atomic per warp (the caller zeroes count first).
extern "C" __global__ void megatron_count_zeros(const void* x, int xt, i64 n, unsigned long long* count) {
    unsigned long long zeros = 0;
    i64 nc = mj_al16(x) ? n / MJ_CHUNK : 0;
    MJ_FOR(c, nc) {
        float v[8];
        mj_load8(x, c, xt, v);
#pragma unroll
        for (int e = 0; e < 8; e++) zeros += v[e] == 0.0f;
    }
    MJ_FOR_FROM(i, nc * MJ_CHUNK, n) zeros += mj_load(x, i, xt) == 0.0f;
    for (int o = 16; o > 0; o >>= 1) zeros += __shfl_xor_sync(0xffffffffu, zeros, o);
    if ((threadIdx.x & 31) == 0 && zeros != 0) atomicAdd(count, zeros);
}
