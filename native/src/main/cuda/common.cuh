// Shared device helpers of Megatron-J's kernels: element access by run-time dtype, block
// reductions and the Philox4x32-10 generator of the dropout mask.
//
// Every kernel takes its tensors as untyped pointers plus a dtype code, so one kernel serves
// F32, BF16 and F16 in any mix (the CPU backend accepts the same mixes). The code is uniform
// across a launch, so the switch below never diverges inside a warp.
//   dtype codes: 0 = F32, 1 = BF16, 2 = F16, 3 = I32 (fill/copy only)   (KernelDtypes on the Java side)
// Accumulation is always in fp32 (or fp64 where a method says so).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#define MJ_F32 0
#define MJ_BF16 1
#define MJ_F16 2
#define MJ_I32 3

typedef long long i64;

__device__ __forceinline__ float mj_load(const void* p, i64 i, int dt) {
    switch (dt) {
        case MJ_BF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
        case MJ_F16: return __half2float(static_cast<const __half*>(p)[i]);
        case MJ_I32: return (float)static_cast<const int*>(p)[i];
        default: return static_cast<const float*>(p)[i];
    }
}

// Round to nearest even, as FloatFormats does on the CPU.
__device__ __forceinline__ void mj_store(void* p, i64 i, int dt, float v) {
    switch (dt) {
        case MJ_BF16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v); break;
        case MJ_F16: static_cast<__half*>(p)[i] = __float2half_rn(v); break;
        case MJ_I32: static_cast<int*>(p)[i] = (int)v; break;
        default: static_cast<float*>(p)[i] = v; break;
    }
}

__device__ __forceinline__ float mj_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float mj_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ float mj_block_sum(float v) {
    __shared__ float partial[32];
    __shared__ float total;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = mj_warp_sum(v);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < (int)(blockDim.x >> 5) ? partial[lane] : 0.0f;
        w = mj_warp_sum(w);
        if (lane == 0) total = w;
    }
    __syncthreads();
    float r = total;
    __syncthreads();  // partial/total may be reused by the next call
    return r;
}

__device__ float mj_block_max(float v) {
    __shared__ float partial[32];
    __shared__ float total;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = mj_warp_max(v);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < (int)(blockDim.x >> 5) ? partial[lane] : -INFINITY;
        w = mj_warp_max(w);
        if (lane == 0) total = w;
    }
    __syncthreads();
    float r = total;
    __syncthreads();
    return r;
}

// Grid-stride loop over n elements.
#define MJ_FOR(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

// ---------------------------------------------------------------- Philox4x32-10
// Exactly memory/src/main/java/org/megatronj/memory/cpu/Philox.java: key = (low, high) 32 bits
// of seed; element e = offset + i uses counter (low, high 32 of e/4, 0, 0) and lane e % 4;
// u = (r >> 8) * 2^-24; kept when u >= p.
__device__ __forceinline__ uint4 mj_philox(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
    const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
#pragma unroll
    for (int round = 0; round < 10; round++) {
        if (round > 0) { k0 += W0; k1 += W1; }
        uint32_t hi0 = __umulhi(M0, c0), lo0 = M0 * c0;
        uint32_t hi1 = __umulhi(M1, c2), lo1 = M1 * c2;
        uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    }
    return make_uint4(c0, c1, c2, c3);
}

__device__ __forceinline__ float mj_uniform(unsigned long long seed, unsigned long long e) {
    unsigned long long block = e >> 2;
    uint4 r = mj_philox((uint32_t)block, (uint32_t)(block >> 32), 0u, 0u, (uint32_t)seed, (uint32_t)(seed >> 32));
    uint32_t lane = (uint32_t)(e & 3);
    uint32_t v = lane == 0 ? r.x : lane == 1 ? r.y : lane == 2 ? r.z : r.w;
    return (float)(v >> 8) * 0x1.0p-24f;
}
