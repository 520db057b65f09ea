// FlashAttention (tiled, online softmax; Dao et al. 2022/2023) forward and backward, fp32
// accumulation, any of F32/BF16/F16 in and out. Megatron's layout (Backend#attentionForward):
//   q, out, dOut, dq [s, b, np, d];  k, v, dk, dv [sk, b, ng, d];  lse, delta F32 [b, np, s]
// Query head h reads key group h / (np / ng) (MHA, GQA, MQA). causal: query i sees keys
// j <= i + (sk - s). keyLengths (I32 [b], may be null) hides keys j >= keyLengths[b]; keyStarts
// (I32 [b, s], may be null: documents, --reset-attention-mask) hides from query i of entry b the keys
// j < keyStarts[b, i]. A fully masked row gives zeros and lse = -inf, and no gradient.
//
// This version keeps every product on the CUDA cores (no tensor-core mma yet); it is the
// correct baseline a faster version is measured against. Head dims 32, 64, 96 and 128.
#include "flash_attention_fa2.cuh"

#define FA_WARPS 4
#define FA_ROWS_PER_WARP 4
#define FA_BQ (FA_WARPS * FA_ROWS_PER_WARP)  // query rows per forward block
#define FA_BK 32                               // keys per tile: one per lane

// grid (ceil(s / FA_BQ), B * np), block FA_WARPS * 32.
template <int D>
__device__ void fa_forward(const void* q, const void* k, const void* v, int dt, void* out, float* lse,
                           i64 s, i64 sk, int B, int np, int ng, float scale, int causal, const int* keyLengths,
                           const int* keyStarts) {
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
            const bool valid = j < rowEnd && j >= fa_key_start(keyStarts, b, s, i);
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

// Backward preprocessing, one pass over the rows (i, b, h) of dOut and out (storage order):
//   delta[b, h, i] = sum_d dOut[i, b, h, d] * out[i, b, h, d], and dqAcc[i, b, h, :] = 0 (the fp32 dQ
//   accumulator the backward kernels add into: the workspace, or dq itself when it is F32).
// BF16/F16 with d 32, 64 or 128 and dOut, out 16-byte aligned: one thread per 8-element chunk (16-byte
// loads; d / 8 lanes per row, summed with a segmented shuffle; 16-byte zero stores where dqAcc is
// aligned); anything else one warp per row, scalar. Any grid (grid-stride loops); block a multiple of 32.
// CudaAttention launches it with block 256 and grid CudaBackend.grid(rows * d / 8).
extern "C" __global__ void megatron_flash_attention_bwd_prep(const void* dOut, const void* out, int dt, float* delta,
                                                             float* dqAcc, i64 s, int B, int np, int d) {
    const i64 rows = s * B * np, bnp = (i64)B * np;
    const int lane = threadIdx.x & 31;
    const i64 warp0 = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const i64 warps = ((i64)gridDim.x * blockDim.x) >> 5;
    if ((dt == MJ_BF16 || dt == MJ_F16) && (d == 32 || d == 64 || d == 128) && mj_al16(dOut) && mj_al16(out)) {
        const int cpr = d / MJ_CHUNK, rpw = 32 / cpr;  // chunks (lanes) per row, rows per warp
        const int c = lane % cpr;
        const bool zal = mj_al16(dqAcc);
        for (i64 r0 = warp0 * rpw; r0 < rows; r0 += warps * rpw) {  // warp-uniform trip count
            const i64 row = r0 + lane / cpr;
            float acc = 0.0f;
            if (row < rows) {
                float a[8], o[8];
                mj_load8(dOut, row * cpr + c, dt, a);
                mj_load8(out, row * cpr + c, dt, o);
#pragma unroll
                for (int j = 0; j < 8; j++) acc = fmaf(a[j], o[j], acc);
                float* z = dqAcc + row * d + c * MJ_CHUNK;
                if (zal) {
                    reinterpret_cast<float4*>(z)[0] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                    reinterpret_cast<float4*>(z)[1] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                } else {
#pragma unroll
                    for (int j = 0; j < 8; j++) z[j] = 0.0f;
                }
            }
            for (int o = cpr >> 1; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
            if (c == 0 && row < rows) delta[(row % bnp) * s + row / bnp] = acc;  // [b * np + h][i]
        }
    } else {
        for (i64 row = warp0; row < rows; row += warps) {
            float acc = 0.0f;
            for (int c = lane; c < d; c += 32) {
                acc += mj_load(dOut, row * d + c, dt) * mj_load(out, row * d + c, dt);
                dqAcc[row * d + c] = 0.0f;
            }
            acc = mj_warp_sum(acc);
            if (lane == 0) delta[(row % bnp) * s + row / bnp] = acc;
        }
    }
}

// dq[i, b, h, :] = dqAcc[i, b, h, :] (fp32 -> dt) with dq in the strides of fa2::QkvStrides (qTok, qGrp),
// where the fused-layout backward writes its dQ: one thread per 8 elements, d a multiple of 8, dq
// 16-byte aligned when qTok, qGrp are multiples of 8 (CudaAttention checks both). Any grid.
extern "C" __global__ void megatron_flash_attention_dq_store(const float* dqAcc, void* dq, int dt, i64 tokens, int np,
                                                            int rep, int d, int qTok, int qGrp) {
    const int cpr = d / MJ_CHUNK;
    MJ_FOR(c, tokens * np * cpr) {
        const i64 token = c / ((i64)np * cpr);
        const int rest = (int)(c - token * np * cpr), h = rest / cpr, part = rest % cpr;
        float v[8];
        mj_load8(dqAcc, c, MJ_F32, v);
        mj_store8(dq, (token * qTok + (i64)(h / rep) * qGrp + (i64)(h % rep) * d) / MJ_CHUNK + part, dt, v);
    }
}

// Backward: grid (ceil(sk / FA_BK), B * ng), block FA_WARPS * 32, dynamic shared memory
// fa_backward_smem(D) bytes. Each block owns FA_BK keys of one group; its warps walk the query
// rows of every head of the group, adding into dK/dV in shared memory (shared atomics) and into
// dq (F32, zeroed by megatron_flash_attention_bwd_prep) with global atomics. dk and dv are written once at the end.
//   p = exp(scale * q.k - lse), dp = dO.v, ds = p * (dp - delta)
//   dV += p dO, dK += scale ds q, dQ += scale ds k
template <int D>
__device__ void fa_backward(const void* q, const void* k, const void* v, int dt, const void* dOut,
                            const float* lse, const float* delta, float* dq, void* dk, void* dv,
                            i64 s, i64 sk, int B, int np, int ng, float scale, int causal, const int* keyLengths,
                            const int* keyStarts) {
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
                const bool valid = keyIn && (!causal || j <= i + shift) && j >= fa_key_start(keyStarts, b, s, i);
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
        int ng, float scale, int causal, const int* keyLengths, const int* keyStarts) {                           \
        fa_forward<D>(q, k, v, dt, out, lse, s, sk, B, np, ng, scale, causal, keyLengths, keyStarts);             \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(FA_WARPS * 32) megatron_flash_attention_backward_d##D(            \
        const void* q, const void* k, const void* v, int dt, const void* dOut, const float* lse,                  \
        const float* delta, float* dq, void* dk, void* dv, i64 s, i64 sk, int B, int np, int ng, float scale,     \
        int causal, const int* keyLengths, const int* keyStarts) {                                                \
        fa_backward<D>(q, k, v, dt, dOut, lse, delta, dq, dk, dv, s, sk, B, np, ng, scale, causal, keyLengths,    \
                       keyStarts);                                                                                \
    }

FA_INSTANTIATE(32)
FA_INSTANTIATE(64)
FA_INSTANTIATE(96)
FA_INSTANTIATE(128)

// =====================================================================================================
// The tensor-core FlashAttention-2 kernels (device code in flash_attention_fa2.cuh): their extern "C"
// entry points and the host launch plans.
// =====================================================================================================

namespace fa2 {

// forward, compiled for sm_90 and newer only (the _m2 kernels; a trap below sm_90, where the launch
// plans never pick them)
template <int D, bool BF16, int NW, int MW, int BN, bool QREG, bool DROP = false, bool DOCS = false>
__device__ __forceinline__ void forward_sm90(const void* qv, const void* kv, const void* vv, void* outv, float* lse,
                                             i64 s, i64 sk, int B, int np, int ng, float scale, int causal,
                                             const int* keyLengths, const int* keyStarts, QkvStrides st, Dropout dr) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
    __trap();
#else
    forward<D, BF16, NW, MW, BN, QREG, DROP, DOCS>(qv, kv, vv, outv, lse, s, sk, B, np, ng, scale, causal, keyLengths,
                                                   keyStarts, st, dr);
#endif
}

template <int D, bool BF16, int NW, int MW, int BN, bool QREG>
__global__ void __launch_bounds__(NW * 32)
    forward_kernel(const void* q, const void* k, const void* v, int dt, void* out, float* lse, i64 s, i64 sk, int B,
                   int np, int ng, float scale, int causal, const int* keyLengths, const int* keyStarts, int qTok,
                   int qGrp, int kTok, int kGrp, float dropP, float dropScale, unsigned long long seed,
                   unsigned long long offset) {
    forward<D, BF16, NW, MW, BN, QREG>(q, k, v, out, lse, s, sk, B, np, ng, scale, causal, keyLengths, keyStarts,
                                       QkvStrides{qTok, qGrp, kTok, kGrp}, Dropout{dropP, dropScale, seed, offset});
}
template <int D, bool BF16, int NW, int BM, int DQM>
__global__ void __launch_bounds__(NW * 32)
    backward_kernel(const void* q, const void* k, const void* v, int dt, const void* dOut, const float* lse,
                    const float* delta, float* dq, void* dk, void* dv, i64 s, i64 sk, int B, int np, int ng,
                    float scale, int causal, const int* keyLengths, const int* keyStarts, int qTok, int qGrp,
                    int kTok, int kGrp, float dropP, float dropScale, unsigned long long seed, unsigned long long offset) {
    backward<D, BF16, NW, BM, DQM>(q, k, v, dOut, lse, delta, dq, dk, dv, s, sk, B, np, ng, scale, causal, keyLengths,
                                   keyStarts, QkvStrides{qTok, qGrp, kTok, kGrp}, Dropout{dropP, dropScale, seed, offset});
}

}  // namespace fa2

// FN: fa2::forward, or fa2::forward_sm90 (a trap below sm_90). DROP: the _dropout twin; DOCS: the _docs twin
// (document masking by keyStarts, which the other kernels ignore).
#define FA2_FWD_KERNEL(NAME, FN, IS_BF16, D, NW, MW, BN, QREG, DROP, DOCS)                                        \
    extern "C" __global__ void __launch_bounds__((NW) * 32)                                                     \
        NAME(const void* q, const void* k, const void* v, int dt, void* out, float* lse, i64 s, i64 sk, int B,    \
             int np, int ng, float scale, int causal, const int* keyLengths, const int* keyStarts, int qTok,      \
             int qGrp, int kTok, int kGrp, float dropP, float dropScale, unsigned long long seed,                 \
             unsigned long long offset) {                                                                         \
        fa2::FN<D, IS_BF16, NW, MW, BN, (QREG) != 0, DROP, DOCS>(q, k, v, out, lse, s, sk, B, np, ng, scale,      \
                                                                 causal, keyLengths, keyStarts,                   \
                                                                 fa2::QkvStrides{qTok, qGrp, kTok, kGrp},         \
                                                                 fa2::Dropout{dropP, dropScale, seed, offset});   \
    }
#define FA2_BWD_KERNEL(NAME, IS_BF16, D, NW, BM, DQM, DROP, DOCS)                                                 \
    extern "C" __global__ void __launch_bounds__((NW) * 32, FA2_BWD_MIN_BLOCKS(D))                              \
        NAME(const void* q, const void* k, const void* v, int dt, const void* dOut, const float* lse,             \
             const float* delta, float* dq, void* dk, void* dv, i64 s, i64 sk, int B, int np, int ng, float scale, \
             int causal, const int* keyLengths, const int* keyStarts, int qTok, int qGrp, int kTok, int kGrp,     \
             float dropP, float dropScale, unsigned long long seed, unsigned long long offset) {                  \
        fa2::backward<D, IS_BF16, NW, BM, DQM, DROP, DOCS>(q, k, v, dOut, lse, delta, dq, dk, dv, s, sk, B, np,   \
                                                           ng, scale, causal, keyLengths, keyStarts,              \
                                                           fa2::QkvStrides{qTok, qGrp, kTok, kGrp},               \
                                                           fa2::Dropout{dropP, dropScale, seed, offset});         \
    }
#define FA2_TWINS(D, NAME, IS_BF16, DOCS, SUFFIX)                                                                 \
    FA2_FWD_KERNEL(megatron_fa2_forward_##NAME##_d##D##SUFFIX, forward, IS_BF16, D, FA2_FWD_WARPS(D),             \
                   FA2_FWD_MT(D), FA2_FWD_BN(D), FA2_FWD_QREG(D), false, DOCS)                                    \
    FA2_BWD_KERNEL(megatron_fa2_backward_##NAME##_d##D##SUFFIX, IS_BF16, D, FA2_BWD_WARPS(D), FA2_BWD_BM(D),      \
                   FA2_BWD_DQ(D), false, DOCS)                                                                    \
    FA2_FWD_KERNEL(megatron_fa2_forward_##NAME##_d##D##_dropout##SUFFIX, forward, IS_BF16, D, FA2_FWD_WARPS(D),   \
                   FA2_FWD_MT(D), FA2_FWD_BN(D), FA2_FWD_QREG(D), true, DOCS)                                     \
    FA2_BWD_KERNEL(megatron_fa2_backward_##NAME##_d##D##_dropout##SUFFIX, IS_BF16, D, FA2_BWD_WARPS(D),           \
                   FA2_BWD_BM(D), FA2_BWD_DQ(D), true, DOCS)
#define FA2_INSTANTIATE(D, NAME, IS_BF16) FA2_TWINS(D, NAME, IS_BF16, false, ) FA2_TWINS(D, NAME, IS_BF16, true, _docs)

FA2_INSTANTIATE(64, bf16, true)
FA2_INSTANTIATE(64, f16, false)
FA2_INSTANTIATE(128, bf16, true)
FA2_INSTANTIATE(128, f16, false)
// d 128 forward on large grids, sm_90 and newer (mj_fa2_forward_m2), without dropout or documents
FA2_FWD_KERNEL(megatron_fa2_forward_bf16_d128_m2, forward_sm90, true, 128, FA2_FWD_WARPS(128), FA2_FWD_M2_MT,
               FA2_FWD_BN(128), FA2_FWD_M2_QREG, false, false)
FA2_FWD_KERNEL(megatron_fa2_forward_f16_d128_m2, forward_sm90, false, 128, FA2_FWD_WARPS(128), FA2_FWD_M2_MT,
               FA2_FWD_BN(128), FA2_FWD_M2_QREG, false, false)

// ---------------------------------------------------------------------------------------------
// Launch plans, host functions (the check harness native/src/test/cuda/flash_attention_check.cu
// launches through these; the fatbin build ignores them). CudaAttention.java mirrors them line for
// line: change both together.
#include <cstdio>
struct MjFaLaunch {
    char kernel[64];
    long long gridX, gridY;
    int block, shared;
};
// The tensor-core kernels take BF16/F16 with d 64 or 128 when q, k, v, out (and dOut, dk, dv) are
// 16-byte aligned and scale > 0 (the caller folds both into `aligned16`: CudaAttention.tensorCores);
// everything else goes to the CUDA-core kernels (F32, d 32/96, unaligned views).
static inline bool mj_fa2_eligible(int dt, int d, bool aligned16) {
    return (dt == MJ_BF16 || dt == MJ_F16) && (d == 64 || d == 128) && aligned16;
}
// sm: the device's compute capability, 10 * major + minor
static inline MjFaLaunch mj_fa_forward_launch(int dt, int d, long long s, int B, int np, bool aligned16, int sm) {
    MjFaLaunch l;
    if (mj_fa2_eligible(dt, d, aligned16)) {
        const bool m2 = mj_fa2_forward_m2(d, s, B, np, sm);
        snprintf(l.kernel, sizeof l.kernel, "megatron_fa2_forward_%s_d%d%s", dt == MJ_BF16 ? "bf16" : "f16", d,
                 m2 ? "_m2" : "");
        const int bm = mj_fa2_forward_rows(d, m2);
        l.gridX = (s + bm - 1) / bm;
        l.block = FA2_FWD_WARPS(64) * 32;  // 4 warps for every forward configuration
        l.shared = mj_fa2_forward_smem(d, m2);
    } else {
        snprintf(l.kernel, sizeof l.kernel, "megatron_flash_attention_forward_d%d", d);
        l.gridX = (s + FA_BQ - 1) / FA_BQ;
        l.block = FA_WARPS * 32;
        l.shared = 0;
    }
    l.gridY = (long long)B * np;
    return l;
}
static inline MjFaLaunch mj_fa_backward_launch(int dt, int d, long long sk, int B, int ng, bool aligned16) {
    MjFaLaunch l;
    if (mj_fa2_eligible(dt, d, aligned16)) {
        snprintf(l.kernel, sizeof l.kernel, "megatron_fa2_backward_%s_d%d", dt == MJ_BF16 ? "bf16" : "f16", d);
        const int bn = d == 128 ? FA2_BWD_BN(128) : FA2_BWD_BN(64);
        l.gridX = (sk + bn - 1) / bn;
        l.block = (d == 128 ? FA2_BWD_WARPS(128) : FA2_BWD_WARPS(64)) * 32;
        l.shared = mj_fa2_backward_smem(d);
    } else {
        snprintf(l.kernel, sizeof l.kernel, "megatron_flash_attention_backward_d%d", d);
        l.gridX = (sk + FA_BK - 1) / FA_BK;
        l.block = FA_WARPS * 32;
        l.shared = (4 * FA_BK * (d + 1) + 2 * FA_WARPS * d) * 4;
    }
    l.gridY = (long long)B * ng;
    return l;
}
