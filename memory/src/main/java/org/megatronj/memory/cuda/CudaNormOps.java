package org.megatronj.memory.cuda;

import static org.megatronj.memory.TensorChecks.*;
import static org.megatronj.memory.cuda.DeviceChecks.*;

import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

import java.util.function.Consumer;

/** LayerNorm, RMSNorm and rotary embeddings of {@link CudaBackend} ({@code norm.cu}, {@code rotary.cu}): checks and launches. */
final class CudaNormOps {
    private final CudaBackend backend;

    CudaNormOps(CudaBackend backend) {
        this.backend = backend;
    }

    void layerNormForward(Tensor x, Tensor gamma, Tensor beta, float eps, Tensor y, Tensor mean, Tensor rstd) {
        String op = "layerNormForward";
        int cols = normArgs(op, x, gamma, y);
        if (beta != null) {
            floating(op, "beta", beta);
            shape(op, "beta", beta, cols);
        }
        long rows = x.numel() / Math.max(cols, 1);
        rowStats(op, rows, mean, rstd);
        backend.enter();
        if (rowKernels(cols, x, gamma, beta, y)) {
            forwardRows(op, x, gamma, beta, eps, y, mean, rstd, rows, cols);
            return;
        }
        backend.launch("megatron_layernorm_forward", rows, 1, threads(cols), 0, x.address(), code(op, x),
                gamma.address(),
                code(op, gamma), beta == null ? 0L : beta.address(), beta == null ? 0 : code(op, beta), eps,
                        y.address(),
                code(op, y), mean.address(), rstd.address(), cols);
    }

    void layerNormBackward(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd, Tensor dx, Tensor dGamma,
                           Tensor dBeta) {
        backward("layerNormBackward", false, dy, x, gamma, mean, rstd, dx, dGamma, dBeta, false);
    }

    /**
     * {@link CudaBackend#layerNormBackwardAccumulate}: dx += the norm's input gradient, in the row kernel
     * where it applies, else written to a temporary and added.
     */
    void layerNormBackwardAccumulate(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd, Tensor dx,
                                     Tensor dGamma, Tensor dBeta) {
        backward("layerNormBackwardAccumulate", false, dy, x, gamma, mean, rstd, dx, dGamma, dBeta, true);
    }

    void rmsNormForward(Tensor x, Tensor gamma, float eps, Tensor y, Tensor rstd) {
        String op = "rmsNormForward";
        int cols = normArgs(op, x, gamma, y);
        long rows = x.numel() / Math.max(cols, 1);
        rowStats(op, rows, null, rstd);
        backend.enter();
        if (rowKernels(cols, x, gamma, y)) {
            forwardRows(op, x, gamma, null, eps, y, null, rstd, rows, cols);
            return;
        }
        backend.launch("megatron_rmsnorm_forward", rows, 1, threads(cols), 0, x.address(), code(op, x),
                gamma.address(), code(op, gamma),
                eps, y.address(), code(op, y), rstd.address(), cols);
    }

    void rmsNormBackward(Tensor dy, Tensor x, Tensor gamma, Tensor rstd, Tensor dx, Tensor dGamma) {
        backward("rmsNormBackward", true, dy, x, gamma, null, rstd, dx, dGamma, null, false);
    }

    /** {@link CudaBackend#rmsNormBackwardAccumulate}, as {@link #layerNormBackwardAccumulate}. */
    void rmsNormBackwardAccumulate(Tensor dy, Tensor x, Tensor gamma, Tensor rstd, Tensor dx, Tensor dGamma) {
        backward("rmsNormBackwardAccumulate", true, dy, x, gamma, null, rstd, dx, dGamma, null, true);
    }

    /**
     * The four backward ops: LayerNorm ({@code rms} false, with mean and dBeta) or RMSNorm, dx written or
     * accumulated; the row kernel where it applies, else the block-per-row kernels (through a temporary
     * when accumulating) and the parameter-gradient pair.
     */
    private void backward(String op, boolean rms, Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd, Tensor dx,
                          Tensor dGamma, Tensor dBeta, boolean accumulate) {
        int cols = normArgs(op, x, gamma, dx);
        floating(op, "dy", dy);
        sameShape(op, "x", x, "dy", dy);
        long rows = x.numel() / Math.max(cols, 1);
        rowStats(op, rows, mean, rstd);
        paramGrad(op, "dGamma", dGamma, cols);
        paramGrad(op, "dBeta", dBeta, cols);
        backend.enter();
        if (rowKernels(cols, dy, x, gamma, dx)) {
            backwardRows(op, dy, x, gamma, mean, rstd, dx, accumulate, dGamma, dBeta, rows, cols);
            return;
        }
        if (accumulate) {
            addThroughTemporary(dx, t -> backward(op, rms, dy, x, gamma, mean, rstd, t, dGamma, dBeta, false));
            return;
        }
        if (rms) {
            backend.launch("megatron_rmsnorm_backward", rows, 1, backwardThreads(cols), 0, dy.address(), code(op, dy),
                    x.address(), code(op, x), gamma.address(), code(op, gamma), rstd.address(), dx.address(),
                    code(op, dx), cols);
        } else {
            backend.launch("megatron_layernorm_backward", rows, 1, backwardThreads(cols), 0, dy.address(), code(op, dy),
                    x.address(), code(op, x), gamma.address(), code(op, gamma), mean.address(), rstd.address(),
                    dx.address(), code(op, dx), cols);
        }
        if (dGamma != null || dBeta != null) {
            paramGrads(rows, cols, dy.address(), code(op, dy), x.address(), code(op, x),
                    mean == null ? 0L : mean.address(), rstd.address(), dGamma == null ? 0L : dGamma.address(),
                    dBeta == null ? 0L : dBeta.address());
        }
    }

    /**
     * {@code gradient} writes a temporary of dx's dtype and shape, which is then added to dx (the
     * allocator frees in stream order: the memory is reused only by work queued after these kernels).
     */
    private void addThroughTemporary(Tensor dx, Consumer<Tensor> gradient) {
        try (TensorArena scratch = TensorArena.named("norm-input-grad")) {
            Tensor t = backend.allocate(scratch, dx.dtype(), dx.shape());
            gradient.accept(t);
            backend.add(dx, t, dx);
        }
    }

    /** Hidden sizes the row kernels hold in registers: 256 K for the largest K compiled (norm.cu). */
    static final int ROW_KERNEL_MAX_COLS = 1024;
    /** Warps per block of megatron_norm_forward_rows_k* (one row each) and of megatron_norm_backward_rows_k* (MJ_ROW_BWD_WARPS). */
    private static final int FORWARD_ROW_WARPS = 8;
    private static final int BACKWARD_ROW_WARPS = 4;

    /** K of the row kernels for a row: 8-element chunks per lane, ceil(cols / 256). */
    private static int rowChunks(int cols) {
        return (cols + 255) / 256;
    }

    /** Blocks per SM of the persistent megatron_norm_backward_rows_k{K} grid: MJ_ROW_BWD_BLOCKS(K), as registers allow. */
    private static int backwardRowBlocksPerSm(int k) {
        return switch (k) {
            case 1 -> 8;
            case 2 -> 5;
            case 3 -> 4;
            default -> 3;
        };
    }

    /** Whether the warp-per-row kernels apply: cols a multiple of 8 up to ROW_KERNEL_MAX_COLS, tensors 16-byte aligned. */
    static boolean rowKernels(int cols, Tensor... tensors) {
        if (cols % 8 != 0 || cols > ROW_KERNEL_MAX_COLS) {
            return false;
        }
        for (Tensor t : tensors) {
            if (t != null && t.address() % 16 != 0) {
                return false;
            }
        }
        return true;
    }

    /** megatron_norm_forward_rows_k{K}: one warp per row; mean null for RMSNorm. */
    private void forwardRows(String op, Tensor x, Tensor gamma, Tensor beta, float eps, Tensor y, Tensor mean,
                             Tensor rstd, long rows, int cols) {
        backend.launch("megatron_norm_forward_rows_k" + rowChunks(cols), (rows + FORWARD_ROW_WARPS - 1) / FORWARD_ROW_WARPS, 1,
                FORWARD_ROW_WARPS * 32, 0, x.address(), code(op, x), gamma.address(), code(op, gamma),
                beta == null ? 0L : beta.address(), beta == null ? 0 : code(op, beta), eps, y.address(), code(op, y),
                mean == null ? 0L : mean.address(), rstd.address(), rows, cols);
    }

    /**
     * megatron_norm_backward_rows_k{K}: dx written or accumulated and, when a parameter gradient is wanted,
     * its per-block partial sums in the same pass, reduced in order by megatron_norm_param_reduce. The
     * grid is fixed per GPU and row count, so the results repeat bit for bit.
     */
    private void backwardRows(String op, Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd, Tensor dx,
                              boolean accumulate, Tensor dGamma, Tensor dBeta, long rows, int cols) {
        if (rows == 0) {
            return;
        }
        int k = rowChunks(cols);
        long blocks = Math.min((rows + BACKWARD_ROW_WARPS - 1) / BACKWARD_ROW_WARPS,
                (long) backend.multiprocessors() * backwardRowBlocksPerSm(k));
        boolean params = dGamma != null || dBeta != null;
        long bytes = params ? blocks * 2L * cols * Float.BYTES : 0;
        long partial = params ? backend.temporary(bytes) : 0L;
        try {
            backend.launch("megatron_norm_backward_rows_k" + k, blocks, 1, BACKWARD_ROW_WARPS * 32,
                    params ? BACKWARD_ROW_WARPS * 2 * k * 256 * Float.BYTES : 0, dy.address(), code(op, dy), x.address(), code(op, x),
                    gamma.address(), code(op, gamma), mean == null ? 0L : mean.address(), rstd.address(), dx.address(),
                    code(op, dx), accumulate ? 1 : 0, partial, rows, cols);
            if (params) {
                reduceParamGrads(partial, blocks, cols, dGamma == null ? 0L : dGamma.address(),
                        dBeta == null ? 0L : dBeta.address());
            }
        } finally {
            if (params) {
                backend.release(partial, bytes);
            }
        }
    }

    /** Slice groups of megatron_norm_param_reduce (MJ_PR_GROUPS): its blocks are 32 columns x this many threads. */
    private static final int PARAM_REDUCE_GROUPS = 32;

    /** megatron_norm_param_reduce: dGamma (+)= the slices' first halves, dBeta (+)= their second halves, in order. */
    private void reduceParamGrads(long partial, long slices, int cols, long dGamma, long dBeta) {
        backend.launch("megatron_norm_param_reduce", (cols + 31) / 32, 1, 32 * PARAM_REDUCE_GROUPS, 0, partial,
                (int) slices, cols, dGamma, dBeta);
    }

    /** Chunks of 8 elements each thread of a norm kernel holds in registers ({@code MJ_NORM_K} in norm.cu). */
    static final int NORM_CHUNKS_PER_THREAD = 4;

    /**
     * Block size of the row kernels: enough threads for the row to sit in registers
     * ({@code cols / (8 * NORM_CHUNKS_PER_THREAD)}, a multiple of 32, at most 1024: 32 for hidden
     * sizes up to 1024, 128 at 4096, 256 at 8192). Rows whose length is not a multiple of 8 take
     * the kernels' scalar path, which wants the usual 256.
     */
    static int threads(int cols) {
        if (cols % 8 != 0) {
            return CudaBackend.THREADS;
        }
        long perThread = 8L * NORM_CHUNKS_PER_THREAD;
        long t = (cols + perThread - 1) / perThread;
        t = (t + 31) / 32 * 32;
        return (int) Math.max(32, Math.min(1024, t));
    }

    /**
     * The backward kernels hold more per thread and are built with {@code __launch_bounds__(512)}
     * (at 1024 threads they would not launch, or would spill): longer rows than 512 threads can
     * hold in registers take the kernels' scalar path.
     */
    static int backwardThreads(int cols) {
        return Math.min(threads(cols), 512);
    }

    /** Columns per block of megatron_norm_param_partials (32 lanes x 8 columns). */
    private static final int PARTIAL_COLS = 256;

    /**
     * dGamma (+)= sum_r dy * xhat, dBeta (+)= sum_r dy (mean 0 for RMSNorm; either output 0 when
     * absent) in two deterministic kernels: per-slice partial sums into a temporary
     * [slices, 2, cols] buffer, then one thread per column summing the slices in order. The slice
     * count depends only on rows, cols and the GPU's SM count, so results repeat bit for bit.
     */
    private void paramGrads(long rows, int cols, long dy, int dyt, long x, int xt, long mean, long rstd, long dGamma,
                            long dBeta) {
        if (rows == 0 || cols == 0) {
            return;
        }
        long tiles = (cols + PARTIAL_COLS - 1) / PARTIAL_COLS;
        long wantSlices = Math.max(1, backend.multiprocessors() * 4L / tiles);
        long slices = Math.min(Math.min(rows, 65535), wantSlices);
        long rowsPerSlice = (rows + slices - 1) / slices;
        slices = (rows + rowsPerSlice - 1) / rowsPerSlice;
        long bytes = slices * 2L * cols * Float.BYTES;
        long partial = backend.temporary(bytes);
        try {
            backend.launch("megatron_norm_param_partials", tiles, slices, PARTIAL_COLS, 0, dy, dyt, x, xt, mean, rstd,
                    partial, rows, cols, rowsPerSlice);
            reduceParamGrads(partial, slices, cols, dGamma, dBeta);
        } finally {
            backend.release(partial, bytes);
        }
    }

    private static int normArgs(String op, Tensor x, Tensor gamma, Tensor y) {
        floating(op, "x", x);
        floating(op, "gamma", gamma);
        floating(op, "output", y);
        int cols = cols(op, "x", x);
        shape(op, "gamma", gamma, cols);
        sameShape(op, "x", x, "output", y);
        return cols;
    }

    private static void rowStats(String op, long rows, Tensor mean, Tensor rstd) {
        if (mean != null) {
            dtype(op, "mean", mean, DType.F32);
            numel(op, "mean", mean, rows, "one per row");
        }
        dtype(op, "rstd", rstd, DType.F32);
        numel(op, "rstd", rstd, rows, "one per row");
    }

    private static void paramGrad(String op, String name, Tensor g, int cols) {
        if (g != null) {
            dtype(op, name, g, DType.F32);
            shape(op, name, g, cols);
        }
    }

    // ------------------------------------------------------------------ rotary embeddings

    void rotaryForward(Tensor x, Tensor freqs, Tensor out, boolean interleaved) {
        rotary("rotaryForward", x, freqs, out, 0, interleaved);
    }

    void rotaryBackward(Tensor dOut, Tensor freqs, Tensor dx, boolean interleaved) {
        rotary("rotaryBackward", dOut, freqs, dx, 1, interleaved);
    }

    private void rotary(String op, Tensor x, Tensor freqs, Tensor out, int inverse, boolean interleaved) {
        floating(op, "x", x);
        floating(op, "out", out);
        dtype(op, "freqs", freqs, DType.F32);
        rank(op, "x", x, 4, "[s, b, heads, d]");
        rank(op, "freqs", freqs, 2, "[s, r]");
        sameShape(op, "x", x, "out", out);
        long s = x.dim(0);
        int d = cols(op, "x", x);
        int r = cols(op, "freqs", freqs);
        if (freqs.dim(0) != s || r > d || r % 2 != 0) {
            throw fail(op, "freqs has shape " + Tensor.shapeString(freqs.shape()) + " for x " + Tensor.shapeString(x.shape())
                    + "; expected [s, r] with s = " + s + " and an even r <= d = " + d);
        }
        long bh = x.dim(1) * x.dim(2);
        long work = s * bh * (r / 2 + (d - r));
        backend.enter();
        backend.launch("megatron_rotary", backend.grid(work), 1, CudaBackend.THREADS, 0, x.address(), code(op, x),
                freqs.address(), out.address(),
                code(op, out), s, bh, d, r, inverse, interleaved ? 1 : 0);
    }
}
