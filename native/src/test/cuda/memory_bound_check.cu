// Standalone check of the memory-bound kernels (elementwise, mixture-of-experts rows, norm, embedding,
// rotary, cross_entropy, optimizer): each runs on fresh random data against a simple reference kernel
// written here (relative L2 error, outputs poisoned with NaN first), then is timed (median of
// cudaEvent timings) and its effective bandwidth printed (bytes read + written / time).
// Also checks the scalar fallbacks (unaligned views, odd sizes) and that dropout's mask equals
// the one-element-at-a-time Philox stream bit for bit.
//   build: native/src/test/cuda/build-memory-bound-check.sh   run: dist/bw-check/memory_bound_check
// Exit status 1 when any check fails.
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <algorithm>
#include <string>
#include <cuda_runtime.h>
#include "../../main/cuda/elementwise.cu"
#include "../../main/cuda/norm.cu"
#include "../../main/cuda/embedding.cu"
#include "../../main/cuda/rotary.cu"
#include "../../main/cuda/cross_entropy.cu"
#include "../../main/cuda/optimizer.cu"

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
    printf("CUDA error %s at %s:%d: %s\n", cudaGetErrorString(e_), __FILE__, __LINE__, #x); exit(2); } } while (0)

static int g_fail = 0, g_sms = 132;
static const int T = 256;
static long long gridFor(long long n) { return std::max(1LL, std::min((n + T - 1) / T, (long long)g_sms * 16)); }
static int esize(int dt) { return dt == MJ_BF16 || dt == MJ_F16 ? 2 : 4; }
static const char* dname(int dt) { return dt == MJ_BF16 ? "bf16" : dt == MJ_F16 ? "f16" : dt == MJ_I32 ? "i32" : "f32"; }

// ---------------------------------------------------------------- buffers and data
struct Buf { char* base = nullptr; size_t bytes = 0; };
static std::vector<Buf> g_bufs;
// n elements of dtype dt, at element offset `off` from a 256-byte aligned allocation
static void* dalloc(long long n, int dt, int off = 0) {
    size_t bytes = (size_t)(n + off + 16) * esize(dt);
    char* p; CK(cudaMalloc(&p, bytes));
    g_bufs.push_back({p, bytes});
    return p + (size_t)off * esize(dt);
}
static void freeAll() { for (auto& b : g_bufs) CK(cudaFree(b.base)); g_bufs.clear(); }

__device__ __forceinline__ uint32_t hash32(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL; x ^= x >> 33;
    return (uint32_t)x;
}
__global__ void k_rand(void* p, int dt, long long n, uint64_t seed, float lo, float hi) {
    MJ_FOR(i, n) mj_store(p, i, dt, lo + (hi - lo) * (hash32(seed * 0x9E3779B97F4A7C15ULL + i) >> 8) * 0x1.0p-24f);
}
__global__ void k_rand_int(int* p, long long n, uint64_t seed, int mod) { MJ_FOR(i, n) p[i] = hash32(seed + i * 7919) % mod; }
static uint64_t g_seed = 1234;
static void rnd(void* p, int dt, long long n, float lo = -2.f, float hi = 2.f) {
    k_rand<<<gridFor(n), T>>>(p, dt, n, g_seed++, lo, hi); CK(cudaGetLastError());
}
static void poison(void* p, int dt, long long n) { CK(cudaMemset(p, 0xFF, (size_t)n * esize(dt))); }  // NaN in every float dtype
static void copyd(void* dst, const void* src, int dt, long long n) { CK(cudaMemcpy(dst, src, (size_t)n * esize(dt), cudaMemcpyDeviceToDevice)); }

// relative L2 error of a vs reference b (both dtype dt, n elements); NaN in a -> counted
__global__ void k_err(const void* a, const void* b, int dt, long long n, double* acc, unsigned long long* nans) {
    double num = 0, den = 0; unsigned long long bad = 0;
    MJ_FOR(i, n) {
        float x = mj_load(a, i, dt), y = mj_load(b, i, dt);
        if (x != x && y == y) bad++;
        else if (x == x) { double d = (double)x - y; num += d * d; den += (double)y * y; }
    }
    atomicAdd(acc, num); atomicAdd(acc + 1, den); if (bad) atomicAdd(nans, bad);
}
static double* g_acc; static unsigned long long* g_nans;
static void check(const char* what, const void* got, const void* ref, int dt, long long n, double tol) {
    CK(cudaMemset(g_acc, 0, 16)); CK(cudaMemset(g_nans, 0, 8));
    k_err<<<gridFor(n), T>>>(got, ref, dt, n, g_acc, g_nans); CK(cudaDeviceSynchronize());
    double h[2]; unsigned long long nn;
    CK(cudaMemcpy(h, g_acc, 16, cudaMemcpyDeviceToHost)); CK(cudaMemcpy(&nn, g_nans, 8, cudaMemcpyDeviceToHost));
    double rel = sqrt(h[0] / std::max(h[1], 1e-30));
    bool ok = nn == 0 && rel <= tol;
    if (!ok) g_fail++;
    printf("  %-4s %-44s rel err %.2e (tol %.0e)%s\n", ok ? "ok" : "FAIL", what, rel, tol,
           nn ? (" NaN/unwritten: " + std::to_string(nn)).c_str() : "");
}
static double tolFor(int dt) { return dt == MJ_BF16 ? 1e-2 : dt == MJ_F16 ? 2e-3 : 1e-5; }

// median time of fn over reps runs (after 2 warm-ups); prints GB/s for `bytes` moved
template <class F> static void timeit(const char* what, double bytes, F fn, int reps = 20) {
    cudaEvent_t a, b; CK(cudaEventCreate(&a)); CK(cudaEventCreate(&b));
    fn(); fn(); CK(cudaDeviceSynchronize());
    std::vector<float> ms;
    for (int r = 0; r < reps; r++) {
        CK(cudaEventRecord(a)); fn(); CK(cudaEventRecord(b)); CK(cudaEventSynchronize(b));
        float t; CK(cudaEventElapsedTime(&t, a, b)); ms.push_back(t);
    }
    CK(cudaGetLastError());
    std::sort(ms.begin(), ms.end());
    float med = ms[ms.size() / 2];
    printf("  time %-44s %8.3f ms  %7.0f GB/s\n", what, med, bytes / (med * 1e-3) / 1e9);
    CK(cudaEventDestroy(a)); CK(cudaEventDestroy(b));
}

// ---------------------------------------------------------------- reference kernels (scalar, obvious)
__global__ void r_add(const void* a, int at, const void* b, int bt, void* o, int ot, long long n) { MJ_FOR(i, n) mj_store(o, i, ot, mj_load(a, i, at) + mj_load(b, i, bt)); }
__global__ void r_axpy(float al, const void* x, int xt, void* y, int yt, long long n) { MJ_FOR(i, n) mj_store(y, i, yt, mj_load(y, i, yt) + al * mj_load(x, i, xt)); }
__global__ void r_scale(void* x, int xt, float al, long long n) { MJ_FOR(i, n) mj_store(x, i, xt, mj_load(x, i, xt) * al); }
__global__ void r_cast(const void* s, int st, void* d, int dt, long long n) { MJ_FOR(i, n) mj_store(d, i, dt, mj_load(s, i, st)); }
__global__ void r_bias(void* x, int xt, const void* b, int bt, long long rows, int cols) { MJ_FOR(i, rows * cols) mj_store(x, i, xt, mj_load(x, i, xt) + mj_load(b, i % cols, bt)); }
__global__ void r_gelu(const void* x, int xt, void* y, int yt, long long n, int th) { MJ_FOR(i, n) mj_store(y, i, yt, gelu(mj_load(x, i, xt), th)); }
__global__ void r_gelu_b(const void* x, int xt, const void* dy, int dyt, void* dx, int dxt, long long n, int th) { MJ_FOR(i, n) mj_store(dx, i, dxt, mj_load(dy, i, dyt) * gelu_grad(mj_load(x, i, xt), th)); }
__global__ void r_sqrelu(const void* x, int xt, void* y, int yt, long long n) { MJ_FOR(i, n) { float v = fmaxf(mj_load(x, i, xt), 0.f); mj_store(y, i, yt, v * v); } }
__global__ void r_sqrelu_b(const void* x, int xt, const void* dy, int dyt, void* dx, int dxt, long long n) { MJ_FOR(i, n) mj_store(dx, i, dxt, mj_load(dy, i, dyt) * 2.f * fmaxf(mj_load(x, i, xt), 0.f)); }
__global__ void r_swiglu(const void* x, int xt, void* y, int yt, long long rows, int f) {
    MJ_FOR(i, rows * f) { long long r = i / f, c = i % f; float a = mj_load(x, r * 2 * f + c, xt), b = mj_load(x, r * 2 * f + f + c, xt);
        mj_store(y, i, yt, a / (1.0f + expf(-a)) * b); }
}
__global__ void r_swiglu_b(const void* x, int xt, const void* dy, int dyt, void* dx, int dxt, long long rows, int f) {
    MJ_FOR(i, rows * f) { long long r = i / f, c = i % f; float a = mj_load(x, r * 2 * f + c, xt), b = mj_load(x, r * 2 * f + f + c, xt);
        float g = mj_load(dy, i, dyt), sg = 1.0f / (1.0f + expf(-a));
        mj_store(dx, r * 2 * f + c, dxt, g * b * sg * (1.0f + a * (1.0f - sg))); mj_store(dx, r * 2 * f + f + c, dxt, g * a * sg); }
}
__global__ void r_dropout(const void* x, int xt, void* y, int yt, long long n, float p, float sc, unsigned long long seed, unsigned long long off) {
    MJ_FOR(i, n) mj_store(y, i, yt, mj_uniform(seed, off + i) >= p ? mj_load(x, i, xt) * sc : 0.0f);
}
// mixture-of-experts rows: one thread per row (row dot in double)
__global__ void r_scale_rows(const void* x, int xt, const float* s, void* y, int yt, long long rows, long long cols) {
    MJ_FOR(r, rows) for (long long c = 0; c < cols; c++) mj_store(y, r * cols + c, yt, mj_load(x, r * cols + c, xt) * s[r]);
}
__global__ void r_row_dot(const void* a, int at, const void* b, int bt, float* o, long long rows, long long cols) {
    MJ_FOR(r, rows) { double d = 0; for (long long c = 0; c < cols; c++) d += (double)mj_load(a, r * cols + c, at) * mj_load(b, r * cols + c, bt); o[r] = (float)d; }
}
// norms: one thread per row, double accumulation
__global__ void r_norm_f(const void* x, int xt, const void* g, int gt, const void* b, int bt, float eps, void* y, int yt,
                         float* mean, float* rstd, long long rows, int cols, int rms) {
    MJ_FOR(r, rows) {
        double s = 0, q = 0;
        for (int c = 0; c < cols; c++) s += mj_load(x, r * cols + c, xt);
        double mu = rms ? 0.0 : s / cols;
        for (int c = 0; c < cols; c++) { double d = mj_load(x, r * cols + c, xt) - mu; q += d * d; }
        float rs = (float)(1.0 / sqrt(q / cols + eps));
        for (int c = 0; c < cols; c++) {
            float o = (float)((mj_load(x, r * cols + c, xt) - mu) * rs * mj_load(g, c, gt));
            if (b) o += mj_load(b, c, bt);
            mj_store(y, r * cols + c, yt, o);
        }
        if (mean) mean[r] = (float)mu;
        rstd[r] = rs;
    }
}
__global__ void r_norm_b(const void* dy, int dyt, const void* x, int xt, const void* g, int gt, const float* mean, const float* rstd,
                         void* dx, int dxt, long long rows, int cols) {
    MJ_FOR(r, rows) {
        float mu = mean ? mean[r] : 0.f, rs = rstd[r]; double sg = 0, sgx = 0;
        for (int c = 0; c < cols; c++) { double gg = mj_load(dy, r * cols + c, dyt) * mj_load(g, c, gt); double xh = (mj_load(x, r * cols + c, xt) - mu) * rs; sg += gg; sgx += gg * xh; }
        double mg = mean ? sg / cols : 0.0, mgx = sgx / cols;
        for (int c = 0; c < cols; c++) { double gg = mj_load(dy, r * cols + c, dyt) * mj_load(g, c, gt); double xh = (mj_load(x, r * cols + c, xt) - mu) * rs;
            mj_store(dx, r * cols + c, dxt, (float)(rs * (gg - mg - xh * mgx))); }
    }
}
__global__ void r_norm_pg(const void* dy, int dyt, const void* x, int xt, const float* mean, const float* rstd, float* dg, float* db, long long rows, int cols) {
    MJ_FOR(c, cols) {
        double sg = 0, sb = 0;
        for (long long r = 0; r < rows; r++) { double d = mj_load(dy, r * cols + c, dyt); sg += d * (mj_load(x, r * cols + c, xt) - (mean ? mean[r] : 0.f)) * rstd[r]; sb += d; }
        if (dg) dg[c] += (float)sg; if (db) db[c] += (float)sb;
    }
}
// cross entropy: one thread per row
__global__ void r_ce(const void* l, int lt, const int* tg, long long vs, float* rmax, float* sexp, long long n, int v) {
    MJ_FOR(r, n) { float m = -INFINITY; for (int c = 0; c < v; c++) m = fmaxf(m, mj_load(l, r * v + c, lt));
        double s = 0; for (int c = 0; c < v; c++) s += expf(mj_load(l, r * v + c, lt) - m); rmax[r] = m; sexp[r] = (float)s; }
}
__global__ void r_ce_b(const void* l, int lt, const int* tg, long long vs, const float* rmax, const float* sexp, const float* dl, void* d, int dt, long long n, int v) {
    MJ_FOR(i, n * v) { long long r = i / v, c = i % v; float p = expf(mj_load(l, i, lt) - rmax[r]) * (1.0f / sexp[r]);
        mj_store(d, i, dt, dl[r] * (p - (c == (long long)tg[r] - vs ? 1.0f : 0.0f))); }
}
__global__ void r_logsm(const void* l, int lt, float temp, float* o, long long n, int v) {
    MJ_FOR(r, n) { float inv = 1.0f / temp, m = -INFINITY; for (int c = 0; c < v; c++) m = fmaxf(m, mj_load(l, r * v + c, lt) * inv);
        double s = 0; for (int c = 0; c < v; c++) s += expf(mj_load(l, r * v + c, lt) * inv - m); float lse = m + (float)log(s);
        for (int c = 0; c < v; c++) o[r * v + c] = mj_load(l, r * v + c, lt) * inv - lse; }
}
__global__ void r_argmax(const void* l, int lt, int* o, long long n, int v) {
    MJ_FOR(r, n) { float bv = 0; int bi = -1; for (int c = 0; c < v; c++) { float x = mj_load(l, r * v + c, lt); if (mj_argmax_better(x, c, bv, bi)) { bv = x; bi = c; } } o[r] = bi; }
}
__global__ void r_emb(const int* ids, const void* t, int tt, void* o, int ot, long long n, int h) { MJ_FOR(i, n * h) { long long r = i / h; mj_store(o, i, ot, mj_load(t, (long long)ids[r] * h + i % h, tt)); } }
__global__ void r_emb_b(const int* ids, const void* d, int dt, float* t, long long n, int h) { MJ_FOR(i, n * h) { long long r = i / h; atomicAdd(t + (long long)ids[r] * h + i % h, mj_load(d, i, dt)); } }
__global__ void r_rot(const void* x, int xt, const float* f, void* o, int ot, long long s, long long bh, int d, int r, int inv, int il) {
    int half = r / 2;
    MJ_FOR(i, s * bh * d) { long long row = i / d; int c = (int)(i % d); long long pos = row / bh; float y;
        if (c >= r) y = mj_load(x, i, xt);
        else { bool first = il ? c % 2 == 0 : c < half; int k = il ? c / 2 : (first ? c : c - half);
            int c1 = il ? 2 * k : k, c2 = il ? 2 * k + 1 : k + half;
            float x1 = mj_load(x, row * d + c1, xt), x2 = mj_load(x, row * d + c2, xt), f1 = f[pos * r + c1], f2 = f[pos * r + c2];
            y = first ? (inv ? x1 * cosf(f1) + x2 * sinf(f2) : x1 * cosf(f1) - x2 * sinf(f1))
                      : (inv ? x2 * cosf(f2) - x1 * sinf(f1) : x2 * cosf(f2) + x1 * sinf(f2)); }
        mj_store(o, i, ot, y); }
}
__global__ void r_adamw(float* p, const float* g, float* m, float* v, long long n, float lr, float b1, float b2, float eps, float wd, float bc1, float bc2) {
    MJ_FOR(i, n) { float mm = b1 * m[i] + (1.0f - b1) * g[i], vv = b2 * v[i] + (1.0f - b2) * g[i] * g[i]; m[i] = mm; v[i] = vv;
        p[i] = p[i] - lr * ((mm / bc1) / (sqrtf(vv / bc2) + eps) + wd * p[i]); }
}
__global__ void k_count_diff_bits(const void* a, const void* b, long long bytes, unsigned long long* out) {
    unsigned long long c = 0; MJ_FOR(i, bytes) c += ((const unsigned char*)a)[i] != ((const unsigned char*)b)[i]; if (c) atomicAdd(out, c);
}

// ---------------------------------------------------------------- checks
static void elementwise(long long n, int dt, int off, bool timed) {
    printf("elementwise n=%lld %s offset %d\n", n, dname(dt), off);
    void *a = dalloc(n, dt, off), *b = dalloc(n, dt, off), *o = dalloc(n, dt, off), *r = dalloc(n, dt, off);
    void *f = dalloc(n, MJ_F32, off);
    int es = esize(dt); long long G = gridFor(n);
    rnd(a, dt, n); rnd(b, dt, n); rnd(f, MJ_F32, n);
    poison(o, dt, n); megatron_add<<<G, T>>>(a, dt, b, dt, o, dt, n); r_add<<<G, T>>>(a, dt, b, dt, r, dt, n); check("add", o, r, dt, n, tolFor(dt));
    megatron_add<<<G, T>>>(a, dt, f, MJ_F32, o, dt, n); r_add<<<G, T>>>(a, dt, f, MJ_F32, r, dt, n); check("add (mixed f32 b)", o, r, dt, n, tolFor(dt));
    copyd(o, b, dt, n); copyd(r, b, dt, n);
    megatron_axpy<<<G, T>>>(0.37f, a, dt, o, dt, n); r_axpy<<<G, T>>>(0.37f, a, dt, r, dt, n); check("axpy", o, r, dt, n, tolFor(dt));
    megatron_scale<<<G, T>>>(o, dt, -1.7f, n); r_scale<<<G, T>>>(r, dt, -1.7f, n); check("scale", o, r, dt, n, tolFor(dt));
    poison(o, dt, n); megatron_cast<<<G, T>>>(f, MJ_F32, o, dt, n); r_cast<<<G, T>>>(f, MJ_F32, r, dt, n); check("cast f32->", o, r, dt, n, 0.0);
    poison(o, dt, n); megatron_fill<<<G, T>>>(o, dt, n, 0.75f); r_cast<<<G, T>>>(o, dt, r, dt, n); check("fill (finite)", o, r, dt, n, 0.0);
    for (int th = 0; th < 2; th++) {
        poison(o, dt, n); megatron_gelu_forward<<<G, T>>>(a, dt, o, dt, n, th); r_gelu<<<G, T>>>(a, dt, r, dt, n, th);
        check(th ? "gelu tanh" : "gelu erf", o, r, dt, n, tolFor(dt));
        poison(o, dt, n); megatron_gelu_backward<<<G, T>>>(a, dt, b, dt, o, dt, n, th); r_gelu_b<<<G, T>>>(a, dt, b, dt, r, dt, n, th);
        check(th ? "gelu' tanh" : "gelu' erf", o, r, dt, n, tolFor(dt));
    }
    poison(o, dt, n); megatron_squared_relu_forward<<<G, T>>>(a, dt, o, dt, n); r_sqrelu<<<G, T>>>(a, dt, r, dt, n);
    check("squared relu", o, r, dt, n, tolFor(dt));
    poison(o, dt, n); megatron_squared_relu_backward<<<G, T>>>(a, dt, b, dt, o, dt, n); r_sqrelu_b<<<G, T>>>(a, dt, b, dt, r, dt, n);
    check("squared relu'", o, r, dt, n, tolFor(dt));
    unsigned long long off0 = 12345;
    for (unsigned long long po = off0; po < off0 + 4; po++) {  // every Philox lane phase
        poison(o, dt, n); megatron_dropout<<<G, T>>>(a, dt, o, dt, n, 0.1f, 1.0f / 0.9f, 0xDEADBEEFCAFEull, po);
        r_dropout<<<G, T>>>(a, dt, r, dt, n, 0.1f, 1.0f / 0.9f, 0xDEADBEEFCAFEull, po); CK(cudaMemset(g_nans, 0, 8));
        k_count_diff_bits<<<gridFor(n * es), T>>>(o, r, n * es, g_nans); unsigned long long d; CK(cudaMemcpy(&d, g_nans, 8, cudaMemcpyDeviceToHost));
        if (d) g_fail++;
        printf("  %-4s dropout bit-identical to mj_uniform, offset %llu (%llu bytes differ)\n", d ? "FAIL" : "ok", po, d);
    }
    if (!timed) return;
    double B = (double)n * es;
    timeit("add", 3 * B, [&] { megatron_add<<<G, T>>>(a, dt, b, dt, o, dt, n); });
    timeit("axpy", 3 * B, [&] { megatron_axpy<<<G, T>>>(0.37f, a, dt, o, dt, n); });
    timeit("scale", 2 * B, [&] { megatron_scale<<<G, T>>>(o, dt, 1.0f, n); });
    timeit("cast f32->", B + 4.0 * n, [&] { megatron_cast<<<G, T>>>(f, MJ_F32, o, dt, n); });
    timeit("fill", B, [&] { megatron_fill<<<G, T>>>(o, dt, n, 0.5f); });
    timeit("gelu tanh fwd", 2 * B, [&] { megatron_gelu_forward<<<G, T>>>(a, dt, o, dt, n, 1); });
    timeit("gelu erf fwd", 2 * B, [&] { megatron_gelu_forward<<<G, T>>>(a, dt, o, dt, n, 0); });
    timeit("gelu tanh bwd", 3 * B, [&] { megatron_gelu_backward<<<G, T>>>(a, dt, b, dt, o, dt, n, 1); });
    timeit("squared relu fwd", 2 * B, [&] { megatron_squared_relu_forward<<<G, T>>>(a, dt, o, dt, n); });
    timeit("squared relu bwd", 3 * B, [&] { megatron_squared_relu_backward<<<G, T>>>(a, dt, b, dt, o, dt, n); });
    timeit("dropout p=0.1", 2 * B, [&] { megatron_dropout<<<G, T>>>(a, dt, o, dt, n, 0.1f, 1.0f / 0.9f, 7, 0); });
    timeit("copy (cudaMemcpy D2D, reference)", 2 * B, [&] { CK(cudaMemcpyAsync(o, a, n * es, cudaMemcpyDeviceToDevice)); });
}

// megatron_scale_rows and megatron_row_dot with CudaBackend's launches (grids of gridFor(rows * cols) and
// gridFor(rows * 32) blocks of 256 threads: a warp per row), x and a of dtype dt, b F32 in a second pass (mixed)
static void moeRows(long long rows, int cols, int dt, int off, bool timed) {
    printf("moe rows x cols = %lld x %d %s offset %d\n", rows, cols, dname(dt), off);
    long long n = rows * cols, G = gridFor(n), GD = gridFor(rows * 32);
    void *x = dalloc(n, dt, off), *b = dalloc(n, dt, off), *y = dalloc(n, dt, off), *yr = dalloc(n, dt, off);
    void* b32 = dalloc(n, MJ_F32, off);
    float *s = (float*)dalloc(rows, MJ_F32, off), *o = (float*)dalloc(rows, MJ_F32, off), *orf = (float*)dalloc(rows, MJ_F32, off);
    rnd(x, dt, n); rnd(b, dt, n); rnd(b32, MJ_F32, n); rnd(s, MJ_F32, rows, 0.f, 1.f);
    poison(y, dt, n); megatron_scale_rows<<<G, T>>>(x, dt, s, y, dt, rows, cols); r_scale_rows<<<gridFor(rows), T>>>(x, dt, s, yr, dt, rows, cols);
    check("scale rows", y, yr, dt, n, tolFor(dt));
    copyd(y, x, dt, n); megatron_scale_rows<<<G, T>>>(y, dt, s, y, dt, rows, cols); check("scale rows in place", y, yr, dt, n, tolFor(dt));
    double dtol = cols > 10000 ? 2e-5 : 1e-5;
    poison(o, MJ_F32, rows); megatron_row_dot<<<GD, T>>>(x, dt, b, dt, o, rows, cols); r_row_dot<<<gridFor(rows), T>>>(x, dt, b, dt, orf, rows, cols);
    check("row dot", o, orf, MJ_F32, rows, dtol);
    poison(o, MJ_F32, rows); megatron_row_dot<<<GD, T>>>(x, dt, b32, MJ_F32, o, rows, cols); r_row_dot<<<gridFor(rows), T>>>(x, dt, b32, MJ_F32, orf, rows, cols);
    check("row dot (mixed f32 b)", o, orf, MJ_F32, rows, dtol);
    if (GD > 1) {  // one block (8 warps): every warp loops over many rows
        poison(o, MJ_F32, rows); megatron_row_dot<<<1, T>>>(x, dt, b, dt, o, rows, cols); r_row_dot<<<gridFor(rows), T>>>(x, dt, b, dt, orf, rows, cols);
        check("row dot (one block)", o, orf, MJ_F32, rows, dtol);
    }
    if (!timed) return;
    double B = (double)n * esize(dt);
    timeit("scale rows", 2 * B + 4.0 * rows, [&] { megatron_scale_rows<<<G, T>>>(x, dt, s, y, dt, rows, cols); });
    timeit("scale rows in place", 2 * B + 4.0 * rows, [&] { megatron_scale_rows<<<G, T>>>(y, dt, s, y, dt, rows, cols); });
    timeit("row dot (f32 out)", 2 * B + 4.0 * rows, [&] { megatron_row_dot<<<GD, T>>>(x, dt, b, dt, o, rows, cols); });
}

static void rowwise(long long rows, int cols, int dt, int off, bool timed) {
    printf("rows x cols = %lld x %d %s offset %d\n", rows, cols, dname(dt), off);
    long long n = rows * cols, G = gridFor(n);
    int es = esize(dt);
    void *x = dalloc(n, dt, off), *dy = dalloc(n, dt, off), *y = dalloc(n, dt, off), *yr = dalloc(n, dt, off);
    void *g = dalloc(cols, dt, off), *bb = dalloc(cols, dt, off);
    float *mean = (float*)dalloc(rows, MJ_F32), *rstd = (float*)dalloc(rows, MJ_F32), *meanr = (float*)dalloc(rows, MJ_F32), *rstdr = (float*)dalloc(rows, MJ_F32);
    float *dg = (float*)dalloc(cols, MJ_F32), *db = (float*)dalloc(cols, MJ_F32), *dgr = (float*)dalloc(cols, MJ_F32), *dbr = (float*)dalloc(cols, MJ_F32);
    rnd(x, dt, n, -3.f, 5.f); rnd(dy, dt, n); rnd(g, dt, cols, 0.5f, 1.5f); rnd(bb, dt, cols);
    // host-side launch choices as CudaNormOps
    int thr = cols % 8 ? 256 : std::max(32, std::min(1024, (int)(((cols + 31) / 32 + 31) / 32 * 32)));
    int thrBack = std::min(thr, 512);  // the backward kernels' __launch_bounds__(512)
    long long tiles = (cols + 255) / 256, slices = std::min(std::min(rows, 65535LL), std::max(1LL, g_sms * 4LL / tiles));
    long long rps = (rows + slices - 1) / slices; slices = (rows + rps - 1) / rps;
    float* part = (float*)dalloc(slices * 2 * cols, MJ_F32);
    auto pgrads = [&](const float* mu) {
        megatron_norm_param_partials<<<dim3(tiles, slices), 256>>>(dy, dt, x, dt, mu, rstd, part, rows, cols, rps);
        megatron_norm_param_reduce<<<(cols + 255) / 256, 256>>>(part, (int)slices, cols, dg, mu ? db : nullptr);
    };
    long long RG = std::min(gridFor(rows), 4096LL);
    for (int rms = 0; rms < 2; rms++) {
        const char* nm = rms ? "rmsnorm" : "layernorm";
        poison(y, dt, n); poison(mean, MJ_F32, rows); poison(rstd, MJ_F32, rows);
        if (rms) megatron_rmsnorm_forward<<<rows, thr>>>(x, dt, g, dt, 1e-5f, y, dt, rstd, cols);
        else megatron_layernorm_forward<<<rows, thr>>>(x, dt, g, dt, bb, dt, 1e-5f, y, dt, mean, rstd, cols);
        r_norm_f<<<RG, 128>>>(x, dt, g, dt, rms ? nullptr : bb, dt, 1e-5f, yr, dt, rms ? nullptr : meanr, rstdr, rows, cols, rms);
        check((std::string(nm) + " y").c_str(), y, yr, dt, n, tolFor(dt));
        check((std::string(nm) + " rstd").c_str(), rstd, rstdr, MJ_F32, rows, 1e-5);
        if (!rms) check("layernorm mean", mean, meanr, MJ_F32, rows, 1e-5);
        poison(y, dt, n);
        if (rms) megatron_rmsnorm_backward<<<rows, thrBack>>>(dy, dt, x, dt, g, dt, rstd, y, dt, cols);
        else megatron_layernorm_backward<<<rows, thrBack>>>(dy, dt, x, dt, g, dt, mean, rstd, y, dt, cols);
        r_norm_b<<<RG, 128>>>(dy, dt, x, dt, g, dt, rms ? nullptr : mean, rstd, yr, dt, rows, cols);
        check((std::string(nm) + " dx").c_str(), y, yr, dt, n, std::max(tolFor(dt), 1e-4));
        rnd(dg, MJ_F32, cols); rnd(db, MJ_F32, cols); copyd(dgr, dg, MJ_F32, cols); copyd(dbr, db, MJ_F32, cols);
        pgrads(rms ? nullptr : mean);
        r_norm_pg<<<gridFor(cols), T>>>(dy, dt, x, dt, rms ? nullptr : mean, rstd, dgr, rms ? nullptr : dbr, rows, cols);
        check((std::string(nm) + " dGamma (accumulated)").c_str(), dg, dgr, MJ_F32, cols, 1e-4);
        if (!rms) check("layernorm dBeta (accumulated)", db, dbr, MJ_F32, cols, 1e-5);
        // determinism: a second run from the same start gives the same bits
        copyd(dg, dgr, MJ_F32, cols); CK(cudaMemset(dg, 0, cols * 4)); pgrads(rms ? nullptr : mean); copyd(dbr, dg, MJ_F32, cols);
        CK(cudaMemset(dg, 0, cols * 4)); pgrads(rms ? nullptr : mean); CK(cudaMemset(g_nans, 0, 8));
        k_count_diff_bits<<<gridFor(cols * 4), T>>>(dg, dbr, cols * 4LL, g_nans); unsigned long long d; CK(cudaMemcpy(&d, g_nans, 8, cudaMemcpyDeviceToHost));
        if (d) g_fail++;
        printf("  %-4s %s dGamma repeats bit for bit\n", d ? "FAIL" : "ok", nm);
    }
    // bias add, swiglu (x as [rows, 2f] with f = cols / 2)
    copyd(y, x, dt, n); copyd(yr, x, dt, n);
    megatron_bias_add<<<G, T>>>(y, dt, bb, dt, rows, cols); r_bias<<<G, T>>>(yr, dt, bb, dt, rows, cols); check("bias_add", y, yr, dt, n, tolFor(dt));
    int f = cols / 2;
    if (cols % 2 == 0) {
        poison(y, dt, n / 2); megatron_swiglu_forward<<<G, T>>>(x, dt, y, dt, rows, f); r_swiglu<<<G, T>>>(x, dt, yr, dt, rows, f);
        check("swiglu", y, yr, dt, n / 2, tolFor(dt));
        poison(y, dt, n); megatron_swiglu_backward<<<G, T>>>(x, dt, dy, dt, y, dt, rows, f); r_swiglu_b<<<G, T>>>(x, dt, dy, dt, yr, dt, rows, f);
        check("swiglu'", y, yr, dt, n, tolFor(dt));
    }
    if (!timed) return;
    double B = (double)n * es;
    timeit("layernorm fwd", 2 * B, [&] { megatron_layernorm_forward<<<rows, thr>>>(x, dt, g, dt, bb, dt, 1e-5f, y, dt, mean, rstd, cols); });
    timeit("layernorm bwd dx", 3 * B, [&] { megatron_layernorm_backward<<<rows, thr>>>(dy, dt, x, dt, g, dt, mean, rstd, y, dt, cols); });
    timeit("norm dGamma+dBeta (partials+reduce)", 2 * B, [&] { pgrads(mean); });
    timeit("rmsnorm fwd", 2 * B, [&] { megatron_rmsnorm_forward<<<rows, thr>>>(x, dt, g, dt, 1e-5f, y, dt, rstd, cols); });
    timeit("rmsnorm bwd dx", 3 * B, [&] { megatron_rmsnorm_backward<<<rows, thr>>>(dy, dt, x, dt, g, dt, rstd, y, dt, cols); });
    timeit("bias_add", 2 * B, [&] { megatron_bias_add<<<G, T>>>(y, dt, bb, dt, rows, cols); });
    timeit("swiglu fwd", 1.5 * B, [&] { megatron_swiglu_forward<<<G, T>>>(x, dt, y, dt, rows, f); });
    timeit("swiglu bwd", 2.5 * B, [&] { megatron_swiglu_backward<<<G, T>>>(x, dt, dy, dt, y, dt, rows, f); });
}

static void crossEntropy(long long n, int v, int dt, int off, bool timed) {
    printf("cross-entropy n=%lld v=%d %s offset %d\n", n, v, dname(dt), off);
    long long N = n * v;
    void *l = dalloc(N, dt, off), *d = dalloc(N, dt, off), *dr = dalloc(N, dt, off);
    int *tg = (int*)dalloc(n, MJ_I32), *am = (int*)dalloc(n, MJ_I32), *amr = (int*)dalloc(n, MJ_I32);
    float *mx = (float*)dalloc(n, MJ_F32), *se = (float*)dalloc(n, MJ_F32), *mxr = (float*)dalloc(n, MJ_F32), *ser = (float*)dalloc(n, MJ_F32), *dl = (float*)dalloc(n, MJ_F32);
    float *lp = (float*)dalloc(N, MJ_F32), *lpr = (float*)dalloc(N, MJ_F32);
    rnd(l, dt, N, -8.f, 8.f); rnd(dl, MJ_F32, n, 0.1f, 1.f);
    k_rand_int<<<gridFor(n), T>>>(tg, n, 99, v); CK(cudaGetLastError());
    poison(mx, MJ_F32, n); poison(se, MJ_F32, n);
    megatron_ce_row_max<<<n, T>>>(l, dt, mx, v); megatron_ce_sum_exp<<<n, T>>>(l, dt, mx, se, v);
    r_ce<<<gridFor(n), 64>>>(l, dt, tg, 0, mxr, ser, n, v);
    check("ce row max", mx, mxr, MJ_F32, n, 0.0); check("ce sum exp", se, ser, MJ_F32, n, 1e-5);
    poison(mx, MJ_F32, n); poison(se, MJ_F32, n); megatron_ce_row_max_sum_exp<<<n, T>>>(l, dt, mx, se, v);
    check("ce row max (one pass)", mx, mxr, MJ_F32, n, 0.0); check("ce sum exp (one pass)", se, ser, MJ_F32, n, 1e-5);
    poison(d, dt, N); megatron_ce_backward<<<n, T>>>(l, dt, tg, 0, mx, se, dl, d, dt, v);
    r_ce_b<<<gridFor(N), T>>>(l, dt, tg, 0, mx, se, dl, dr, dt, n, v); check("ce backward", d, dr, dt, N, std::max(tolFor(dt), 1e-5));
    poison(lp, MJ_F32, N); megatron_log_softmax<<<n, T>>>(l, dt, 0.7f, lp, v); r_logsm<<<gridFor(n), 64>>>(l, dt, 0.7f, lpr, n, v);
    check("log_softmax", lp, lpr, MJ_F32, N, 1e-5);
    megatron_argmax<<<n, T>>>(l, dt, am, v); r_argmax<<<gridFor(n), 64>>>(l, dt, amr, n, v); check("argmax", am, amr, MJ_I32, n, 0.0);
    if (!timed) return;
    double B = (double)N * esize(dt);
    timeit("ce row max", B, [&] { megatron_ce_row_max<<<n, T>>>(l, dt, mx, v); });
    timeit("ce sum exp", B, [&] { megatron_ce_sum_exp<<<n, T>>>(l, dt, mx, se, v); });
    timeit("ce row max + sum exp (one pass)", B, [&] { megatron_ce_row_max_sum_exp<<<n, T>>>(l, dt, mx, se, v); });
    timeit("ce backward", 2 * B, [&] { megatron_ce_backward<<<n, T>>>(l, dt, tg, 0, mx, se, dl, d, dt, v); });
    timeit("log_softmax (f32 out)", 2 * B + 4.0 * N, [&] { megatron_log_softmax<<<n, T>>>(l, dt, 0.7f, lp, v); });
}

// The QKV split of GPT-2 124M at micro-batch 16: 16384 tokens x 12 heads rows of 64 bf16 gathered
// from the fused [tokens x 36, 64] rows, with the grid CudaBackend.embedding launches.
static void qkvGather() {
    const long long n = 16384LL * 12, rows = 16384LL * 36;
    const int h = 64;
    int* ids = (int*)dalloc(n, MJ_I32);
    k_rand_int<<<gridFor(n), T>>>(ids, n, 7, (int)rows);
    void* tab = dalloc(rows * h, MJ_BF16);
    void* o = dalloc(n * h, MJ_BF16);
    unsigned long long* err = (unsigned long long*)dalloc(2, MJ_I32);
    rnd(tab, MJ_BF16, rows * h);
    const long long perBlock = T / 8;  // 8 threads per 64-element row
    const long long grid = std::min((n + perBlock - 1) / perBlock, 65535LL * 16);
    printf("qkv row gather: %lld rows of %d bf16\n", n, h);
    timeit("qkv row gather (embedding kernel)", 2.0 * n * h * 2, [&] {
        megatron_embedding_forward<<<grid, T>>>(ids, tab, MJ_BF16, o, MJ_BF16, n, h, (int)rows, err);
    });
}

static void embeddingRotary(long long tokens, int vocab, int h, int dt, int off, bool timed) {
    printf("embedding tokens=%lld vocab=%d h=%d, rotary, %s offset %d\n", tokens, vocab, h, dname(dt), off);
    void *tab = dalloc((long long)vocab * h, dt, off), *o = dalloc(tokens * h, dt, off), *orf = dalloc(tokens * h, dt, off);
    int* ids = (int*)dalloc(tokens, MJ_I32); unsigned long long* err = (unsigned long long*)dalloc(2, MJ_I32);
    float *dt1 = (float*)dalloc((long long)vocab * h, MJ_F32, off), *dt2 = (float*)dalloc((long long)vocab * h, MJ_F32, off);
    rnd(tab, dt, (long long)vocab * h); k_rand_int<<<gridFor(tokens), T>>>(ids, tokens, 5, vocab);
    long long EG = std::max(1LL, std::min(tokens, 65535LL * 16));
    poison(o, dt, tokens * h); megatron_embedding_forward<<<EG, T>>>(ids, tab, dt, o, dt, tokens, h, vocab, err);
    r_emb<<<gridFor(tokens * h), T>>>(ids, tab, dt, orf, dt, tokens, h); check("embedding fwd", o, orf, dt, tokens * h, 0.0);
    CK(cudaMemset(dt1, 0, (size_t)vocab * h * 4)); CK(cudaMemset(dt2, 0, (size_t)vocab * h * 4));
    megatron_embedding_backward<<<EG, T>>>(ids, o, dt, dt1, tokens, h, vocab, err); r_emb_b<<<gridFor(tokens * h), T>>>(ids, o, dt, dt2, tokens, h);
    check("embedding bwd (atomic order varies)", dt1, dt2, MJ_F32, (long long)vocab * h, 1e-6);
    // rotary: x [s, b, heads, d] = [tokens / 8, 1, 8 * h / 128, 128] viewed over o
    int d = 128; long long s = std::max(1LL, tokens / 8), bh = (tokens * h) / (s * d);
    long long nx = s * bh * d;
    for (int r : {128, 64}) {
        float* fr = (float*)dalloc(s * r, MJ_F32);
        k_rand<<<gridFor(s * r), T>>>(fr, MJ_F32, s * r, 77, 0.f, 500.f);
        for (int il = 0; il < 2; il++) {
            for (int inv = 0; inv < 2; inv++) {
                poison(orf, dt, nx); megatron_rotary<<<gridFor(nx / 2), T>>>(o, dt, fr, orf, dt, s, bh, d, r, inv, il);
                r_rot<<<gridFor(nx), T>>>(o, dt, fr, tab, dt, s, bh, d, r, inv, il);
                check(il ? (inv ? "rotary interleaved backward" : "rotary interleaved forward")
                         : (inv ? "rotary backward" : "rotary forward"), orf, tab, dt, nx, tolFor(dt));
            }
        }
        if (timed && r == 128)
            for (int il = 0; il < 2; il++)
                timeit(il ? "rotary interleaved fwd r=d=128" : "rotary fwd r=d=128", 2.0 * nx * esize(dt) + 4.0 * s * r,
                       [&] { megatron_rotary<<<gridFor(nx / 2), T>>>(o, dt, fr, orf, dt, s, bh, d, r, 0, il); });
    }
    if (!timed) return;
    double B = (double)tokens * h * esize(dt);
    timeit("embedding fwd", 2 * B, [&] { megatron_embedding_forward<<<EG, T>>>(ids, tab, dt, o, dt, tokens, h, vocab, err); });
    timeit("embedding bwd (f32 atomics)", B + 8.0 * tokens * h, [&] { megatron_embedding_backward<<<EG, T>>>(ids, o, dt, dt1, tokens, h, vocab, err); });
}

static void optimizer(long long n, int off, bool timed) {
    printf("adamw / sum of squares / inf-nan n=%lld offset %d\n", n, off);
    float *p = (float*)dalloc(n, MJ_F32, off), *g = (float*)dalloc(n, MJ_F32, off), *m = (float*)dalloc(n, MJ_F32, off), *v = (float*)dalloc(n, MJ_F32, off);
    float *p2 = (float*)dalloc(n, MJ_F32, off), *m2 = (float*)dalloc(n, MJ_F32, off), *v2 = (float*)dalloc(n, MJ_F32, off);
    rnd(p, MJ_F32, n); rnd(g, MJ_F32, n); rnd(m, MJ_F32, n, -0.1f, 0.1f); rnd(v, MJ_F32, n, 0.f, 0.01f);
    copyd(p2, p, MJ_F32, n); copyd(m2, m, MJ_F32, n); copyd(v2, v, MJ_F32, n);
    long long G = gridFor(n);
    float bc1 = (float)(1 - pow(0.9, 3)), bc2 = (float)(1 - pow(0.95, 3));
    megatron_adamw<<<G, T>>>(p, g, m, v, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, bc1, bc2);
    r_adamw<<<G, T>>>(p2, g, m2, v2, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, bc1, bc2);
    check("adamw param", p, p2, MJ_F32, n, 1e-6); check("adamw m", m, m2, MJ_F32, n, 1e-6); check("adamw v", v, v2, MJ_F32, n, 1e-6);
    double* ss = (double*)dalloc(1, MJ_F32); CK(cudaMemset(ss, 0, 8));
    megatron_sum_squares<<<G, T>>>(p, MJ_F32, n, ss);
    std::vector<float> hp(n); CK(cudaMemcpy(hp.data(), p, n * 4, cudaMemcpyDeviceToHost));
    double ref = 0; for (float x : hp) ref += (double)x * x;
    double got; CK(cudaMemcpy(&got, ss, 8, cudaMemcpyDeviceToHost));
    bool ok = fabs(got - ref) <= 1e-9 * ref; if (!ok) g_fail++;
    printf("  %-4s sum of squares %.12g vs %.12g\n", ok ? "ok" : "FAIL", got, ref);
    int* flag = (int*)dalloc(1, MJ_I32);
    for (long long bad : {-1LL, n - 1, n / 2 + 3}) {
        CK(cudaMemset(flag, 0, 4));
        if (bad >= 0) { float nan = NAN; CK(cudaMemcpy(p + bad, &nan, 4, cudaMemcpyHostToDevice)); }
        megatron_has_inf_nan<<<G, T>>>(p, MJ_F32, n, flag); int hf; CK(cudaMemcpy(&hf, flag, 4, cudaMemcpyDeviceToHost));
        bool ok2 = (hf != 0) == (bad >= 0); if (!ok2) g_fail++;
        printf("  %-4s has_inf_nan with NaN at %lld -> %d\n", ok2 ? "ok" : "FAIL", bad, hf);
    }
    for (long long i = 0; i < n; i += 7) hp[i] = (i % 2) ? -0.0f : 0.0f;   // zeros of both signs; a NaN is not one
    hp[1] = NAN;
    CK(cudaMemcpy(p, hp.data(), n * 4, cudaMemcpyHostToDevice));
    unsigned long long* zeros = (unsigned long long*)dalloc(1, MJ_F32); CK(cudaMemset(zeros, 0, 8));
    megatron_count_zeros<<<G, T>>>(p, MJ_F32, n, zeros);
    unsigned long long gotZeros, refZeros = 0; for (float x : hp) refZeros += x == 0.0f;
    CK(cudaMemcpy(&gotZeros, zeros, 8, cudaMemcpyDeviceToHost));
    bool ok3 = gotZeros == refZeros; if (!ok3) g_fail++;
    printf("  %-4s count_zeros %llu vs %llu\n", ok3 ? "ok" : "FAIL", gotZeros, refZeros);
    if (!timed) return;
    timeit("adamw (7 x 4 bytes per param)", 28.0 * n, [&] { megatron_adamw<<<G, T>>>(p, g, m, v, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, bc1, bc2); });
    timeit("sum of squares f32", 4.0 * n, [&] { megatron_sum_squares<<<G, T>>>(g, MJ_F32, n, ss); });
    timeit("has_inf_nan f32", 4.0 * n, [&] { megatron_has_inf_nan<<<G, T>>>(g, MJ_F32, n, flag); });
}

int main(int argc, char** argv) {
    bool quick = argc > 1 && std::string(argv[1]) == "--quick";  // correctness only, small sizes
    cudaDeviceProp prop; CK(cudaGetDeviceProperties(&prop, 0)); g_sms = prop.multiProcessorCount;
    printf("%s, %d SMs\n", prop.name, g_sms);
    CK(cudaMalloc(&g_acc, 16)); CK(cudaMalloc(&g_nans, 8));
    // correctness: odd sizes, unaligned views (scalar fallbacks), every dtype
    for (int dt : {MJ_F32, MJ_BF16, MJ_F16}) {
        elementwise(1000003, dt, 0, false); elementwise(1000003, dt, 1, false);
        moeRows(1000, 1, dt, 0, false); moeRows(37, 33, dt, 1, false); moeRows(5, 31, dt, 0, false); moeRows(3, 40001, dt, 1, false);
        moeRows(2LL * g_sms * 16 * T / 32 + 3, 17, dt, 0, false); moeRows(4096, 768, dt, 0, false);
        rowwise(257, 768, dt, 0, false); rowwise(100, 1000, dt, 0, false); rowwise(64, 4096, dt, 3, false); rowwise(33, 40000, dt, 0, false);
        crossEntropy(37, 50257, dt, 0, false); crossEntropy(16, 4096, dt, 1, false);
        embeddingRotary(512, 1000, 1024, dt, 0, false); embeddingRotary(256, 1000, 1024, dt, 1, false);
        freeAll();
    }
    optimizer(1000003, 0, false); optimizer(1000003, 1, false); freeAll();
    if (!quick) {
        // bandwidth at large sizes (BF16 activations, F32 optimizer state)
        elementwise(1LL << 27, MJ_BF16, 0, true); freeAll();
        elementwise(1LL << 26, MJ_F32, 0, true); freeAll();
        // a mixture of experts' expert rows (tokens x top-k) at FFN widths 4096 and 768 (fc2's input, as MoeLayer scales it)
        moeRows(32768, 4096, MJ_BF16, 0, true); freeAll();
        moeRows(131072, 768, MJ_BF16, 0, true); freeAll();
        moeRows(16384, 4096, MJ_F32, 0, true); freeAll();
        rowwise(8192, 4096, MJ_BF16, 0, true); freeAll();
        rowwise(16384, 768, MJ_BF16, 0, true); freeAll();
        rowwise(4096, 8192, MJ_BF16, 0, true); freeAll();
        rowwise(8192, 4096, MJ_F32, 0, true); freeAll();
        crossEntropy(4096, 50304, MJ_BF16, 0, true); freeAll();
        crossEntropy(4096, 50257, MJ_BF16, 0, true); freeAll();
        embeddingRotary(16384, 50304, 4096, MJ_BF16, 0, true); freeAll();
        qkvGather(); freeAll();
        optimizer(1LL << 28, 0, true); freeAll();
    }
    printf(g_fail ? "FAILED: %d checks\n" : "all checks passed\n", g_fail);
    return g_fail ? 1 : 0;
}
