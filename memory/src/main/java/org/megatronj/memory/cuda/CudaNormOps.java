package org.megatronj.memory.cuda;

import static org.megatronj.memory.TensorChecks.*;
import static org.megatronj.memory.cuda.DeviceChecks.*;

import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;

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
        backend.launch("megatron_layernorm_forward", rows, 1, CudaBackend.THREADS, 0, x.address(), code(op, x),
                gamma.address(),
                code(op, gamma), beta == null ? 0L : beta.address(), beta == null ? 0 : code(op, beta), eps,
                        y.address(),
                code(op, y), mean.address(), rstd.address(), cols);
    }

    void layerNormBackward(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd, Tensor dx, Tensor dGamma,
                                  Tensor dBeta) {
        String op = "layerNormBackward";
        int cols = normArgs(op, x, gamma, dx);
        floating(op, "dy", dy);
        sameShape(op, "x", x, "dy", dy);
        long rows = x.numel() / Math.max(cols, 1);
        rowStats(op, rows, mean, rstd);
        paramGrad(op, "dGamma", dGamma, cols);
        paramGrad(op, "dBeta", dBeta, cols);
        backend.enter();
        backend.launch("megatron_layernorm_backward", rows, 1, CudaBackend.THREADS, 0, dy.address(), code(op, dy),
                x.address(), code(op, x),
                gamma.address(), code(op, gamma), mean.address(), rstd.address(), dx.address(), code(op, dx), cols);
        if (dGamma != null || dBeta != null) {
            backend.columnSums("megatron_norm_param_grads", rows, cols, dy.address(), code(op, dy), x.address(),
                    code(op, x),
                    mean.address(), rstd.address(), dGamma == null ? 0L : dGamma.address(),
                    dBeta == null ? 0L : dBeta.address());
        }
    }

    void rmsNormForward(Tensor x, Tensor gamma, float eps, Tensor y, Tensor rstd) {
        String op = "rmsNormForward";
        int cols = normArgs(op, x, gamma, y);
        long rows = x.numel() / Math.max(cols, 1);
        rowStats(op, rows, null, rstd);
        backend.enter();
        backend.launch("megatron_rmsnorm_forward", rows, 1, CudaBackend.THREADS, 0, x.address(), code(op, x),
                gamma.address(), code(op, gamma),
                eps, y.address(), code(op, y), rstd.address(), cols);
    }

    void rmsNormBackward(Tensor dy, Tensor x, Tensor gamma, Tensor rstd, Tensor dx, Tensor dGamma) {
        String op = "rmsNormBackward";
        int cols = normArgs(op, x, gamma, dx);
        floating(op, "dy", dy);
        sameShape(op, "x", x, "dy", dy);
        long rows = x.numel() / Math.max(cols, 1);
        rowStats(op, rows, null, rstd);
        paramGrad(op, "dGamma", dGamma, cols);
        backend.enter();
        backend.launch("megatron_rmsnorm_backward", rows, 1, CudaBackend.THREADS, 0, dy.address(), code(op, dy),
                x.address(), code(op, x),
                gamma.address(), code(op, gamma), rstd.address(), dx.address(), code(op, dx), cols);
        if (dGamma != null) {
            backend.columnSums("megatron_norm_param_grads", rows, cols, dy.address(), code(op, dy), x.address(),
                    code(op, x), 0L,
                    rstd.address(), dGamma.address(), 0L);
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

    void rotaryForward(Tensor x, Tensor freqs, Tensor out) {
        rotary("rotaryForward", x, freqs, out, 0);
    }

    void rotaryBackward(Tensor dOut, Tensor freqs, Tensor dx) {
        rotary("rotaryBackward", dOut, freqs, dx, 1);
    }

    private void rotary(String op, Tensor x, Tensor freqs, Tensor out, int inverse) {
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
                code(op, out), s, bh, d, r, inverse);
    }
}
