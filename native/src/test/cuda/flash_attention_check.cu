// Standalone correctness check and benchmark of the FlashAttention kernels (flash_attention.cu).
//
//   flash_attention_check            all correctness cases, then the timing table
//   flash_attention_check --quick    a few small cases, no timing (for compute-sanitizer)
//   flash_attention_check --bench    timing only
//   flash_attention_check --sweep    every key length of the padded Java test cases
//   add --no-variants to leave out the bf16 tile-configuration variants (FWD_VARIANTS / BWD_VARIANTS,
//   checked in every correctness mode and timed in the timing table), --no-wgmma to leave out only the
//   wgmma ones (flash_attention_wgmma.cuh), --verbose to print their errors
//
// Kernels are launched exactly as CudaAttention.java launches them: the same launch plans
// (mj_fa_forward_launch / mj_fa_backward_launch in flash_attention.cu, which the Java mirrors),
// the same argument lists, the same backward sequence (prep kernel: delta and the zeroed fp32 dq
// workspace; backward kernel; cast). Every output is poisoned with NaN before the launch and compared with
// a naive fp64 reference on the GPU; relative errors are ||x - ref|| / ||ref||.
// Exit status 1 when any case fails.
#include "../../main/cuda/megatron_kernels.cu"
#include "../../main/cuda/flash_attention_wgmma.cuh"  // not in the fatbin yet: checked here first

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

// the kernel launched last (by launchFn): a failing kernel surfaces at a later synchronisation, and a
// fault (an illegal instruction, a misaligned address) ends the process, so the message names it
static const char* g_lastLaunch = "none";
#define CK(x)                                                                                       \
    do {                                                                                            \
        cudaError_t e_ = (x);                                                                       \
        if (e_ != cudaSuccess) {                                                                    \
            fprintf(stderr, "CUDA error %s at %s:%d: %s (last kernel launched: %s)\n", cudaGetErrorString(e_), \
                    __FILE__, __LINE__, #x, g_lastLaunch);                                          \
            exit(2);                                                                                \
        }                                                                                           \
    } while (0)

// ------------------------------------------------------------------ kernel table (names as Java uses them)
struct KernelEntry {
    const char* name;
    const void* fn;
};
#define KE(n) {#n, (const void*)&n}
static const KernelEntry KERNELS[] = {
    KE(megatron_flash_attention_forward_d32),  KE(megatron_flash_attention_backward_d32),
    KE(megatron_flash_attention_forward_d64),  KE(megatron_flash_attention_backward_d64),
    KE(megatron_flash_attention_forward_d96),  KE(megatron_flash_attention_backward_d96),
    KE(megatron_flash_attention_forward_d128), KE(megatron_flash_attention_backward_d128),
    KE(megatron_fa2_forward_bf16_d64),         KE(megatron_fa2_backward_bf16_d64),
    KE(megatron_fa2_forward_f16_d64),          KE(megatron_fa2_backward_f16_d64),
    KE(megatron_fa2_forward_bf16_d128),        KE(megatron_fa2_backward_bf16_d128),
    KE(megatron_fa2_forward_f16_d128),         KE(megatron_fa2_backward_f16_d128),
    KE(megatron_fa2_forward_bf16_d128_m2),     KE(megatron_fa2_forward_f16_d128_m2),
    KE(megatron_flash_attention_bwd_prep),     KE(megatron_cast),
};

static const void* kernel(const char* name) {
    for (const KernelEntry& k : KERNELS)
        if (strcmp(k.name, name) == 0) return k.fn;
    fprintf(stderr, "no kernel %s\n", name);
    exit(2);
}

static int g_sms = 0, g_sm = 0;  // SM count, compute capability 10 * major + minor
static bool g_sm90a = false;     // the code running is sm_90a (fa3::built_for_sm90a)
static bool g_noWgmma = false;   // --no-wgmma: leave the wgmma variants out (after one of them faulted)

// ------------------------------------------------------------------ variants (bf16), timed beside the production kernels
// Same templates as the production kernels (fa2::forward / fa2::backward in flash_attention.cu) with
// other tile configurations; every variant is also checked against the reference in the
// correctness modes (except the dQ-dropping diagnostic). Kept (round 2): the round-1 production
// configurations ("old", for the record), both d128 forward kernels (the launch plan picks one by grid
// size; the table times both on every shape), the d64 backward candidates for long sequences, and the
// dQ-dropped diagnostic (the share of the dQ reductions).
struct FwdVariant {
    const char* name;
    int d;
    const void* fn;    // bf16
    const void* fn16;  // f16 (checked in the f16 cases too), or null
    int minSm;         // compiled for sm_90 and newer only: 90
    int warps, mt, bn;
    int smemExtra;     // bytes beyond mj_fa2_fwd_smem (the wgmma kernels' alignment slack)
    bool sm90a;        // wgmma code: runs only where the binary's code for this device is sm_90a
};
struct BwdVariant {
    const char* name;
    int d;
    const void* fn;
    int warps, bm, dqm;
    int smemExtra;  // bytes beyond mj_fa2_bwd_smem (the wgmma kernels' alignment slack)
    bool sm90a;     // wgmma code (see FwdVariant)
};
#define FV(D, NW, MW, BN, QR)                                                                                  \
    {"w" #NW "m" #MW "n" #BN "q" #QR, D, (const void*)&fa2::forward_kernel<D, true, NW, MW, BN, QR != 0>, nullptr, 0, NW, MW, BN}
#define BV(D, NW, BM, DQ) {"w" #NW "b" #BM "dq" #DQ, D, (const void*)&fa2::backward_kernel<D, true, NW, BM, DQ>, NW, BM, DQ}
// fa3 (flash_attention_wgmma.cuh): NWG warpgroups of 64 query rows, key blocks of BN, "p": P V overlapped
// with the next block's softmax (three K/V stages); named wg<NWG>n<BN>[p]
#define WV(D, NWG, BN, PIPE, SUFFIX)                                                                            \
    {"wg" #NWG "n" #BN SUFFIX, D, (const void*)&fa3::forward_kernel<D, true, NWG, BN, PIPE>,                   \
     (const void*)&fa3::forward_kernel<D, false, NWG, BN, PIPE>, 90, 4 * (NWG), 1, BN,                          \
     fa3::forward_smem(D, NWG, BN, PIPE) - mj_fa2_fwd_smem(D, 64 * (NWG), BN), true}
static const FwdVariant FWD_VARIANTS[] = {
    FV(64, 4, 1, 64, 1),  // old production
    {"w4m1n64q1", 128, (const void*)&megatron_fa2_forward_bf16_d128, (const void*)&megatron_fa2_forward_f16_d128, 0,
     FA2_FWD_WARPS(128), FA2_FWD_MT(128), FA2_FWD_BN(128)},
    {"w4m2n64q0", 128, (const void*)&megatron_fa2_forward_bf16_d128_m2, (const void*)&megatron_fa2_forward_f16_d128_m2,
     90, FA2_FWD_WARPS(128), FA2_FWD_M2_MT, FA2_FWD_BN(128)},
    // one warpgroup per block (wg1): two or three blocks per SM, whose wgmma and softmax phases interleave
    WV(128, 2, 128, false, ""), WV(128, 2, 64, false, ""), WV(128, 1, 128, false, ""), WV(128, 1, 64, false, ""),
    WV(128, 2, 128, true, "p"), WV(128, 2, 64, true, "p"), WV(128, 1, 64, true, "p"),
    WV(64, 2, 128, false, ""),  WV(64, 3, 128, false, ""), WV(64, 2, 64, false, ""),   WV(64, 1, 128, false, ""),
    WV(64, 1, 64, false, ""),   WV(64, 2, 128, true, "p"), WV(64, 1, 128, true, "p"),
};
static bool runs(const FwdVariant& fv) { return g_sm >= fv.minSm && (!fv.sm90a || (g_sm90a && !g_noWgmma)); }
// fa3 backward: NWG warpgroups of 64 keys, query blocks of 64 rows, dQ by red.v2; named wg<NWG>b64
#define WB(D, NWG)                                                                                              \
    {"wg" #NWG "b64", D, (const void*)&fa3::backward_kernel<D, true, NWG>, 4 * (NWG), fa3::BWD_BM, 1,             \
     fa3::backward_smem(D, NWG) - mj_fa2_bwd_smem(D, 64 * (NWG), fa3::BWD_BM), true}
static const BwdVariant BWD_VARIANTS[] = {
    BV(64, 4, 64, 0),   // old production
    BV(64, 8, 64, 1),  BV(64, 8, 64, 3),  BV(64, 4, 64, 2),
    BV(128, 8, 32, 0),  // old production
    WB(64, 1), WB(64, 2), WB(128, 1), WB(128, 2),
};
static bool runs(const BwdVariant& bv) { return !bv.sm90a || (g_sm90a && !g_noWgmma); }

template <typename... A>
static void launchFn(const void* fn, const char* name, long long gx, long long gy, int block, int shared, A... a);
// backend.launch(name, gridX, gridY, block, shared, args...) with KernelModule's requireSharedMemory
template <typename... A>
static void launch(const char* name, long long gx, long long gy, int block, int shared, A... a) {
    if (gx <= 0 || gy <= 0) return;
    if (gy > 65535) {
        fprintf(stderr, "kernel %s: grid y %lld > 65535\n", name, gy);
        exit(2);
    }
    launchFn(kernel(name), name, gx, gy, block, shared, a...);
}
template <typename... A>
static void launchFn(const void* fn, const char* name, long long gx, long long gy, int block, int shared, A... a) {
    if (gx <= 0 || gy <= 0) return;
    g_lastLaunch = name;
    if (shared > 48 * 1024) CK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, shared));
    void* args[] = {(void*)&a...};
    CK(cudaLaunchKernel(fn, dim3((unsigned)gx, (unsigned)gy), dim3(block), args, (size_t)shared, 0));
}

static long long castGrid(long long n) {  // CudaBackend.grid
    return std::max(1LL, std::min((n + 255) / 256, (long long)g_sms * 16));
}

static bool al16(const void* p) { return ((uintptr_t)p & 15) == 0; }

// CudaAttention.forward
// (CudaAttention.tensorCores: 16-byte aligned tensors and scale > 0.) fv: a variant instead of the production kernel.
static void attentionForward(const void* q, const void* k, const void* v, void* out, float* lse, int dt, long long s,
                             long long sk, int B, int np, int ng, int d, float scale, bool causal, const int* keyLengths,
                             const FwdVariant* fv = nullptr) {
    if (fv) {
        const int bm = 16 * fv->warps * fv->mt;
        launchFn(dt == MJ_F16 ? fv->fn16 : fv->fn, fv->name, (s + bm - 1) / bm, (long long)B * np, fv->warps * 32,
                 mj_fa2_fwd_smem(d, bm, fv->bn) + fv->smemExtra,
                 q, k, v, dt, (void*)out, lse, s, sk, B, np, ng, scale, causal ? 1 : 0, keyLengths, (const int*)nullptr,
                 np * d, np / ng * d, ng * d, d, 0.0f, 1.0f, 0ULL, 0ULL);
        return;
    }
    MjFaLaunch l = mj_fa_forward_launch(dt, d, s, B, np, al16(q) && al16(k) && al16(v) && al16(out) && scale > 0, g_sm);
    // no documents (keyStarts), dense q, k, v (fa2::QkvStrides), no dropout (fa2::Dropout); the CUDA-core kernels
    // take neither strides nor dropout and ignore those arguments
    launch(l.kernel, l.gridX, l.gridY, l.block, l.shared, q, k, v, dt, (void*)out, lse, s, sk, B, np, ng, scale,
           causal ? 1 : 0, keyLengths, (const int*)nullptr, np * d, np / ng * d, ng * d, d, 0.0f, 1.0f, 0ULL, 0ULL);
}

// CudaAttention.backward (workspaces passed in: delta F32 [s*B*np], dqAcc F32 [s*B*np*d] unless dt is F32)
static void attentionBackward(const void* dOut, const void* q, const void* k, const void* v, const void* out,
                              const float* lse, void* dq, void* dk, void* dv, int dt, long long s, long long sk, int B,
                              int np, int ng, int d, float scale, bool causal, const int* keyLengths, float* delta,
                              float* dqWork, const BwdVariant* bv = nullptr, bool skipKernel = false) {
    const long long rows = s * B * np;
    float* dqAcc = dt == MJ_F32 ? (float*)dq : dqWork;
    launch("megatron_flash_attention_bwd_prep", castGrid(rows * d / 8), 1, 256, 0, dOut, out, dt, delta, dqAcc, s, B,
           np, d);
    bool ok = al16(q) && al16(k) && al16(v) && al16(out) && al16(dOut) && al16(dk) && al16(dv) && scale > 0;
    if (skipKernel) {
    } else if (bv) {
        const int bn = 16 * bv->warps;
        launchFn(bv->fn, bv->name, (sk + bn - 1) / bn, (long long)B * ng, bv->warps * 32,
                 mj_fa2_bwd_smem(d, bn, bv->bm) + bv->smemExtra,
                 q, k, v, dt, dOut, lse, (const float*)delta, dqAcc, dk, dv, s, sk, B, np, ng, scale, causal ? 1 : 0,
                 keyLengths, (const int*)nullptr, np * d, np / ng * d, ng * d, d, 0.0f, 1.0f, 0ULL, 0ULL);
    } else {
        MjFaLaunch l = mj_fa_backward_launch(dt, d, sk, B, ng, ok);
        launch(l.kernel, l.gridX, l.gridY, l.block, l.shared, q, k, v, dt, dOut, lse, (const float*)delta, dqAcc, dk,
               dv, s, sk, B, np, ng, scale, causal ? 1 : 0, keyLengths, (const int*)nullptr, np * d, np / ng * d, ng * d, d,
               0.0f, 1.0f, 0ULL, 0ULL);
    }
    if (dt != MJ_F32) launch("megatron_cast", castGrid(rows * d), 1, 256, 0, (const void*)dqAcc, 0, dq, dt, rows * d);
}

// ------------------------------------------------------------------ inputs and the fp64 reference
__device__ __forceinline__ unsigned int hash32(unsigned long long x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return (unsigned int)x;
}

// approximately normal(0, sigma) values (Box-Muller on two hashes)
__global__ void fill_normal(void* p, int dt, long long n, unsigned long long seed, float sigma) {
    MJ_FOR(i, n) {
        float u1 = (hash32(seed * 0x9E3779B97F4A7C15ULL + 2 * i) + 1.0f) * 0x1.0p-32f;
        float u2 = hash32(seed * 0x9E3779B97F4A7C15ULL + 2 * i + 1) * 0x1.0p-32f;
        float z = sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
        mj_store(p, i, dt, sigma * z);
    }
}

__device__ __forceinline__ long long ref_key_end(const int* kl, int b, long long sk) {
    if (!kl) return sk;
    long long L = kl[b];
    return L < 0 ? 0 : (L < sk ? L : sk);
}
__device__ __forceinline__ bool ref_visible(long long i, long long j, long long s, long long sk, long long keyEnd, int causal) {
    return j < keyEnd && (!causal || j <= i + (sk - s));
}

// one thread per (i, b, h): out (fp64, stored as double), lse
__global__ void ref_forward(const void* q, const void* k, const void* v, int dt, double* out, double* lse, long long s,
                            long long sk, int B, int np, int ng, int d, float scale, int causal, const int* kl) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= s * B * np) return;
    const long long i = t / ((long long)B * np);
    const int b = (int)(t / np % B), h = (int)(t % np), g = h / (np / ng);
    const long long keyEnd = ref_key_end(kl, b, sk);
    const long long qo = ((i * B + b) * np + h) * d;
    double m = -INFINITY;
    for (long long j = 0; j < sk; j++) {
        if (!ref_visible(i, j, s, sk, keyEnd, causal)) continue;
        const long long ko = ((j * B + b) * ng + g) * d;
        double dot = 0;
        for (int c = 0; c < d; c++) dot += (double)mj_load(q, qo + c, dt) * (double)mj_load(k, ko + c, dt);
        m = fmax(m, dot * scale);
    }
    double sum = 0;
    for (int c = 0; c < d; c++) out[qo + c] = 0;
    for (long long j = 0; j < sk; j++) {
        if (!ref_visible(i, j, s, sk, keyEnd, causal)) continue;
        const long long ko = ((j * B + b) * ng + g) * d;
        double dot = 0;
        for (int c = 0; c < d; c++) dot += (double)mj_load(q, qo + c, dt) * (double)mj_load(k, ko + c, dt);
        const double p = exp(dot * scale - m);
        sum += p;
        for (int c = 0; c < d; c++) out[qo + c] += p * (double)mj_load(v, ko + c, dt);
    }
    for (int c = 0; c < d; c++) out[qo + c] = sum > 0 ? out[qo + c] / sum : 0.0;
    lse[((long long)b * np + h) * s + i] = sum > 0 ? m + log(sum) : -INFINITY;
}

// delta from the kernel's own (rounded) out, as the backends do: delta = rowsum(dO * O)
// dq: one thread per (i, b, h)
__global__ void ref_dq(const void* q, const void* k, const void* v, const void* dOut, const void* outK, int dt,
                       const double* lse, double* delta, double* dq, long long s, long long sk, int B, int np, int ng,
                       int d, float scale, int causal, const int* kl) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= s * B * np) return;
    const long long i = t / ((long long)B * np);
    const int b = (int)(t / np % B), h = (int)(t % np), g = h / (np / ng);
    const long long keyEnd = ref_key_end(kl, b, sk);
    const long long qo = ((i * B + b) * np + h) * d;
    const long long lo = ((long long)b * np + h) * s + i;
    double dl = 0;
    for (int c = 0; c < d; c++) dl += (double)mj_load(dOut, qo + c, dt) * (double)mj_load(outK, qo + c, dt);
    delta[lo] = dl;
    for (int c = 0; c < d; c++) dq[qo + c] = 0;
    if (lse[lo] == -INFINITY) return;
    for (long long j = 0; j < sk; j++) {
        if (!ref_visible(i, j, s, sk, keyEnd, causal)) continue;
        const long long ko = ((j * B + b) * ng + g) * d;
        double dot = 0, dp = 0;
        for (int c = 0; c < d; c++) {
            dot += (double)mj_load(q, qo + c, dt) * (double)mj_load(k, ko + c, dt);
            dp += (double)mj_load(dOut, qo + c, dt) * (double)mj_load(v, ko + c, dt);
        }
        const double p = exp(dot * scale - lse[lo]);
        const double ds = p * (dp - dl) * scale;
        for (int c = 0; c < d; c++) dq[qo + c] += ds * (double)mj_load(k, ko + c, dt);
    }
}

// dk, dv: one thread per (j, b, g), summing over the group's query heads
__global__ void ref_dkv(const void* q, const void* k, const void* v, const void* dOut, int dt, const double* lse,
                        const double* delta, double* dk, double* dv, long long s, long long sk, int B, int np, int ng,
                        int d, float scale, int causal, const int* kl) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= sk * B * ng) return;
    const long long j = t / ((long long)B * ng);
    const int b = (int)(t / ng % B), g = (int)(t % ng), rep = np / ng;
    const long long keyEnd = ref_key_end(kl, b, sk);
    const long long ko = ((j * B + b) * ng + g) * d;
    for (int c = 0; c < d; c++) dk[ko + c] = dv[ko + c] = 0;
    for (int h = g * rep; h < (g + 1) * rep; h++) {
        for (long long i = 0; i < s; i++) {
            if (!ref_visible(i, j, s, sk, keyEnd, causal)) continue;
            const long long lo = ((long long)b * np + h) * s + i;
            if (lse[lo] == -INFINITY) continue;
            const long long qo = ((i * B + b) * np + h) * d;
            double dot = 0, dp = 0;
            for (int c = 0; c < d; c++) {
                dot += (double)mj_load(q, qo + c, dt) * (double)mj_load(k, ko + c, dt);
                dp += (double)mj_load(dOut, qo + c, dt) * (double)mj_load(v, ko + c, dt);
            }
            const double p = exp(dot * scale - lse[lo]);
            const double ds = p * (dp - delta[lo]) * scale;
            for (int c = 0; c < d; c++) {
                dv[ko + c] += p * (double)mj_load(dOut, qo + c, dt);
                dk[ko + c] += ds * (double)mj_load(q, qo + c, dt);
            }
        }
    }
}

__global__ void to_double(const void* p, int dt, double* out, long long n) { MJ_FOR(i, n) out[i] = mj_load(p, i, dt); }

// ------------------------------------------------------------------ cases
struct Case {
    int dt;
    long long s, sk;
    int b, np, ng, d;
    bool causal;
    int pad;      // 0: no keyLengths; 1: random lengths in [2, sk]; 2: batch 0 fully masked (length 0), others random; 3: see len1
    float sigma;  // input magnitude
    int len1 = 0; // pad 3: batch 0 fully masked, batch 1 has exactly len1 keys (--sweep)
};

static const char* dtName(int dt) { return dt == MJ_BF16 ? "bf16" : dt == MJ_F16 ? "f16" : "f32"; }
static size_t dtSize(int dt) { return dt == MJ_F32 ? 4 : 2; }
static double tolerance(int dt) { return dt == MJ_BF16 ? 2e-2 : dt == MJ_F16 ? 5e-3 : 1e-5; }

// relative error of a (as dt, or float when dt < 0) against ref; -inf entries must match exactly;
// NaN anywhere in a is an error (returned as NaN).
static double relErr(const void* aDev, int dt, const double* refDev, long long n, std::string* note) {
    std::vector<double> a(n), r(n);
    double* tmp;
    CK(cudaMalloc(&tmp, n * sizeof(double)));
    to_double<<<castGrid(n), 256>>>(aDev, dt, tmp, n);
    CK(cudaGetLastError());
    CK(cudaMemcpy(a.data(), tmp, n * sizeof(double), cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(r.data(), refDev, n * sizeof(double), cudaMemcpyDeviceToHost));
    CK(cudaFree(tmp));
    double num = 0, den = 0;
    for (long long i = 0; i < n; i++) {
        if (std::isnan(a[i])) {
            *note = "NaN at " + std::to_string(i);
            return NAN;
        }
        if (std::isinf(r[i]) || std::isinf(a[i])) {
            if (a[i] != r[i]) {
                *note = "element " + std::to_string(i) + " is " + std::to_string(a[i]) + ", expected " + std::to_string(r[i]);
                return NAN;
            }
            continue;
        }
        num += (a[i] - r[i]) * (a[i] - r[i]);
        den += r[i] * r[i];
    }
    return std::sqrt(num / std::max(den, 1e-300));
}

static bool g_variants = true, g_verbose = false;

static bool runCase(const Case& c, unsigned long long seed) {
    const int dt = c.dt;
    const long long nq = c.s * c.b * c.np * c.d, nk = c.sk * c.b * c.ng * c.d, rows = c.s * c.b * c.np;
    const size_t es = dtSize(dt);
    void *q, *k, *v, *dO, *out, *dq, *dk, *dv;
    float *lse, *delta, *dqWork;
    int* kl = nullptr;
    CK(cudaMalloc(&q, nq * es));
    CK(cudaMalloc(&dO, nq * es));
    CK(cudaMalloc(&out, nq * es));
    CK(cudaMalloc(&dq, nq * es));
    CK(cudaMalloc(&k, nk * es));
    CK(cudaMalloc(&v, nk * es));
    CK(cudaMalloc(&dk, nk * es));
    CK(cudaMalloc(&dv, nk * es));
    CK(cudaMalloc(&lse, rows * 4));
    CK(cudaMalloc(&delta, rows * 4));
    CK(cudaMalloc(&dqWork, nq * 4));
    fill_normal<<<castGrid(nq), 256>>>(q, dt, nq, seed * 8 + 1, c.sigma);
    fill_normal<<<castGrid(nk), 256>>>(k, dt, nk, seed * 8 + 2, c.sigma);
    fill_normal<<<castGrid(nk), 256>>>(v, dt, nk, seed * 8 + 3, 1.0f);
    fill_normal<<<castGrid(nq), 256>>>(dO, dt, nq, seed * 8 + 4, 1.0f);
    CK(cudaGetLastError());
    std::vector<int> lengths;
    if (c.pad) {
        srand((unsigned)seed);
        for (int i = 0; i < c.b; i++)
            lengths.push_back(c.pad == 3 ? (i == 0 ? 0 : c.len1) : c.pad == 2 && i == 0 ? 0 : 2 + (int)(rand() % (c.sk - 1)));
        CK(cudaMalloc(&kl, c.b * sizeof(int)));
        CK(cudaMemcpy(kl, lengths.data(), c.b * sizeof(int), cudaMemcpyHostToDevice));
    }
    const float scale = 1.0f / sqrtf((float)c.d);
    // poison every output
    CK(cudaMemset(out, 0xff, nq * es));
    CK(cudaMemset(lse, 0xff, rows * 4));
    CK(cudaMemset(dq, 0xff, nq * es));
    CK(cudaMemset(dk, 0xff, nk * es));
    CK(cudaMemset(dv, 0xff, nk * es));
    CK(cudaMemset(delta, 0xff, rows * 4));
    CK(cudaMemset(dqWork, 0xff, nq * 4));

    attentionForward(q, k, v, out, lse, dt, c.s, c.sk, c.b, c.np, c.ng, c.d, scale, c.causal, kl);
    CK(cudaGetLastError());
    attentionBackward(dO, q, k, v, out, lse, dq, dk, dv, dt, c.s, c.sk, c.b, c.np, c.ng, c.d, scale, c.causal, kl,
                      delta, dqWork);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());

    double *rOut, *rLse, *rDelta, *rDq, *rDk, *rDv;
    CK(cudaMalloc(&rOut, nq * 8));
    CK(cudaMalloc(&rDq, nq * 8));
    CK(cudaMalloc(&rDk, nk * 8));
    CK(cudaMalloc(&rDv, nk * 8));
    CK(cudaMalloc(&rLse, rows * 8));
    CK(cudaMalloc(&rDelta, rows * 8));
    ref_forward<<<(unsigned)((rows + 127) / 128), 128>>>(q, k, v, dt, rOut, rLse, c.s, c.sk, c.b, c.np, c.ng, c.d, scale,
                                                        c.causal, kl);
    ref_dq<<<(unsigned)((rows + 127) / 128), 128>>>(q, k, v, dO, out, dt, rLse, rDelta, rDq, c.s, c.sk, c.b, c.np, c.ng,
                                                   c.d, scale, c.causal, kl);
    const long long krows = c.sk * c.b * c.ng;
    ref_dkv<<<(unsigned)((krows + 63) / 64), 64>>>(q, k, v, dO, dt, rLse, rDelta, rDk, rDv, c.s, c.sk, c.b, c.np, c.ng,
                                                  c.d, scale, c.causal, kl);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());

    std::string note;
    const double tol = tolerance(dt);
    const char* names[5] = {"out", "lse", "dq", "dk", "dv"};
    double errs[5];
    std::string notes[5];
    errs[0] = relErr(out, dt, rOut, nq, &notes[0]);
    errs[1] = relErr(lse, MJ_F32, rLse, rows, &notes[1]);
    errs[2] = relErr(dq, dt, rDq, nq, &notes[2]);
    errs[3] = relErr(dk, dt, rDk, nk, &notes[3]);
    errs[4] = relErr(dv, dt, rDv, nk, &notes[4]);
    bool ok = true;
    for (int i = 0; i < 5; i++) ok &= !std::isnan(errs[i]) && errs[i] <= tol;
    MjFaLaunch lf = mj_fa_forward_launch(dt, c.d, c.s, c.b, c.np, true, g_sm);
    std::string lens;
    for (int L : lengths) lens += (lens.empty() ? "" : ",") + std::to_string(L);
    printf("%s %-4s d=%-3d s=%-5lld sk=%-5lld b=%d np=%-2d ng=%-2d %-6s %-14s sigma=%-3g %-38s", ok ? "ok  " : "FAIL",
           dtName(dt), c.d, c.s, c.sk, c.b, c.np, c.ng, c.causal ? "causal" : "full",
           c.pad ? ("kl=" + lens).substr(0, 14).c_str() : "", c.sigma, lf.kernel);
    for (int i = 0; i < 5; i++) printf(" %s %.2e", names[i], errs[i]);
    printf("\n");
    for (int i = 0; i < 5; i++)
        if (!notes[i].empty()) printf("      %s: %s\n", names[i], notes[i].c_str());

    // the variants (bf16; the forward ones with an f16 kernel in the f16 cases too): forward ones against
    // out/lse, backward ones against dq/dk/dv (after the production forward again, so delta and the reference's out are the same)
    if ((dt == MJ_BF16 || dt == MJ_F16) && g_variants) {
        std::string line;
        bool vok = true;
        auto check = [&](const char* what, int first, int count) {
            char buf[160];
            int n = snprintf(buf, sizeof buf, " %s", what);
            bool good = true;
            for (int i = first; i < first + count; i++) {
                std::string nt;
                const void* x = i == 0 ? out : i == 1 ? (const void*)lse : i == 2 ? dq : i == 3 ? dk : dv;
                const double* r = i == 0 ? rOut : i == 1 ? rLse : i == 2 ? rDq : i == 3 ? rDk : rDv;
                const double e = relErr(x, i == 1 ? MJ_F32 : dt, r, i == 0 || i == 2 ? nq : i == 1 ? rows : nk, &nt);
                good &= !std::isnan(e) && e <= tol;
                n += snprintf(buf + n, sizeof buf - n, " %s %.1e", names[i], e);
            }
            if (!good) n += snprintf(buf + n, sizeof buf - n, " FAIL");
            vok &= good;
            line += buf;
        };
        for (const FwdVariant& fv : FWD_VARIANTS) {
            if (fv.d != c.d || !runs(fv) || (dt == MJ_F16 && !fv.fn16)) continue;
            CK(cudaMemset(out, 0xff, nq * es));
            CK(cudaMemset(lse, 0xff, rows * 4));
            attentionForward(q, k, v, out, lse, dt, c.s, c.sk, c.b, c.np, c.ng, c.d, scale, c.causal, kl, &fv);
            CK(cudaDeviceSynchronize());
            check(fv.name, 0, 2);
        }
        attentionForward(q, k, v, out, lse, dt, c.s, c.sk, c.b, c.np, c.ng, c.d, scale, c.causal, kl);
        for (const BwdVariant& bv : BWD_VARIANTS) {
            if (bv.d != c.d || bv.dqm == 2 || dt != MJ_BF16 || !runs(bv)) continue;
            CK(cudaMemset(dq, 0xff, nq * es));
            CK(cudaMemset(dk, 0xff, nk * es));
            CK(cudaMemset(dv, 0xff, nk * es));
            attentionBackward(dO, q, k, v, out, lse, dq, dk, dv, dt, c.s, c.sk, c.b, c.np, c.ng, c.d, scale, c.causal,
                              kl, delta, dqWork, &bv);
            CK(cudaDeviceSynchronize());
            check(bv.name, 2, 3);
        }
        if (!line.empty()) {
            if (!vok || g_verbose) printf("  %s variants:%s\n", vok ? "ok  " : "FAIL", line.c_str());
            ok &= vok;
        }
    }

    for (void* p : {q, k, v, dO, out, dq, dk, dv}) CK(cudaFree(p));
    for (float* p : {lse, delta, dqWork}) CK(cudaFree(p));
    for (double* p : {rOut, rLse, rDelta, rDq, rDk, rDv}) CK(cudaFree(p));
    if (kl) CK(cudaFree(kl));
    return ok;
}

// ------------------------------------------------------------------ timing
struct Bench {
    int B, H, T, D;
    double sdpaFwd, sdpaFwdBwd;  // PyTorch SDPA (FlashAttention-2) on the H100, TFLOP/s; 0 = not measured
};

static float medianMs(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// median ms of 10 runs after 3 warm-ups
template <typename F>
static float timeMs(F f) {
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    std::vector<float> v;
    for (int it = 0; it < 13; it++) {
        CK(cudaEventRecord(e0));
        f();
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        float ms;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        if (it >= 3) v.push_back(ms);
    }
    CK(cudaGetLastError());
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    return medianMs(v);
}

// variants: also time every variant of this head dim (bf16), one row each, and the best pair
static void bench(int dt, const Bench& bc, bool variants) {
    const long long s = bc.T, sk = bc.T;
    const int B = bc.B, np = bc.H, ng = bc.H, d = bc.D;
    const long long nq = s * B * np * d, rows = s * B * np;
    const size_t es = dtSize(dt);
    void *q, *k, *v, *dO, *out, *dq, *dk, *dv;
    float *lse, *delta, *dqWork;
    CK(cudaMalloc(&q, nq * es));
    CK(cudaMalloc(&k, nq * es));
    CK(cudaMalloc(&v, nq * es));
    CK(cudaMalloc(&dO, nq * es));
    CK(cudaMalloc(&out, nq * es));
    CK(cudaMalloc(&dq, nq * es));
    CK(cudaMalloc(&dk, nq * es));
    CK(cudaMalloc(&dv, nq * es));
    CK(cudaMalloc(&lse, rows * 4));
    CK(cudaMalloc(&delta, rows * 4));
    CK(cudaMalloc(&dqWork, nq * 4));
    fill_normal<<<castGrid(nq), 256>>>(q, dt, nq, 11, 1.0f);
    fill_normal<<<castGrid(nq), 256>>>(k, dt, nq, 12, 1.0f);
    fill_normal<<<castGrid(nq), 256>>>(v, dt, nq, 13, 1.0f);
    fill_normal<<<castGrid(nq), 256>>>(dO, dt, nq, 14, 1.0f);
    const float scale = 1.0f / sqrtf((float)d);
    auto fwd = [&](const FwdVariant* fv) {
        attentionForward(q, k, v, out, lse, dt, s, sk, B, np, ng, d, scale, true, nullptr, fv);
    };
    auto bwd = [&](const BwdVariant* bv, bool skip) {
        attentionBackward(dO, q, k, v, out, lse, dq, dk, dv, dt, s, sk, B, np, ng, d, scale, true, nullptr, delta,
                          dqWork, bv, skip);
    };
    const double flops = 4.0 * B * np * (double)s * s * d / 2;  // causal
    auto tfF = [&](float ms) { return flops / (ms * 1e-3) / 1e12; };
    auto tfB = [&](float ms) { return 2.5 * flops / (ms * 1e-3) / 1e12; };
    auto tfA = [&](float f, float b) { return 3.5 * flops / ((f + b) * 1e-3) / 1e12; };

    const float f = timeMs([&] { fwd(nullptr); });
    const float bw = timeMs([&] { bwd(nullptr, false); });
    char sdpa[64] = "      -", ratio[64] = "     -";
    if (bc.sdpaFwd > 0) {
        snprintf(sdpa, sizeof sdpa, "%4.0f / %4.0f", bc.sdpaFwd, bc.sdpaFwdBwd);
        snprintf(ratio, sizeof ratio, "%.2f / %.2f", tfF(f) / bc.sdpaFwd, tfA(f, bw) / bc.sdpaFwdBwd);
    }
    char shape[48];
    snprintf(shape, sizeof shape, "(%2d,%2d,%5d,%3d)", B, np, (int)s, d);
    printf("%-4s %s  %8.3f  %8.1f  %8.3f  %8.1f  %9.1f   %-12s  %s\n", dtName(dt), shape, f, tfF(f), bw, tfB(bw),
           tfA(f, bw), sdpa, ratio);
    if (variants && dt == MJ_BF16) {
        // backward ms include the prep kernel (delta, dq zeroing) and the cast ("aux", timed alone)
        const float aux = timeMs([&] { bwd(nullptr, true); });
        printf("  %s aux (prep: delta + zero dq; cast) %.3f ms; production kernels %s, %s\n", shape, aux,
               mj_fa_forward_launch(dt, d, s, B, np, true, g_sm).kernel, mj_fa_backward_launch(dt, d, sk, B, ng, true).kernel);
        float bestF = f, bestB = bw;
        const char *bestFn = "production", *bestBn = "production";
        for (const FwdVariant& fv : FWD_VARIANTS) {
            if (fv.d != d || !runs(fv)) continue;
            const float ms = timeMs([&] { fwd(&fv); });
            printf("  %s fwd %-12s %8.3f ms %7.1f TF/s\n", shape, fv.name, ms, tfF(ms));
            if (ms < bestF) bestF = ms, bestFn = fv.name;
        }
        fwd(nullptr);
        for (const BwdVariant& bv : BWD_VARIANTS) {
            if (bv.d != d || !runs(bv)) continue;
            const float ms = timeMs([&] { bwd(&bv, false); });
            printf("  %s bwd %-12s %8.3f ms %7.1f TF/s  (kernel alone ~%.3f ms)%s\n", shape, bv.name, ms, tfB(ms),
                   ms - aux, bv.dqm == 2 ? "  [diagnostic: dQ dropped]" : "");
            if (bv.dqm != 2 && ms < bestB) bestB = ms, bestBn = bv.name;
        }
        printf("  %s best: fwd %s %.1f, bwd %s %.1f, f+b %.1f TF/s (production %.1f)\n", shape, bestFn, tfF(bestF),
               bestBn, tfB(bestB), tfA(bestF, bestB), tfA(f, bw));
    }
    for (void* p : {q, k, v, dO, out, dq, dk, dv}) CK(cudaFree(p));
    for (float* p : {lse, delta, dqWork}) CK(cudaFree(p));
}

int main(int argc, char** argv) {
    bool quick = false, benchOnly = false, sweep = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = true;
        else if (!strcmp(argv[i], "--bench")) benchOnly = true;
        else if (!strcmp(argv[i], "--sweep")) sweep = quick = true;  // every key length of CudaBackendTest's padded cases
        else if (!strcmp(argv[i], "--no-variants")) g_variants = false;   // production kernels only
        else if (!strcmp(argv[i], "--verbose")) g_verbose = true;         // print every variant's errors
        else if (!strcmp(argv[i], "--no-wgmma")) g_noWgmma = true;        // the fa2 variants only
        else {
            fprintf(stderr, "usage: %s [--quick | --bench | --sweep] [--no-variants | --no-wgmma] [--verbose]\n", argv[0]);
            return 2;
        }
    }
    int dev;
    CK(cudaGetDevice(&dev));
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, dev));
    g_sms = prop.multiProcessorCount;
    g_sm = prop.major * 10 + prop.minor;
    {
        int* flag;
        CK(cudaMalloc(&flag, sizeof(int)));
        fa3::built_for_sm90a<<<1, 1>>>(flag);
        int host = 0;
        CK(cudaMemcpy(&host, flag, sizeof(int), cudaMemcpyDeviceToHost));
        CK(cudaFree(flag));
        g_sm90a = host == 1;
    }
    printf("device %s (sm_%d%d, %d SMs); %s\n", prop.name, prop.major, prop.minor, g_sms,
           !g_sm90a ? "no sm_90a code for this device: the wgmma variants (wg*) are left out (build with sm_90a)"
           : g_noWgmma ? "sm_90a code, but --no-wgmma: the wgmma variants (wg*) are left out"
                       : "sm_90a code: the wgmma variants (wg*) run");
    printf("launch plans: fwd d64 %d thr %d B smem | fwd d128 %d thr %d B (_m2 %d B from %d blocks) | bwd d64 %d thr %d B "
           "| bwd d128 %d thr %d B\n",
           mj_fa_forward_launch(MJ_BF16, 64, 1, 1, 1, true, g_sm).block, mj_fa2_forward_smem(64, false),
           mj_fa_forward_launch(MJ_BF16, 128, 1, 1, 1, true, g_sm).block, mj_fa2_forward_smem(128, false),
           mj_fa2_forward_smem(128, true), FA2_FWD_M2_MIN_BLOCKS,
           mj_fa_backward_launch(MJ_BF16, 64, 1, 1, 1, true).block, mj_fa2_backward_smem(64),
           mj_fa_backward_launch(MJ_BF16, 128, 1, 1, 1, true).block, mj_fa2_backward_smem(128));

    std::vector<Case> cases;
    const int BF = MJ_BF16, HF = MJ_F16, F32 = MJ_F32;
    if (sweep) {
        for (int dt : {BF, HF})
            for (int rep = 0; rep < 2; rep++) {
                // From 2 keys: with one key dq and dk are 0 in exact arithmetic, and a relative error
                // against the fp64 reference only compares rounding noise with ~0.
                for (int L = 2; L <= 65; L++) cases.push_back({dt, 33, 65, 2, 8, 2, 128, true, 3, 1, L});
                for (int L = 2; L <= 40; L++) cases.push_back({dt, 40, 40, 2, 4, 1, 64, false, 3, 1, L});
            }
    } else if (quick) {
        cases = {
            {BF, 77, 77, 2, 8, 2, 64, true, 0, 1},     // GQA causal, odd s
            {HF, 33, 150, 2, 8, 2, 128, true, 1, 1},   // s < sk, padded
            {BF, 70, 70, 2, 4, 1, 128, false, 2, 1},   // MQA, batch 0 fully masked
            {HF, 130, 60, 1, 2, 2, 64, true, 0, 1},    // s > sk: leading rows see nothing
            {BF, 50, 50, 1, 3, 3, 96, true, 0, 1},     // fallback d96
            {F32, 40, 40, 2, 4, 2, 64, true, 1, 1},    // fallback fp32
        };
    } else if (!benchOnly) {
        for (int dt : {BF, HF}) {
            for (int d : {64, 128}) {
                cases.push_back({dt, 256, 256, 2, 4, 4, d, true, 0, 1});
                cases.push_back({dt, 256, 256, 2, 4, 4, d, false, 0, 1});
                cases.push_back({dt, 77, 77, 2, 8, 2, d, true, 0, 1});       // GQA
                cases.push_back({dt, 77, 77, 2, 8, 2, d, false, 1, 1});      // GQA, padded
                cases.push_back({dt, 1000, 1000, 2, 4, 1, d, true, 1, 1});   // MQA, padded
                cases.push_back({dt, 1000, 1000, 2, 2, 1, d, false, 0, 1});  // MQA
                cases.push_back({dt, 33, 300, 2, 8, 2, d, true, 1, 1});      // s < sk, padded
                cases.push_back({dt, 1, 257, 2, 4, 2, d, true, 0, 1});       // decode
                cases.push_back({dt, 64, 512, 2, 4, 4, d, false, 0, 1});     // s < sk
                cases.push_back({dt, 300, 100, 2, 4, 2, d, true, 0, 1});     // s > sk
                cases.push_back({dt, 40, 40, 2, 4, 1, d, false, 2, 1});      // batch 0 fully masked
                cases.push_back({dt, 200, 200, 2, 4, 2, d, true, 0, 4});     // large magnitude
                cases.push_back({dt, 129, 129, 2, 4, 4, d, false, 0, 4});    // large magnitude
            }
            // CudaBackendTest's cases
            cases.push_back({dt, 70, 70, 2, 4, 4, 64, true, 0, 1});
            cases.push_back({dt, 33, 65, 2, 8, 2, 128, true, 2, 1});
            cases.push_back({dt, 40, 40, 2, 4, 1, 64, false, 2, 1});
            // fallback head dims
            cases.push_back({dt, 77, 77, 2, 8, 2, 32, true, 1, 1});
            cases.push_back({dt, 77, 77, 2, 8, 2, 96, false, 0, 1});
        }
        for (int d : {32, 64, 96, 128}) cases.push_back({F32, 77, 90, 2, 4, 2, d, true, 1, 1});
        cases.push_back({F32, 200, 200, 1, 2, 2, 64, false, 0, 1});
    }
    int failed = 0;
    unsigned long long seed = 1;
    if (!cases.empty())
        printf("relative errors ||x - ref|| / ||ref|| against fp64 (limits: bf16 2e-2, f16 5e-3, f32 1e-5)\n");
    for (const Case& c : cases) failed += runCase(c, seed++) ? 0 : 1;
    if (!cases.empty()) printf("%d of %zu cases failed\n", failed, cases.size());

    if (!quick) {
        printf("\ncausal timing (median of 10 after 3 warm-ups); TFLOP/s counts 4*B*H*T*T*D/2 forward, 2.5x backward, "
               "3.5x fwd+bwd\n");
        printf("dt   (B, H,    T,  D)    fwd ms  fwd TF/s    bwd ms  bwd TF/s  f+b TF/s   SDPA f / f+b  ratio f / f+b\n");
        const Bench benches[] = {
            {8, 16, 2048, 128, 427, 327}, {16, 12, 1024, 64, 234, 149}, {4, 32, 4096, 128, 574, 457},
            {4, 16, 2048, 64, 0, 0},      {4, 16, 2048, 128, 0, 0},
            // d128 forward m1 / _m2 rule (grid blocks of 128 rows): 1024 blocks at T 4096, 2048 at T 1024
            {2, 16, 4096, 128, 0, 0},     {16, 16, 1024, 128, 0, 0},
        };
        for (const Bench& bc : benches) bench(MJ_BF16, bc, false);
        bench(MJ_F16, benches[0], false);
        if (g_variants) {
            printf("\nvariants (bf16; wWmMnNqQ: W warps x M 16-row tiles, N keys per block, Q in registers; "
                   "wWbBdqD: W warps x 16 keys, B query rows per step, dQ 0 atomicAdd / 1 red.v2 / 3 red.v4 / 2 dropped;\n"
                   " round-1 production for the record: fwd d64 w4m1n64q1, bwd d64 w4b64dq0, bwd d128 w8b32dq0)\n");
            for (const Bench& bc : benches) bench(MJ_BF16, bc, true);
        }
    }
    return failed ? 1 : 0;
}
