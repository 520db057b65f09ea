// Token embedding lookup and its backward. ids are I32. An id outside [0, vocab) writes zeros
// for its row and records the lowest such position in error[0] (initialised to INT_MAX by the
// caller), which the Java side turns into an exception naming the id and its position.
#include "common.cuh"
#include <limits.h>

// out[i, :] = table[ids[i], :]; grid.x covers tokens, threads cover h.
extern "C" __global__ void megatron_embedding_forward(const int* ids, const void* table, int tt, void* out, int ot,
                                                      i64 n, int h, int vocab, int* error) {
    for (i64 i = blockIdx.x; i < n; i += gridDim.x) {
        int id = ids[i];
        bool ok = id >= 0 && id < vocab;
        if (!ok && threadIdx.x == 0) atomicMin(error, (int)min(i, (i64)INT_MAX));
        for (int c = threadIdx.x; c < h; c += blockDim.x) {
            mj_store(out, i * h + c, ot, ok ? mj_load(table, (i64)id * h + c, tt) : 0.0f);
        }
    }
}

// dTable[ids[i], :] += dOut[i, :] (dTable F32; repeated ids meet in atomic adds).
extern "C" __global__ void megatron_embedding_backward(const int* ids, const void* dOut, int dt, float* dTable,
                                                       i64 n, int h, int vocab, int* error) {
    for (i64 i = blockIdx.x; i < n; i += gridDim.x) {
        int id = ids[i];
        if (id < 0 || id >= vocab) {
            if (threadIdx.x == 0) atomicMin(error, (int)min(i, (i64)INT_MAX));
            continue;
        }
        for (int c = threadIdx.x; c < h; c += blockDim.x) {
            atomicAdd(dTable + (i64)id * h + c, mj_load(dOut, i * h + c, dt));
        }
    }
}
