// Softmax cross-entropy in Megatron's vocab-parallel pieces (see Backend's comment), plus
// argmax and log-softmax for sampling. logits [n, v] any float dtype; statistics F32 [n];
// targets I32 [n] are full-vocabulary ids, the local columns being [vocabStart, vocabStart + v).
// Row kernels run one block per row.
#include "common.cuh"

// Bandwidth: a row is split into a scalar head (up to the first 16-byte boundary of logits),
// 8-element chunks (16-byte loads, mj_load8) and a scalar tail, so rows of any vocabulary size
// (50257 included) and any view offset take the vector path. Kernels writing a second row tensor
// use the chunks only when its head is the same (then both are aligned at the same element).
// Returns the head length h (the chunks start at element base + h) and sets nch; a row whose
// start is not even element aligned is all head.
__device__ __forceinline__ int mj_row_split(const void* p, i64 base, int n, int dt, int& nch) {
    int h = mj_head(p, base, dt);
    if (h < 0 || h > n) {
        nch = 0;
        return n;
    }
    nch = (n - h) / MJ_CHUNK;
    return h;
}

extern "C" __global__ void megatron_ce_row_max(const void* logits, int lt, float* rowMax, int v) {
    i64 base = (i64)blockIdx.x * v;
    float m = -INFINITY;
    int nch, h = mj_row_split(logits, base, v, lt, nch);
    const void* q = mj_offset(logits, base + h, lt);
    for (int c = threadIdx.x; c < nch; c += blockDim.x) {
        float x[8];
        mj_load8(q, c, lt, x);
#pragma unroll
        for (int e = 0; e < 8; e++) m = fmaxf(m, x[e]);
    }
    for (int c = threadIdx.x; c < h; c += blockDim.x) m = fmaxf(m, mj_load(logits, base + c, lt));
    for (int c = h + nch * MJ_CHUNK + threadIdx.x; c < v; c += blockDim.x) m = fmaxf(m, mj_load(logits, base + c, lt));
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
    int nch, h = mj_row_split(logits, base, v, lt, nch);
    const void* q = mj_offset(logits, base + h, lt);
    for (int c = threadIdx.x; c < nch; c += blockDim.x) {
        float x[8];
        mj_load8(q, c, lt, x);
#pragma unroll
        for (int e = 0; e < 8; e++) s += expf(x[e] - m);
    }
    for (int c = threadIdx.x; c < h; c += blockDim.x) s += expf(mj_load(logits, base + c, lt) - m);
    for (int c = h + nch * MJ_CHUNK + threadIdx.x; c < v; c += blockDim.x) s += expf(mj_load(logits, base + c, lt) - m);
    s = mj_block_sum(s);
    if (threadIdx.x == 0) sumExp[blockIdx.x] = s;
}

// Online softmax (as FlashAttention): a thread's running max m of the elements it has seen, and
// s = sum of exp(x - m) over them, rescaled by exp(m_old - m_new) when m grows. Until m is finite
// (only -inf seen) s stays 0, so -inf logits add nothing, as in megatron_ce_sum_exp.
__device__ __forceinline__ void mj_online_max(float& m, float& s, float x) {
    if (x > m) {
        s *= expf(m - x);
        m = x;
    }
}

__device__ __forceinline__ void mj_online_add(float& m, float& s, float x) {
    mj_online_max(m, s, x);
    if (m != -INFINITY) s += expf(x - m);
}

// megatron_ce_row_max and megatron_ce_sum_exp in one read of the row (crossEntropyRowMaxSumExp, for a
// vocabulary held whole): each 8-element chunk raises m by its max first (one rescale per chunk, not per
// element), then adds its 8 exps; the block rescales each thread's s to the row max and sums. rowMax is
// the same max; sumExp differs from the two-pass sum by the rescaling's rounding (a few ulps per term).
// A row of only -inf gets sumExp 0 where the two passes give NaN (exp(-inf - -inf)); its loss is not finite either way.
extern "C" __global__ void megatron_ce_row_max_sum_exp(const void* logits, int lt, float* rowMax, float* sumExp,
                                                       int v) {
    i64 base = (i64)blockIdx.x * v;
    float m = -INFINITY, s = 0.0f;
    int nch, h = mj_row_split(logits, base, v, lt, nch);
    const void* q = mj_offset(logits, base + h, lt);
    for (int c = threadIdx.x; c < nch; c += blockDim.x) {
        float x[8];
        mj_load8(q, c, lt, x);
        float cm = x[0];
#pragma unroll
        for (int e = 1; e < 8; e++) cm = fmaxf(cm, x[e]);
        mj_online_max(m, s, cm);
        if (m != -INFINITY) {
#pragma unroll
            for (int e = 0; e < 8; e++) s += expf(x[e] - m);
        }
    }
    for (int c = threadIdx.x; c < h; c += blockDim.x) mj_online_add(m, s, mj_load(logits, base + c, lt));
    for (int c = h + nch * MJ_CHUNK + threadIdx.x; c < v; c += blockDim.x) mj_online_add(m, s, mj_load(logits, base + c, lt));
    float rm = mj_block_max(m);
    s = mj_block_sum(m == -INFINITY ? 0.0f : s * expf(m - rm));
    if (threadIdx.x == 0) {
        rowMax[blockIdx.x] = rm;
        sumExp[blockIdx.x] = s;
    }
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
    int nch, h = mj_row_split(logits, base, v, lt, nch);
    if (mj_head(dLogits, base, dt) != h) {  // the two rows are aligned differently: all scalar
        h = v;
        nch = 0;
    }
    const void* q = mj_offset(logits, base + h, lt);
    void* o = mj_offset(dLogits, base + h, dt);
    for (int c = threadIdx.x; c < nch; c += blockDim.x) {
        float x[8];
        mj_load8(q, c, lt, x);
        i64 c0 = h + (i64)c * MJ_CHUNK;
#pragma unroll
        for (int e = 0; e < 8; e++) {
            float p = expf(x[e] - m) * inv;
            x[e] = g * (p - (c0 + e == t ? 1.0f : 0.0f));
        }
        mj_store8(o, c, dt, x);
    }
    for (int pass = 0; pass < 2; pass++) {  // the head [0, h), then the tail [h + 8 nch, v)
        int c = (pass == 0 ? 0 : h + nch * MJ_CHUNK) + threadIdx.x, end = pass == 0 ? h : v;
        for (; c < end; c += blockDim.x) {
            float p = expf(mj_load(logits, base + c, lt) - m) * inv;
            mj_store(dLogits, base + c, dt, g * (p - (c == t ? 1.0f : 0.0f)));
        }
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
    int nch, h = mj_row_split(logits, base, v, lt, nch);
    const void* q = mj_offset(logits, base + h, lt);
    for (int c = threadIdx.x; c < nch; c += blockDim.x) {
        float x[8];
        mj_load8(q, c, lt, x);
#pragma unroll
        for (int e = 0; e < 8; e++) {
            int i = h + c * MJ_CHUNK + e;
            if (mj_argmax_better(x[e], i, bv, bi)) { bv = x[e]; bi = i; }
        }
    }
    for (int pass = 0; pass < 2; pass++) {
        int c = (pass == 0 ? 0 : h + nch * MJ_CHUNK) + threadIdx.x, end = pass == 0 ? h : v;
        for (; c < end; c += blockDim.x) {
            float x = mj_load(logits, base + c, lt);
            if (mj_argmax_better(x, c, bv, bi)) { bv = x; bi = c; }
        }
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
    int nch, h = mj_row_split(logits, base, v, lt, nch);
    if (mj_head(out, base, MJ_F32) != h) {
        h = v;
        nch = 0;
    }
    const void* q = mj_offset(logits, base + h, lt);
    int tail = h + nch * MJ_CHUNK;
    float m = -INFINITY;
    for (int c = threadIdx.x; c < nch; c += blockDim.x) {
        float x[8];
        mj_load8(q, c, lt, x);
#pragma unroll
        for (int e = 0; e < 8; e++) m = fmaxf(m, x[e] * inv);
    }
    for (int c = threadIdx.x; c < h; c += blockDim.x) m = fmaxf(m, mj_load(logits, base + c, lt) * inv);
    for (int c = tail + threadIdx.x; c < v; c += blockDim.x) m = fmaxf(m, mj_load(logits, base + c, lt) * inv);
    m = mj_block_max(m);
    float s = 0.0f;
    for (int c = threadIdx.x; c < nch; c += blockDim.x) {
        float x[8];
        mj_load8(q, c, lt, x);
#pragma unroll
        for (int e = 0; e < 8; e++) s += expf(x[e] * inv - m);
    }
    for (int c = threadIdx.x; c < h; c += blockDim.x) s += expf(mj_load(logits, base + c, lt) * inv - m);
    for (int c = tail + threadIdx.x; c < v; c += blockDim.x) s += expf(mj_load(logits, base + c, lt) * inv - m);
    float lse = m + logf(mj_block_sum(s));
    float* o = out + base + h;
    for (int c = threadIdx.x; c < nch; c += blockDim.x) {
        float x[8];
        mj_load8(q, c, lt, x);
#pragma unroll
        for (int e = 0; e < 8; e++) x[e] = x[e] * inv - lse;
        mj_store8(o, c, MJ_F32, x);
    }
    for (int c = threadIdx.x; c < h; c += blockDim.x) out[base + c] = mj_load(logits, base + c, lt) * inv - lse;
    for (int c = tail + threadIdx.x; c < v; c += blockDim.x) out[base + c] = mj_load(logits, base + c, lt) * inv - lse;
}
