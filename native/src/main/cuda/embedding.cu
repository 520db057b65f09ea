// Token embedding lookup and its backward (also the row gather that splits and merges the fused
// QKV rows). ids are I32. An id outside [0, vocab) writes zeros for its row and records
// (position << 32 | id) of the lowest such position in *error (initialised to ULLONG_MAX by the
// caller, one word per call), which the Java side turns into an exception naming the id and its
// position at the next synchronisation, so that a lookup does not stall the stream.
// Rows are spread over groups of threads sized to the row (8 threads for a 64-element bf16 row),
// not one block per row: the QKV gather moves ~800K rows of 128 bytes per layer.
// Bandwidth: rows move in 8-element chunks (16-byte accesses) when h % 8 == 0 and the tensors
// are 16-byte aligned; otherwise element by element.
#include "common.cuh"
#include <limits.h>

// Threads per row: the row's chunks rounded up to a power of two, at most the block.
__device__ __forceinline__ int mj_threads_per_row(int chunks) {
    int t = 1;
    while (t < chunks && t < (int)blockDim.x) t <<= 1;
    return t;
}

__device__ __forceinline__ void mj_bad_id(unsigned long long* error, i64 i, int id) {
    atomicMin(error, ((unsigned long long)min(i, (i64)INT_MAX) << 32) | (unsigned int)id);
}

// out[i, :] = table[ids[i], :]; each group of mj_threads_per_row threads copies one row at a time.
extern "C" __global__ void megatron_embedding_forward(const int* ids, const void* table, int tt, void* out, int ot,
                                                      i64 n, int h, int vocab, unsigned long long* error) {
    bool vec = (h % MJ_CHUNK) == 0 && mj_al16(table) && mj_al16(out);
    int hc = vec ? h / MJ_CHUNK : h;
    int tpr = mj_threads_per_row(hc);
    int rowsPerBlock = blockDim.x / tpr, lane = threadIdx.x % tpr;
    for (i64 i = (i64)blockIdx.x * rowsPerBlock + threadIdx.x / tpr; i < n; i += (i64)gridDim.x * rowsPerBlock) {
        int id = ids[i];
        bool ok = id >= 0 && id < vocab;
        if (!ok && lane == 0) mj_bad_id(error, i, id);
        if (vec) {
            for (int c = lane; c < hc; c += tpr) {
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
            for (int c = lane; c < h; c += tpr) {
                mj_store(out, i * h + c, ot, ok ? mj_load(table, (i64)id * h + c, tt) : 0.0f);
            }
        }
    }
}

// dTable[ids[i], :] += dOut[i, :] (dTable F32; repeated ids meet in atomic adds, so the order
// of the additions, and the last bits of a repeated id's row, vary from run to run).
extern "C" __global__ void megatron_embedding_backward(const int* ids, const void* dOut, int dt, float* dTable,
                                                       i64 n, int h, int vocab, unsigned long long* error) {
    bool vec = (h % MJ_CHUNK) == 0 && mj_al16(dOut) && mj_al16(dTable);
    int hc = vec ? h / MJ_CHUNK : h;
    int tpr = mj_threads_per_row(hc);
    int rowsPerBlock = blockDim.x / tpr, lane = threadIdx.x % tpr;
    for (i64 i = (i64)blockIdx.x * rowsPerBlock + threadIdx.x / tpr; i < n; i += (i64)gridDim.x * rowsPerBlock) {
        int id = ids[i];
        if (id < 0 || id >= vocab) {
            if (lane == 0) mj_bad_id(error, i, id);
            continue;
        }
        if (vec) {
            for (int c = lane; c < hc; c += tpr) {
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
            for (int c = lane; c < h; c += tpr) {
                atomicAdd(dTable + (i64)id * h + c, mj_load(dOut, i * h + c, dt));
            }
        }
    }
}
