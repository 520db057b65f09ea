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

#include "philox.cuh"

// ---------------------------------------------------------------- 16-byte vector access
// (Added for the memory-bound kernels.) A "chunk" is 8 consecutive elements: one 16-byte
// access for BF16/F16, two for F32/I32. mj_load8/mj_store8 take the chunk index c relative to
// p, so p must be 16-byte aligned; kernels check that at run time (tensors may be views at any
// element offset) and fall back to the scalar mj_load/mj_store path otherwise. Plain loads (not
// ld.global.nc): outputs may alias inputs. Rounding as mj_store: to nearest even.
#define MJ_CHUNK 8

__device__ __forceinline__ bool mj_al16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

__device__ __forceinline__ int mj_esize(int dt) { return (dt == MJ_BF16 || dt == MJ_F16) ? 2 : 4; }

__device__ __forceinline__ const void* mj_offset(const void* p, i64 elements, int dt) {
    return static_cast<const char*>(p) + elements * mj_esize(dt);
}

__device__ __forceinline__ void* mj_offset(void* p, i64 elements, int dt) {
    return static_cast<char*>(p) + elements * mj_esize(dt);
}

__device__ __forceinline__ void mj_load8(const void* p, i64 c, int dt, float (&v)[8]) {
    switch (dt) {
        case MJ_BF16: {
            uint4 r = static_cast<const uint4*>(p)[c];
            uint32_t w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
            for (int j = 0; j < 4; j++) {
                v[2 * j] = __uint_as_float(w[j] << 16);
                v[2 * j + 1] = __uint_as_float(w[j] & 0xffff0000u);
            }
            break;
        }
        case MJ_F16: {
            uint4 r = static_cast<const uint4*>(p)[c];
            uint32_t w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
            for (int j = 0; j < 4; j++) {
                __half2 h = *reinterpret_cast<__half2*>(&w[j]);
                float2 f = __half22float2(h);
                v[2 * j] = f.x;
                v[2 * j + 1] = f.y;
            }
            break;
        }
        case MJ_I32: {
            const int4* q = static_cast<const int4*>(p) + 2 * c;
            int4 a = q[0], b = q[1];
            v[0] = (float)a.x; v[1] = (float)a.y; v[2] = (float)a.z; v[3] = (float)a.w;
            v[4] = (float)b.x; v[5] = (float)b.y; v[6] = (float)b.z; v[7] = (float)b.w;
            break;
        }
        default: {
            const float4* q = static_cast<const float4*>(p) + 2 * c;
            float4 a = q[0], b = q[1];
            v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
            v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
            break;
        }
    }
}

__device__ __forceinline__ void mj_store8(void* p, i64 c, int dt, const float (&v)[8]) {
    switch (dt) {
        case MJ_BF16: {
            uint32_t w[4];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                __nv_bfloat162 h = __floats2bfloat162_rn(v[2 * j], v[2 * j + 1]);
                w[j] = *reinterpret_cast<uint32_t*>(&h);
            }
            static_cast<uint4*>(p)[c] = make_uint4(w[0], w[1], w[2], w[3]);
            break;
        }
        case MJ_F16: {
            uint32_t w[4];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                __half2 h = __floats2half2_rn(v[2 * j], v[2 * j + 1]);
                w[j] = *reinterpret_cast<uint32_t*>(&h);
            }
            static_cast<uint4*>(p)[c] = make_uint4(w[0], w[1], w[2], w[3]);
            break;
        }
        case MJ_I32: {
            int4* q = static_cast<int4*>(p) + 2 * c;
            q[0] = make_int4((int)v[0], (int)v[1], (int)v[2], (int)v[3]);
            q[1] = make_int4((int)v[4], (int)v[5], (int)v[6], (int)v[7]);
            break;
        }
        default: {
            float4* q = static_cast<float4*>(p) + 2 * c;
            q[0] = make_float4(v[0], v[1], v[2], v[3]);
            q[1] = make_float4(v[4], v[5], v[6], v[7]);
            break;
        }
    }
}

// Grid-stride loop over [start, n) (the scalar tail after a chunked body).
#define MJ_FOR_FROM(i, start, n) \
    for (i64 i = (start) + (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

// Elements of a row starting at element `base` of p that precede its first 16-byte boundary:
// the scalar head before a chunked body; -1 when p + base is not even element aligned.
__device__ __forceinline__ int mj_head(const void* p, i64 base, int dt) {
    int es = mj_esize(dt);
    uintptr_t a = reinterpret_cast<uintptr_t>(p) + (uintptr_t)(base * es);
    if (a % es) return -1;
    int mis = (int)(a & 15u);
    return mis == 0 ? 0 : (16 - mis) / es;
}

// Two-value block sum (one pair of barriers instead of two); every thread gets both results.
__device__ float2 mj_block_sum2(float a, float b) {
    __shared__ float2 partial2[32];
    __shared__ float2 total2;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    a = mj_warp_sum(a);
    b = mj_warp_sum(b);
    if (lane == 0) partial2[warp] = make_float2(a, b);
    __syncthreads();
    if (warp == 0) {
        float2 w = lane < (int)(blockDim.x >> 5) ? partial2[lane] : make_float2(0.0f, 0.0f);
        w.x = mj_warp_sum(w.x);
        w.y = mj_warp_sum(w.y);
        if (lane == 0) total2 = w;
    }
    __syncthreads();
    float2 r = total2;
    __syncthreads();
    return r;
}

template <int L>
__device__ __forceinline__ void mj_pick8(const uint32_t (&r)[12], float (&u)[8]) {
#pragma unroll
    for (int j = 0; j < 8; j++) u[j] = (float)(r[L + j] >> 8) * 0x1.0p-24f;
}

// The 8 uniforms of elements e0 .. e0 + 7 of the Philox stream (as mj_uniform, bit for bit),
// computing each counter block once: 2 generator calls when e0 % 4 == 0, else 3.
__device__ __forceinline__ void mj_uniform8(unsigned long long seed, unsigned long long e0, float (&u)[8]) {
    unsigned long long b0 = e0 >> 2;
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    uint32_t r[12];
    uint32_t lanes = (uint32_t)(e0 & 3);
#pragma unroll
    for (int b = 0; b < 3; b++) {
        if (b < 2 || lanes != 0) {
            unsigned long long blk = b0 + b;
            uint4 q = mj_philox((uint32_t)blk, (uint32_t)(blk >> 32), 0u, 0u, k0, k1);
            r[4 * b] = q.x; r[4 * b + 1] = q.y; r[4 * b + 2] = q.z; r[4 * b + 3] = q.w;
        } else {
            r[4 * b] = r[4 * b + 1] = r[4 * b + 2] = r[4 * b + 3] = 0u;
        }
    }
    // lanes = (offset + 8 c) % 4 is the same for every chunk of a launch, so this switch is uniform.
    switch (lanes) {
        case 0: mj_pick8<0>(r, u); break;
        case 1: mj_pick8<1>(r, u); break;
        case 2: mj_pick8<2>(r, u); break;
        default: mj_pick8<3>(r, u); break;
    }
}
