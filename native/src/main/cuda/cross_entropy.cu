// Softmax cross-entropy in Megatron's vocab-parallel pieces (see Backend's comment), plus
// argmax and log-softmax for sampling. logits [n, v] any float dtype; statistics F32 [n];
// targets I32 [n] are full-vocabulary ids, the local columns being [vocabStart, vocabStart + v).
// Row kernels run one block per row.
#include "common.cuh"

extern "C" __global__ void megatron_ce_row_max(const void* logits, int lt, float* rowMax, int v) {
    i64 base = (i64)blockIdx.x * v;
    float m = -INFINITY;
    for (int c = threadIdx.x; c < v; c += blockDim.x) m = fmaxf(m, mj_load(logits, base + c, lt));
    m = mj_block_max(m);
    if (threadIdx.x == 0) rowMax[blockIdx.x] = m;
}

extern "C" __global__ void megatron_ce_target_logit(const void* logits, int lt, const int* targets, i64 vocabStart,
                                                    float* targetLogit, i64 n, int v) {
    MJ_FOR(i, n) {
        i64 t = (i64)targets[i] - vocabStart;
        targetLogit[i] = (t >= 0 && t < v) ? mj_load(logits, i * v + t, lt) : 0.0f;
    }
}

extern "C" __global__ void megatron_ce_sum_exp(const void* logits, int lt, const float* rowMax, float* sumExp, int v) {
    i64 base = (i64)blockIdx.x * v;
    float m = rowMax[blockIdx.x];
    float s = 0.0f;
    for (int c = threadIdx.x; c < v; c += blockDim.x) s += expf(mj_load(logits, base + c, lt) - m);
    s = mj_block_sum(s);
    if (threadIdx.x == 0) sumExp[blockIdx.x] = s;
}

extern "C" __global__ void megatron_ce_loss(const float* rowMax, const float* sumExp, const float* targetLogit,
                                            float* loss, i64 n) {
    MJ_FOR(i, n) loss[i] = logf(sumExp[i]) + rowMax[i] - targetLogit[i];
}

// dLogits[i, j] = dLoss[i] * (softmax[i, j] - [j + vocabStart == targets[i]]); may alias logits.
extern "C" __global__ void megatron_ce_backward(const void* logits, int lt, const int* targets, i64 vocabStart,
                                                const float* rowMax, const float* sumExp, const float* dLoss,
                                                void* dLogits, int dt, int v) {
    i64 row = blockIdx.x;
    i64 base = row * v;
    float m = rowMax[row], inv = 1.0f / sumExp[row], g = dLoss[row];
    i64 t = (i64)targets[row] - vocabStart;
    for (int c = threadIdx.x; c < v; c += blockDim.x) {
        float p = expf(mj_load(logits, base + c, lt) - m) * inv;
        mj_store(dLogits, base + c, dt, g * (p - (c == t ? 1.0f : 0.0f)));
    }
}

// Whether (x, i) beats the best so far (bv, bi); bi < 0 means none yet. NaN counts as the
// maximum, ties go to the lowest index: the first index of the row maximum, as the CPU and PyTorch.
__device__ __forceinline__ bool mj_argmax_better(float x, int i, float bv, int bi) {
    if (bi < 0) return true;
    bool xn = x != x, bn = bv != bv;
    if (xn || bn) return xn && (!bn || i < bi);
    return x > bv || (x == bv && i < bi);
}

extern "C" __global__ void megatron_argmax(const void* logits, int lt, int* out, int v) {
    __shared__ float bestV[1024];
    __shared__ int bestI[1024];
    i64 base = (i64)blockIdx.x * v;
    float bv = 0.0f;
    int bi = -1;
    for (int c = threadIdx.x; c < v; c += blockDim.x) {
        float x = mj_load(logits, base + c, lt);
        if (mj_argmax_better(x, c, bv, bi)) { bv = x; bi = c; }
    }
    bestV[threadIdx.x] = bv;
    bestI[threadIdx.x] = bi;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {  // blockDim.x a power of two
        if ((int)threadIdx.x < stride) {
            int oi = bestI[threadIdx.x + stride];
            if (oi >= 0 && mj_argmax_better(bestV[threadIdx.x + stride], oi, bestV[threadIdx.x], bestI[threadIdx.x])) {
                bestV[threadIdx.x] = bestV[threadIdx.x + stride];
                bestI[threadIdx.x] = oi;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = bestI[0] < 0 ? 0 : bestI[0];
}

// out[i, :] = log_softmax(logits[i, :] / temperature) (out F32; may alias F32 logits).
extern "C" __global__ void megatron_log_softmax(const void* logits, int lt, float temperature, float* out, int v) {
    i64 base = (i64)blockIdx.x * v;
    float inv = 1.0f / temperature;
    float m = -INFINITY;
    for (int c = threadIdx.x; c < v; c += blockDim.x) m = fmaxf(m, mj_load(logits, base + c, lt) * inv);
    m = mj_block_max(m);
    float s = 0.0f;
    for (int c = threadIdx.x; c < v; c += blockDim.x) s += expf(mj_load(logits, base + c, lt) * inv - m);
    float lse = m + logf(mj_block_sum(s));
    for (int c = threadIdx.x; c < v; c += blockDim.x) out[base + c] = mj_load(logits, base + c, lt) * inv - lse;
}
