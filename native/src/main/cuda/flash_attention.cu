// FlashAttention (tiled, online softmax; Dao et al. 2022/2023) forward and backward, fp32
// accumulation, any of F32/BF16/F16 in and out. Megatron's layout (Backend#attentionForward):
//   q, out, dOut, dq [s, b, np, d];  k, v, dk, dv [sk, b, ng, d];  lse, delta F32 [b, np, s]
// Query head h reads key group h / (np / ng) (MHA, GQA, MQA). causal: query i sees keys
// j <= i + (sk - s). keyLengths (I32 [b], may be null) hides keys j >= keyLengths[b].
// A fully masked row gives zeros and lse = -inf, and no gradient.
//
// This version keeps every product on the CUDA cores (no tensor-core mma yet); it is the
// correct baseline a faster version is measured against. Head dims 32, 64, 96 and 128.
#include "common.cuh"

#define FA_WARPS 4
#define FA_ROWS_PER_WARP 4
#define FA_BQ (FA_WARPS * FA_ROWS_PER_WARP)  // query rows per forward block
#define FA_BK 32                               // keys per tile: one per lane

__device__ __forceinline__ i64 fa_key_end(const int* keyLengths, int b, i64 sk) {
    if (keyLengths == nullptr) return sk;
    i64 len = keyLengths[b];
    return len < 0 ? 0 : (len < sk ? len : sk);
}

// grid (ceil(s / FA_BQ), B * np), block FA_WARPS * 32.
template <int D>
__device__ void fa_forward(const void* q, const void* k, const void* v, int dt, void* out, float* lse,
                           i64 s, i64 sk, int B, int np, int ng, float scale, int causal, const int* keyLengths) {
    constexpr int T = D / 32;  // dims per lane
    __shared__ float qs[FA_BQ][D];
    __shared__ float ks[FA_BK][D + 1];  // +1: lanes read different rows at the same column
    __shared__ float vs[FA_BK][D];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int bh = blockIdx.y, b = bh / np, h = bh % np, g = h / (np / ng);
    const i64 q0 = (i64)blockIdx.x * FA_BQ;
    const i64 shift = sk - s;
    const i64 keyEnd = fa_key_end(keyLengths, b, sk);

    for (int e = threadIdx.x; e < FA_BQ * D; e += blockDim.x) {
        int r = e / D, c = e % D;
        i64 i = q0 + r;
        qs[r][c] = i < s ? mj_load(q, ((i * B + b) * np + h) * D + c, dt) * scale : 0.0f;
    }
    i64 lastQ = min(q0 + FA_BQ, s) - 1;
    i64 tileEnd = causal ? min(keyEnd, lastQ + shift + 1) : keyEnd;

    float m[FA_ROWS_PER_WARP], l[FA_ROWS_PER_WARP], acc[FA_ROWS_PER_WARP][T];
#pragma unroll
    for (int rr = 0; rr < FA_ROWS_PER_WARP; rr++) {
        m[rr] = -INFINITY;
        l[rr] = 0.0f;
#pragma unroll
        for (int t = 0; t < T; t++) acc[rr][t] = 0.0f;
    }

    for (i64 k0 = 0; k0 < tileEnd; k0 += FA_BK) {
        __syncthreads();  // the previous tile is consumed (and qs is written on the first pass)
        for (int e = threadIdx.x; e < FA_BK * D; e += blockDim.x) {
            int r = e / D, c = e % D;
            i64 j = k0 + r;
            bool in = j < sk;
            i64 off = ((j * B + b) * ng + g) * D + c;
            ks[r][c] = in ? mj_load(k, off, dt) : 0.0f;
            vs[r][c] = in ? mj_load(v, off, dt) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int rr = 0; rr < FA_ROWS_PER_WARP; rr++) {
            const int r = warp * FA_ROWS_PER_WARP + rr;
            const i64 i = q0 + r;
            if (i >= s) continue;  // uniform across the warp
            const i64 rowEnd = causal ? min(keyEnd, i + shift + 1) : keyEnd;
            const i64 j = k0 + lane;
            const bool valid = j < rowEnd;
            float sc = -INFINITY;
            if (valid) {
                float dot = 0.0f;
#pragma unroll 8
                for (int c = 0; c < D; c++) dot += qs[r][c] * ks[lane][c];
                sc = dot;
            }
            const float mNew = fmaxf(m[rr], mj_warp_max(sc));
            if (mNew == -INFINITY) continue;  // nothing visible yet in this row
            const float p = valid ? __expf(sc - mNew) : 0.0f;
            const float alpha = __expf(m[rr] - mNew);  // 0 when m was -inf
            l[rr] = l[rr] * alpha + mj_warp_sum(p);
            m[rr] = mNew;
#pragma unroll
            for (int t = 0; t < T; t++) acc[rr][t] *= alpha;
            for (int jj = 0; jj < FA_BK; jj++) {
                const float pj = __shfl_sync(0xffffffffu, p, jj);
#pragma unroll
                for (int t = 0; t < T; t++) acc[rr][t] += pj * vs[jj][lane + 32 * t];
            }
        }
    }

#pragma unroll
    for (int rr = 0; rr < FA_ROWS_PER_WARP; rr++) {
        const i64 i = q0 + warp * FA_ROWS_PER_WARP + rr;
        if (i >= s) continue;
        const bool empty = l[rr] == 0.0f;
        const float inv = empty ? 0.0f : 1.0f / l[rr];
#pragma unroll
        for (int t = 0; t < T; t++) mj_store(out, ((i * B + b) * np + h) * D + lane + 32 * t, dt, acc[rr][t] * inv);
        if (lane == 0) lse[((i64)b * np + h) * s + i] = empty ? -INFINITY : m[rr] + logf(l[rr]);
    }
}

// delta[b, h, i] = sum_d dOut[i, b, h, d] * out[i, b, h, d]; one warp per row.
extern "C" __global__ void megatron_flash_attention_delta(const void* dOut, const void* out, int dt, float* delta,
                                                          i64 s, int B, int np, int d) {
    i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);  // (i, b, h) in storage order
    int lane = threadIdx.x & 31;
    if (row >= s * B * np) return;
    float acc = 0.0f;
    for (int c = lane; c < d; c += 32) acc += mj_load(dOut, row * d + c, dt) * mj_load(out, row * d + c, dt);
    acc = mj_warp_sum(acc);
    if (lane == 0) {
        i64 i = row / ((i64)B * np), bh = row % ((i64)B * np);
        delta[bh * s + i] = acc;  // bh = b * np + h
    }
}

// Backward: grid (ceil(sk / FA_BK), B * ng), block FA_WARPS * 32, dynamic shared memory
// fa_backward_smem(D) bytes. Each block owns FA_BK keys of one group; its warps walk the query
// rows of every head of the group, adding into dK/dV in shared memory (shared atomics) and into
// dq (F32, zeroed by the caller) with global atomics. dk and dv are written once at the end.
//   p = exp(scale * q.k - lse), dp = dO.v, ds = p * (dp - delta)
//   dV += p dO, dK += scale ds q, dQ += scale ds k
template <int D>
__device__ void fa_backward(const void* q, const void* k, const void* v, int dt, const void* dOut,
                            const float* lse, const float* delta, float* dq, void* dk, void* dv,
                            i64 s, i64 sk, int B, int np, int ng, float scale, int causal, const int* keyLengths) {
    constexpr int T = D / 32;
    constexpr int P = D + 1;
    extern __shared__ float smem[];
    float* ks = smem;                 // [FA_BK][P]
    float* vs = ks + FA_BK * P;       // [FA_BK][P]
    float* dks = vs + FA_BK * P;      // [FA_BK][P]
    float* dvs = dks + FA_BK * P;     // [FA_BK][P]
    float* rows = dvs + FA_BK * P;    // per warp: q row [D], dO row [D]
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float* qRow = rows + warp * 2 * D;
    float* doRow = qRow + D;
    const int bg = blockIdx.y, b = bg / ng, g = bg % ng;
    const int rep = np / ng;
    const i64 k0 = (i64)blockIdx.x * FA_BK;
    const i64 shift = sk - s;
    const i64 keyEnd = fa_key_end(keyLengths, b, sk);

    for (int e = threadIdx.x; e < FA_BK * D; e += blockDim.x) {
        int r = e / D, c = e % D;
        i64 j = k0 + r;
        bool in = j < sk;
        i64 off = ((j * B + b) * ng + g) * D + c;
        ks[r * P + c] = in ? mj_load(k, off, dt) : 0.0f;
        vs[r * P + c] = in ? mj_load(v, off, dt) : 0.0f;
        dks[r * P + c] = 0.0f;
        dvs[r * P + c] = 0.0f;
    }
    __syncthreads();

    const i64 j = k0 + lane;
    const bool keyIn = j < keyEnd;
    if (k0 < keyEnd) {
        const i64 iStart = causal ? max((i64)0, k0 - shift) : 0;
        for (int r = 0; r < rep; r++) {
            const int h = g * rep + r;
            for (i64 i = iStart + warp; i < s; i += FA_WARPS) {
                const i64 srow = ((i64)b * np + h) * s + i;
                const float lseI = lse[srow];
                if (lseI == -INFINITY) continue;  // fully masked row: no gradient
                const i64 base = ((i * B + b) * np + h) * D;
                __syncwarp();
                for (int c = lane; c < D; c += 32) {
                    qRow[c] = mj_load(q, base + c, dt);
                    doRow[c] = mj_load(dOut, base + c, dt);
                }
                __syncwarp();
                const bool valid = keyIn && (!causal || j <= i + shift);
                float p = 0.0f, ds = 0.0f;
                if (valid) {
                    float dot = 0.0f, dp = 0.0f;
#pragma unroll 8
                    for (int c = 0; c < D; c++) {
                        dot += qRow[c] * ks[lane * P + c];
                        dp += doRow[c] * vs[lane * P + c];
                    }
                    p = __expf(scale * dot - lseI);
                    ds = p * (dp - delta[srow]);
                    const float sds = scale * ds;
                    for (int c = 0; c < D; c++) {
                        atomicAdd(&dvs[lane * P + c], p * doRow[c]);
                        atomicAdd(&dks[lane * P + c], sds * qRow[c]);
                    }
                }
                float dqAcc[T];
#pragma unroll
                for (int t = 0; t < T; t++) dqAcc[t] = 0.0f;
                for (int jj = 0; jj < FA_BK; jj++) {
                    const float dsj = __shfl_sync(0xffffffffu, ds, jj);
                    if (dsj == 0.0f) continue;  // uniform: every lane holds the same dsj
#pragma unroll
                    for (int t = 0; t < T; t++) dqAcc[t] += dsj * ks[jj * P + lane + 32 * t];
                }
#pragma unroll
                for (int t = 0; t < T; t++) {
                    if (dqAcc[t] != 0.0f) atomicAdd(dq + base + lane + 32 * t, scale * dqAcc[t]);
                }
            }
        }
    }
    __syncthreads();
    for (int e = threadIdx.x; e < FA_BK * D; e += blockDim.x) {
        int r = e / D, c = e % D;
        i64 jr = k0 + r;
        if (jr >= sk) continue;
        i64 off = ((jr * B + b) * ng + g) * D + c;
        mj_store(dk, off, dt, dks[r * P + c]);
        mj_store(dv, off, dt, dvs[r * P + c]);
    }
}

#define FA_INSTANTIATE(D)                                                                                          \
    extern "C" __global__ void __launch_bounds__(FA_WARPS * 32) megatron_flash_attention_forward_d##D(             \
        const void* q, const void* k, const void* v, int dt, void* out, float* lse, i64 s, i64 sk, int B, int np, \
        int ng, float scale, int causal, const int* keyLengths) {                                                 \
        fa_forward<D>(q, k, v, dt, out, lse, s, sk, B, np, ng, scale, causal, keyLengths);                        \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(FA_WARPS * 32) megatron_flash_attention_backward_d##D(            \
        const void* q, const void* k, const void* v, int dt, const void* dOut, const float* lse,                  \
        const float* delta, float* dq, void* dk, void* dv, i64 s, i64 sk, int B, int np, int ng, float scale,     \
        int causal, const int* keyLengths) {                                                                      \
        fa_backward<D>(q, k, v, dt, dOut, lse, delta, dq, dk, dv, s, sk, B, np, ng, scale, causal, keyLengths);   \
    }

FA_INSTANTIATE(32)
FA_INSTANTIATE(64)
FA_INSTANTIATE(96)
FA_INSTANTIATE(128)
