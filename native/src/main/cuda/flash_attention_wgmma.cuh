// FlashAttention forward and backward on Hopper's warpgroup tensor-core instructions (wgmma, sm_90a):
// the FlashAttention-3 direction for the d 128 shapes where the mma.sync kernels (fa2) reach only
// half of PyTorch's SDPA on the H100 (bench/results/gpu-vs-pytorch.md).
//
// NOT YET IN THE FATBIN. It was written on a machine without a GPU: nvcc and ptxas check it here
// (native/src/test/cuda/build-check.sh prints its registers and spills, and whether ptxas had to
// serialise the wgmma), and native/src/test/cuda/fa_host_emulation.cpp runs this source on the CPU
// (emulated wgmma, shuffles, barriers, shared memory) against fp64; it has never run on a GPU.
// flash_attention_check.cu checks it against the fp64 reference and times it as the variants "wg*"
// (forward wg<warpgroups>n<keys>[p], backward wg<warpgroups>b64) when built for sm_90a. It joins
// megatron_kernels.cu, the launch plans and CudaAttention.java only after that passes on an H100.
//
// Forward (the backward's comment is at backward below). Same contract as fa2::forward (Megatron's
// layouts, QkvStrides, causal with the sk - s shift, key lengths, lse), no dropout. Block: NWG
// warpgroups of 128 threads, each owning 64 query rows (BM = 64 NWG); key blocks of BN keys,
// double-buffered with cp.async (no TMA: no tensor maps to build on the host, and the loads are the
// same as fa2's). Per key block and warpgroup:
//   S = Q K^T     D / 16 wgmma m64nBNk16, Q and K from shared memory (K-major)
//   softmax       in registers, fa2's online softmax on the accumulator fragments
//   O += P V      BN / 16 wgmma m64nDk16, P from registers (the accumulator layout is the A
//                 fragment's, as with mma.sync), V from shared memory (MN-major: stored [key][d])
// Tiles live in wgmma's 128-byte-swizzle layout (sw128 below), whose 1024-byte atoms must be
// 1024-byte aligned: the kernel aligns the dynamic shared memory itself (FA3_SMEM_SLACK extra bytes).
#pragma once
#include "wgmma.cuh"

namespace fa3 {

using fa2::Elem;
using fa2::QkvStrides;

constexpr int FA3_SMEM_SLACK = 1024;
// stages of K and V: two, three when P V runs across the next block's load (pipe)
__host__ __device__ constexpr int forward_stages(bool pipe) { return pipe ? 3 : 2; }
// dynamic shared memory: Q [BM][D], the stages of K and V [BN][D], 16-bit, plus the alignment slack
__host__ __device__ constexpr int forward_smem(int d, int nwg, int bn, bool pipe) {
    return (64 * nwg * d + 2 * forward_stages(pipe) * bn * d) * 2 + FA3_SMEM_SLACK;
}
// backward: query rows per step
constexpr int BWD_BM = 64;
// backward dynamic shared memory: K, V [BN][D] (BN = 64 nwg keys); 2 stages of Q and dO [BM][D];
// dS^T [BN][BM]; 2 stages of lse and delta [BM] (fp32); the alignment slack
__host__ __device__ constexpr int backward_smem(int d, int nwg) {
    return (2 * 64 * nwg * d + 4 * BWD_BM * d + 64 * nwg * BWD_BM) * 2 + 4 * BWD_BM * 4 + FA3_SMEM_SLACK;
}

// MJ_FA_HOST_EMULATION: native/src/test/cuda/fa_host_emulation.cpp compiles the kernels' bodies
// for the CPU, with its own wgmma, shuffles, barriers and shared memory in place of the hardware's.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL) || defined(MJ_FA_HOST_EMULATION)

// Byte offset of 16-byte chunk c of row r in a [ROWS][D] 16-bit tile in the 128-byte-swizzle
// layout: D cut into 64-element panels [ROWS][64] (128-byte rows), chunk c % 8 stored at
// (c % 8) ^ (r % 8). K-major (Q, K) and MN-major (V) operands use the same bytes; only the
// descriptors differ.
template <int ROWS>
__device__ __forceinline__ uint32_t sw128(int r, int c) {
    return (uint32_t)((c >> 3) * ROWS * 128 + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}

// Shared-memory matrix descriptor: start address, leading and stride byte offsets (all >> 4),
// 128-byte swizzle (layout type 1 in bits 62-63), base offset 0 (1024-byte-aligned atoms).
__device__ __forceinline__ uint64_t smem_desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
    return (uint64_t)((addr >> 4) & 0x3FFF) | (uint64_t)((lbo >> 4) & 0x3FFF) << 16 |
           (uint64_t)((sbo >> 4) & 0x3FFF) << 32 | 1ull << 62;
}
// K-major operand (rows of the M or N side, 16 elements of K at kk): rows in 8-row groups 1024 B
// apart (SBO); the K step moves the start within the swizzled 128-byte row (32 B per 16 elements)
// or to the next 64-element panel. LBO is unused for swizzled K-major layouts (1 by convention).
template <int ROWS>
__device__ __forceinline__ uint64_t desc_k_major(uint32_t tile, int row0, int kk) {
    return smem_desc(tile + (kk >> 2) * ROWS * 128 + row0 * 128 + (kk & 3) * 32, 16, 1024);
}
// MN-major operand (V: K = keys kk * 16 .. + 15, N = columns from col0 on): 8-row groups 1024 B
// apart (SBO), 64-element panels ROWS * 128 B apart (LBO); a col0 inside a panel moves the start
// within the swizzled row, as the K step of desc_k_major does.
template <int ROWS>
__device__ __forceinline__ uint64_t desc_mn_major(uint32_t tile, int kk, int col0 = 0) {
    return smem_desc(tile + (col0 >> 6) * ROWS * 128 + (col0 & 63) * 2 + kk * 16 * 128, ROWS * 128, 1024);
}

#if !defined(MJ_FA_HOST_EMULATION)
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// until at most N of this warp's newest wgmma groups are still running (older ones are done)
template <int N>
__device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }
// cp.async (generic proxy) writes made visible to wgmma's reads (async proxy)
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Keeps the compiler from moving reads or writes of accumulator registers across the asynchronous
// window (between the wgmma and its wait): the registers are "changed" here, in program order.
template <int N>
__device__ __forceinline__ void pin(float* r) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(r[i])::"memory");
}
#endif

template <int D, bool BF16, int NWG, int BN, bool PIPE>
__device__ __forceinline__ void forward(const void* qv, const void* kv, const void* vv, void* outv, float* lse,
                                        i64 s, i64 sk, int B, int np, int ng, float scale, int causal,
                                        const int* keyLengths, QkvStrides st) {
    using namespace fa2;
    typedef typename Elem<BF16>::T T;
    constexpr int BM = 64 * NWG, NT = 128 * NWG, STAGES = forward_stages(PIPE);
    constexpr int CH = D / 8, KT = D / 16, SN = BN / 8, ON = D / 8, TILE = BN * D * 2;
    static_assert(D % 64 == 0 && (BN == 64 || BN == 128), "d 64 or 128; key blocks of 64 or 128");
    extern __shared__ unsigned char fa3_smem[];
    const uint32_t sQ = (smem_u32(fa3_smem) + FA3_SMEM_SLACK - 1) & ~(uint32_t)(FA3_SMEM_SLACK - 1);
    const uint32_t sK = sQ + BM * D * 2;
    const uint32_t sV = sK + STAGES * TILE;

    const int tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int bh = blockIdx.y, b = bh / np, h = bh % np, rep = np / ng, grp = h / rep;
    const i64 m0 = (i64)(gridDim.x - 1 - blockIdx.x) * BM;  // the longest causal rows start first
    const i64 shift = sk - s;
    const i64 keyEnd = fa_key_end(keyLengths, b, sk);
    const i64 qStride = (i64)B * st.qTok, kStride = (i64)B * st.kTok, oStride = (i64)B * np * D;
    const T* qb = static_cast<const T*>(qv) + st.query(b, h, rep, D);
    const T* kb = static_cast<const T*>(kv) + st.key(b, grp);
    const T* vb = static_cast<const T*>(vv) + st.key(b, grp);
    const i64 lastQ = min(m0 + BM, s) - 1;
    const i64 kvEnd = causal ? min(keyEnd, lastQ + shift + 1) : keyEnd;
    const int nBlocks = kvEnd > 0 ? (int)((kvEnd + BN - 1) / BN) : 0;
    const float sl2 = scale * LOG2E;
    const i64 g0 = m0 + wg * 64;          // the warpgroup's first row in the sequence
    const i64 gSee = g0 + 63 + shift;     // causal: the last key any of its rows sees
    const i64 w0 = g0 + warp * 16;        // this warp's first row

    auto loadKV = [&](int n, int stage) {
#pragma unroll
        for (int e = tid; e < BN * CH; e += NT) {
            const int r = e / CH, c = e % CH;
            const i64 j = (i64)n * BN + r;
            const bool ok = j < keyEnd;  // keys past keyLengths (or sk) read as zeros
            const i64 off = ok ? j * kStride + c * 8 : 0;
            cp_async16(sK + stage * TILE + sw128<BN>(r, c), kb + off, ok);
            cp_async16(sV + stage * TILE + sw128<BN>(r, c), vb + off, ok);
        }
    };

    float oacc[ON][4];
    float sacc[SN][4];     // S, then P in place
    uint32_t pf[BN / 16][4];  // P as the A operand of O += P V
    float mRow[2] = {-INFINITY, -INFINITY}, lRow[2] = {0.0f, 0.0f}, alpha[2];  // rows g and g + 8 of the warp
#pragma unroll
    for (int i = 0; i < ON; i++) oacc[i][0] = oacc[i][1] = oacc[i][2] = oacc[i][3] = 0.0f;

    // S = Q K^T (64 rows x BN keys per warpgroup), raw; one commit group
    auto issueScores = [&](uint32_t kS) {
#pragma unroll
        for (int kk = 0; kk < KT; kk++)
            wgmma_ss<BN, BF16>(&sacc[0][0], desc_k_major<BM>(sQ, wg * 64, kk), desc_k_major<BN>(kS, 0, kk), kk > 0);
        wgmma_commit();
    };
    // O += P V; one commit group
    auto issuePV = [&](uint32_t vS) {
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) wgmma_rs<D, BF16>(&oacc[0][0], pf[kk], desc_mn_major<BN>(vS, kk));
        wgmma_commit();
    };
    // mask, then fa2's online softmax on the fragments (a quad of lanes shares a row): P in sacc,
    // the running max and sum updated, alpha = the factor O still has to be scaled by. Leaves oacc alone.
    auto softmax = [&](i64 n0) {
        if (n0 + BN > keyEnd || (causal && n0 + BN - 1 > g0 + shift)) {
#pragma unroll
            for (int nt = 0; nt < SN; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const i64 j = n0 + nt * 8 + 2 * t + (e & 1);
                    const i64 i = w0 + g + (e < 2 ? 0 : 8);
                    if (j >= keyEnd || (causal && j > i + shift)) sacc[nt][e] = -INFINITY;
                }
        }
#pragma unroll
        for (int rh = 0; rh < 2; rh++) {
            float mx = -INFINITY;
#pragma unroll
            for (int nt = 0; nt < SN; nt++) mx = fmaxf(mx, fmaxf(sacc[nt][2 * rh], sacc[nt][2 * rh + 1]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float mNew = fmaxf(mRow[rh], mx);
            const float mS = mNew == -INFINITY ? 0.0f : mNew * sl2;  // nothing visible yet: keep everything 0
            alpha[rh] = ex2(mRow[rh] * sl2 - mS);
            mRow[rh] = mNew;
            float sum = 0.0f;
#pragma unroll
            for (int nt = 0; nt < SN; nt++) {
                const float p0 = ex2(fmaf(sacc[nt][2 * rh], sl2, -mS));
                const float p1 = ex2(fmaf(sacc[nt][2 * rh + 1], sl2, -mS));
                sum += p0 + p1;
                sacc[nt][2 * rh] = p0;
                sacc[nt][2 * rh + 1] = p1;
            }
            lRow[rh] = lRow[rh] * alpha[rh] + sum;
        }
    };
    // O *= alpha, and P packed into the A fragments (the accumulator layout is the A fragment's)
    auto rescaleAndPack = [&]() {
#pragma unroll
        for (int ot = 0; ot < ON; ot++) {
            oacc[ot][0] *= alpha[0];
            oacc[ot][1] *= alpha[0];
            oacc[ot][2] *= alpha[1];
            oacc[ot][3] *= alpha[1];
        }
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            pf[kk][0] = Elem<BF16>::pack(sacc[2 * kk][0], sacc[2 * kk][1]);
            pf[kk][1] = Elem<BF16>::pack(sacc[2 * kk][2], sacc[2 * kk][3]);
            pf[kk][2] = Elem<BF16>::pack(sacc[2 * kk + 1][0], sacc[2 * kk + 1][1]);
            pf[kk][3] = Elem<BF16>::pack(sacc[2 * kk + 1][2], sacc[2 * kk + 1][3]);
        }
    };

    if (nBlocks > 0) {
#pragma unroll
        for (int e = tid; e < BM * CH; e += NT) {
            const int r = e / CH, c = e % CH;
            const i64 i = m0 + r;
            const bool ok = i < s;
            cp_async16(sQ + sw128<BM>(r, c), qb + (ok ? i * qStride + c * 8 : 0), ok);
        }
        loadKV(nBlocks - 1, 0);
        cp_async_commit();
    }

    // PIPE: block it's P V is issued in iteration it + 1 right after its S = Q K^T, and runs while the
    // softmax of block it + 1 does (FlashAttention-3's intra-warpgroup overlap). Its V stage must then
    // outlive the next load, hence three stages. pending: a P V not issued yet (P in pf, V in pvStage).
    bool pending = false;
    int pvStage = 0;
    if constexpr (PIPE) {
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) pf[kk][0] = pf[kk][1] = pf[kk][2] = pf[kk][3] = 0u;
    }
    for (int it = 0; it < nBlocks; it++) {
        const int n = nBlocks - 1 - it, stage = it % STAGES;
        cp_async_wait<0>();
        fence_proxy_async();
        __syncthreads();  // block it landed and is visible to wgmma; the stage loaded next is read by no one
        if (it + 1 < nBlocks) loadKV(n - 1, (it + 1) % STAGES);
        cp_async_commit();

        const i64 n0 = (i64)n * BN;
        // warpgroup-uniform: nothing of this block is visible. Causal blocks only turn visible going
        // down, so a pending P V never waits across a skipped block.
        if (g0 >= s || (causal && n0 > gSee)) continue;

        wgmma_fence();
        issueScores(sK + stage * TILE);
        if constexpr (PIPE) {
            // unconditionally, so that no wgmma sits on a branch (ptxas serialises those): before the
            // first visible block, P is 0 and any landed V stage adds exactly 0
            issuePV(sV + (pending ? pvStage : stage) * TILE);
            wgmma_wait<1>();  // S done; P V may still run
        } else {
            wgmma_wait<0>();
        }
        pin<SN * 4>(&sacc[0][0]);
        softmax(n0);
        if constexpr (PIPE) {
            wgmma_wait<0>();
            pin<ON * 4>(&oacc[0][0]);
        }
        rescaleAndPack();
        if constexpr (PIPE) {
            pending = true;
            pvStage = stage;
        } else {
            wgmma_fence();
            issuePV(sV + stage * TILE);
            wgmma_wait<0>();
            pin<ON * 4>(&oacc[0][0]);
        }
    }
    if (PIPE && pending) {
        wgmma_fence();
        issuePV(sV + pvStage * TILE);
        wgmma_wait<0>();
        pin<ON * 4>(&oacc[0][0]);
    }
    cp_async_wait<0>();

    // O / l straight from the accumulators: a quad writes 16 contiguous bytes of a row per n8 tile
    T* ob = static_cast<T*>(outv) + ((i64)b * np + h) * D;
#pragma unroll
    for (int rh = 0; rh < 2; rh++) {
        float l = lRow[rh];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        const bool empty = !(l > 0.0f);
        const float inv = empty ? 0.0f : 1.0f / l;
        const i64 i = w0 + g + 8 * rh;
        if (i >= s) continue;
        if (t == 0) lse[((i64)b * np + h) * s + i] = empty ? -INFINITY : mRow[rh] * sl2 * LN2 + logf(l);
        uint32_t* row = reinterpret_cast<uint32_t*>(ob + i * oStride);
#pragma unroll
        for (int ot = 0; ot < ON; ot++)
            row[ot * 4 + t] = Elem<BF16>::pack(oacc[ot][2 * rh] * inv, oacc[ot][2 * rh + 1] * inv);
    }
}


// Backward, per block of BN = 64 NWG keys (warpgroup w owns keys n0 + 64 w ..), walking the query
// blocks of BM rows that see them, then the group's other heads, as fa2::backward does. Per step and
// warpgroup:
//   S^T = K Q^T, dP^T = V dO^T    wgmma SS, K, V, Q, dO K-major: 64 keys x BM queries
//   P^T and dS^T = P^T (dP^T - delta) in registers (fa2's)
//   dV += P^T dO, dK += dS^T Q    wgmma RS: A from those accumulators, dO and Q MN-major
//   dQ (BM rows, this warpgroup's D / NWG columns) = dS K  wgmma SS, both MN-major: dS^T stored
//                                  [keys][queries] in shared memory is dS with queries contiguous
// dQ goes to the fp32 workspace by red.global.add.v2 (fa2's DQM 1); dK (times scale) and dV leave
// from the accumulators at the end.
template <int D, bool BF16, int NWG>
__device__ __forceinline__ void backward(const void* qv, const void* kv, const void* vv, const void* dov,
                                         const float* lse, const float* delta, float* dq, void* dkv, void* dvv,
                                         i64 s, i64 sk, int B, int np, int ng, float scale, int causal,
                                         const int* keyLengths, QkvStrides st) {
    using namespace fa2;
    typedef typename Elem<BF16>::T T;
    constexpr int BM = BWD_BM, BN = 64 * NWG, NT = 128 * NWG;
    constexpr int CH = D / 8, KT = D / 16, QN = BM / 8, ON = D / 8, DQN = D / NWG, QTILE = BM * D * 2;
    constexpr int DQC = DQN > 64 ? 64 : DQN;  // dQ columns per product
    static_assert(D % 64 == 0 && (DQN == 32 || DQN == 64 || DQN == 128), "d 64 or 128");
    extern __shared__ unsigned char fa3_smem[];
    const uint32_t base = smem_u32(fa3_smem);
    const uint32_t sK = (base + FA3_SMEM_SLACK - 1) & ~(uint32_t)(FA3_SMEM_SLACK - 1);
    const uint32_t sV = sK + BN * D * 2;
    const uint32_t sQ = sV + BN * D * 2;   // [2][BM][D]
    const uint32_t sDO = sQ + 2 * QTILE;   // [2][BM][D]
    const uint32_t sDS = sDO + 2 * QTILE;  // dS^T [BN][BM]
    float* sLse = reinterpret_cast<float*>(fa3_smem + (sDS + BN * BM * 2 - base));  // [2][BM]
    float* sDelta = sLse + 2 * BM;                                                 // [2][BM]

    const int tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int bg = blockIdx.y, b = bg / ng, grp = bg % ng, rep = np / ng;
    // positions fit in int (CudaAttention checks s, sk < 2^31 - 2^16); only element offsets are 64-bit
    const int n0 = blockIdx.x * BN;
    const int shift = (int)(sk - s);
    const int keyEnd = (int)fa_key_end(keyLengths, b, sk);
    const i64 qStride = (i64)B * st.qTok, kStride = (i64)B * st.kTok, oStride = (i64)B * np * D;
    const i64 kOff = st.key(b, grp);
    const float sl2 = scale * LOG2E;

    // query blocks that see a key of this block: causal row i sees key j iff i >= j - shift
    const int firstQ = causal ? max(0, n0 - shift) : 0;
    const int mEnd = (int)((s + BM - 1) / BM);
    const int mStart = min(firstQ / BM, mEnd);
    const int perHead = n0 < keyEnd ? mEnd - mStart : 0;
    const int total = rep * perHead;

#pragma unroll
    for (int e = tid; e < BN * CH; e += NT) {
        const int r = e / CH, c = e % CH;
        const int j = n0 + r;
        const bool ok = j < keyEnd;
        const i64 off = kOff + (ok ? (i64)j * kStride + c * 8 : 0);
        cp_async16(sK + sw128<BN>(r, c), static_cast<const T*>(kv) + off, ok);
        cp_async16(sV + sw128<BN>(r, c), static_cast<const T*>(vv) + off, ok);
    }
    auto loadQ = [&](int h, int m0, int stage) {
        const i64 qOff = st.query(b, h, rep, D), oOff = ((i64)b * np + h) * D;
#pragma unroll
        for (int e = tid; e < BM * CH; e += NT) {
            const int r = e / CH, c = e % CH;
            const i64 i = m0 + r;
            const bool ok = i < s;
            cp_async16(sQ + stage * QTILE + sw128<BM>(r, c),
                       static_cast<const T*>(qv) + qOff + (ok ? i * qStride + c * 8 : 0), ok);
            cp_async16(sDO + stage * QTILE + sw128<BM>(r, c),
                       static_cast<const T*>(dov) + oOff + (ok ? i * oStride + c * 8 : 0), ok);
        }
        for (int e = tid; e < BM; e += NT) {
            const i64 i = m0 + e;
            float L = INFINITY, dl = 0.0f;  // rows past s and fully masked rows (lse -inf): P = 0
            if (i < s) {
                const i64 row = ((i64)b * np + h) * s + i;
                const float l = lse[row];
                L = l == -INFINITY ? INFINITY : l * LOG2E;
                dl = delta[row];
            }
            sLse[stage * BM + e] = L;
            sDelta[stage * BM + e] = dl;
        }
    };
    int h = grp * rep, m0 = mStart * BM;  // the query block of this step; steps walk m, then h
    if (total > 0) loadQ(h, m0, 0);
    cp_async_commit();

    float dKacc[ON][4], dVacc[ON][4];
#pragma unroll
    for (int i = 0; i < ON; i++) {
        dKacc[i][0] = dKacc[i][1] = dKacc[i][2] = dKacc[i][3] = 0.0f;
        dVacc[i][0] = dVacc[i][1] = dVacc[i][2] = dVacc[i][3] = 0.0f;
    }
    const int kRow = wg * 64 + warp * 16 + g;  // this thread's key rows of S^T in the block: kRow, kRow + 8
    const int key0 = n0 + kRow, key1 = key0 + 8;

    for (int it = 0; it < total; it++) {
        const int stage = it & 1;
        cp_async_wait<0>();
        fence_proxy_async();
        __syncthreads();  // this stage (and K, V) landed; everyone is done with the other stage and with dS^T
        if (it + 1 < total) {
            const bool wrap = m0 + BM >= mEnd * BM;
            loadQ(wrap ? h + 1 : h, wrap ? mStart * BM : m0 + BM, stage ^ 1);
        }
        cp_async_commit();
        const uint32_t qS = sQ + stage * QTILE, doS = sDO + stage * QTILE;
        const float* L = sLse + stage * BM;
        const float* De = sDelta + stage * BM;
        const bool needMask = n0 + BN > keyEnd || (causal && n0 + BN - 1 > m0 + shift);

        // S^T = K Q^T and dP^T = V dO^T (this warpgroup's 64 keys x BM queries)
        float sacc[QN][4], dpacc[QN][4];
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < KT; kk++)
            wgmma_ss<BM, BF16>(&sacc[0][0], desc_k_major<BN>(sK, wg * 64, kk), desc_k_major<BM>(qS, 0, kk), kk > 0);
#pragma unroll
        for (int kk = 0; kk < KT; kk++)
            wgmma_ss<BM, BF16>(&dpacc[0][0], desc_k_major<BN>(sV, wg * 64, kk), desc_k_major<BM>(doS, 0, kk), kk > 0);
        wgmma_commit();
        wgmma_wait<0>();
        pin<QN * 4>(&sacc[0][0]);
        pin<QN * 4>(&dpacc[0][0]);
        // P^T, then dS^T = P^T (dP^T - delta)
#pragma unroll
        for (int nt = 0; nt < QN; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int qc = nt * 8 + 2 * t + (e & 1);
                float p = ex2(sacc[nt][e] * sl2 - L[qc]);
                if (needMask) {
                    const int j = e < 2 ? key0 : key1;
                    if (j >= keyEnd || (causal && j > m0 + qc + shift)) p = 0.0f;
                }
                sacc[nt][e] = p;
                dpacc[nt][e] = p * (dpacc[nt][e] - De[qc]);
            }
        }
        // A fragments of P^T and dS^T; dS^T also to shared memory (rows = keys, queries contiguous) for dQ
        uint32_t ap[BM / 16][4], as[BM / 16][4];
#pragma unroll
        for (int kk = 0; kk < BM / 16; kk++) {
            ap[kk][0] = Elem<BF16>::pack(sacc[2 * kk][0], sacc[2 * kk][1]);
            ap[kk][1] = Elem<BF16>::pack(sacc[2 * kk][2], sacc[2 * kk][3]);
            ap[kk][2] = Elem<BF16>::pack(sacc[2 * kk + 1][0], sacc[2 * kk + 1][1]);
            ap[kk][3] = Elem<BF16>::pack(sacc[2 * kk + 1][2], sacc[2 * kk + 1][3]);
            as[kk][0] = Elem<BF16>::pack(dpacc[2 * kk][0], dpacc[2 * kk][1]);
            as[kk][1] = Elem<BF16>::pack(dpacc[2 * kk][2], dpacc[2 * kk][3]);
            as[kk][2] = Elem<BF16>::pack(dpacc[2 * kk + 1][0], dpacc[2 * kk + 1][1]);
            as[kk][3] = Elem<BF16>::pack(dpacc[2 * kk + 1][2], dpacc[2 * kk + 1][3]);
            sts_u32(sDS + sw128<BN>(kRow, 2 * kk) + 4 * t, as[kk][0]);
            sts_u32(sDS + sw128<BN>(kRow + 8, 2 * kk) + 4 * t, as[kk][1]);
            sts_u32(sDS + sw128<BN>(kRow, 2 * kk + 1) + 4 * t, as[kk][2]);
            sts_u32(sDS + sw128<BN>(kRow + 8, 2 * kk + 1) + 4 * t, as[kk][3]);
        }
        // dV += P^T dO ; dK += dS^T Q
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < BM / 16; kk++) wgmma_rs<D, BF16>(&dVacc[0][0], ap[kk], desc_mn_major<BM>(doS, kk));
#pragma unroll
        for (int kk = 0; kk < BM / 16; kk++) wgmma_rs<D, BF16>(&dKacc[0][0], as[kk], desc_mn_major<BM>(qS, kk));
        wgmma_commit();
        fence_proxy_async();  // the dS^T stores, visible to wgmma
        __syncthreads();      // every warpgroup's dS^T is in shared memory
        // dQ[m0 .., columns wg DQN ..] = dS K over the block's BN keys, at most 64 columns at a time
        // (a 128-column accumulator beside dK and dV spills at one warpgroup)
        const int i0 = m0 + warp * 16 + g, i1 = i0 + 8;
        float* dq0 = dq + (((i64)i0 * B + b) * np + h) * D + wg * DQN + 2 * t;
        float* dq1 = dq0 + (i64)8 * B * np * D;
#pragma unroll
        for (int c0 = 0; c0 < DQN; c0 += DQC) {
            float dqacc[DQC / 8][4];
            wgmma_fence();  // dqacc's registers were last read by the reductions before
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++)
                wgmma_ss_tt<DQC, BF16>(&dqacc[0][0], desc_mn_major<BN>(sDS, kk), desc_mn_major<BN>(sK, kk, wg * DQN + c0),
                                       kk > 0);
            wgmma_commit();
            wgmma_wait<0>();  // (the first time also dV and dK)
            pin<DQC / 2>(&dqacc[0][0]);
#pragma unroll
            for (int nt = 0; nt < DQC / 8; nt++) {
                if (i0 < s) red_add_v2(dq0 + c0 + nt * 8, scale * dqacc[nt][0], scale * dqacc[nt][1]);
                if (i1 < s) red_add_v2(dq1 + c0 + nt * 8, scale * dqacc[nt][2], scale * dqacc[nt][3]);
            }
        }
        pin<ON * 4>(&dVacc[0][0]);
        pin<ON * 4>(&dKacc[0][0]);
        m0 += BM;
        if (m0 >= mEnd * BM) {
            m0 = mStart * BM;
            h++;
        }
    }
    cp_async_wait<0>();

    // dK (times scale) and dV straight from the accumulators; keys past keyEnd got P = 0: zeros
    T* dkb = static_cast<T*>(dkv) + kOff;
    T* dvb = static_cast<T*>(dvv) + kOff;
#pragma unroll
    for (int rh = 0; rh < 2; rh++) {
        const int j = (rh == 0 ? key0 : key1);
        if (j >= sk) continue;
        uint32_t* kr = reinterpret_cast<uint32_t*>(dkb + (i64)j * kStride);
        uint32_t* vr = reinterpret_cast<uint32_t*>(dvb + (i64)j * kStride);
#pragma unroll
        for (int ot = 0; ot < ON; ot++) {
            kr[ot * 4 + t] = Elem<BF16>::pack(dKacc[ot][2 * rh] * scale, dKacc[ot][2 * rh + 1] * scale);
            vr[ot * 4 + t] = Elem<BF16>::pack(dVacc[ot][2 * rh], dVacc[ot][2 * rh + 1]);
        }
    }
}

#endif  // __CUDA_ARCH_FEAT_SM90_ALL || MJ_FA_HOST_EMULATION

#if !defined(MJ_FA_HOST_EMULATION)

// Same argument list as the fa2 kernels (CudaAttention's); keyStarts and the dropout arguments are ignored (the
// fa3 kernels have neither documents nor dropout yet).
template <int D, bool BF16, int NWG, int BN, bool PIPE>
__global__ void __launch_bounds__(NWG * 128, 1)
    forward_kernel(const void* q, const void* k, const void* v, int dt, void* out, float* lse, i64 s, i64 sk, int B,
                   int np, int ng, float scale, int causal, const int* keyLengths, const int* keyStarts, int qTok,
                   int qGrp, int kTok, int kGrp, float dropP, float dropScale, unsigned long long seed,
                   unsigned long long offset) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    forward<D, BF16, NWG, BN, PIPE>(q, k, v, out, lse, s, sk, B, np, ng, scale, causal, keyLengths,
                              QkvStrides{qTok, qGrp, kTok, kGrp});
#else
    __trap();  // compiled without sm_90a: callers check built_for_sm90a first
#endif
}

template <int D, bool BF16, int NWG>
__global__ void __launch_bounds__(NWG * 128, 1)
    backward_kernel(const void* q, const void* k, const void* v, int dt, const void* dOut, const float* lse,
                    const float* delta, float* dq, void* dk, void* dv, i64 s, i64 sk, int B, int np, int ng,
                    float scale, int causal, const int* keyLengths, const int* keyStarts, int qTok, int qGrp,
                    int kTok, int kGrp, float dropP, float dropScale, unsigned long long seed, unsigned long long offset) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    backward<D, BF16, NWG>(q, k, v, dOut, lse, delta, dq, dk, dv, s, sk, B, np, ng, scale, causal, keyLengths,
                           QkvStrides{qTok, qGrp, kTok, kGrp});
#else
    __trap();  // compiled without sm_90a: callers check built_for_sm90a first
#endif
}

// Writes 1 where the code the runtime chose for this device is sm_90a (every kernel of one binary
// comes from the same cubin), else 0.
__global__ void built_for_sm90a(int* out) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    *out = 1;
#else
    *out = 0;
#endif
}

#endif  // !MJ_FA_HOST_EMULATION

}  // namespace fa3
