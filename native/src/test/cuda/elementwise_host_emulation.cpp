// Runs elementwise.cu's mixture-of-experts row kernels, megatron_scale_rows and megatron_row_dot, on the CPU from
// their own source, with CudaBackend's launches (grid(n) blocks of 256 threads; row dot: grid(rows * 32), a warp per
// row), and checks them against fp64: F32, BF16 and F16 in every mix the Java side allows, one column, odd widths
// around a warp's 32 lanes, rows longer than a block, grids far smaller than the work (both grid-stride loops turn,
// with the grid cap of a 1-, 2- and 132-SM GPU and with one block), views at an odd element offset, in place.
// Outputs are poisoned (NaN) first, with poisoned guards on both sides that must stay untouched.
//
// g++ compiles all of elementwise.cu (and common.cuh) with one std::thread per CUDA thread of a block (blocks one
// at a time, by the same threads), barriers for __syncthreads, and __shfl_xor_sync as a rendezvous of the warp: every lane deposits its
// value and sets its bit, the warp meets, each lane checks that the mask's lanes all arrived (a lane that has left
// the kernel or the loop drops out of the warp's barrier, so a shuffle it misses is reported, not deadlocked on)
// and reads its partner's value, and the warp meets again. emulation-include/ stands in for cuda_bf16.h and
// cuda_fp16.h (16-bit floats as bits, round to nearest even). Two negative controls must fail: row dot launched
// with 48 threads per block (a warp with 16 lanes reaches a full-mask shuffle), and a launch grid that skips rows.
// Not exercised: the hardware's memory system and scheduling (memory_bound_check and CudaBackendTest on a GPU).
//
//   native/src/test/cuda/run-elementwise-emulation.sh   (g++ 12+, C++20; no GPU, no CUDA); Maven runs it in the
//   native module's test phase (-Delementwise.emulation.skip=true leaves it out)
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

#define __device__
#define __host__
#define __global__
#define __forceinline__ inline
#define __shared__ static  // block-shared (blocks run one at a time)

struct Dim3 {
    unsigned x = 0, y = 0, z = 0;
};
thread_local Dim3 threadIdx;
Dim3 blockIdx, gridDim, blockDim;

template <class T>
static inline T min(T a, T b) { return b < a ? b : a; }
template <class T>
static inline T max(T a, T b) { return a < b ? b : a; }

struct uint4 {
    uint32_t x, y, z, w;
};
struct int4 {
    int x, y, z, w;
};
struct float4 {
    float x, y, z, w;
};
static inline uint4 make_uint4(uint32_t x, uint32_t y, uint32_t z, uint32_t w) { return {x, y, z, w}; }
static inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
static inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
static inline uint32_t __umulhi(uint32_t a, uint32_t b) { return (uint32_t)(((uint64_t)a * b) >> 32); }
static inline float __uint_as_float(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
static inline float atomicAdd(float* p, float v) { return std::atomic_ref<float>(*p).fetch_add(v); }

// ------------------------------------------------------------------ the emulated machine
namespace emu {
struct Warp {
    uint32_t bits[32];
    std::atomic<uint32_t> present[2];  // lanes that reached the current shuffle, by shuffle parity
};
std::unique_ptr<std::barrier<>> block;
std::vector<std::unique_ptr<std::barrier<>>> warps;
std::unique_ptr<Warp[]> state;
thread_local unsigned shuffles = 0;  // shuffles this lane has executed in this launch
std::atomic<int> badShuffles{0};
bool quiet = false;  // negative controls: count, do not print
inline std::barrier<>& warp() { return *warps[threadIdx.x / 32]; }
}  // namespace emu

static inline void __syncthreads() { emu::block->arrive_and_wait(); }
template <class T>
static inline T __shfl_xor_sync(unsigned mask, T v, int laneMask) {
    static_assert(sizeof(T) == 4, "32-bit shuffles");
    const int lane = threadIdx.x % 32, p = emu::shuffles++ & 1;
    emu::Warp& w = emu::state[threadIdx.x / 32];
    std::memcpy(&w.bits[lane], &v, 4);
    w.present[p].fetch_or(1u << lane);
    emu::warp().arrive_and_wait();
    uint32_t arrived = w.present[p].load();
    w.present[p ^ 1].store(0);  // the previous shuffle's mask: every lane has checked it
    if ((arrived & mask) != mask && lane == __builtin_ctz(arrived)) {
        if (emu::badShuffles++ < 3 && !emu::quiet)
            fprintf(stderr, "emulation: __shfl_xor_sync(0x%08x) in block %u, warp %u reached by lanes 0x%08x only\n",
                    mask, blockIdx.x, threadIdx.x / 32, arrived);
    }
    T r;
    std::memcpy(&r, &w.bits[lane ^ laneMask], 4);
    emu::warp().arrive_and_wait();
    return r;
}

#include "../../main/cuda/elementwise.cu"

// grid blocks of `threads` threads, one block at a time, each thread running kernel(): the threads of block 0 run
// every block in turn, meeting between blocks, where the block's barriers are made anew (a lane that left the kernel
// dropped out of them)
static void newBlock(int threads) {
    int nw = (threads + 31) / 32;
    emu::block = std::make_unique<std::barrier<>>(threads);
    emu::warps.clear();
    for (int w = 0; w < nw; w++) emu::warps.push_back(std::make_unique<std::barrier<>>(std::min(32, threads - 32 * w)));
    emu::state = std::make_unique<emu::Warp[]>(nw);
}
template <class K>
static void launch(long long grid, int threads, K kernel) {
    gridDim = {(unsigned)grid, 1, 1};
    blockDim = {(unsigned)threads, 1, 1};
    blockIdx = {0, 0, 0};
    newBlock(threads);
    auto next = [threads]() noexcept {
        blockIdx.x++;
        newBlock(threads);
    };
    std::barrier<decltype(next)> between(threads, next);
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; t++)
        ts.emplace_back([&, t] {
            threadIdx = {(unsigned)t, 0, 0};
            for (long long b = 0; b < grid; b++) {
                emu::shuffles = 0;
                kernel();
                emu::warp().arrive_and_drop();  // a lane that has left no longer counts at its warp's shuffles
                emu::block->arrive_and_drop();
                between.arrive_and_wait();
            }
        });
    for (auto& t : ts) t.join();
}

// ------------------------------------------------------------------ buffers, data, checks
static const int T = 256, GUARD = 64;
static int esize(int dt) { return dt == MJ_BF16 || dt == MJ_F16 ? 2 : 4; }
static const char* dname(int dt) { return dt == MJ_BF16 ? "bf16" : dt == MJ_F16 ? "f16" : "f32"; }
// CudaBackend.grid(n): enough 256-thread blocks for n, at most 16 per SM
static long long gridFor(long long n, int sms) { return std::max(1LL, std::min((n + T - 1) / T, (long long)sms * 16)); }

// n elements of dtype dt at element offset `off`, between GUARD poisoned (all-ones: NaN) elements on each side
struct Buf {
    int dt;
    long long n;
    int off;
    std::vector<unsigned char> bytes;
    Buf(int dt_, long long n_, int off_) : dt(dt_), n(n_), off(off_), bytes((size_t)(n_ + off_ + 2 * GUARD) * esize(dt_), 0xFF) {}
    void* p() { return bytes.data() + (size_t)(GUARD + off) * esize(dt); }
    float get(long long i) { return mj_load(p(), i, dt); }
    void set(long long i, float v) { mj_store(p(), i, dt, v); }
    void poison() { std::memset(p(), 0xFF, (size_t)n * esize(dt)); }
    bool guardsIntact() const {
        size_t lo = (size_t)(GUARD + off) * esize(dt), hi = lo + (size_t)n * esize(dt);
        for (size_t i = 0; i < bytes.size(); i++)
            if ((i < lo || i >= hi) && bytes[i] != 0xFF) return false;
        return true;
    }
};

static std::mt19937_64 rng(20261207);
static void fill(Buf& b, float lo, float hi) {
    std::uniform_real_distribution<float> u(lo, hi);
    for (long long i = 0; i < b.n; i++) b.set(i, u(rng));
}

static int g_cases = 0, g_fail = 0;
static void result(bool ok, const std::string& what, const std::string& detail) {
    g_cases++;
    if (!ok) {
        g_fail++;
        if (!emu::quiet) printf("  FAIL %s: %s\n", what.c_str(), detail.c_str());
    }
}

// half an ulp of dt at 1, relative (F16 also half its smallest subnormal, absolute)
static double relTol(int dt) { return dt == MJ_BF16 ? 0x1p-8 : dt == MJ_F16 ? 0x1p-11 : 0x1p-24; }
static double absTol(int dt) { return dt == MJ_F16 ? 0x1p-25 : 1e-38; }

static void checkScaleRows(const std::string& what, Buf& x, Buf& s, Buf& y, const std::vector<double>& xs, long long cols) {
    long long worst = -1;
    double worstErr = 0;
    for (long long i = 0; i < y.n; i++) {
        double e = xs[i] * (double)s.get(i / cols), g = y.get(i);
        double err = std::fabs(g - e) - (relTol(y.dt) * std::fabs(e) + absTol(y.dt));
        if (!(err <= 0) && (worst < 0 || err > worstErr || std::isnan(g))) worst = i, worstErr = std::isnan(g) ? INFINITY : err;
    }
    char d[200];
    snprintf(d, sizeof d, "element %lld: expected %.9g, got %.9g", worst, worst < 0 ? 0 : xs[worst] * s.get(worst / cols),
             worst < 0 ? 0 : y.get(worst));
    result(worst < 0 && y.guardsIntact() && x.guardsIntact(), what, worst >= 0 ? d : "a guard element was written");
}

static void checkRowDot(const std::string& what, Buf& a, Buf& b, Buf& o, long long rows, long long cols) {
    for (long long r = 0; r < rows; r++) {
        double dot = 0, abs = 0;
        for (long long c = 0; c < cols; c++) {
            double t = (double)a.get(r * cols + c) * b.get(r * cols + c);
            dot += t, abs += std::fabs(t);
        }
        double g = o.get(r);
        if (!(std::fabs(g - dot) <= 2e-6 * abs + 1e-30)) {
            char d[200];
            snprintf(d, sizeof d, "row %lld: expected %.9g, got %.9g", r, dot, g);
            return result(false, what, d);
        }
    }
    result(o.guardsIntact(), what, "a guard element was written");
}

// scale rows (into y of dtype yt, and in place) and row dot (b of dtype bt) on [rows, cols] of dtype dt
static void rowsCase(long long rows, long long cols, int dt, int yt, int bt, int off, int sms) {
    long long n = rows * cols;
    char tag[160];
    snprintf(tag, sizeof tag, "%lldx%lld x %s y %s b %s offset %d, grid cap %d SMs", rows, cols, dname(dt), dname(yt),
             dname(bt), off, sms);
    Buf x(dt, n, off), s(MJ_F32, rows, off), y(yt, n, off), b(bt, n, off), o(MJ_F32, rows, off);
    fill(x, -2.f, 2.f), fill(s, -1.5f, 1.5f), fill(b, -2.f, 2.f);
    std::vector<double> xs(n);
    for (long long i = 0; i < n; i++) xs[i] = x.get(i);
    launch(gridFor(n, sms), T, [&] { megatron_scale_rows(x.p(), dt, (const float*)s.p(), y.p(), yt, rows, cols); });
    checkScaleRows(std::string("scale rows ") + tag, x, s, y, xs, cols);
    for (long long grid : {gridFor(rows * 32, sms), 1LL}) {
        if (grid == 1 && rows > 64) break;  // (slow here: 8 warps take every row in turn)
        o.poison();
        launch(grid, T, [&] { megatron_row_dot(x.p(), dt, b.p(), bt, (float*)o.p(), rows, cols); });
        checkRowDot(std::string("row dot ") + tag + (grid == 1 ? ", one block" : ""), x, b, o, rows, cols);
    }
    if (yt == dt) {  // in place: y == x
        launch(gridFor(n, sms), T, [&] { megatron_scale_rows(x.p(), dt, (const float*)s.p(), x.p(), dt, rows, cols); });
        checkScaleRows(std::string("scale rows in place ") + tag, x, s, x, xs, cols);
    }
}

int main() {
    const int dts[] = {MJ_F32, MJ_BF16, MJ_F16};
    struct Shape {
        long long rows, cols;
    };
    // a 2-SM grid cap (32 blocks, 256 warps) or 1-SM (16 blocks) makes both grid-stride loops turn; 132 SMs is the H100's
    // a 2-SM grid cap (32 blocks, 256 warps) or 1-SM (16 blocks) makes both grid-stride loops turn; 132 SMs is the H100's
    const Shape shapes[] = {{1000, 1}, {37, 33}, {5, 31}, {1, 70}, {3, 4099}, {2, 3 * 65}};
    for (int dt : dts) {
        int off = 0;
        for (const Shape& sh : shapes) rowsCase(sh.rows, sh.cols, dt, dt, dt, off ^= 1, 2);
        for (int other : dts)
            if (other != dt) rowsCase(37, 33, dt, other, other, 1, 2);  // y and b of another dtype
        rowsCase(2LL * 16 * T / 32 + 3, 17, dt, dt, dt, 1, 1);         // twice the 1-SM grid's 128 warps, + 3
    }
    rowsCase(1000, 1, MJ_BF16, MJ_BF16, MJ_BF16, 1, 132);
    rowsCase(3, 4099, MJ_BF16, MJ_BF16, MJ_BF16, 1, 132);
    int cases = g_cases, fails = g_fail;
    printf("elementwise host emulation: scale rows / row dot: %d cases, %d failed\n", cases, fails);
    if (emu::badShuffles) printf("  FAIL %d shuffles with lanes missing\n", emu::badShuffles.load());

    // negative controls: each must be caught
    bool caught[2];
    emu::quiet = true;
    {
        int before = emu::badShuffles;
        long long rows = 37, cols = 33;
        Buf a(MJ_BF16, rows * cols, 0), o(MJ_F32, rows, 0);
        fill(a, -2.f, 2.f);
        launch(gridFor(rows * 32, 2) * 6, 48, [&] { megatron_row_dot(a.p(), MJ_BF16, a.p(), MJ_BF16, (float*)o.p(), rows, cols); });
        caught[0] = emu::badShuffles > before;
        emu::badShuffles = before;
    }
    {
        int before = g_fail;
        long long rows = 37, cols = 33;
        Buf a(MJ_BF16, rows * cols, 0), o(MJ_F32, rows, 0);
        fill(a, -2.f, 2.f);
        // rows - 1 rows' worth of launch: the last row is never written (its poison stays)
        launch(1, T, [&] { megatron_row_dot(a.p(), MJ_BF16, a.p(), MJ_BF16, (float*)o.p(), rows - 1, cols); });
        checkRowDot("negative control", a, a, o, rows, cols);
        caught[1] = g_fail > before;
        g_fail = before;
    }
    emu::quiet = false;
    printf("  %-4s negative control: row dot with 48 threads per block is reported (a full-mask shuffle by 16 lanes)\n",
           caught[0] ? "ok" : "FAIL");
    printf("  %-4s negative control: a row left unwritten is reported\n", caught[1] ? "ok" : "FAIL");
    bool ok = fails == 0 && emu::badShuffles == 0 && caught[0] && caught[1];
    printf(ok ? "all checks passed\n" : "FAILED\n");
    return ok ? 0 : 1;
}
