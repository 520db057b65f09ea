// FlashAttention-2 on tensor cores (mma.sync): the device code of the fa2 kernels, included by
// flash_attention.cu (which instantiates the kernels) and, with MJ_FA_HOST_EMULATION, by the CPU emulation
// native/src/test/cuda/fa_host_emulation.cpp, which supplies its own versions of the PTX primitives (the
// block under !MJ_FA_HOST_EMULATION) and runs the rest as written.
#pragma once
#if !defined(MJ_FA_HOST_EMULATION)
#include "common.cuh"
#endif

// Masks shared by every attention kernel (Backend#attentionForward). Keys j >= the key length of batch
// entry b (keyLengths, I32 [b], may be null) are hidden.
__device__ __forceinline__ i64 fa_key_end(const int* keyLengths, int b, i64 sk) {
    if (keyLengths == nullptr) return sk;
    i64 len = keyLengths[b];
    return len < 0 ? 0 : (len < sk ? len : sk);
}
// The first key query i of batch entry b sees (keyStarts, I32 [b, s], may be null).
__device__ __forceinline__ i64 fa_key_start(const int* keyStarts, int b, i64 s, i64 i) {
    return keyStarts == nullptr ? 0 : keyStarts[(i64)b * s + i];
}

// =====================================================================================================
// Tensor-core FlashAttention-2 (Dao 2023) for BF16 and F16 with head dim 64 or 128.
//
// Same semantics and argument lists as the CUDA-core kernels of flash_attention.cu (dt is ignored:
// the dtype is in the kernel name), so CudaAttention passes the same arguments to either family.
// Needs q, k, v, out, dOut, dk, dv 16-byte aligned and scale > 0 (CudaAttention checks; otherwise it
// uses the CUDA-core kernels).
//
// Products are warp-level mma.sync.m16n8k16 (fp32 accumulate; sm_80 and sm_90), fragments read
// with ldmatrix from shared tiles whose 16-byte chunks are XOR-swizzled by row (no bank conflicts
// for ldmatrix, cp.async or the fragment stores), tiles loaded with cp.async (16 B, zero-fill
// past the last visible key / query row) and double-buffered. Softmax in fp32 registers with
// ex2.approx, the scale folded into log2(e); masks (causal, keyLengths, sk) are evaluated only
// on the key blocks that need them. Documents (keyStarts) are read only by the DOCS instantiations
// (the _docs twins), so the other kernels keep their registers: the forward starts at the lowest key
// block any of its rows sees and masks the blocks below its rows' highest start; the backward stages
// the key starts of each query block beside lse and delta, skips the steps whose rows all start after
// the key block, and masks the others.
//
// Forward: block of FA2_FWD_WARPS(D) warps owns 16 * FA2_FWD_MT(D) query rows per warp of one
//   (b, head); Q fragments stay in registers (FA2_FWD_QREG) or are re-read from shared memory;
//   key blocks of FA2_FWD_BN(D) keys are walked from the last visible one down (the masked blocks
//   come first; a warp skips blocks fully masked for its rows). P stays in registers (the S
//   accumulators repacked as the A operand of P V). out is staged through shared memory and
//   written with 16-byte stores.
// Backward: block of FA2_BWD_WARPS(D) warps owns 16 keys per warp of one (b, kv group) and walks
//   every query block of every query head of the group (GQA/MQA: dK, dV sum over the group's
//   heads in registers, no atomics). Per query block: S^T = K Q^T, P^T = exp(S^T - lse),
//   dP^T = V dO^T, dS^T = P^T (dP^T - delta); dV += P^T dO, dK += dS^T Q in registers;
//   dS^T goes through shared memory and dQ += scale dS K is added with fp32 atomics (scalar or
//   sm_90 vector reductions, FA2_BWD_DQ) into the F32 workspace dq (cast afterwards). delta = rowsum(dO * O)
//   and the zeroed dq come from megatron_flash_attention_bwd_prep.
//
// Launch configuration (CudaAttention.java mirrors these numbers; keep them in sync, the
// harness native/src/test/cuda/flash_attention_check.cu launches through mj_fa_*_launch):
//   megatron_fa2_forward_{bf16,f16}_d{D}[_m2]: grid (ceil(s / BM), b * np), block FA2_FWD_WARPS * 32,
//                                          dynamic shared memory mj_fa2_forward_smem(D, m2)
//   megatron_fa2_backward_{bf16,f16}_d{D}: grid (ceil(sk / FA2_BWD_BN(D)), b * ng), block FA2_BWD_WARPS(D) * 32,
//                                          dynamic shared memory mj_fa2_backward_smem(D)
//   before the backward: megatron_flash_attention_bwd_prep (delta and the zeroed fp32 dQ accumulator)
// =====================================================================================================

// Production configuration (the extern "C" kernels of flash_attention.cu; CudaAttention.java mirrors these numbers).
// The templates take the same knobs as parameters so the check harness can time other variants.
//   forward:  FA2_FWD_WARPS warps x FA2_FWD_MT 16-row m-tiles per warp (BM query rows per block),
//             key blocks of FA2_FWD_BN, Q fragments kept in registers when FA2_FWD_QREG (else
//             re-read from shared memory per key block)
//   backward: FA2_BWD_WARPS warps x 16 keys (BN keys per block), FA2_BWD_BM query rows per step,
//             dQ accumulation FA2_BWD_DQ: 0 scalar fp32 atomicAdd, 1 red.global.add.v2.f32 / 3 .v4
//             on sm_90 (scalar atomicAdd below sm_90)
// Chosen from the H100 measurements of round 1 (helper-notes/flash-attention-perf.md):
//   fwd d64  4 warps x 2 m-tiles (BM 128), Q in registers: 254 regs, 2 blocks/SM; +14-16% over BM 64
//   fwd d128 4 warps x 1 m-tile (BM 64), Q in registers; on large grids (FA2_FWD_M2_MIN_BLOCKS blocks
//            of 128 rows or more, ~8 waves at 2 blocks/SM on 132 SMs) the _m2 kernel, 4 warps x 2
//            m-tiles (BM 128) with Q re-read from shared memory (+4% at 4096 blocks, -5% at 1024:
//            the bigger blocks lose to the causal tail when there are few waves)
//   bwd d64  4 warps (BN 64), BM 64, dQ red.v4 (+38% over scalar atomics)
//   bwd d128 8 warps (BN 128), BM 32, dQ red.v2 (+18%; v4 spills at d128)
#define FA2_FWD_WARPS(D) 4
#define FA2_FWD_MT(D) ((D) == 64 ? 2 : 1)
#define FA2_FWD_BN(D) 64
#define FA2_FWD_QREG(D) 1
#define FA2_FWD_BM(D) (16 * FA2_FWD_WARPS(D) * FA2_FWD_MT(D))  // query rows per forward block
#define FA2_FWD_M2_MT 2                                         // the d128 _m2 kernel: BM 128, Q from smem
#define FA2_FWD_M2_QREG 0
#define FA2_FWD_M2_BM (16 * FA2_FWD_WARPS(128) * FA2_FWD_M2_MT)
#define FA2_FWD_M2_MIN_BLOCKS 2048
#define FA2_BWD_WARPS(D) ((D) == 128 ? 8 : 4)
#define FA2_BWD_BN(D) (16 * FA2_BWD_WARPS(D))                  // keys per backward block
#define FA2_BWD_BM(D) ((D) == 128 ? 32 : 64)                    // query rows per backward step
#define FA2_BWD_DQ(D) ((D) == 128 ? 1 : 3)
#define FA2_BWD_MIN_BLOCKS(D) ((D) == 128 ? 1 : 3)                // d 64: 3 blocks per SM (at most 168 registers)
static_assert(FA2_FWD_WARPS(64) == 4 && FA2_FWD_WARPS(128) == 4, "mj_fa_forward_launch: one block size");

// dynamic shared memory: Q tile [bm][d] + 2 stages of K and V [bn][d]
__host__ __device__ constexpr int mj_fa2_fwd_smem(int d, int bm, int bn) { return bm * d * 2 + 4 * bn * d * 2; }
// K, V [bn][d]; 2 stages of Q and dO [bm][d]; dS^T [bn][bm]; 2 stages of lse, delta (fp32) and key starts (int)
__host__ __device__ constexpr int mj_fa2_bwd_smem(int d, int bn, int bm) {
    return 2 * bn * d * 2 + 4 * bm * d * 2 + bn * bm * 2 + 6 * bm * 4;
}
// The forward kernel for d 128 on sm_90 and newer (sm = 10 * major + minor) on a grid of
// FA2_FWD_M2_MIN_BLOCKS 128-row blocks or more is the _m2 one. Below sm_90 the _m2 kernels are not
// compiled (their sm_80 code would spill 92 B; the rule was measured on the H100 only).
__host__ __device__ constexpr bool mj_fa2_forward_m2(int d, long long s, int B, int np, int sm) {
    return d == 128 && sm >= 90 && (s + FA2_FWD_M2_BM - 1) / FA2_FWD_M2_BM * B * np >= FA2_FWD_M2_MIN_BLOCKS;
}
__host__ __device__ constexpr int mj_fa2_forward_rows(int d, bool m2) {
    return m2 ? FA2_FWD_M2_BM : d == 128 ? FA2_FWD_BM(128) : FA2_FWD_BM(64);
}
__host__ __device__ constexpr int mj_fa2_forward_smem(int d, bool m2) {
    return d == 128 ? mj_fa2_fwd_smem(128, mj_fa2_forward_rows(128, m2), FA2_FWD_BN(128))
                    : mj_fa2_fwd_smem(64, FA2_FWD_BM(64), FA2_FWD_BN(64));
}
__host__ __device__ constexpr int mj_fa2_backward_smem(int d) {
    return d == 128 ? mj_fa2_bwd_smem(128, FA2_BWD_BN(128), FA2_BWD_BM(128))
                    : mj_fa2_bwd_smem(64, FA2_BWD_BN(64), FA2_BWD_BM(64));
}

namespace fa2 {

// Where q, k and v live (element offsets; out, dOut and the fp32 dQ accumulator are always dense
// [s, b, np, d]). Query head h of token (i, b) starts at q + (i B + b) qTok + (h / rep) qGrp + (h % rep) d
// (rep = np / ng heads per group); key/value head g at k + (i B + b) kTok + g kGrp. Dense tensors:
// qTok = np d, qGrp = rep d, kTok = ng d, kGrp = d. Megatron's fused linear_qkv output, per token
// [g0: q heads, k, v | g1: ...]: qTok = kTok = (np + 2 ng) d, qGrp = kGrp = (rep + 2) d, with k and v
// pointing rep d and (rep + 1) d past q; dK and dV are written through the same strides, so the
// gradient lands in the fused layout too and no gather or scatter runs around the kernels.
struct QkvStrides {
    int qTok, qGrp, kTok, kGrp;
    __device__ __forceinline__ i64 query(int b, int h, int rep, int d) const {
        return (i64)b * qTok + (i64)(h / rep) * qGrp + (i64)(h % rep) * d;
    }
    __device__ __forceinline__ i64 key(int b, int g) const { return (i64)b * kTok + (i64)g * kGrp; }
};

// Dropout on the probabilities (Backend#attentionForward, the CPU's AttentionDropout): probability
// (h, b, i, j) is element offset + ((h B + b) s + i) sk + j of the Philox stream of common.cuh, kept
// (times scale = 1 / (1 - p), computed in float by the caller) when its uniform is >= p. Only the
// *_dropout kernels (template DROP) read it.
struct Dropout {
    float p, scale;
    unsigned long long seed, offset;
    __device__ __forceinline__ unsigned long long element(int h, int b, int B, i64 s, i64 i, i64 sk, i64 j) const {
        return offset + (((unsigned long long)h * B + b) * s + i) * sk + j;
    }
    __device__ __forceinline__ float keep(float u) const { return u >= p ? scale : 0.0f; }
    // the multipliers of stream elements e and e + 1: one generator call when they share a counter block
    __device__ __forceinline__ void keep2(unsigned long long e, float& z0, float& z1) const {
        const unsigned long long blk = e >> 2;
        const uint32_t lane = (uint32_t)(e & 3);
        const uint4 r = mj_philox((uint32_t)blk, (uint32_t)(blk >> 32), 0u, 0u, (uint32_t)seed, (uint32_t)(seed >> 32));
        const uint32_t v0 = lane == 0 ? r.x : lane == 1 ? r.y : lane == 2 ? r.z : r.w;
        uint32_t v1 = lane == 0 ? r.y : lane == 1 ? r.z : r.w;
        if (lane == 3) {
            const unsigned long long nb = blk + 1;
            v1 = mj_philox((uint32_t)nb, (uint32_t)(nb >> 32), 0u, 0u, (uint32_t)seed, (uint32_t)(seed >> 32)).x;
        }
        z0 = keep((float)(v0 >> 8) * 0x1.0p-24f);
        z1 = keep((float)(v1 >> 8) * 0x1.0p-24f);
    }
};

constexpr float LOG2E = 1.4426950408889634f;
constexpr float LN2 = 0.6931471805599453f;

// sm_90's vector reductions (red.global.add.v2/.v4.f32); the emulation has them too
#if (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900) || defined(MJ_FA_HOST_EMULATION)
#define FA2_VECTOR_RED 1
#else
#define FA2_VECTOR_RED 0
#endif

#if !defined(MJ_FA_HOST_EMULATION)  // the PTX primitives (the emulation has its own)
template <bool BF16> struct Elem;
template <> struct Elem<true> {
    typedef __nv_bfloat16 T;
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low 16 bits) = lo
        return *reinterpret_cast<uint32_t*>(&v);
    }
};
template <> struct Elem<false> {
    typedef __half T;
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        __half2 v = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<uint32_t*>(&v);
    }
};

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

// 16-byte cp.async global -> shared; ok == false writes 16 zero bytes (src-size 0, nothing read).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool ok) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(ok ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

__device__ __forceinline__ void ldsm_x4(uint32_t* r, uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t* r, uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
__device__ __forceinline__ void sts_u32(uint32_t addr, uint32_t v) {
    asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}
__device__ __forceinline__ uint4 lds_u128(uint32_t addr) {
    uint4 v;
    asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr) : "memory");
    return v;
}
__device__ __forceinline__ float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// c += a (16x16, row) * b (16x8, col), fp32 accumulate.
template <bool BF16>
__device__ __forceinline__ void mma(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
    if constexpr (BF16) {
        asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                     "{%0, %1, %2, %3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    } else {
        asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                     "{%0, %1, %2, %3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
}

// *p += (a, b), one 8-byte fp32 reduction (sm_90; p 8-byte aligned, in global memory)
__device__ __forceinline__ void red_add_v2(float* p, float a, float b) {
#if FA2_VECTOR_RED
    asm volatile("red.global.add.v2.f32 [%0], {%1, %2};\n" ::"l"(p), "f"(a), "f"(b) : "memory");
#else
    atomicAdd(p, a);
    atomicAdd(p + 1, b);
#endif
}
// *p += (a, b, c, d), one 16-byte fp32 reduction (sm_90; p 16-byte aligned, in global memory)
__device__ __forceinline__ void red_add_v4(float* p, float a, float b, float c, float d) {
#if FA2_VECTOR_RED
    asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};\n" ::"l"(p), "f"(a), "f"(b), "f"(c), "f"(d) : "memory");
#else
    atomicAdd(p, a);
    atomicAdd(p + 1, b);
    atomicAdd(p + 2, c);
    atomicAdd(p + 3, d);
#endif
}
#endif  // !MJ_FA_HOST_EMULATION

// Byte offset of 16-byte chunk c of row r in a tile of CH chunks per row: chunk c ^ (r % 8), or
// with 4-chunk (64-byte) rows, where two rows share the 128 bytes of the banks, c ^ ((r / 2) % 4).
// Any 8 consecutive rows at one logical chunk then hit 8 different 16-byte bank groups.
template <int CH>
__device__ __forceinline__ uint32_t swz(int r, int c) {
    static_assert(CH >= 8 || CH == 4, "rows of 4 or at least 8 chunks");
    if constexpr (CH == 4) return (uint32_t)(r * 64 + ((c ^ ((r >> 1) & 3)) << 4));
    else return (uint32_t)(r * CH * 16 + ((c ^ (r & 7)) << 4));
}

// Shared address a lane passes to ldmatrix.x4 for the A operand (16x16 at rows r0, chunk pair c0)
// of a row-major tile: matrices (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15).
template <int CH>
__device__ __forceinline__ uint32_t a_addr(uint32_t base, int r0, int c0, int lane) {
    const int mi = lane >> 3;
    return base + swz<CH>(r0 + (lane & 7) + ((mi & 1) << 3), c0 + (mi >> 1));
}
// ldmatrix.x4 (no .trans) of the B operands of two n-tiles (n rows r0..r0+15, k chunks c0, c0+1)
// from a tile stored [n][k]: regs {0,1} n-tile r0, {2,3} n-tile r0+8.
template <int CH>
__device__ __forceinline__ uint32_t b_addr(uint32_t base, int r0, int c0, int lane) {
    const int mi = lane >> 3;
    return base + swz<CH>(r0 + (lane & 7) + ((mi >> 1) << 3), c0 + (mi & 1));
}
// ldmatrix.x4.trans of the B operands of two n-tiles (n chunks c0, c0+1) from a tile stored [k][n]
// (k rows r0..r0+15): regs {0,1} n-tile at chunk c0, {2,3} at chunk c0+1.
template <int CH>
__device__ __forceinline__ uint32_t bt_addr(uint32_t base, int r0, int c0, int lane) {
    const int mi = lane >> 3;
    return base + swz<CH>(r0 + (lane & 7) + ((mi & 1) << 3), c0 + (mi >> 1));
}
// ldmatrix.x4.trans of the A operand (m rows at chunk c0 = m0 / 8, k rows r0..r0+15) from a tile stored [k][m].
template <int CH>
__device__ __forceinline__ uint32_t at_addr(uint32_t base, int r0, int c0, int lane) {
    const int mi = lane >> 3;
    return base + swz<CH>(r0 + (lane & 7) + ((mi >> 1) << 3), c0 + (mi & 1));
}

// Warp stores a 16 x (8 * NT8) fp32 accumulator (rows r0.., columns from 0) into a swizzled tile as T.
template <int CH, int NT8, bool BF16>
__device__ __forceinline__ void store_acc(uint32_t base, int r0, const float (*acc)[4], float mul, int lane) {
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int nt = 0; nt < NT8; nt++) {
        sts_u32(base + swz<CH>(r0 + g, nt) + 4 * t, Elem<BF16>::pack(acc[nt][0] * mul, acc[nt][1] * mul));
        sts_u32(base + swz<CH>(r0 + g + 8, nt) + 4 * t, Elem<BF16>::pack(acc[nt][2] * mul, acc[nt][3] * mul));
    }
}

// Warp copies rows [r0, r0 + 16) of a swizzled shared tile to global rows row0 + r (those < rows),
// row r at dst + r * stride, with 16-byte stores.
template <int CH>
__device__ __forceinline__ void copy_rows_out(uint32_t base, int r0, void* dst, i64 stride, i64 row0, i64 rows, int lane) {
#pragma unroll
    for (int e = lane; e < 16 * CH; e += 32) {
        const int r = e / CH, c = e % CH;
        if (row0 + r < rows) {
            const uint4 v = lds_u128(base + swz<CH>(r0 + r, c));
            *reinterpret_cast<uint4*>(static_cast<char*>(dst) + ((row0 + r) * stride + c * 8) * 2) = v;
        }
    }
}

// Forward. NW warps, each owning MW m-tiles of 16 query rows (BM = 16 NW MW rows per block), key
// blocks of BN keys double-buffered; QREG keeps the Q fragments in registers for the whole block
// (else they are re-read from the shared Q tile per key block, which frees registers for MW = 2 at
// d 128). A warp skips the key blocks that are fully masked for all its rows (causal diagonal).
// Scores stay raw until the exponent: p = 2^(s * scale * log2(e) - m * scale * log2(e)) as one
// FFMA, so scale must be > 0 (CudaAttention sends other scales to the CUDA-core kernels).
template <int D, bool BF16, int NW, int MW, int BN, bool QREG, bool DROP = false, bool DOCS = false>
__device__ __forceinline__ void forward(const void* qv, const void* kv, const void* vv, void* outv, float* lse,
                                        i64 s, i64 sk, int B, int np, int ng, float scale, int causal,
                                        const int* keyLengths, const int* keyStarts, QkvStrides st, Dropout dr) {
    typedef typename Elem<BF16>::T T;
    constexpr int WM = 16 * MW, BM = NW * WM, NT = NW * 32;
    constexpr int CH = D / 8, RB = D * 2, KT = D / 16, SN = BN / 8, ON = D / 8;
    static_assert((BN * CH) % NT == 0 && (BM * CH) % NT == 0, "tile loads");
    extern __shared__ __align__(128) unsigned char fa2_smem[];
    const uint32_t sQ = smem_u32(fa2_smem);
    const uint32_t sK = sQ + BM * RB;
    const uint32_t sV = sK + 2 * BN * RB;

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
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
    const int wr = warp * WM;            // the warp's first row in the block
    const i64 w0 = m0 + wr;              // ... and in the sequence
    const i64 wSee = w0 + WM - 1 + shift;  // causal: the last key any of the warp's rows sees
    // documents: the block's rows see no key below startMin, and every key from startMax on (up to their ends)
    int startMin = 0, startMax = 0;
    if constexpr (DOCS) {
        startMin = 0x7fffffff;
        for (int r = lane; r < BM; r += 32) {
            if (m0 + r < s) {
                const int first = keyStarts[(i64)b * s + m0 + r];
                startMin = min(startMin, first);
                startMax = max(startMax, first);
            }
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            startMin = min(startMin, __shfl_xor_sync(0xffffffffu, startMin, o));
            startMax = max(startMax, __shfl_xor_sync(0xffffffffu, startMax, o));
        }
    }
    const int nFirst = DOCS ? (int)min((i64)max(startMin, 0) / BN, (i64)nBlocks) : 0;  // the lowest block any row sees
    const int nIter = nBlocks - nFirst;

    auto loadKV = [&](int n, int stage) {
#pragma unroll
        for (int e = tid; e < BN * CH; e += NT) {
            const int r = e / CH, c = e % CH;
            const i64 j = (i64)n * BN + r;
            const bool ok = j < keyEnd;  // keys past keyLengths (or sk) read as zeros
            const i64 off = ok ? j * kStride + c * 8 : 0;
            cp_async16(sK + stage * BN * RB + swz<CH>(r, c), kb + off, ok);
            cp_async16(sV + stage * BN * RB + swz<CH>(r, c), vb + off, ok);
        }
    };

    uint32_t qf[QREG ? MW : 1][QREG ? KT : 1][4];
    float oacc[MW][ON][4];
    float mRow[MW][2], lRow[MW][2];  // running max of the raw scores, per-thread partial sums
#pragma unroll
    for (int mi = 0; mi < MW; mi++) {
        mRow[mi][0] = mRow[mi][1] = -INFINITY;
        lRow[mi][0] = lRow[mi][1] = 0.0f;
#pragma unroll
        for (int i = 0; i < ON; i++) oacc[mi][i][0] = oacc[mi][i][1] = oacc[mi][i][2] = oacc[mi][i][3] = 0.0f;
    }

    if (nIter > 0) {
#pragma unroll
        for (int e = tid; e < BM * CH; e += NT) {
            const int r = e / CH, c = e % CH;
            const i64 i = m0 + r;
            const bool ok = i < s;
            cp_async16(sQ + swz<CH>(r, c), qb + (ok ? i * qStride + c * 8 : 0), ok);
        }
        loadKV(nBlocks - 1, 0);
        cp_async_commit();
    }

    for (int it = 0; it < nIter; it++) {
        const int n = nBlocks - 1 - it, st = it & 1;
        cp_async_wait<0>();
        __syncthreads();  // stage st landed; every warp is done with stage st ^ 1
        if constexpr (QREG) {
            if (it == 0) {
#pragma unroll
                for (int mi = 0; mi < MW; mi++)
#pragma unroll
                    for (int kk = 0; kk < KT; kk++) ldsm_x4(qf[mi][kk], a_addr<CH>(sQ, wr + mi * 16, kk * 2, lane));
            }
        }
        if (it + 1 < nIter) loadKV(n - 1, st ^ 1);
        cp_async_commit();

        const i64 n0 = (i64)n * BN;
        if (w0 >= s || (causal && n0 > wSee)) continue;  // warp-uniform: nothing of this block is visible

        // S = Q K^T (WM rows x BN keys per warp), raw
        float sacc[MW][SN][4];
#pragma unroll
        for (int mi = 0; mi < MW; mi++)
#pragma unroll
            for (int i = 0; i < SN; i++) sacc[mi][i][0] = sacc[mi][i][1] = sacc[mi][i][2] = sacc[mi][i][3] = 0.0f;
        const uint32_t kS = sK + st * BN * RB, vS = sV + st * BN * RB;
#pragma unroll
        for (int kk = 0; kk < KT; kk++) {
            uint32_t qa[QREG ? 1 : MW][4];
            if constexpr (!QREG) {
#pragma unroll
                for (int mi = 0; mi < MW; mi++) ldsm_x4(qa[mi], a_addr<CH>(sQ, wr + mi * 16, kk * 2, lane));
            }
#pragma unroll
            for (int j = 0; j < BN / 16; j++) {
                uint32_t bf[4];
                ldsm_x4(bf, b_addr<CH>(kS, j * 16, kk * 2, lane));
#pragma unroll
                for (int mi = 0; mi < MW; mi++) {
                    const uint32_t* a = QREG ? qf[mi][kk] : qa[QREG ? 0 : mi];
                    mma<BF16>(sacc[mi][2 * j], a, bf[0], bf[1]);
                    mma<BF16>(sacc[mi][2 * j + 1], a, bf[2], bf[3]);
                }
            }
        }
        // mask where this block needs it (for this warp's rows)
        if (n0 + BN > keyEnd || (causal && n0 + BN - 1 > w0 + shift)) {
#pragma unroll
            for (int mi = 0; mi < MW; mi++)
#pragma unroll
                for (int nt = 0; nt < SN; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const i64 j = n0 + nt * 8 + 2 * t + (e & 1);
                        const i64 i = w0 + mi * 16 + g + (e < 2 ? 0 : 8);
                        if (j >= keyEnd || (causal && j > i + shift)) sacc[mi][nt][e] = -INFINITY;
                    }
        }
        if (DOCS && n0 < startMax) {  // documents: keys below a row's start (positions fit in int, as in the backward)
#pragma unroll
            for (int mi = 0; mi < MW; mi++)
#pragma unroll
                for (int rh = 0; rh < 2; rh++) {
                    const int i = (int)w0 + mi * 16 + g + 8 * rh;
                    const int first = i < s ? keyStarts[(i64)b * s + i] : 0;
#pragma unroll
                    for (int nt = 0; nt < SN; nt++)
#pragma unroll
                        for (int e = 0; e < 2; e++) {
                            if ((int)n0 + nt * 8 + 2 * t + e < first) sacc[mi][nt][2 * rh + e] = -INFINITY;
                        }
                }
        }
        // online softmax; each thread holds rows g (e 0,1) and g + 8 (e 2,3) of each m-tile, a quad shares a row
#pragma unroll
        for (int mi = 0; mi < MW; mi++) {
#pragma unroll
            for (int rh = 0; rh < 2; rh++) {
                float mx = -INFINITY;
#pragma unroll
                for (int nt = 0; nt < SN; nt++) mx = fmaxf(mx, fmaxf(sacc[mi][nt][2 * rh], sacc[mi][nt][2 * rh + 1]));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                const float mNew = fmaxf(mRow[mi][rh], mx);
                const float mS = mNew == -INFINITY ? 0.0f : mNew * sl2;  // nothing visible yet: keep everything 0
                const float alpha = ex2(mRow[mi][rh] * sl2 - mS);
                mRow[mi][rh] = mNew;
                float sum = 0.0f;
#pragma unroll
                for (int nt = 0; nt < SN; nt++) {
                    const float p0 = ex2(fmaf(sacc[mi][nt][2 * rh], sl2, -mS));
                    const float p1 = ex2(fmaf(sacc[mi][nt][2 * rh + 1], sl2, -mS));
                    sum += p0 + p1;  // the softmax's own sum: dropout leaves l and lse alone
                    float z0 = 1.0f, z1 = 1.0f;
                    if constexpr (DROP) {
                        dr.keep2(dr.element(h, b, B, s, w0 + mi * 16 + g + 8 * rh, sk, n0 + nt * 8 + 2 * t), z0, z1);
                    }
                    sacc[mi][nt][2 * rh] = p0 * z0;
                    sacc[mi][nt][2 * rh + 1] = p1 * z1;
                }
                lRow[mi][rh] = lRow[mi][rh] * alpha + sum;  // per-thread partial; the quad's partials add up at the end
#pragma unroll
                for (int ot = 0; ot < ON; ot++) {
                    oacc[mi][ot][2 * rh] *= alpha;
                    oacc[mi][ot][2 * rh + 1] *= alpha;
                }
            }
        }
        // O += P V (P from the S accumulators: the C fragment of m16n8k16 is the A fragment's layout)
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            uint32_t a[MW][4];
#pragma unroll
            for (int mi = 0; mi < MW; mi++) {
                a[mi][0] = Elem<BF16>::pack(sacc[mi][2 * kk][0], sacc[mi][2 * kk][1]);
                a[mi][1] = Elem<BF16>::pack(sacc[mi][2 * kk][2], sacc[mi][2 * kk][3]);
                a[mi][2] = Elem<BF16>::pack(sacc[mi][2 * kk + 1][0], sacc[mi][2 * kk + 1][1]);
                a[mi][3] = Elem<BF16>::pack(sacc[mi][2 * kk + 1][2], sacc[mi][2 * kk + 1][3]);
            }
#pragma unroll
            for (int j = 0; j < D / 16; j++) {
                uint32_t bf[4];
                ldsm_x4_t(bf, bt_addr<CH>(vS, kk * 16, j * 2, lane));
#pragma unroll
                for (int mi = 0; mi < MW; mi++) {
                    mma<BF16>(oacc[mi][2 * j], a[mi], bf[0], bf[1]);
                    mma<BF16>(oacc[mi][2 * j + 1], a[mi], bf[2], bf[3]);
                }
            }
        }
    }
    cp_async_wait<0>();

    // each warp stages its own rows in its rows of the Q tile (only it read them)
    __syncwarp();
#pragma unroll
    for (int mi = 0; mi < MW; mi++) {
        float inv[2];
#pragma unroll
        for (int rh = 0; rh < 2; rh++) {
            float l = lRow[mi][rh];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            const bool empty = !(l > 0.0f);
            inv[rh] = empty ? 0.0f : 1.0f / l;
            const i64 i = w0 + mi * 16 + g + 8 * rh;
            if (t == 0 && i < s) lse[((i64)b * np + h) * s + i] = empty ? -INFINITY : mRow[mi][rh] * sl2 * LN2 + logf(l);
        }
#pragma unroll
        for (int ot = 0; ot < ON; ot++) {
            oacc[mi][ot][0] *= inv[0];
            oacc[mi][ot][1] *= inv[0];
            oacc[mi][ot][2] *= inv[1];
            oacc[mi][ot][3] *= inv[1];
        }
        store_acc<CH, ON, BF16>(sQ, wr + mi * 16, oacc[mi], 1.0f, lane);
    }
    __syncwarp();
#pragma unroll
    for (int mi = 0; mi < MW; mi++)
        copy_rows_out<CH>(sQ, wr + mi * 16, static_cast<T*>(outv) + ((i64)b * np + h) * D, oStride, w0 + mi * 16, s,
                          lane);
}

// Backward. NW warps x 16 keys (BN = 16 NW keys per block), BM query rows per step. DQM: how dQ
// partials reach the fp32 workspace: 0 scalar atomicAdd, 1 red.global.add.v2.f32 (sm_90), 3
// red.global.add.v4.f32 (sm_90; lane pairs swap halves so each lane holds 4 consecutive columns
// of one row), 2 not at all (timing diagnostic only: dQ is computed but dropped). Below sm_90 the
// vector modes fall back to scalar atomicAdd.
template <int D, bool BF16, int NW, int BM, int DQM, bool DROP = false, bool DOCS = false>
__device__ __forceinline__ void backward(const void* qv, const void* kv, const void* vv, const void* dov,
                                         const float* lse, const float* delta, float* dq, void* dkv, void* dvv,
                                         i64 s, i64 sk, int B, int np, int ng, float scale, int causal,
                                         const int* keyLengths, const int* keyStarts, QkvStrides st, Dropout dr) {
    typedef typename Elem<BF16>::T T;
    constexpr int BN = 16 * NW, NT = NW * 32;
    constexpr int CH = D / 8, RB = D * 2, KT = D / 16, QN = BM / 8, ON = D / 8;
    constexpr int SCH = BM / 8;                     // chunks per row of dS^T [BN][BM]
    constexpr int MT = BM / 16, WD = NW / MT, DW = D / WD;  // dQ: warp (mt, dims [dp * DW, +DW))
    static_assert(NW % MT == 0 && DW % 16 == 0, "dQ warp layout");
    extern __shared__ __align__(128) unsigned char fa2_smem[];
    const uint32_t sK = smem_u32(fa2_smem);
    const uint32_t sV = sK + BN * RB;
    const uint32_t sQ = sV + BN * RB;            // 2 stages
    const uint32_t sDO = sQ + 2 * BM * RB;       // 2 stages
    const uint32_t sDS = sDO + 2 * BM * RB;      // dS^T [BN][BM]
    float* sLse = reinterpret_cast<float*>(fa2_smem + (2 * BN * RB + 4 * BM * RB + BN * BM * 2));  // [2][BM]
    float* sDelta = sLse + 2 * BM;                                                                 // [2][BM]
    int* sStart = reinterpret_cast<int*>(sDelta + 2 * BM);                                         // [2][BM]

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
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
        cp_async16(sK + swz<CH>(r, c), static_cast<const T*>(kv) + off, ok);
        cp_async16(sV + swz<CH>(r, c), static_cast<const T*>(vv) + off, ok);
    }
    auto loadQ = [&](int h, int m0, int stage) {
        const i64 qOff = st.query(b, h, rep, D), oOff = ((i64)b * np + h) * D;
#pragma unroll
        for (int e = tid; e < BM * CH; e += NT) {
            const int r = e / CH, c = e % CH;
            const i64 i = m0 + r;
            const bool ok = i < s;
            cp_async16(sQ + stage * BM * RB + swz<CH>(r, c),
                       static_cast<const T*>(qv) + qOff + (ok ? i * qStride + c * 8 : 0), ok);
            cp_async16(sDO + stage * BM * RB + swz<CH>(r, c),
                       static_cast<const T*>(dov) + oOff + (ok ? i * oStride + c * 8 : 0), ok);
        }
        for (int e = tid; e < BM; e += NT) {
            const i64 i = m0 + e;
            float L = INFINITY, dl = 0.0f;  // rows past s and fully masked rows (lse -inf): P = 0
            int start = 0x7fffffff;  // rows past s: every key masked (they have no gradient anyway)
            if (i < s) {
                const i64 row = ((i64)b * np + h) * s + i;
                const float l = lse[row];
                L = l == -INFINITY ? INFINITY : l * LOG2E;
                dl = delta[row];
                if constexpr (DOCS) start = keyStarts[(i64)b * s + i];
            }
            sLse[stage * BM + e] = L;
            sDelta[stage * BM + e] = dl;
            if constexpr (DOCS) sStart[stage * BM + e] = start;
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
    const int key0 = n0 + warp * 16 + g, key1 = key0 + 8;  // this thread's key rows of S^T
    const int mt = warp % MT, dp = warp / MT;
    float dqSink = 0.0f;  // DQM 2 only

    for (int it = 0; it < total; it++) {
        const int st = it & 1;
        cp_async_wait<0>();
        __syncthreads();  // stage st (and K, V) landed; every warp is done with stage st ^ 1 and dS
        if (it + 1 < total) {
            const bool wrap = m0 + BM >= mEnd * BM;
            loadQ(wrap ? h + 1 : h, wrap ? mStart * BM : m0 + BM, st ^ 1);
        }
        cp_async_commit();
        const uint32_t qS = sQ + st * BM * RB, doS = sDO + st * BM * RB;
        const float* L = sLse + st * BM;
        const float* De = sDelta + st * BM;
        const int* Start = sStart + st * BM;
        const bool needMask = DOCS || n0 + BN > keyEnd || (causal && n0 + BN - 1 > m0 + shift);
        if constexpr (DOCS) {
            // every row of this query block starts its document after this block's last key: no gradient here
            // (each warp finds the same from shared memory, so the block skips the step, barriers included, together)
            int first = 0x7fffffff;
            for (int r = lane; r < BM; r += 32) first = min(first, Start[r]);
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) first = min(first, __shfl_xor_sync(0xffffffffu, first, o));
            if (first > n0 + BN - 1) {
                m0 += BM;   // the next step, as at the end of the loop
                if (m0 >= mEnd * BM) {
                    m0 = mStart * BM;
                    h++;
                }
                continue;
            }
        }

        // S^T = K Q^T (16 keys x BM queries per warp) -> P^T
        float sacc[QN][4];
#pragma unroll
        for (int i = 0; i < QN; i++) sacc[i][0] = sacc[i][1] = sacc[i][2] = sacc[i][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < KT; kk++) {
            uint32_t a[4];
            ldsm_x4(a, a_addr<CH>(sK, warp * 16, kk * 2, lane));
#pragma unroll
            for (int j = 0; j < BM / 16; j++) {
                uint32_t bf[4];
                ldsm_x4(bf, b_addr<CH>(qS, j * 16, kk * 2, lane));
                mma<BF16>(sacc[2 * j], a, bf[0], bf[1]);
                mma<BF16>(sacc[2 * j + 1], a, bf[2], bf[3]);
            }
        }
#pragma unroll
        for (int nt = 0; nt < QN; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int qc = nt * 8 + 2 * t + (e & 1);
                float p = ex2(sacc[nt][e] * sl2 - L[qc]);
                if (needMask) {
                    const int j = e < 2 ? key0 : key1;
                    if (j >= keyEnd || (causal && j > m0 + qc + shift) || (DOCS && j < Start[qc])) p = 0.0f;
                }
                sacc[nt][e] = p;
            }
        }
        // dP^T = V dO^T -> dS^T = P^T (dP^T - delta)
        float dsacc[QN][4];
#pragma unroll
        for (int i = 0; i < QN; i++) dsacc[i][0] = dsacc[i][1] = dsacc[i][2] = dsacc[i][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < KT; kk++) {
            uint32_t a[4];
            ldsm_x4(a, a_addr<CH>(sV, warp * 16, kk * 2, lane));
#pragma unroll
            for (int j = 0; j < BM / 16; j++) {
                uint32_t bf[4];
                ldsm_x4(bf, b_addr<CH>(doS, j * 16, kk * 2, lane));
                mma<BF16>(dsacc[2 * j], a, bf[0], bf[1]);
                mma<BF16>(dsacc[2 * j + 1], a, bf[2], bf[3]);
            }
        }
#pragma unroll
        for (int nt = 0; nt < QN; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int qc = nt * 8 + 2 * t + (e & 1);
                if constexpr (DROP) {  // dP Z into dS; P Z (for dV) in place of P
                    const float z = dr.keep(mj_uniform(dr.seed, dr.element(h, b, B, s, m0 + qc, sk, e < 2 ? key0 : key1)));
                    dsacc[nt][e] = sacc[nt][e] * (dsacc[nt][e] * z - De[qc]);
                    sacc[nt][e] *= z;
                } else {
                    dsacc[nt][e] = sacc[nt][e] * (dsacc[nt][e] - De[qc]);
                }
            }
        }
        // dV += P^T dO ; dK += dS^T Q  (A operands straight from the accumulators)
#pragma unroll
        for (int kk = 0; kk < BM / 16; kk++) {
            uint32_t ap[4], as[4];
            ap[0] = Elem<BF16>::pack(sacc[2 * kk][0], sacc[2 * kk][1]);
            ap[1] = Elem<BF16>::pack(sacc[2 * kk][2], sacc[2 * kk][3]);
            ap[2] = Elem<BF16>::pack(sacc[2 * kk + 1][0], sacc[2 * kk + 1][1]);
            ap[3] = Elem<BF16>::pack(sacc[2 * kk + 1][2], sacc[2 * kk + 1][3]);
            as[0] = Elem<BF16>::pack(dsacc[2 * kk][0], dsacc[2 * kk][1]);
            as[1] = Elem<BF16>::pack(dsacc[2 * kk][2], dsacc[2 * kk][3]);
            as[2] = Elem<BF16>::pack(dsacc[2 * kk + 1][0], dsacc[2 * kk + 1][1]);
            as[3] = Elem<BF16>::pack(dsacc[2 * kk + 1][2], dsacc[2 * kk + 1][3]);
            // dS^T to shared for dQ (rows = this warp's keys, columns = queries)
            sts_u32(sDS + swz<SCH>(warp * 16 + g, 2 * kk) + 4 * t, as[0]);
            sts_u32(sDS + swz<SCH>(warp * 16 + g + 8, 2 * kk) + 4 * t, as[1]);
            sts_u32(sDS + swz<SCH>(warp * 16 + g, 2 * kk + 1) + 4 * t, as[2]);
            sts_u32(sDS + swz<SCH>(warp * 16 + g + 8, 2 * kk + 1) + 4 * t, as[3]);
#pragma unroll
            for (int j = 0; j < D / 16; j++) {
                uint32_t bf[4];
                ldsm_x4_t(bf, bt_addr<CH>(doS, kk * 16, j * 2, lane));
                mma<BF16>(dVacc[2 * j], ap, bf[0], bf[1]);
                mma<BF16>(dVacc[2 * j + 1], ap, bf[2], bf[3]);
                ldsm_x4_t(bf, bt_addr<CH>(qS, kk * 16, j * 2, lane));
                mma<BF16>(dKacc[2 * j], as, bf[0], bf[1]);
                mma<BF16>(dKacc[2 * j + 1], as, bf[2], bf[3]);
            }
        }
        __syncthreads();  // dS^T complete
        // dQ[m0 + mt * 16 .., dims dp * DW ..] += scale * dS K
        float dqacc[DW / 8][4];
#pragma unroll
        for (int i = 0; i < DW / 8; i++) dqacc[i][0] = dqacc[i][1] = dqacc[i][2] = dqacc[i][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            uint32_t a[4];
            ldsm_x4_t(a, at_addr<SCH>(sDS, kk * 16, mt * 2, lane));
#pragma unroll
            for (int j = 0; j < DW / 16; j++) {
                uint32_t bf[4];
                ldsm_x4_t(bf, bt_addr<CH>(sK, kk * 16, dp * (DW / 8) + j * 2, lane));
                mma<BF16>(dqacc[2 * j], a, bf[0], bf[1]);
                mma<BF16>(dqacc[2 * j + 1], a, bf[2], bf[3]);
            }
        }
        const int i0 = m0 + mt * 16 + g, i1 = i0 + 8;
        if constexpr (DQM == 2) {
#pragma unroll
            for (int nt = 0; nt < DW / 8; nt++) dqSink += dqacc[nt][0] + dqacc[nt][1] + dqacc[nt][2] + dqacc[nt][3];
        } else if constexpr (DQM == 1 && FA2_VECTOR_RED) {
            float* dq0 = dq + (((i64)i0 * B + b) * np + h) * D + dp * DW + 2 * t;
            float* dq1 = dq0 + (i64)8 * B * np * D;
#pragma unroll
            for (int nt = 0; nt < DW / 8; nt++) {
                if (i0 < s) red_add_v2(dq0 + nt * 8, scale * dqacc[nt][0], scale * dqacc[nt][1]);
                if (i1 < s) red_add_v2(dq1 + nt * 8, scale * dqacc[nt][2], scale * dqacc[nt][3]);
            }
        } else if constexpr (DQM == 3 && FA2_VECTOR_RED) {
            // even lane t: row i0, columns 2t..2t+3; odd lane: row i1, columns 2t-2..2t+1
            const bool odd = t & 1;
            const int ir = odd ? i1 : i0;
            float* dqr = dq + (((i64)ir * B + b) * np + h) * D + dp * DW + 2 * (t & 2);
#pragma unroll
            for (int nt = 0; nt < DW / 8; nt++) {
                const float s0 = odd ? dqacc[nt][0] : dqacc[nt][2], s1 = odd ? dqacc[nt][1] : dqacc[nt][3];
                const float r0 = __shfl_xor_sync(0xffffffffu, s0, 1), r1 = __shfl_xor_sync(0xffffffffu, s1, 1);
                if (ir < s) {
                    if (odd) red_add_v4(dqr + nt * 8, scale * r0, scale * r1, scale * dqacc[nt][2], scale * dqacc[nt][3]);
                    else red_add_v4(dqr + nt * 8, scale * dqacc[nt][0], scale * dqacc[nt][1], scale * r0, scale * r1);
                }
            }
        } else {
            float* dq0 = dq + (((i64)i0 * B + b) * np + h) * D + dp * DW + 2 * t;
            float* dq1 = dq0 + (i64)8 * B * np * D;
#pragma unroll
            for (int nt = 0; nt < DW / 8; nt++) {
                if (i0 < s) {
                    atomicAdd(dq0 + nt * 8, scale * dqacc[nt][0]);
                    atomicAdd(dq0 + nt * 8 + 1, scale * dqacc[nt][1]);
                }
                if (i1 < s) {
                    atomicAdd(dq1 + nt * 8, scale * dqacc[nt][2]);
                    atomicAdd(dq1 + nt * 8 + 1, scale * dqacc[nt][3]);
                }
            }
        }
        m0 += BM;
        if (m0 >= mEnd * BM) {
            m0 = mStart * BM;
            h++;
        }
    }
    if constexpr (DQM == 2) {
        if (dqSink == 1.2345e-38f) dq[0] = dqSink;  // keeps the dQ products alive
    }
    cp_async_wait<0>();
    __syncthreads();  // every warp is done reading K and V: stage dK, dV in their place
    store_acc<CH, ON, BF16>(sK, warp * 16, dKacc, scale, lane);
    store_acc<CH, ON, BF16>(sV, warp * 16, dVacc, 1.0f, lane);
    __syncwarp();
    copy_rows_out<CH>(sK, warp * 16, static_cast<T*>(dkv) + kOff, kStride, n0 + warp * 16, sk, lane);
    copy_rows_out<CH>(sV, warp * 16, static_cast<T*>(dvv) + kOff, kStride, n0 + warp * 16, sk, lane);
}
}  // namespace fa2
