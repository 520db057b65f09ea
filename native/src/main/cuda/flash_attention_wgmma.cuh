// FlashAttention forward on Hopper's warpgroup tensor-core instructions (wgmma, sm_90a): the
// FlashAttention-3 direction for the d 128 shapes where the mma.sync kernel (fa2::forward) reaches
// only half of PyTorch's SDPA on the H100 (bench/results/gpu-vs-pytorch.md).
//
// NOT YET IN THE FATBIN. It was written on a machine without a GPU: nvcc and ptxas check it here
// (native/src/test/cuda/build-check.sh prints its registers and spills, and whether ptxas had to
// serialise the wgmma), and playground/flash_attention_wgmma_sim.py models its shared-memory layout,
// descriptors, fragments and stages in NumPy against an fp64 reference; it has never run on a GPU.
// flash_attention_check.cu checks it against the fp64 reference and times it as the variants "wg*"
// when built for sm_90a; it joins megatron_kernels.cu and the launch plans (and CudaAttention.java)
// only after that passes on an H100.
//
// Same contract as fa2::forward (Megatron's layouts, QkvStrides, causal with sk - s shift, key
// lengths, lse), no dropout. Block: NWG warpgroups of 128 threads, each owning 64 query rows
// (BM = 64 NWG); key blocks of BN keys, double-buffered with cp.async (no TMA: no tensor maps to
// build on the host, and the loads are the same as fa2's). Per key block and warpgroup:
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

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

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
// MN-major operand (V: K = keys kk * 16 .. + 15, N = all of D): 8-key groups 1024 B apart (SBO),
// 64-element panels of D ROWS * 128 B apart (LBO).
template <int ROWS>
__device__ __forceinline__ uint64_t desc_mn_major(uint32_t tile, int kk) {
    return smem_desc(tile + kk * 16 * 128, ROWS * 128, 1024);
}

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

template <int N, bool BF16>
__device__ __forceinline__ void mma_ss(float* d, uint64_t a, uint64_t b, int accumulate) {
    static_assert(N == 64 || N == 128, "wgmma.cuh has n64 and n128");
    if constexpr (N == 64 && BF16) wgmma_ss_n64_bf16(d, a, b, accumulate);
    else if constexpr (N == 64) wgmma_ss_n64_f16(d, a, b, accumulate);
    else if constexpr (BF16) wgmma_ss_n128_bf16(d, a, b, accumulate);
    else wgmma_ss_n128_f16(d, a, b, accumulate);
}
template <int N, bool BF16>
__device__ __forceinline__ void mma_rs(float* d, const uint32_t* a, uint64_t b) {
    static_assert(N == 64 || N == 128, "wgmma.cuh has n64 and n128");
    if constexpr (N == 64 && BF16) wgmma_rs_n64_bf16(d, a, b);
    else if constexpr (N == 64) wgmma_rs_n64_f16(d, a, b);
    else if constexpr (BF16) wgmma_rs_n128_bf16(d, a, b);
    else wgmma_rs_n128_f16(d, a, b);
}

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
            mma_ss<BN, BF16>(&sacc[0][0], desc_k_major<BM>(sQ, wg * 64, kk), desc_k_major<BN>(kS, 0, kk), kk > 0);
        wgmma_commit();
    };
    // O += P V; one commit group
    auto issuePV = [&](uint32_t vS) {
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) mma_rs<D, BF16>(&oacc[0][0], pf[kk], desc_mn_major<BN>(vS, kk));
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

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

// Same argument list as the fa2 kernels (CudaAttention's), dropout arguments ignored (none here).
template <int D, bool BF16, int NWG, int BN, bool PIPE>
__global__ void __launch_bounds__(NWG * 128, 1)
    forward_kernel(const void* q, const void* k, const void* v, int dt, void* out, float* lse, i64 s, i64 sk, int B,
                   int np, int ng, float scale, int causal, const int* keyLengths, int qTok, int qGrp, int kTok, int kGrp,
                   float dropP, float dropScale, unsigned long long seed, unsigned long long offset) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    forward<D, BF16, NWG, BN, PIPE>(q, k, v, out, lse, s, sk, B, np, ng, scale, causal, keyLengths,
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

}  // namespace fa3
