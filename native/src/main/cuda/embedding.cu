// Token embedding lookup and its backward. ids are I32. An id outside [0, vocab) writes zeros
// for its row and records the lowest such position in error[0] (initialised to INT_MAX by the
// caller), which the Java side turns into an exception naming the id and its position.
// Bandwidth: rows move in 8-element chunks (16-byte accesses) when h % 8 == 0 and the tensors
// are 16-byte aligned; otherwise element by element.
#include "common.cuh"
#include <limits.h>

// out[i, :] = table[ids[i], :]; grid.x covers tokens, threads cover h.
extern "C" __global__ void megatron_embedding_forward(const int* ids, const void* table, int tt, void* out, int ot,
                                                      i64 n, int h, int vocab, int* error) {
    bool vec = (h % MJ_CHUNK) == 0 && mj_al16(table) && mj_al16(out);
    int hc = h / MJ_CHUNK;
    for (i64 i = blockIdx.x; i < n; i += gridDim.x) {
        int id = ids[i];
        bool ok = id >= 0 && id < vocab;
        if (!ok && threadIdx.x == 0) atomicMin(error, (int)min(i, (i64)INT_MAX));
        if (vec) {
            for (int c = threadIdx.x; c < hc; c += blockDim.x) {
                float v[8];
                if (ok) {
                    mj_load8(table, (i64)id * hc + c, tt, v);
                } else {
#pragma unroll
                    for (int e = 0; e < 8; e++) v[e] = 0.0f;
                }
                mj_store8(out, i * hc + c, ot, v);
            }
        } else {
            for (int c = threadIdx.x; c < h; c += blockDim.x) {
                mj_store(out, i * h + c, ot, ok ? mj_load(table, (i64)id * h + c, tt) : 0.0f);
            }
        }
    }
}

// dTable[ids[i], :] += dOut[i, :] (dTable F32; repeated ids meet in atomic adds, so the order
// of the additions, and the last bits of a repeated id's row, vary from run to run).
extern "C" __global__ void megatron_embedding_backward(const int* ids, const void* dOut, int dt, float* dTable,
                                                       i64 n, int h, int vocab, int* error) {
    bool vec = (h % MJ_CHUNK) == 0 && mj_al16(dOut) && mj_al16(dTable);
    int hc = h / MJ_CHUNK;
    for (i64 i = blockIdx.x; i < n; i += gridDim.x) {
        int id = ids[i];
        if (id < 0 || id >= vocab) {
            if (threadIdx.x == 0) atomicMin(error, (int)min(i, (i64)INT_MAX));
            continue;
        }
        if (vec) {
            for (int c = threadIdx.x; c < hc; c += blockDim.x) {
                float v[8];
                mj_load8(dOut, i * hc + c, dt, v);
                float* dst = dTable + ((i64)id * hc + c) * MJ_CHUNK;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
                atomicAdd(reinterpret_cast<float4*>(dst), make_float4(v[0], v[1], v[2], v[3]));
                atomicAdd(reinterpret_cast<float4*>(dst) + 1, make_float4(v[4], v[5], v[6], v[7]));
#else
#pragma unroll
                for (int e = 0; e < 8; e++) atomicAdd(dst + e, v[e]);
#endif
            }
        } else {
            for (int c = threadIdx.x; c < h; c += blockDim.x) {
                atomicAdd(dTable + (i64)id * h + c, mj_load(dOut, i * h + c, dt));
            }
        }
    }
}
