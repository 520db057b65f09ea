// Runs the wgmma FlashAttention kernels of flash_attention_wgmma.cuh on the CPU, their own C++
// source line for line, and checks out, lse, dQ, dK and dV against an fp64 reference.
//
// The kernels have not run on a GPU yet. This compiles their bodies (MJ_FA3_HOST_EMULATION) with
// g++ and gives them what the hardware would: one std::thread per CUDA thread of a block, barriers
// for __syncthreads, warp shuffles through per-warp slots, shared memory as a byte array at a
// deliberately unaligned base address, cp.async as an immediate copy, and wgmma as a warpgroup
// rendezvous: every thread deposits its accumulator (and A) fragments, one thread multiplies the
// operands it reads from shared memory through the matrix descriptors, every thread takes its
// fragments back. The descriptors are read as CUTLASS's canonical GMMA layouts define them
// (K-major SW128 ((8,m),(T,2k)):((8T,SBO),(1,T)), MN-major SW128 ((T,8,m),(8,k)):((1,T,LBO),(8T,SBO)),
// T = 16 bytes, then the 128-byte swizzle: address bits [4,7) ^= bits [7,10)) and the fragments
// as the PTX ISA draws them (thread t of warp w: rows 16 w + t/4 (+ 8), columns 8 i + 2 (t % 4) (+ 1)).
// So the kernels' indexing, tiling, masking, stage rotation, pipelining, shared-memory traffic and
// fragment packing are exercised as written; whether the hardware reads descriptors and fragments
// as assumed here, and the asynchrony (wgmma and cp.async complete at issue here), are the GPU's
// to confirm (flash_attention_check).
//
//   native/src/test/cuda/run-fa3-emulation.sh   (g++ 12+, C++20; about 40 s on 2 cores); Maven runs it with
//   the slow tests (-Dtest.excluded=gpu)
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#define MJ_FA3_HOST_EMULATION 1
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__
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

// ------------------------------------------------------------------ the emulated machine
constexpr uint32_t SMEM_BASE = 1000;     // a dynamic shared memory start that is not 1024-aligned
constexpr int SMEM_BYTES = 232448;       // the H100's per-block maximum
namespace fa3 {
unsigned char fa3_smem[SMEM_BYTES];      // what the kernels' block-scope `extern __shared__ fa3_smem[]` names
}
using fa3::fa3_smem;

namespace emu {
std::unique_ptr<std::barrier<>> block;
std::vector<std::unique_ptr<std::barrier<>>> warps, groups;
float shfl[16][32];
struct Warpgroup {
    std::vector<float> acc = std::vector<float>(64 * 128);
    float a[64][16];
};
Warpgroup wg[4];

unsigned char* at(uint32_t addr) {
    if (addr < SMEM_BASE || addr + 16 > SMEM_BASE + SMEM_BYTES) {
        fprintf(stderr, "shared address %u outside [%u, %u)\n", addr, SMEM_BASE, SMEM_BASE + SMEM_BYTES);
        std::abort();
    }
    return fa3_smem + (addr - SMEM_BASE);
}
}  // namespace emu

static inline void __syncthreads() { emu::block->arrive_and_wait(); }
static inline float __shfl_xor_sync(unsigned, float v, int laneMask) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    std::barrier<>& b = *emu::warps[warp];
    b.arrive_and_wait();
    emu::shfl[warp][lane] = v;
    b.arrive_and_wait();
    const float r = emu::shfl[warp][lane ^ laneMask];
    b.arrive_and_wait();
    return r;
}

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

// ------------------------------------------------------------------ what the kernels take from fa2 and common.cuh
static inline i64 fa_key_end(const int* keyLengths, int b, i64 sk) {
    if (keyLengths == nullptr) return sk;
    i64 len = keyLengths[b];
    return len < 0 ? 0 : (len < sk ? len : sk);
}
namespace fa2 {
constexpr float LOG2E = 1.4426950408889634f;
constexpr float LN2 = 0.6931471805599453f;
template <bool BF16>
struct Elem {
    typedef uint16_t T;
    static uint32_t pack(float lo, float hi) {
        return BF16 ? (uint32_t)floatToBf16(lo) | (uint32_t)floatToBf16(hi) << 16
                    : (uint32_t)floatToF16(lo) | (uint32_t)floatToF16(hi) << 16;
    }
};
// as in flash_attention.cu
struct QkvStrides {
    int qTok, qGrp, kTok, kGrp;
    i64 query(int b, int h, int rep, int d) const { return (i64)b * qTok + (i64)(h / rep) * qGrp + (i64)(h % rep) * d; }
    i64 key(int b, int g) const { return (i64)b * kTok + (i64)g * kGrp; }
};
static inline uint32_t smem_u32(const void* p) {
    return SMEM_BASE + (uint32_t)(static_cast<const unsigned char*>(p) - fa3_smem);
}
static inline void cp_async16(uint32_t dst, const void* src, bool ok) {
    if (ok) std::memcpy(emu::at(dst), src, 16);
    else std::memset(emu::at(dst), 0, 16);
}
static inline void cp_async_commit() {}
template <int N>
static inline void cp_async_wait() {}
static inline void sts_u32(uint32_t addr, uint32_t v) { std::memcpy(emu::at(addr), &v, 4); }
static inline float ex2(float x) { return std::exp2(x); }
static inline void red_add_v2(float* p, float a, float b) {
    std::atomic_ref<float>(p[0]).fetch_add(a);
    std::atomic_ref<float>(p[1]).fetch_add(b);
}
}  // namespace fa2

namespace fa3 {
inline void wgmma_fence() {}
inline void wgmma_commit() {}
template <int N>
inline void wgmma_wait() {}  // the emulated wgmma is complete when it returns
inline void fence_proxy_async() {}
template <int N>
inline void pin(float*) {}
}  // namespace fa3

// ------------------------------------------------------------------ wgmma
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
// Runs f() as every thread of every block of a grid (gx, gy) with nt threads per block.
template <class F>
static void launch(int gx, int gy, int nt, F f) {
    gridDim = {(unsigned)gx, (unsigned)gy, 1};
    for (int by = 0; by < gy; by++)
        for (int bx = 0; bx < gx; bx++) {
            blockIdx = {(unsigned)bx, (unsigned)by, 0};
            std::memset(fa3_smem, 0xFF, sizeof fa3_smem);  // poison: a read before a write is NaN
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

struct Case {
    int s, sk, B, np, ng;
    bool causal;
    std::vector<int> keyLengths;  // empty: none
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
// f16 2^-11, relative) on elements several times the rms; measured when written: bf16 up to 0.065, f16
// up to 0.006, lse 1.2e-7.
constexpr double TOL_BF16 = 0.15, TOL_F16 = 0.02, TOL_LSE = 1e-5;

template <int D, bool BF16, int NWG, int BN, bool PIPE, int BWG>
static bool run(const Case& c, unsigned seed) {
    const int s = c.s, sk = c.sk, B = c.B, np = c.np, ng = c.ng, rep = np / ng;
    const float scale = 1.0f / std::sqrt((float)D);
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    auto to16 = [](float f) { return BF16 ? floatToBf16(f) : floatToF16(f); };
    auto from16 = [](uint16_t h) { return BF16 ? bf16ToFloat(h) : f16ToFloat(h); };
    const size_t nq = (size_t)s * B * np * D, nk = (size_t)sk * B * ng * D;
    std::vector<uint16_t> q(nq), k(nk), v(nk), dO(nq), out(nq, 0xFFFF), dk(nk, 0xFFFF), dv(nk, 0xFFFF);
    for (auto& x : q) x = to16(normal(rng));
    for (auto& x : k) x = to16(normal(rng));
    for (auto& x : v) x = to16(normal(rng));
    for (auto& x : dO) x = to16(normal(rng));
    std::vector<float> lse((size_t)B * np * s, NAN), delta((size_t)B * np * s), dq(nq, 0.0f);
    const int* kl = c.keyLengths.empty() ? nullptr : c.keyLengths.data();
    const fa2::QkvStrides st{np * D, rep * D, ng * D, D};

    const int bm = 64 * NWG;
    launch((s + bm - 1) / bm, B * np, 128 * NWG, [&] {
        fa3::forward<D, BF16, NWG, BN, PIPE>(q.data(), k.data(), v.data(), out.data(), lse.data(), s, sk, B, np, ng,
                                             scale, c.causal ? 1 : 0, kl, st);
    });
    // delta = rowsum(dO * out), as megatron_flash_attention_bwd_prep computes it from the 16-bit out
    for (int i = 0; i < s; i++)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < np; h++) {
                double acc = 0;
                for (int e = 0; e < D; e++) {
                    const size_t at = (((size_t)i * B + b) * np + h) * D + e;
                    acc += (double)from16(dO[at]) * from16(out[at]);
                }
                delta[((size_t)b * np + h) * s + i] = (float)acc;
            }
    launch((sk + 64 * BWG - 1) / (64 * BWG), B * ng, 128 * BWG, [&] {
        fa3::backward<D, BF16, BWG>(q.data(), k.data(), v.data(), dO.data(), lse.data(), delta.data(), dq.data(),
                                    dk.data(), dv.data(), s, sk, B, np, ng, scale, c.causal ? 1 : 0, kl, st);
    });

    // fp64 reference
    std::vector<double> rOut(nq), rLse((size_t)B * np * s), rDq(nq, 0.0), rDk(nk, 0.0), rDv(nk, 0.0);
    auto qv = [&](int i, int b, int h, int e) { return (double)from16(q[(((size_t)i * B + b) * np + h) * D + e]); };
    auto kv = [&](int j, int b, int g, int e) { return (double)from16(k[(((size_t)j * B + b) * ng + g) * D + e]); };
    auto vv = [&](int j, int b, int g, int e) { return (double)from16(v[(((size_t)j * B + b) * ng + g) * D + e]); };
    auto dov = [&](int i, int b, int h, int e) { return (double)from16(dO[(((size_t)i * B + b) * np + h) * D + e]); };
    for (int b = 0; b < B; b++) {
        const int keyEnd = kl ? std::max(0, std::min(kl[b], sk)) : sk;
        for (int h = 0; h < np; h++) {
            const int g = h / rep;
            for (int i = 0; i < s; i++) {
                std::vector<double> p(sk, 0.0);
                double mx = -INFINITY;
                for (int j = 0; j < sk; j++) {
                    if (j >= keyEnd || (c.causal && j > i + (sk - s))) {
                        p[j] = -INFINITY;
                        continue;
                    }
                    double dot = 0;
                    for (int e = 0; e < D; e++) dot += qv(i, b, h, e) * kv(j, b, g, e);
                    p[j] = dot * scale;
                    mx = std::max(mx, p[j]);
                }
                double l = 0;
                for (int j = 0; j < sk; j++) l += std::isinf(p[j]) ? 0 : std::exp(p[j] - mx);
                const size_t row = ((size_t)b * np + h) * s + i;
                rLse[row] = l > 0 ? mx + std::log(l) : -INFINITY;
                for (int j = 0; j < sk; j++) p[j] = l > 0 && !std::isinf(p[j]) ? std::exp(p[j] - mx) / l : 0.0;
                std::vector<double> dp(sk, 0.0);
                double dsum = 0;
                for (int j = 0; j < sk; j++) {
                    for (int e = 0; e < D; e++) dp[j] += dov(i, b, h, e) * vv(j, b, g, e);
                    dsum += p[j] * dp[j];
                }
                for (int e = 0; e < D; e++) {
                    double o = 0;
                    for (int j = 0; j < sk; j++) o += p[j] * vv(j, b, g, e);
                    rOut[(((size_t)i * B + b) * np + h) * D + e] = o;
                }
                for (int j = 0; j < sk; j++) {
                    const double ds = p[j] * (dp[j] - dsum);
                    for (int e = 0; e < D; e++) {
                        rDq[(((size_t)i * B + b) * np + h) * D + e] += ds * kv(j, b, g, e) * scale;
                        rDk[(((size_t)j * B + b) * ng + g) * D + e] += ds * qv(i, b, h, e) * scale;
                        rDv[(((size_t)j * B + b) * ng + g) * D + e] += p[j] * dov(i, b, h, e);
                    }
                }
            }
        }
    }
    auto widen16 = [&](const std::vector<uint16_t>& x) {
        std::vector<double> r(x.size());
        for (size_t i = 0; i < x.size(); i++) r[i] = from16(x[i]);
        return r;
    };
    auto widen = [](const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); };
    const char* names[] = {"out", "lse", "dq", "dk", "dv"};
    std::string notes[5];
    const double errs[] = {maxErr(widen16(out), rOut, notes[0]), maxErr(widen(lse), rLse, notes[1]),
                           maxErr(widen(dq), rDq, notes[2]), maxErr(widen16(dk), rDk, notes[3]),
                           maxErr(widen16(dv), rDv, notes[4])};
    const double tol16 = BF16 ? TOL_BF16 : TOL_F16;
    bool ok = true;
    for (int i = 0; i < 5; i++) ok &= !std::isnan(errs[i]) && errs[i] <= (i == 1 ? TOL_LSE : tol16) && notes[i].empty();
    printf("%s %s d=%d s=%d sk=%d B=%d np=%d ng=%d %s%s fwd wg%dn%d%s bwd wg%db64:", ok ? "ok  " : "FAIL",
           BF16 ? "bf16" : "f16 ", D, s, sk, B, np, ng, c.causal ? "causal" : "full", kl ? " padded" : "", NWG, BN,
           PIPE ? "p" : "", BWG);
    for (int i = 0; i < 5; i++) printf(" %s %.1e%s%s", names[i], errs[i], notes[i].empty() ? "" : " ", notes[i].c_str());
    printf("\n");
    return ok;
}

int main() {
    int failed = 0, n = 0;
    auto count = [&](bool ok) { failed += !ok, n++; };
    // every forward and backward variant flash_attention_check times, on shapes with partial blocks,
    // GQA/MQA, padding, s < sk and s > sk
    count(run<64, true, 1, 64, false, 1>({70, 70, 1, 2, 1, true, {}}, 1));
    count(run<64, true, 2, 128, false, 2>({200, 200, 2, 2, 1, true, {150, 33}}, 2));
    count(run<64, true, 3, 128, false, 1>({300, 100, 1, 2, 2, true, {}}, 3));
    count(run<64, true, 2, 64, false, 2>({40, 300, 1, 4, 2, false, {260}}, 4));
    count(run<64, true, 1, 128, false, 1>({130, 130, 1, 2, 2, false, {}}, 5));
    count(run<64, true, 2, 128, true, 2>({200, 200, 1, 2, 2, true, {}}, 6));
    count(run<64, true, 1, 128, true, 1>({150, 150, 2, 2, 1, true, {120, 0}}, 7));
    count(run<128, true, 2, 128, false, 2>({130, 130, 1, 2, 2, true, {}}, 8));
    count(run<128, true, 2, 64, false, 1>({150, 150, 1, 4, 1, true, {}}, 9));
    count(run<128, true, 1, 128, false, 2>({40, 300, 1, 4, 2, false, {260}}, 10));
    count(run<128, true, 1, 64, false, 1>({100, 100, 2, 2, 2, false, {77, 100}}, 11));
    count(run<128, true, 2, 128, true, 1>({260, 260, 1, 2, 2, true, {}}, 12));
    count(run<128, true, 2, 64, true, 2>({130, 70, 1, 2, 2, true, {}}, 13));
    count(run<128, true, 1, 64, true, 1>({150, 150, 1, 2, 2, true, {}}, 14));
    // f16 (the forward variants have f16 kernels too)
    count(run<64, false, 2, 128, true, 2>({130, 130, 1, 2, 2, true, {}}, 15));
    count(run<128, false, 2, 64, false, 1>({100, 100, 1, 2, 1, true, {90}}, 16));
    printf("errors: the largest of one element over the reference's rms (bounds: bf16 %.2g, f16 %.2g, lse %.0e)\n",
           TOL_BF16, TOL_F16, TOL_LSE);
    printf("%d of %d cases failed\n", failed, n);
    return failed ? 1 : 0;
}
