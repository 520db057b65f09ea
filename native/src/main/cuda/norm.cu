// LayerNorm and RMSNorm over the last dimension, one block per row (rows up to 1024 wide take the
// warp-per-row kernels at the end of this file). Biased variance in two passes over the row (no
// E[x^2] - E[x]^2 cancellation), as the CPU backend and Apex do. mean and rstd are F32, one per row.
// dx is written; dGamma/dBeta accumulate through megatron_norm_param_partials +
// megatron_norm_param_reduce: fixed-order partial sums over row slices, then a fixed-order sum over
// slices, so the result is deterministic (no atomics).
//
// Fast path (cols % 8 == 0, every pointer 16-byte aligned, cols <= 8 * MJ_NORM_K * blockDim.x):
// the row is held in registers, MJ_NORM_K chunks of 8 per thread (chunk j of the row on thread
// j % blockDim.x), read from global memory once, written once. The host picks blockDim.x =
// cols / (8 * MJ_NORM_K) rounded up to a multiple of 32 (CudaNormOps.threads). Otherwise the
// scalar path re-reads the row per pass, for any blockDim.x multiple of 32.
#include "common.cuh"

#define MJ_NORM_K 4

__device__ __forceinline__ bool mj_norm_fast(int cols, bool aligned) {
    return aligned && (cols % MJ_CHUNK) == 0 && cols / MJ_CHUNK <= MJ_NORM_K * (int)blockDim.x;
}

extern "C" __global__ void __launch_bounds__(1024) megatron_layernorm_forward(const void* x, int xt, const void* gamma, int gt,
                                                      const void* beta, int bt, float eps, void* y, int yt,
                                                      float* mean, float* rstd, int cols) {
    i64 row = blockIdx.x;
    i64 base = row * cols;
    bool aligned = mj_al16(x) && mj_al16(y) && mj_al16(gamma) && (beta == nullptr || mj_al16(beta));
    if (mj_norm_fast(cols, aligned)) {
        int nch = cols / MJ_CHUNK;
        i64 rc = row * nch;
        float v[MJ_NORM_K][8];
        float s = 0.0f;
#pragma unroll
        for (int k = 0; k < MJ_NORM_K; k++) {
            int j = threadIdx.x + k * blockDim.x;
            if (j < nch) {
                mj_load8(x, rc + j, xt, v[k]);
#pragma unroll
                for (int e = 0; e < 8; e++) s += v[k][e];
            }
        }
        float mu = mj_block_sum(s) / cols;
        float q = 0.0f;
#pragma unroll
        for (int k = 0; k < MJ_NORM_K; k++) {
            int j = threadIdx.x + k * blockDim.x;
            if (j < nch) {
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    float d = v[k][e] - mu;
                    q += d * d;
                }
            }
        }
        float rs = rsqrtf(mj_block_sum(q) / cols + eps);
#pragma unroll
        for (int k = 0; k < MJ_NORM_K; k++) {
            int j = threadIdx.x + k * blockDim.x;
            if (j < nch) {
                float g[8], b[8];
                mj_load8(gamma, j, gt, g);
                if (beta != nullptr) mj_load8(beta, j, bt, b);
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    float o = (v[k][e] - mu) * rs * g[e];
                    if (beta != nullptr) o += b[e];
                    v[k][e] = o;
                }
                mj_store8(y, rc + j, yt, v[k]);
            }
        }
        if (threadIdx.x == 0) {
            mean[row] = mu;
            rstd[row] = rs;
        }
        return;
    }
    float s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) s += mj_load(x, base + c, xt);
    float mu = mj_block_sum(s) / cols;
    float v = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float d = mj_load(x, base + c, xt) - mu;
        v += d * d;
    }
    float var = mj_block_sum(v) / cols;
    float rs = rsqrtf(var + eps);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float o = (mj_load(x, base + c, xt) - mu) * rs * mj_load(gamma, c, gt);
        if (beta != nullptr) o += mj_load(beta, c, bt);
        mj_store(y, base + c, yt, o);
    }
    if (threadIdx.x == 0) {
        mean[row] = mu;
        rstd[row] = rs;
    }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma, xhat = (x - mean) * rstd.
// mean null: RMSNorm, dx = rstd * (g - xhat * mean(g * xhat)), xhat = x * rstd.
__device__ __forceinline__ void mj_norm_backward_fast(const void* dy, int dyt, const void* x, int xt,
                                                      const void* gamma, int gt, float mu, float rs, bool centered,
                                                      void* dx, int dxt, int cols, i64 row) {
    int nch = cols / MJ_CHUNK;
    i64 rc = row * nch;
    float g[MJ_NORM_K][8], xh[MJ_NORM_K][8];
    float sg = 0.0f, sgx = 0.0f;
#pragma unroll
    for (int k = 0; k < MJ_NORM_K; k++) {
        int j = threadIdx.x + k * blockDim.x;
        if (j < nch) {
            float gm[8];
            mj_load8(dy, rc + j, dyt, g[k]);
            mj_load8(x, rc + j, xt, xh[k]);
            mj_load8(gamma, j, gt, gm);
#pragma unroll
            for (int e = 0; e < 8; e++) {
                g[k][e] *= gm[e];
                xh[k][e] = (xh[k][e] - mu) * rs;
                sg += g[k][e];
                sgx += g[k][e] * xh[k][e];
            }
        }
    }
    float meanG = 0.0f, meanGX;
    if (centered) {
        float2 t = mj_block_sum2(sg, sgx);
        meanG = t.x / cols;
        meanGX = t.y / cols;
    } else {
        meanGX = mj_block_sum(sgx) / cols;
    }
#pragma unroll
    for (int k = 0; k < MJ_NORM_K; k++) {
        int j = threadIdx.x + k * blockDim.x;
        if (j < nch) {
#pragma unroll
            for (int e = 0; e < 8; e++) g[k][e] = rs * (g[k][e] - meanG - xh[k][e] * meanGX);
            mj_store8(dx, rc + j, dxt, g[k]);
        }
    }
}

extern "C" __global__ void __launch_bounds__(512) megatron_layernorm_backward(const void* dy, int dyt, const void* x, int xt,
                                                       const void* gamma, int gt, const float* mean,
                                                       const float* rstd, void* dx, int dxt, int cols) {
    i64 row = blockIdx.x;
    i64 base = row * cols;
    float mu = mean[row], rs = rstd[row];
    if (mj_norm_fast(cols, mj_al16(dy) && mj_al16(x) && mj_al16(gamma) && mj_al16(dx))) {
        mj_norm_backward_fast(dy, dyt, x, xt, gamma, gt, mu, rs, true, dx, dxt, cols, row);
        return;
    }
    float sg = 0.0f, sgx = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float g = mj_load(dy, base + c, dyt) * mj_load(gamma, c, gt);
        float xh = (mj_load(x, base + c, xt) - mu) * rs;
        sg += g;
        sgx += g * xh;
    }
    float meanG = mj_block_sum(sg) / cols;
    float meanGX = mj_block_sum(sgx) / cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float g = mj_load(dy, base + c, dyt) * mj_load(gamma, c, gt);
        float xh = (mj_load(x, base + c, xt) - mu) * rs;
        mj_store(dx, base + c, dxt, rs * (g - meanG - xh * meanGX));
    }
}

extern "C" __global__ void __launch_bounds__(1024) megatron_rmsnorm_forward(const void* x, int xt, const void* gamma, int gt, float eps,
                                                    void* y, int yt, float* rstd, int cols) {
    i64 row = blockIdx.x;
    i64 base = row * cols;
    if (mj_norm_fast(cols, mj_al16(x) && mj_al16(y) && mj_al16(gamma))) {
        int nch = cols / MJ_CHUNK;
        i64 rc = row * nch;
        float v[MJ_NORM_K][8];
        float s = 0.0f;
#pragma unroll
        for (int k = 0; k < MJ_NORM_K; k++) {
            int j = threadIdx.x + k * blockDim.x;
            if (j < nch) {
                mj_load8(x, rc + j, xt, v[k]);
#pragma unroll
                for (int e = 0; e < 8; e++) s += v[k][e] * v[k][e];
            }
        }
        float rs = rsqrtf(mj_block_sum(s) / cols + eps);
#pragma unroll
        for (int k = 0; k < MJ_NORM_K; k++) {
            int j = threadIdx.x + k * blockDim.x;
            if (j < nch) {
                float g[8];
                mj_load8(gamma, j, gt, g);
#pragma unroll
                for (int e = 0; e < 8; e++) v[k][e] = v[k][e] * rs * g[e];
                mj_store8(y, rc + j, yt, v[k]);
            }
        }
        if (threadIdx.x == 0) rstd[row] = rs;
        return;
    }
    float s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float v = mj_load(x, base + c, xt);
        s += v * v;
    }
    float rs = rsqrtf(mj_block_sum(s) / cols + eps);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        mj_store(y, base + c, yt, mj_load(x, base + c, xt) * rs * mj_load(gamma, c, gt));
    }
    if (threadIdx.x == 0) rstd[row] = rs;
}

// dx = rstd * (g - xhat * mean(g * xhat)), g = dy * gamma, xhat = x * rstd.
extern "C" __global__ void __launch_bounds__(512) megatron_rmsnorm_backward(const void* dy, int dyt, const void* x, int xt,
                                                     const void* gamma, int gt, const float* rstd,
                                                     void* dx, int dxt, int cols) {
    i64 row = blockIdx.x;
    i64 base = row * cols;
    float rs = rstd[row];
    if (mj_norm_fast(cols, mj_al16(dy) && mj_al16(x) && mj_al16(gamma) && mj_al16(dx))) {
        mj_norm_backward_fast(dy, dyt, x, xt, gamma, gt, 0.0f, rs, false, dx, dxt, cols, row);
        return;
    }
    float sgx = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float g = mj_load(dy, base + c, dyt) * mj_load(gamma, c, gt);
        sgx += g * mj_load(x, base + c, xt) * rs;
    }
    float meanGX = mj_block_sum(sgx) / cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float g = mj_load(dy, base + c, dyt) * mj_load(gamma, c, gt);
        float xh = mj_load(x, base + c, xt) * rs;
        mj_store(dx, base + c, dxt, rs * (g - xh * meanGX));
    }
}

// ---------------------------------------------------------------- dGamma / dBeta, deterministic
// Stage 1: grid (ceil(cols / 256), slices), 256 threads = 32 column lanes x 8 row phases. Block
// (t, s) sums rows [s * rowsPerSlice, min(rows, (s + 1) * rowsPerSlice)) for columns
// [256 t, 256 t + 256): lane l owns columns 256 t + 8 l .. + 7, phase p rows r0 + p, r0 + p + 8, ...
// (a warp reads 8 contiguous chunks x 32 = 256 columns of one row). The 8 phases then meet in
// shared memory in a fixed order, and the block writes
//   partial[s * 2 * cols + c] = sum dy * xhat,  partial[s * 2 * cols + cols + c] = sum dy.
// mean null: RMSNorm (xhat = x * rstd).
#define MJ_PG_LANES 32
#define MJ_PG_PHASES 8
#define MJ_PG_COLS (MJ_PG_LANES * MJ_CHUNK)

extern "C" __global__ void __launch_bounds__(256) megatron_norm_param_partials(
        const void* dy, int dyt, const void* x, int xt, const float* mean, const float* rstd, float* partial,
        i64 rows, int cols, i64 rowsPerSlice) {
    __shared__ float sg[MJ_PG_PHASES][MJ_PG_COLS + 1];
    __shared__ float sb[MJ_PG_PHASES][MJ_PG_COLS + 1];
    int lane = threadIdx.x % MJ_PG_LANES, phase = threadIdx.x / MJ_PG_LANES;
    int c0 = blockIdx.x * MJ_PG_COLS + lane * MJ_CHUNK;
    i64 r0 = (i64)blockIdx.y * rowsPerSlice, r1 = min(rows, r0 + rowsPerSlice);
    float ag[8], ab[8];
#pragma unroll
    for (int e = 0; e < 8; e++) ag[e] = ab[e] = 0.0f;
    bool vec = (cols % MJ_CHUNK) == 0 && mj_al16(dy) && mj_al16(x);
    if (vec) {
        if (c0 < cols) {
            i64 nch = cols / MJ_CHUNK;
            i64 cc = c0 / MJ_CHUNK;
            for (i64 r = r0 + phase; r < r1; r += MJ_PG_PHASES) {
                float d[8], v[8];
                mj_load8(dy, r * nch + cc, dyt, d);
                mj_load8(x, r * nch + cc, xt, v);
                float mu = mean != nullptr ? mean[r] : 0.0f, rs = rstd[r];
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    ag[e] += d[e] * ((v[e] - mu) * rs);
                    ab[e] += d[e];
                }
            }
        }
    } else {
        for (i64 r = r0 + phase; r < r1; r += MJ_PG_PHASES) {
            float mu = mean != nullptr ? mean[r] : 0.0f, rs = rstd[r];
#pragma unroll
            for (int e = 0; e < 8; e++) {
                int c = c0 + e;
                if (c < cols) {
                    float d = mj_load(dy, r * cols + c, dyt);
                    ag[e] += d * ((mj_load(x, r * cols + c, xt) - mu) * rs);
                    ab[e] += d;
                }
            }
        }
    }
#pragma unroll
    for (int e = 0; e < 8; e++) {
        sg[phase][lane * MJ_CHUNK + e] = ag[e];
        sb[phase][lane * MJ_CHUNK + e] = ab[e];
    }
    __syncthreads();
    int col = threadIdx.x;  // 0 .. 255 within the tile
    int c = blockIdx.x * MJ_PG_COLS + col;
    if (col < MJ_PG_COLS && c < cols) {
        float tg = 0.0f, tb = 0.0f;
#pragma unroll
        for (int p = 0; p < MJ_PG_PHASES; p++) {
            tg += sg[p][col];
            tb += sb[p][col];
        }
        float* out = partial + (i64)blockIdx.y * 2 * cols;
        out[c] = tg;
        out[cols + c] = tb;
    }
}

// Stage 2: sums the slices into dGamma / dBeta (either may be null; they accumulate). A block of
// 32 x MJ_PR_GROUPS threads takes 32 columns: thread (c, p) sums slices p, p + MJ_PR_GROUPS, ... in
// order, then the groups' sums are added in order p = 0, 1, ...: a fixed order, a chain
// MJ_PR_GROUPS times shorter than one thread per column. Launch: ceil(cols / 32) blocks.
#define MJ_PR_GROUPS 32
extern "C" __global__ void __launch_bounds__(32 * MJ_PR_GROUPS) megatron_norm_param_reduce(
        const float* partial, int slices, int cols, float* dGamma, float* dBeta) {
    __shared__ float sums[2][MJ_PR_GROUPS][32];
    const int lane = threadIdx.x & 31, p = threadIdx.x >> 5;
    const int c = blockIdx.x * 32 + lane;
    float tg = 0.0f, tb = 0.0f;
    if (c < cols) {
        for (int s = p; s < slices; s += MJ_PR_GROUPS) {
            tg += partial[(i64)s * 2 * cols + c];
            tb += partial[(i64)s * 2 * cols + cols + c];
        }
    }
    sums[0][p][lane] = tg;
    sums[1][p][lane] = tb;
    __syncthreads();
    if (p == 0 && c < cols) {
        for (int q = 1; q < MJ_PR_GROUPS; q++) {
            tg += sums[0][q][lane];
            tb += sums[1][q][lane];
        }
        if (dGamma != nullptr) dGamma[c] += tg;
        if (dBeta != nullptr) dBeta[c] += tb;
    }
}

// ---------------------------------------------------------------------------------------------
// Row kernels for hidden sizes up to 256 K, K = 1..4 (GPT-2 124M and 345M: 768, 1024): one warp per
// row, the row in registers (lane l holds 8-element chunks l, l + 32, ..., K per lane), warp shuffles
// only. The block-per-row kernels above give a 768-wide row one 32-thread block, and the hardware
// keeps at most 32 blocks per SM: the rows here pack 8 (forward) or 4 (backward) warps into a block.
// Fast path only: cols % 8 == 0, 256 (K - 1) < cols <= 256 K, every pointer 16-byte aligned
// (CudaNormOps.rowKernels picks K and checks). mean null: RMSNorm (no centering, no beta).
// Kernels megatron_norm_{forward,backward}_rows_k{K}.

__device__ __forceinline__ float mj_round(float v, int dt) {
    switch (dt) {
        case MJ_BF16: return __bfloat162float(__float2bfloat16_rn(v));
        case MJ_F16: return __half2float(__float2half_rn(v));
        default: return v;
    }
}

// y = (x - mean) * rstd * gamma + beta. Grid ceil(rows / warps per block), any block of whole warps.
template <int K>
__device__ __forceinline__ void mj_norm_forward_rows(const void* x, int xt, const void* gamma, int gt, const void* beta,
                                                     int bt, float eps, void* y, int yt, float* mean, float* rstd,
                                                     i64 rows, int cols) {
    const int lane = threadIdx.x & 31;
    const i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;  // warp-uniform
    const int nch = cols / MJ_CHUNK;
    const bool centered = mean != nullptr;
    float v[K][8];
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < K; k++) {
        const int j = lane + 32 * k;
        if (j < nch) {
            mj_load8(x, row * nch + j, xt, v[k]);
#pragma unroll
            for (int e = 0; e < 8; e++) s += v[k][e];
        }
    }
    const float mu = centered ? mj_warp_sum(s) / cols : 0.0f;
    float q = 0.0f;
#pragma unroll
    for (int k = 0; k < K; k++) {
        if (lane + 32 * k < nch) {
#pragma unroll
            for (int e = 0; e < 8; e++) {
                const float d = v[k][e] - mu;
                q += d * d;
            }
        }
    }
    const float rs = rsqrtf(mj_warp_sum(q) / cols + eps);
#pragma unroll
    for (int k = 0; k < K; k++) {
        const int j = lane + 32 * k;
        if (j < nch) {
            float g[8], b[8];
            mj_load8(gamma, j, gt, g);
            if (beta != nullptr) mj_load8(beta, j, bt, b);
#pragma unroll
            for (int e = 0; e < 8; e++) v[k][e] = (v[k][e] - mu) * rs * g[e] + (beta != nullptr ? b[e] : 0.0f);
            mj_store8(y, row * nch + j, yt, v[k]);
        }
    }
    if (lane == 0) {
        if (centered) mean[row] = mu;
        rstd[row] = rs;
    }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma (mean(g) dropped for RMSNorm),
// written, or with accumulate added to dx (rounded to dx's dtype first: the same bits as writing it
// and adding it to the old dx in a second kernel; the old dx is loaded with dy and x, so one memory
// round trip per row). With partial != null, the parameter gradients' per-block sums
// partial[block][0][c] = sum dy * xhat, partial[block][1][c] = sum dy over the block's rows, for
// megatron_norm_param_reduce: a persistent grid whose warps take rows warp, warp + all warps, ...,
// so the summation order depends only on the grid (CudaNormOps fixes it per GPU). Each warp keeps
// its running sums in its own shared-memory slice (not registers: fewer registers, more warps per SM
// to keep loads in flight), float4 slots interleaved by lane so that a warp's accesses do not
// conflict: slot ((half K + k) 2 + q) 32 + lane holds columns 8 (lane + 32 k) + 4 q .. + 3.
// Block MJ_ROW_BWD_WARPS warps, MJ_ROW_BWD_BLOCKS(K) per SM; dynamic shared memory
// MJ_ROW_BWD_WARPS * 2 * K * 256 floats when partial != null.
#define MJ_ROW_BWD_WARPS 4
#define MJ_ROW_BWD_BLOCKS(K) ((K) == 1 ? 8 : (K) == 2 ? 5 : (K) == 3 ? 4 : 3)  // as registers allow (61, 80, 125, 155)
template <int K>
__device__ __forceinline__ void mj_norm_backward_rows(const void* dy, int dyt, const void* x, int xt, const void* gamma,
                                                      int gt, const float* mean, const float* rstd, void* dx, int dxt,
                                                      int accumulate, float* partial, i64 rows, int cols) {
    extern __shared__ float4 norm_smem4[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int nch = cols / MJ_CHUNK;
    const bool centered = mean != nullptr;
    float4* sums = norm_smem4 + warp * 2 * K * 64;  // this warp's [2][K][2][32] float4 slots
    if (partial != nullptr) {
        for (int i = lane; i < 2 * K * 64; i += 32) sums[i] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
    for (i64 row = (i64)blockIdx.x * MJ_ROW_BWD_WARPS + warp; row < rows; row += (i64)gridDim.x * MJ_ROW_BWD_WARPS) {
        const float mu = centered ? mean[row] : 0.0f, rs = rstd[row];
        float g[K][8], xh[K][8], old[K][8];
#pragma unroll
        for (int k = 0; k < K; k++) {
            const int j = lane + 32 * k;
            if (j < nch) {
                mj_load8(dy, row * nch + j, dyt, g[k]);
                mj_load8(x, row * nch + j, xt, xh[k]);
                if (accumulate) mj_load8(dx, row * nch + j, dxt, old[k]);
            }
        }
        float sg = 0.0f, sgx = 0.0f;
#pragma unroll
        for (int k = 0; k < K; k++) {
            const int j = lane + 32 * k;
            if (j < nch) {
                float gm[8];
                mj_load8(gamma, j, gt, gm);
#pragma unroll
                for (int e = 0; e < 8; e++) xh[k][e] = (xh[k][e] - mu) * rs;
                if (partial != nullptr) {
#pragma unroll
                    for (int q = 0; q < 2; q++) {
                        float4& pg = sums[(k * 2 + q) * 32 + lane];
                        float4& pb = sums[((K + k) * 2 + q) * 32 + lane];
                        const float* d = g[k] + 4 * q;
                        const float* h = xh[k] + 4 * q;
                        pg.x += d[0] * h[0]; pg.y += d[1] * h[1]; pg.z += d[2] * h[2]; pg.w += d[3] * h[3];
                        pb.x += d[0]; pb.y += d[1]; pb.z += d[2]; pb.w += d[3];
                    }
                }
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    g[k][e] *= gm[e];
                    sg += g[k][e];
                    sgx += g[k][e] * xh[k][e];
                }
            }
        }
        const float meanG = centered ? mj_warp_sum(sg) / cols : 0.0f;
        const float meanGX = mj_warp_sum(sgx) / cols;
#pragma unroll
        for (int k = 0; k < K; k++) {
            const int j = lane + 32 * k;
            if (j < nch) {
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    g[k][e] = rs * (g[k][e] - meanG - xh[k][e] * meanGX);
                    if (accumulate) g[k][e] = old[k][e] + mj_round(g[k][e], dxt);
                }
                mj_store8(dx, row * nch + j, dxt, g[k]);
            }
        }
    }
    if (partial == nullptr) return;
    __syncthreads();
    // slot i of every warp, summed over the warps in order, to its column of partial[block]
    float* out = partial + (i64)blockIdx.x * 2 * cols;
    for (int i = threadIdx.x; i < 2 * K * 64; i += blockDim.x) {
        float4 t = norm_smem4[i];
        for (int w = 1; w < MJ_ROW_BWD_WARPS; w++) {
            const float4 u = norm_smem4[w * 2 * K * 64 + i];
            t.x += u.x; t.y += u.y; t.z += u.z; t.w += u.w;
        }
        const int l = i % 32, q = (i / 32) % 2, kk = i / 64;  // kk: half * K + k
        const int half = kk / K, c = 8 * (l + 32 * (kk % K)) + 4 * q;
        if (c < cols) {
            float* o = out + half * cols + c;
            o[0] = t.x; o[1] = t.y; o[2] = t.z; o[3] = t.w;
        }
    }
}

#define MJ_NORM_ROW_KERNELS(K)                                                                                    \
    extern "C" __global__ void __launch_bounds__(256) megatron_norm_forward_rows_k##K(                           \
        const void* x, int xt, const void* gamma, int gt, const void* beta, int bt, float eps, void* y, int yt,    \
        float* mean, float* rstd, i64 rows, int cols) {                                                           \
        mj_norm_forward_rows<K>(x, xt, gamma, gt, beta, bt, eps, y, yt, mean, rstd, rows, cols);                  \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(MJ_ROW_BWD_WARPS * 32, MJ_ROW_BWD_BLOCKS(K))                     \
        megatron_norm_backward_rows_k##K(const void* dy, int dyt, const void* x, int xt, const void* gamma, int gt, \
                                         const float* mean, const float* rstd, void* dx, int dxt, int accumulate,  \
                                         float* partial, i64 rows, int cols) {                                    \
        mj_norm_backward_rows<K>(dy, dyt, x, xt, gamma, gt, mean, rstd, dx, dxt, accumulate, partial, rows, cols); \
    }
MJ_NORM_ROW_KERNELS(1)
MJ_NORM_ROW_KERNELS(2)
MJ_NORM_ROW_KERNELS(3)
MJ_NORM_ROW_KERNELS(4)
