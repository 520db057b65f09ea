// Runs Megatron-J's tensor-core FlashAttention kernels on the CPU, their own C++ source line for line,
// and checks out, lse, dQ, dK and dV against an fp64 reference:
//   fa2 (flash_attention_fa2.cuh: mma.sync, ldmatrix, cp.async), the production kernels: every
//       configuration the fatbin instantiates (d 64 and 128, the d 128 _m2 forward), with dropout and
//       documents (keyStarts), bf16 and f16, MHA/GQA/MQA, padding, s < sk and s > sk;
//   fa3 (flash_attention_wgmma.cuh: wgmma), staged beside them and not in the fatbin yet.
//
// g++ compiles the kernels' bodies (MJ_FA_HOST_EMULATION) and this file gives them what the hardware
// would: one std::thread per CUDA thread of a block, barriers for __syncthreads and __syncwarp,
// shared memory as a byte array at a base address of our choosing, cp.async as an immediate copy, and
// the warp- and warpgroup-collective instructions as rendezvous: every lane deposits its operands (a
// shuffle value, an ldmatrix row address, mma.sync fragments), the warp meets at a barrier, each lane
// computes its own result from the others' operands, and the warp meets again.
//   mma.sync.m16n8k16 and ldmatrix(.trans) read and write fragments as the PTX ISA draws them: lane t
//   (g = t / 4, q = t % 4) holds A rows g, g + 8 at k 2q, 2q + 1 (+ 8), B k 2q, 2q + 1 (+ 8) at column
//   g, C rows g, g + 8 at columns 2q, 2q + 1; ldmatrix matrix m takes its row addresses from lanes
//   8m .. 8m + 7 and gives lane t row t / 4, elements 2q, 2q + 1 (.trans: rows 2q, 2q + 1 of column t / 4).
//   wgmma reads its operands through the descriptors as CUTLASS's canonical GMMA layouts define them
//   (K-major SW128 ((8,m),(T,2k)):((8T,SBO),(1,T)), MN-major SW128 ((T,8,m),(8,k)):((1,T,LBO),(8T,SBO)),
//   T = 16 bytes, then the 128-byte swizzle: address bits [4,7) ^= bits [7,10)), the fragments as the
//   PTX ISA draws them (thread t of warp w: rows 16 w + t/4 (+ 8), columns 8 i + 2 (t % 4) (+ 1)).
// Shared-memory accesses are checked for range and alignment (16 bytes for cp.async, ldmatrix rows
// and 16-byte loads), reductions into global memory for their vector alignment. So the kernels'
// indexing, tiling, masking, stage rotation, pipelining, shared-memory traffic, fragment packing and
// dropout counters are exercised as written. Not exercised: the asynchrony (cp.async and wgmma complete
// at issue here), the hardware's rounding inside a product, and whether the hardware reads descriptors
// and fragments as assumed here (flash_attention_check on a GPU confirms those).
//
//   native/src/test/cuda/run-fa-emulation.sh   (g++ 12+, C++20; no GPU, no CUDA); Maven runs it with the
//   slow tests (-Dtest.excluded=gpu)
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#define MJ_FA_HOST_EMULATION 1
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__
#define __align__(n)
typedef long long i64;

struct Dim3 {
    unsigned x = 0, y = 0, z = 0;
};
thread_local Dim3 threadIdx;
Dim3 blockIdx, gridDim;  // blocks run one at a time

template <class T>
static inline T min(T a, T b) { return b < a ? b : a; }
template <class T>
static inline T max(T a, T b) { return a < b ? b : a; }

struct uint4 {
    uint32_t x, y, z, w;
};
static inline uint4 make_uint4(uint32_t x, uint32_t y, uint32_t z, uint32_t w) { return {x, y, z, w}; }
static inline uint32_t __umulhi(uint32_t a, uint32_t b) { return (uint32_t)(((uint64_t)a * b) >> 32); }
#include "../../main/cuda/philox.cuh"

[[noreturn]] static void fail(const char* what, long long value) {
    fprintf(stderr, "emulation: %s (%lld) in block (%u, %u), thread %u\n", what, value, blockIdx.x, blockIdx.y,
            threadIdx.x);
    std::abort();
}

// ------------------------------------------------------------------ the emulated machine
constexpr int SMEM_BYTES = 232448;  // the H100's per-block maximum
// what the kernels' block-scope `extern __shared__ ... fa2_smem[]` / `fa3_smem[]` name
namespace fa2 {
unsigned char fa2_smem[SMEM_BYTES];
}
namespace fa3 {
unsigned char fa3_smem[SMEM_BYTES];
}

namespace emu {
unsigned char* smem = nullptr;  // the dynamic shared memory of the kernel running
uint32_t smemBase = 0;          // its shared-window address
std::unique_ptr<std::barrier<>> block;
std::vector<std::unique_ptr<std::barrier<>>> warps, groups;
// per warp: what each lane hands to a warp-collective instruction (one at a time: each ends at a barrier)
struct Lanes {
    uint32_t bits[32];            // shuffles
    uint32_t addr[32];            // ldmatrix row addresses
    uint32_t a[32][4], b[32][2];  // mma.sync fragments
};
Lanes lanes[32];
struct Warpgroup {
    std::vector<float> acc = std::vector<float>(64 * 128);
    float a[64][16];
};
Warpgroup wg[4];

inline std::barrier<>& warp() { return *warps[threadIdx.x / 32]; }

// the bytes at shared address addr (n of them), which must be aligned to `align`
unsigned char* at(uint32_t addr, int n = 16, int align = 1) {
    if (addr < smemBase || addr + n > smemBase + SMEM_BYTES) fail("shared address out of range", addr);
    if (addr % align != 0) fail("misaligned shared address", addr);
    return smem + (addr - smemBase);
}
}  // namespace emu

static inline void __syncthreads() { emu::block->arrive_and_wait(); }
static inline void __syncwarp() { emu::warp().arrive_and_wait(); }
template <class T>
static inline T __shfl_xor_sync(unsigned, T v, int laneMask) {
    static_assert(sizeof(T) == 4, "32-bit shuffles");
    const int lane = threadIdx.x % 32;
    emu::Lanes& l = emu::lanes[threadIdx.x / 32];
    std::memcpy(&l.bits[lane], &v, 4);
    emu::warp().arrive_and_wait();
    T r;
    std::memcpy(&r, &l.bits[lane ^ laneMask], 4);
    emu::warp().arrive_and_wait();
    return r;
}
static inline float atomicAdd(float* p, float v) { return std::atomic_ref<float>(*p).fetch_add(v); }

// 16-bit floats as their bits
static inline float bf16ToFloat(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
static inline uint16_t floatToBf16(float f) {  // round to nearest even
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if (std::isnan(f)) return 0x7FC0;
    u += 0x7FFF + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}
static inline float f16ToFloat(uint16_t h) {
    _Float16 x;
    std::memcpy(&x, &h, 2);
    return (float)x;
}
static inline uint16_t floatToF16(float f) {
    _Float16 x = (_Float16)f;
    uint16_t h;
    std::memcpy(&h, &x, 2);
    return h;
}
template <bool BF16>
static inline float from16(uint16_t h) { return BF16 ? bf16ToFloat(h) : f16ToFloat(h); }

// ------------------------------------------------------------------ fa2's PTX primitives
namespace fa2 {
template <bool BF16>
struct Elem {
    typedef uint16_t T;
    static uint32_t pack(float lo, float hi) {
        return BF16 ? (uint32_t)floatToBf16(lo) | (uint32_t)floatToBf16(hi) << 16
                    : (uint32_t)floatToF16(lo) | (uint32_t)floatToF16(hi) << 16;
    }
};
static inline uint32_t smem_u32(const void* p) {
    const unsigned char* c = static_cast<const unsigned char*>(p);
    if (c < emu::smem || c >= emu::smem + SMEM_BYTES) fail("smem_u32 of a pointer outside the kernel's shared memory", 0);
    return emu::smemBase + (uint32_t)(c - emu::smem);
}
static inline void cp_async16(uint32_t dst, const void* src, bool ok) {
    unsigned char* d = emu::at(dst, 16, 16);
    if (ok) std::memcpy(d, src, 16);
    else std::memset(d, 0, 16);
}
static inline void cp_async_commit() {}
template <int N>
static inline void cp_async_wait() {}
// ldmatrix.x4 (trans: .trans): matrix m's rows at the addresses of lanes 8m .. 8m + 7
static inline void ldsm(uint32_t* r, uint32_t addr, bool trans) {
    const int lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
    emu::Lanes& l = emu::lanes[threadIdx.x / 32];
    l.addr[lane] = addr;
    emu::warp().arrive_and_wait();
    for (int m = 0; m < 4; m++) {
        auto element = [&](int row, int col) {
            uint16_t h;
            std::memcpy(&h, emu::at(l.addr[8 * m + row], 16, 16) + 2 * col, 2);
            return (uint32_t)h;
        };
        r[m] = trans ? element(2 * q, g) | element(2 * q + 1, g) << 16 : element(g, 2 * q) | element(g, 2 * q + 1) << 16;
    }
    emu::warp().arrive_and_wait();
}
static inline void ldsm_x4(uint32_t* r, uint32_t addr) { ldsm(r, addr, false); }
static inline void ldsm_x4_t(uint32_t* r, uint32_t addr) { ldsm(r, addr, true); }
static inline void sts_u32(uint32_t addr, uint32_t v) { std::memcpy(emu::at(addr, 4, 4), &v, 4); }
static inline uint4 lds_u128(uint32_t addr) {
    uint4 v;
    std::memcpy(&v, emu::at(addr, 16, 16), 16);
    return v;
}
static inline float ex2(float x) { return std::exp2(x); }
// mma.sync.m16n8k16, fp32 accumulate
template <bool BF16>
static inline void mma(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
    const int lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
    emu::Lanes& l = emu::lanes[threadIdx.x / 32];
    for (int i = 0; i < 4; i++) l.a[lane][i] = a[i];
    l.b[lane][0] = b0;
    l.b[lane][1] = b1;
    emu::warp().arrive_and_wait();
    auto half = [](uint32_t r, int k) { return from16<BF16>((uint16_t)(k & 1 ? r >> 16 : r & 0xFFFF)); };
    auto A = [&](int row, int k) { return half(l.a[(row % 8) * 4 + (k % 8) / 2][(row >= 8) + 2 * (k >= 8)], k); };
    auto B = [&](int k, int col) { return half(l.b[col * 4 + (k % 8) / 2][k >= 8], k); };
    float d[4];
    for (int e = 0; e < 4; e++) {
        const int row = g + (e >= 2 ? 8 : 0), col = 2 * q + (e & 1);
        float sum = 0.0f;
        for (int k = 0; k < 16; k++) sum += A(row, k) * B(k, col);
        d[e] = c[e] + sum;
    }
    emu::warp().arrive_and_wait();
    for (int e = 0; e < 4; e++) c[e] = d[e];
}
static inline void red_add_v2(float* p, float a, float b) {
    if (reinterpret_cast<uintptr_t>(p) % 8) fail("red.global.add.v2 at a misaligned address", (long long)(uintptr_t)p);
    atomicAdd(p, a);
    atomicAdd(p + 1, b);
}
static inline void red_add_v4(float* p, float a, float b, float c, float d) {
    if (reinterpret_cast<uintptr_t>(p) % 16) fail("red.global.add.v4 at a misaligned address", (long long)(uintptr_t)p);
    atomicAdd(p, a);
    atomicAdd(p + 1, b);
    atomicAdd(p + 2, c);
    atomicAdd(p + 3, d);
}
}  // namespace fa2

#include "../../main/cuda/flash_attention_fa2.cuh"

// ------------------------------------------------------------------ fa3's wgmma
namespace fa3 {
inline void wgmma_fence() {}
inline void wgmma_commit() {}
template <int N>
inline void wgmma_wait() {}  // the emulated wgmma is complete when it returns
inline void fence_proxy_async() {}
template <int N>
inline void pin(float*) {}
}  // namespace fa3

// the wgmma instructions (wgmma.cuh emulated)
namespace emu {
struct Desc {
    uint32_t start, lbo, sbo;
};
inline Desc decode(uint64_t d) {
    if ((d >> 62) != 1) {
        fprintf(stderr, "descriptor %llx: not the 128-byte swizzle\n", (unsigned long long)d);
        std::abort();
    }
    return {(uint32_t)(d & 0x3FFF) << 4, (uint32_t)((d >> 16) & 0x3FFF) << 4, (uint32_t)((d >> 32) & 0x3FFF) << 4};
}
inline uint32_t swizzle(uint32_t addr) { return addr ^ (((addr >> 7) & 7) << 4); }
template <bool BF16>
inline float element(uint32_t addr) {
    uint16_t h;
    std::memcpy(&h, at(swizzle(addr)), 2);
    return BF16 ? bf16ToFloat(h) : f16ToFloat(h);
}
// K-major: (row, k) of a rows x 16 operand
template <bool BF16>
inline float kMajor(const Desc& d, int row, int k) {
    return element<BF16>(d.start + (row / 8) * d.sbo + (row % 8) * 128 + k * 2);
}
// MN-major: (k, column) of a 16 x n operand
template <bool BF16>
inline float mnMajor(const Desc& d, int k, int col) {
    return element<BF16>(d.start + (k / 8) * d.sbo + (k % 8) * 128 + (col / 64) * d.lbo + (col % 64) * 2);
}
inline void accPosition(int t, int i, int& row, int& col) {  // register i of thread t (of 128)
    const int w = t / 32, lane = t % 32, g = lane / 4, q = lane % 4;
    row = 16 * w + g + ((i % 4) >= 2 ? 8 : 0);
    col = 8 * (i / 4) + 2 * q + (i & 1);
}
enum class A { K_MAJOR, MN_MAJOR, REGISTERS };
// d (+)= A B for the calling thread's warpgroup; B K-major unless bMnMajor
template <int N, bool BF16>
void mma(float* d, A aKind, uint64_t aDesc, const uint32_t* aRegs, uint64_t bDesc, bool bMnMajor, int accumulate) {
    const int t = threadIdx.x % 128, g = threadIdx.x / 128;
    Warpgroup& w = wg[g];
    for (int i = 0; i < N / 2; i++) {
        int r, c;
        accPosition(t, i, r, c);
        w.acc[r * N + c] = accumulate ? d[i] : 0.0f;
    }
    if (aKind == A::REGISTERS) {  // the m16n8k16 A fragment per warp: regs (row g / g + 8, k 2q / 8 + 2q), 2 halves each
        const int wp = t / 32, lane = t % 32, gr = lane / 4, q = lane % 4;
        for (int r = 0; r < 4; r++) {
            const int row = 16 * wp + gr + (r & 1 ? 8 : 0), k = 2 * q + (r & 2 ? 8 : 0);
            const uint16_t lo = (uint16_t)(aRegs[r] & 0xFFFF), hi = (uint16_t)(aRegs[r] >> 16);
            w.a[row][k] = BF16 ? bf16ToFloat(lo) : f16ToFloat(lo);
            w.a[row][k + 1] = BF16 ? bf16ToFloat(hi) : f16ToFloat(hi);
        }
    }
    std::barrier<>& bar = *groups[g];
    bar.arrive_and_wait();
    if (t == 0) {
        if (aKind != A::REGISTERS) {
            const Desc ad = decode(aDesc);
            for (int m = 0; m < 64; m++)
                for (int k = 0; k < 16; k++)
                    w.a[m][k] = aKind == A::K_MAJOR ? kMajor<BF16>(ad, m, k) : mnMajor<BF16>(ad, k, m);
        }
        const Desc bd = decode(bDesc);
        static thread_local float bm[16][128];
        for (int k = 0; k < 16; k++)
            for (int n = 0; n < N; n++) bm[k][n] = bMnMajor ? mnMajor<BF16>(bd, k, n) : kMajor<BF16>(bd, n, k);
        for (int m = 0; m < 64; m++)
            for (int n = 0; n < N; n++) {
                float s = 0.0f;
                for (int k = 0; k < 16; k++) s += w.a[m][k] * bm[k][n];
                w.acc[m * N + n] += s;
            }
    }
    bar.arrive_and_wait();
    for (int i = 0; i < N / 2; i++) {
        int r, c;
        accPosition(t, i, r, c);
        d[i] = w.acc[r * N + c];
    }
    bar.arrive_and_wait();
}
}  // namespace emu

template <int N, bool BF16>
void wgmma_ss(float* d, uint64_t a, uint64_t b, int accumulate) {
    emu::mma<N, BF16>(d, emu::A::K_MAJOR, a, nullptr, b, false, accumulate);
}
template <int N, bool BF16>
void wgmma_ss_tt(float* d, uint64_t a, uint64_t b, int accumulate) {
    emu::mma<N, BF16>(d, emu::A::MN_MAJOR, a, nullptr, b, true, accumulate);
}
template <int N, bool BF16>
void wgmma_rs(float* d, const uint32_t* a, uint64_t b) {
    emu::mma<N, BF16>(d, emu::A::REGISTERS, 0, a, b, true, 1);
}

#include "../../main/cuda/flash_attention_wgmma.cuh"

// ------------------------------------------------------------------ launches
// Runs f() as every thread of every block of a grid (gx, gy) with nt threads per block, with the
// kernel's dynamic shared memory `smem` at shared address `base` (poisoned: a read before a write is NaN).
template <class F>
static void launch(int gx, int gy, int nt, unsigned char* smem, uint32_t base, F f) {
    emu::smem = smem;
    emu::smemBase = base;
    gridDim = {(unsigned)gx, (unsigned)gy, 1};
    for (int by = 0; by < gy; by++)
        for (int bx = 0; bx < gx; bx++) {
            blockIdx = {(unsigned)bx, (unsigned)by, 0};
            std::memset(smem, 0xFF, SMEM_BYTES);
            emu::block = std::make_unique<std::barrier<>>(nt);
            emu::warps.clear();
            emu::groups.clear();
            for (int w = 0; w < nt / 32; w++) emu::warps.push_back(std::make_unique<std::barrier<>>(32));
            for (int w = 0; w < nt / 128; w++) emu::groups.push_back(std::make_unique<std::barrier<>>(128));
            std::vector<std::thread> threads;
            for (int t = 0; t < nt; t++)
                threads.emplace_back([t, &f] {
                    threadIdx = {(unsigned)t, 0, 0};
                    f();
                });
            for (std::thread& th : threads) th.join();
        }
}
// fa2 declares its shared memory __align__(128) and needs 16-byte alignment only (its swizzle goes by row):
// a base that is 16- but not 128-byte aligned; fa3 aligns its tiles to 1024 bytes itself: an unaligned base
constexpr uint32_t FA2_SMEM_BASE = 1040, FA3_SMEM_BASE = 1000;

// ------------------------------------------------------------------ cases and the fp64 reference
struct Case {
    int s, sk, B, np, ng;
    bool causal;
    std::vector<int> keyLengths;               // empty: none
    std::vector<std::vector<int>> documents;   // empty: none; else entry b's documents start at documents[b % n] (0 first)
    float dropP = 0.0f;

    std::vector<int> keyStarts() const {       // I32 [B, s], empty without documents
        std::vector<int> starts;
        for (int b = 0; !documents.empty() && b < B; b++) {
            const std::vector<int>& firsts = documents[b % documents.size()];
            for (int i = 0, doc = 0; i < s; i++) {
                while (doc + 1 < (int)firsts.size() && firsts[doc + 1] <= i) doc++;
                starts.push_back(firsts[doc]);
            }
        }
        return starts;
    }
    std::string describe() const {
        std::string d = "s=" + std::to_string(s) + " sk=" + std::to_string(sk) + " B=" + std::to_string(B) + " np=" +
                        std::to_string(np) + " ng=" + std::to_string(ng) + (causal ? " causal" : " full");
        if (!keyLengths.empty()) d += " padded";
        if (!documents.empty()) d += " documents";
        if (dropP > 0) d += " dropout";
        return d;
    }
};
constexpr unsigned long long DROP_SEED = 0x5EED1234ULL, DROP_OFFSET = 77;

// q, k, v, dO as 16-bit values, and everything the reference computes from them
template <int D, bool BF16>
struct Problem {
    const Case& c;
    std::vector<uint16_t> q, k, v, dO;
    std::vector<int> starts;
    std::vector<double> out, lse, dq, dk, dv;

    Problem(const Case& cs, unsigned seed) : c(cs) {
        std::mt19937 rng(seed);
        std::normal_distribution<float> normal;
        auto fill = [&](std::vector<uint16_t>& x, size_t n) {
            x.resize(n);
            for (auto& e : x) e = BF16 ? floatToBf16(normal(rng)) : floatToF16(normal(rng));
        };
        fill(q, (size_t)c.s * c.B * c.np * D);
        fill(k, (size_t)c.sk * c.B * c.ng * D);
        fill(v, k.size());
        fill(dO, q.size());
        starts = c.keyStarts();
        reference();
    }
    double qv(int i, int b, int h, int e) const { return from16<BF16>(q[(((size_t)i * c.B + b) * c.np + h) * D + e]); }
    double kv(int j, int b, int g, int e) const { return from16<BF16>(k[(((size_t)j * c.B + b) * c.ng + g) * D + e]); }
    double vv(int j, int b, int g, int e) const { return from16<BF16>(v[(((size_t)j * c.B + b) * c.ng + g) * D + e]); }
    double dov(int i, int b, int h, int e) const { return from16<BF16>(dO[(((size_t)i * c.B + b) * c.np + h) * D + e]); }
    bool visible(int b, int i, int j) const {
        const int keyEnd = c.keyLengths.empty() ? c.sk : std::max(0, std::min(c.keyLengths[b], c.sk));
        const int start = starts.empty() ? 0 : starts[(size_t)b * c.s + i];
        return j < keyEnd && j >= start && (!c.causal || j <= i + (c.sk - c.s));
    }
    // the dropout multiplier of probability (h, b, i, j): the Philox stream of Backend#attentionForward
    double keep(int h, int b, int i, int j) const {
        if (c.dropP == 0.0f) return 1.0;
        const unsigned long long e = DROP_OFFSET + (((unsigned long long)h * c.B + b) * c.s + i) * c.sk + j;
        return mj_uniform(DROP_SEED, e) >= c.dropP ? (double)(1.0f / (1.0f - c.dropP)) : 0.0;
    }

    void reference() {
        const int s = c.s, sk = c.sk, B = c.B, np = c.np, rep = c.np / c.ng;
        const double scale = 1.0f / std::sqrt((float)D);
        out.assign(q.size(), 0.0), dq.assign(q.size(), 0.0), dk.assign(k.size(), 0.0), dv.assign(k.size(), 0.0);
        lse.assign((size_t)B * np * s, 0.0);
        for (int b = 0; b < B; b++)
            for (int h = 0; h < np; h++) {
                const int g = h / rep;
                for (int i = 0; i < s; i++) {
                    std::vector<double> p(sk, -INFINITY), z(sk), dp(sk, 0.0);
                    double mx = -INFINITY;
                    for (int j = 0; j < sk; j++) {
                        if (!visible(b, i, j)) continue;
                        double dot = 0;
                        for (int e = 0; e < D; e++) dot += qv(i, b, h, e) * kv(j, b, g, e);
                        p[j] = dot * scale;
                        mx = std::max(mx, p[j]);
                    }
                    double l = 0;
                    for (int j = 0; j < sk; j++) l += std::isinf(p[j]) ? 0 : std::exp(p[j] - mx);
                    lse[((size_t)b * np + h) * s + i] = l > 0 ? mx + std::log(l) : -INFINITY;
                    double rowDot = 0;  // rowsum(dO * out) = sum_j P Z dP
                    for (int j = 0; j < sk; j++) {
                        p[j] = l > 0 && !std::isinf(p[j]) ? std::exp(p[j] - mx) / l : 0.0;
                        z[j] = keep(h, b, i, j);
                        for (int e = 0; e < D; e++) dp[j] += dov(i, b, h, e) * vv(j, b, g, e);
                        rowDot += p[j] * z[j] * dp[j];
                    }
                    for (int j = 0; j < sk; j++) {
                        const double ds = p[j] * (dp[j] * z[j] - rowDot) * scale;
                        for (int e = 0; e < D; e++) {
                            out[(((size_t)i * B + b) * np + h) * D + e] += p[j] * z[j] * vv(j, b, g, e);
                            dq[(((size_t)i * B + b) * np + h) * D + e] += ds * kv(j, b, g, e);
                            dk[(((size_t)j * B + b) * c.ng + g) * D + e] += ds * qv(i, b, h, e);
                            dv[(((size_t)j * B + b) * c.ng + g) * D + e] += p[j] * z[j] * dov(i, b, h, e);
                        }
                    }
                }
            }
    }

    // What the kernels write: out, dK, dV (16-bit) and lse poisoned (NaN), the fp32 dQ accumulator zeroed as
    // megatron_flash_attention_bwd_prep zeroes it
    struct Outputs {
        std::vector<uint16_t> out, dk, dv;
        std::vector<float> lse, dq;
    };
    Outputs outputs() const {
        return {std::vector<uint16_t>(q.size(), 0xFFFF), std::vector<uint16_t>(k.size(), 0xFFFF),
                std::vector<uint16_t>(k.size(), 0xFFFF), std::vector<float>((size_t)c.B * c.np * c.s, NAN),
                std::vector<float>(q.size(), 0.0f)};
    }
    const int* keyLengths() const { return c.keyLengths.empty() ? nullptr : c.keyLengths.data(); }

    // delta = rowsum(dO * out), as megatron_flash_attention_bwd_prep computes it from the kernel's 16-bit out
    std::vector<float> delta(const std::vector<uint16_t>& kernelOut) const {
        std::vector<float> d((size_t)c.B * c.np * c.s);
        for (int i = 0; i < c.s; i++)
            for (int b = 0; b < c.B; b++)
                for (int h = 0; h < c.np; h++) {
                    double acc = 0;
                    for (int e = 0; e < D; e++) {
                        const size_t at = (((size_t)i * c.B + b) * c.np + h) * D + e;
                        acc += (double)from16<BF16>(dO[at]) * from16<BF16>(kernelOut[at]);
                    }
                    d[((size_t)b * c.np + h) * c.s + i] = (float)acc;
                }
        return d;
    }
};

// The largest error of one element against the reference's root mean square: a norm over the
// whole tensor would hide a few wrong rows among many right ones.
static double maxErr(const std::vector<double>& x, const std::vector<double>& ref, std::string& note) {
    double worst = 0, sq = 0;
    size_t finite = 0;
    for (size_t i = 0; i < x.size(); i++) {
        if (std::isinf(ref[i])) {
            if (x[i] != ref[i]) note = "an infinite reference value differs";
            continue;
        }
        if (std::isnan(x[i])) {
            note = "NaN";
            return NAN;
        }
        worst = std::max(worst, std::fabs(x[i] - ref[i]));
        sq += ref[i] * ref[i];
        finite++;
    }
    return worst / std::max(std::sqrt(sq / std::max<size_t>(finite, 1)), 1e-30);
}


// Bounds on maxErr. 16-bit P, dS and outputs leave a few 16-bit roundings per element (bf16 2^-8,
// f16 2^-11, relative) on elements several times the rms; measured on the fa3 kernels when written:
// bf16 up to 0.065, f16 up to 0.006, lse 1.2e-7.
constexpr double TOL_BF16 = 0.15, TOL_F16 = 0.02, TOL_LSE = 1e-5;

// out, lse, dq, dk, dv of a kernel pair against the problem's reference; prints one line
template <int D, bool BF16>
static bool check(const Problem<D, BF16>& p, const std::string& name, const std::vector<uint16_t>& out,
                  const std::vector<float>& lse, const std::vector<float>& dq, const std::vector<uint16_t>& dk,
                  const std::vector<uint16_t>& dv) {
    auto widen16 = [](const std::vector<uint16_t>& x) {
        std::vector<double> r(x.size());
        for (size_t i = 0; i < x.size(); i++) r[i] = from16<BF16>(x[i]);
        return r;
    };
    auto widen = [](const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); };
    const char* names[] = {"out", "lse", "dq", "dk", "dv"};
    std::string notes[5];
    const double errs[] = {maxErr(widen16(out), p.out, notes[0]), maxErr(widen(lse), p.lse, notes[1]),
                           maxErr(widen(dq), p.dq, notes[2]), maxErr(widen16(dk), p.dk, notes[3]),
                           maxErr(widen16(dv), p.dv, notes[4])};
    const double tol16 = BF16 ? TOL_BF16 : TOL_F16;
    bool ok = true;
    for (int i = 0; i < 5; i++) ok &= !std::isnan(errs[i]) && errs[i] <= (i == 1 ? TOL_LSE : tol16) && notes[i].empty();
    printf("%s %s d=%-3d %-58s %-30s", ok ? "ok  " : "FAIL", BF16 ? "bf16" : "f16 ", D, p.c.describe().c_str(),
           name.c_str());
    for (int i = 0; i < 5; i++) printf(" %s %.1e%s%s", names[i], errs[i], notes[i].empty() ? "" : " ", notes[i].c_str());
    printf("\n");
    fflush(stdout);
    return ok;
}

// fa2: forward <NW warps, MW m-tiles, BN keys, QREG>, backward <BNW warps, BM rows, DQM>, as flash_attention.cu
// instantiates them (FA2_* macros); DROP and DOCS pick the _dropout / _docs twins
template <int D, bool BF16, int NW, int MW, int BN, bool QREG, int BNW, int BM, int DQM, bool DROP, bool DOCS>
static bool runFa2(const Case& c, unsigned seed, const char* name) {
    if (DROP != (c.dropP > 0) || DOCS != !c.documents.empty()) fail("case and kernel twins disagree", 0);
    const Problem<D, BF16> p(c, seed);
    const int s = c.s, sk = c.sk, B = c.B, np = c.np, ng = c.ng;
    const float scale = 1.0f / std::sqrt((float)D);
    auto [out, dk, dv, lse, dq] = p.outputs();
    const int* kl = p.keyLengths();
    const int* ks = p.starts.empty() ? nullptr : p.starts.data();
    const fa2::QkvStrides st{np * D, np / ng * D, ng * D, D};
    const fa2::Dropout dr{c.dropP, c.dropP > 0 ? 1.0f / (1.0f - c.dropP) : 1.0f, DROP_SEED, DROP_OFFSET};
    constexpr int BMF = 16 * NW * MW, BNB = 16 * BNW;
    launch((s + BMF - 1) / BMF, B * np, NW * 32, fa2::fa2_smem, FA2_SMEM_BASE, [&] {
        fa2::forward<D, BF16, NW, MW, BN, QREG, DROP, DOCS>(p.q.data(), p.k.data(), p.v.data(), out.data(), lse.data(),
                                                            s, sk, B, np, ng, scale, c.causal ? 1 : 0, kl, ks, st, dr);
    });
    const std::vector<float> delta = p.delta(out);
    launch((sk + BNB - 1) / BNB, B * ng, BNW * 32, fa2::fa2_smem, FA2_SMEM_BASE, [&] {
        fa2::backward<D, BF16, BNW, BM, DQM, DROP, DOCS>(p.q.data(), p.k.data(), p.v.data(), p.dO.data(), lse.data(),
                                                         delta.data(), dq.data(), dk.data(), dv.data(), s, sk, B, np,
                                                         ng, scale, c.causal ? 1 : 0, kl, ks, st, dr);
    });
    return check(p, name, out, lse, dq, dk, dv);
}

// fa2 as the fatbin instantiates it for head dim D (FA2_* of flash_attention_fa2.cuh); M2: the d 128 _m2 forward
template <int D, bool BF16, bool DROP = false, bool DOCS = false, bool M2 = false>
static bool fa2Production(const Case& c, unsigned seed) {
    std::string name = std::string("fa2 ") + (M2 ? "_m2" : "") + (DROP ? "_dropout" : "") + (DOCS ? "_docs" : "");
    return runFa2<D, BF16, FA2_FWD_WARPS(D), M2 ? FA2_FWD_M2_MT : FA2_FWD_MT(D), FA2_FWD_BN(D),
                  (M2 ? FA2_FWD_M2_QREG : FA2_FWD_QREG(D)) != 0, FA2_BWD_WARPS(D), FA2_BWD_BM(D), FA2_BWD_DQ(D), DROP,
                  DOCS>(c, seed, name.c_str());
}

// fa3: forward <NWG warpgroups, BN keys, PIPE>, backward <BWG warpgroups>
template <int D, bool BF16, int NWG, int BN, bool PIPE, int BWG>
static bool runFa3(const Case& c, unsigned seed) {
    const Problem<D, BF16> p(c, seed);
    const int s = c.s, sk = c.sk, B = c.B, np = c.np, ng = c.ng;
    const float scale = 1.0f / std::sqrt((float)D);
    auto [out, dk, dv, lse, dq] = p.outputs();
    const int* kl = p.keyLengths();
    const fa2::QkvStrides st{np * D, np / ng * D, ng * D, D};
    launch((s + 64 * NWG - 1) / (64 * NWG), B * np, 128 * NWG, fa3::fa3_smem, FA3_SMEM_BASE, [&] {
        fa3::forward<D, BF16, NWG, BN, PIPE>(p.q.data(), p.k.data(), p.v.data(), out.data(), lse.data(), s, sk, B, np, ng,
                                             scale, c.causal ? 1 : 0, kl, st);
    });
    const std::vector<float> delta = p.delta(out);
    launch((sk + 64 * BWG - 1) / (64 * BWG), B * ng, 128 * BWG, fa3::fa3_smem, FA3_SMEM_BASE, [&] {
        fa3::backward<D, BF16, BWG>(p.q.data(), p.k.data(), p.v.data(), p.dO.data(), lse.data(), delta.data(), dq.data(),
                                    dk.data(), dv.data(), s, sk, B, np, ng, scale, c.causal ? 1 : 0, kl, st);
    });
    const std::string name = "fa3 fwd wg" + std::to_string(NWG) + "n" + std::to_string(BN) + (PIPE ? "p" : "") +
                             " bwd wg" + std::to_string(BWG) + "b64";
    return check(p, name, out, lse, dq, dk, dv);
}

int main(int argc, char** argv) {
    const bool fa2Only = argc > 1 && std::strcmp(argv[1], "--fa2") == 0;
    const bool fa3Only = argc > 1 && std::strcmp(argv[1], "--fa3") == 0;
    int failed = 0, n = 0;
    auto count = [&](bool ok) { failed += !ok, n++; };
    if (!fa3Only) {
        // fa2, the production kernels: plain, _m2, _dropout, _docs and _dropout_docs, over partial blocks,
        // GQA/MQA, padding (batch entry 1 fully masked in one case), s < sk and s > sk
        count(fa2Production<64, true>({150, 150, 2, 2, 2, true, {}, {}}, 101));
        count(fa2Production<64, true>({70, 200, 2, 4, 1, true, {190, 0}, {}}, 102));
        count(fa2Production<64, true>({200, 90, 1, 4, 2, false, {}, {}}, 103));
        count(fa2Production<128, true>({130, 130, 1, 4, 2, true, {}, {}}, 104));
        count(fa2Production<128, true>({60, 100, 2, 2, 2, false, {77, 100}, {}}, 105));
        count(fa2Production<128, true, false, false, true>({200, 200, 1, 2, 1, true, {}, {}}, 106));
        count(fa2Production<64, true, true>({130, 130, 2, 2, 1, true, {}, {}, 0.2f}, 107));
        count(fa2Production<128, true, true>({100, 100, 1, 4, 2, true, {80}, {}, 0.2f}, 108));
        count(fa2Production<64, true, false, true>({200, 200, 2, 4, 2, true, {}, {{0, 37, 130, 131}, {0, 64}}}, 109));
        count(fa2Production<128, true, false, true>({150, 150, 1, 2, 1, true, {}, {{0, 20, 97}}}, 110));
        count(fa2Production<64, true, true, true>({140, 140, 1, 2, 2, true, {}, {{0, 70, 100}}, 0.15f}, 111));
        // short documents: the backward skips the query blocks whose rows all start after a key block, and one document
        // starts at a key block's last key (63, 127), which must not be skipped
        count(fa2Production<64, true, false, true>({256, 256, 1, 2, 1, true, {}, {{0, 40, 63, 80, 120, 160, 200, 240}}}, 116));
        count(fa2Production<128, true, false, true>({300, 300, 1, 2, 2, true, {}, {{0, 60, 127, 180, 250}}}, 117));
        count(fa2Production<128, true, true, true>({100, 100, 2, 2, 1, true, {}, {{0, 50}, {0, 9, 90}}, 0.15f}, 112));
        count(fa2Production<64, false>({100, 100, 1, 2, 1, true, {}, {}}, 113));
        count(fa2Production<128, false, false, true>({100, 100, 1, 2, 2, true, {}, {{0, 40}}}, 114));
        count(fa2Production<64, false, true>({90, 90, 1, 2, 2, true, {}, {}, 0.25f}, 115));
    }
    if (!fa2Only) {
        // fa3: every forward and backward variant flash_attention_check times, on shapes with partial blocks,
        // GQA/MQA, padding, s < sk and s > sk
        count(runFa3<64, true, 1, 64, false, 1>({70, 70, 1, 2, 1, true, {}}, 1));
        count(runFa3<64, true, 2, 128, false, 2>({200, 200, 2, 2, 1, true, {150, 33}}, 2));
        count(runFa3<64, true, 3, 128, false, 1>({300, 100, 1, 2, 2, true, {}}, 3));
        count(runFa3<64, true, 2, 64, false, 2>({40, 300, 1, 4, 2, false, {260}}, 4));
        count(runFa3<64, true, 1, 128, false, 1>({130, 130, 1, 2, 2, false, {}}, 5));
        count(runFa3<64, true, 2, 128, true, 2>({200, 200, 1, 2, 2, true, {}}, 6));
        count(runFa3<64, true, 1, 128, true, 1>({150, 150, 2, 2, 1, true, {120, 0}}, 7));
        count(runFa3<128, true, 2, 128, false, 2>({130, 130, 1, 2, 2, true, {}}, 8));
        count(runFa3<128, true, 2, 64, false, 1>({150, 150, 1, 4, 1, true, {}}, 9));
        count(runFa3<128, true, 1, 128, false, 2>({40, 300, 1, 4, 2, false, {260}}, 10));
        count(runFa3<128, true, 1, 64, false, 1>({100, 100, 2, 2, 2, false, {77, 100}}, 11));
        count(runFa3<128, true, 2, 128, true, 1>({260, 260, 1, 2, 2, true, {}}, 12));
        count(runFa3<128, true, 2, 64, true, 2>({130, 70, 1, 2, 2, true, {}}, 13));
        count(runFa3<128, true, 1, 64, true, 1>({150, 150, 1, 2, 2, true, {}}, 14));
        // f16 (the forward variants have f16 kernels too)
        count(runFa3<64, false, 2, 128, true, 2>({130, 130, 1, 2, 2, true, {}}, 15));
        count(runFa3<128, false, 2, 64, false, 1>({100, 100, 1, 2, 1, true, {90}}, 16));
    }
    printf("errors: the largest of one element over the reference's rms (bounds: bf16 %.2g, f16 %.2g, lse %.0e)\n",
           TOL_BF16, TOL_F16, TOL_LSE);
    printf("%d of %d cases failed\n", failed, n);
    return failed ? 1 : 0;
}
