package org.megatronj.memory.cpu;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

import java.util.Random;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.megatronj.memory.cpu.OpTesting.assertClose;
import static org.megatronj.memory.cpu.OpTesting.asStored;
import static org.megatronj.memory.cpu.OpTesting.finiteDifferences;
import static org.megatronj.memory.cpu.OpTesting.gaussian;
import static org.megatronj.memory.cpu.OpTesting.tensor;
import static org.megatronj.memory.cpu.OpTesting.toDouble;

/** LayerNorm and RMSNorm against float64 references; backward against central finite differences. */
class NormOpsTest {
    private static final float EPS = 1e-5f;

    static java.util.stream.Stream<CpuBackend> backends() {
        return OpTesting.backends();
    }

    /** LayerNorm in float64: biased variance, as PyTorch. Returns y; mean and rstd go to {@code stats} when given. */
    static double[] layerNorm(double[] x, double[] gamma, double[] beta, int cols, double[] stats) {
        int rows = x.length / cols;
        double[] y = new double[x.length];
        for (int r = 0; r < rows; r++) {
            double mean = 0;
            for (int c = 0; c < cols; c++) {
                mean += x[r * cols + c];
            }
            mean /= cols;
            double var = 0;
            for (int c = 0; c < cols; c++) {
                double d = x[r * cols + c] - mean;
                var += d * d;
            }
            var /= cols;
            double rstd = 1 / Math.sqrt(var + EPS);
            for (int c = 0; c < cols; c++) {
                y[r * cols + c] = (x[r * cols + c] - mean) * rstd * gamma[c] + (beta == null ? 0 : beta[c]);
            }
            if (stats != null) {
                stats[2 * r] = mean;
                stats[2 * r + 1] = rstd;
            }
        }
        return y;
    }

    static double[] rmsNorm(double[] x, double[] gamma, int cols, double[] rstds) {
        int rows = x.length / cols;
        double[] y = new double[x.length];
        for (int r = 0; r < rows; r++) {
            double ms = 0;
            for (int c = 0; c < cols; c++) {
                ms += x[r * cols + c] * x[r * cols + c];
            }
            double rstd = 1 / Math.sqrt(ms / cols + EPS);
            for (int c = 0; c < cols; c++) {
                y[r * cols + c] = x[r * cols + c] * rstd * gamma[c];
            }
            if (rstds != null) {
                rstds[r] = rstd;
            }
        }
        return y;
    }

    @ParameterizedTest
    @MethodSource("backends")
    void layerNormForwardBackward(CpuBackend backend) {
        Random rnd = OpTesting.random(10);
        int rows = 2 + rnd.nextInt(6);
        int cols = 33 + rnd.nextInt(40);
        try (TensorArena arena = new TensorArena("test")) {
            float[] xs = gaussian(rnd, rows * cols, 2f);
            for (int c = 0; c < cols; c++) {
                xs[c] += 5f; // an offset row: the two-pass variance must not cancel
            }
            float[] gs = gaussian(rnd, cols, 1f);
            float[] bs = gaussian(rnd, cols, 1f);
            double[] x = toDouble(xs);
            double[] g = toDouble(gs);
            double[] b = toDouble(bs);
            Tensor xt = tensor(arena, DType.F32, xs, rows, cols);
            Tensor gt = tensor(arena, DType.F32, gs, cols);
            Tensor bt = tensor(arena, DType.F32, bs, cols);
            Tensor y = arena.allocate(DType.F32, rows, cols);
            Tensor mean = arena.allocate(DType.F32, rows);
            Tensor rstd = arena.allocate(DType.F32, rows);
            backend.layerNormForward(xt, gt, bt, EPS, y, mean, rstd);
            double[] stats = new double[2 * rows];
            assertClose("layerNorm y", layerNorm(x, g, b, cols, stats), y, 1e-5, 1e-5);
            double[] means = new double[rows];
            double[] rstds = new double[rows];
            for (int r = 0; r < rows; r++) {
                means[r] = stats[2 * r];
                rstds[r] = stats[2 * r + 1];
            }
            assertClose("layerNorm mean", means, mean, 1e-6, 1e-6);
            assertClose("layerNorm rstd", rstds, rstd, 1e-6, 1e-5);

            float[] ws = gaussian(rnd, rows * cols, 1f);
            double[] w = toDouble(ws);
            Tensor dy = tensor(arena, DType.F32, ws, rows, cols);
            Tensor dx = arena.allocate(DType.F32, rows, cols);
            float[] g0 = gaussian(rnd, cols, 1f);
            float[] b0 = gaussian(rnd, cols, 1f);
            Tensor dGamma = tensor(arena, DType.F32, g0, cols);
            Tensor dBeta = tensor(arena, DType.F32, b0, cols);
            backend.layerNormBackward(dy, xt, gt, mean, rstd, dx, dGamma, dBeta);
            assertClose("layerNorm dx", finiteDifferences(x, w, v -> layerNorm(v, g, b, cols, null)), dx, 1e-4, 1e-4);
            assertClose("layerNorm dGamma", plus(g0, finiteDifferences(g, w, v -> layerNorm(x, v, b, cols, null))),
                    dGamma, 1e-4, 1e-4);
            assertClose("layerNorm dBeta", plus(b0, finiteDifferences(b, w, v -> layerNorm(x, g, v, cols, null))),
                    dBeta, 1e-4, 1e-4);

            // no beta, no parameter gradients
            backend.layerNormForward(xt, gt, null, EPS, y, mean, rstd);
            assertClose("layerNorm without beta", layerNorm(x, g, null, cols, null), y, 1e-5, 1e-5);
            backend.layerNormBackward(dy, xt, gt, mean, rstd, dx, null, null);
            assertClose("layerNorm dx without param grads",
                    finiteDifferences(x, w, v -> layerNorm(v, g, null, cols, null)), dx, 1e-4, 1e-4);
        }
    }

    /**
     * The accumulating backward (a pre-norm block's input gradient added to the residual path's) gives
     * the bits of the written backward into a tensor of dx's dtype followed by an add, in F32 and BF16,
     * for LayerNorm and RMSNorm, parameter gradients included.
     */
    @ParameterizedTest
    @MethodSource("backends")
    void accumulatingBackwardIsBackwardThenAdd(CpuBackend backend) {
        int rows = 7, cols = 40;
        Random rnd = OpTesting.random(13);
        for (DType dt : new DType[] {DType.F32, DType.BF16}) {
            try (TensorArena arena = new TensorArena("test")) {
                Tensor x = tensor(arena, dt, gaussian(rnd, rows * cols, 1f), rows, cols);
                Tensor gamma = tensor(arena, dt, gaussian(rnd, cols, 1f), cols);
                Tensor beta = tensor(arena, dt, gaussian(rnd, cols, 1f), cols);
                Tensor dy = tensor(arena, dt, gaussian(rnd, rows * cols, 1f), rows, cols);
                float[] dx0 = gaussian(rnd, rows * cols, 1f);
                float[] grad0 = gaussian(rnd, cols, 1f);
                Tensor y = arena.allocate(dt, rows, cols);
                Tensor mean = arena.allocate(DType.F32, rows);
                Tensor rstd = arena.allocate(DType.F32, rows);
                for (boolean rms : new boolean[] {false, true}) {
                    Tensor expected = tensor(arena, dt, dx0, rows, cols);
                    Tensor actual = tensor(arena, dt, dx0, rows, cols);
                    Tensor normGrad = arena.allocate(dt, rows, cols);
                    Tensor dGammaExpected = tensor(arena, DType.F32, grad0, cols);
                    Tensor dGammaActual = tensor(arena, DType.F32, grad0, cols);
                    Tensor dBetaExpected = tensor(arena, DType.F32, grad0, cols);
                    Tensor dBetaActual = tensor(arena, DType.F32, grad0, cols);
                    if (rms) {
                        backend.rmsNormForward(x, gamma, EPS, y, rstd);
                        backend.rmsNormBackward(dy, x, gamma, rstd, normGrad, dGammaExpected);
                        backend.rmsNormBackwardAccumulate(dy, x, gamma, rstd, actual, dGammaActual);
                    } else {
                        backend.layerNormForward(x, gamma, beta, EPS, y, mean, rstd);
                        backend.layerNormBackward(dy, x, gamma, mean, rstd, normGrad, dGammaExpected, dBetaExpected);
                        backend.layerNormBackwardAccumulate(dy, x, gamma, mean, rstd, actual, dGammaActual, dBetaActual);
                    }
                    backend.add(expected, normGrad, expected);
                    String what = (rms ? "rmsNorm " : "layerNorm ") + dt;
                    assertArrayEquals(expected.toFloatArray(), actual.toFloatArray(), what + " dx");
                    assertArrayEquals(dGammaExpected.toFloatArray(), dGammaActual.toFloatArray(), what + " dGamma");
                    assertArrayEquals(dBetaExpected.toFloatArray(), dBetaActual.toFloatArray(), what + " dBeta");
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void layerNormOnBf16Activations(CpuBackend backend) {
        Random rnd = OpTesting.random(11);
        int rows = 3;
        int cols = 101;
        try (TensorArena arena = new TensorArena("test")) {
            Tensor x = tensor(arena, DType.BF16, gaussian(rnd, rows * cols, 1f), rows, cols);
            float[] gs = gaussian(rnd, cols, 1f);
            Tensor g = tensor(arena, DType.BF16, gs, cols);
            Tensor y = arena.allocate(DType.BF16, rows, cols);
            Tensor mean = arena.allocate(DType.F32, rows);
            Tensor rstd = arena.allocate(DType.F32, rows);
            backend.layerNormForward(x, g, null, EPS, y, mean, rstd);
            assertClose("layerNorm bf16", layerNorm(asStored(x), asStored(g), null, cols, null), y, 1e-2, 8e-3);
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void rmsNormForwardBackward(CpuBackend backend) {
        Random rnd = OpTesting.random(12);
        int rows = 2 + rnd.nextInt(6);
        int cols = 33 + rnd.nextInt(40);
        try (TensorArena arena = new TensorArena("test")) {
            float[] xs = gaussian(rnd, rows * cols, 2f);
            float[] gs = gaussian(rnd, cols, 1f);
            double[] x = toDouble(xs);
            double[] g = toDouble(gs);
            Tensor xt = tensor(arena, DType.F32, xs, rows, cols);
            Tensor gt = tensor(arena, DType.F32, gs, cols);
            Tensor y = arena.allocate(DType.F32, rows, cols);
            Tensor rstd = arena.allocate(DType.F32, rows);
            backend.rmsNormForward(xt, gt, EPS, y, rstd);
            double[] rstds = new double[rows];
            assertClose("rmsNorm y", rmsNorm(x, g, cols, rstds), y, 1e-5, 1e-5);
            assertClose("rmsNorm rstd", rstds, rstd, 1e-6, 1e-5);

            float[] ws = gaussian(rnd, rows * cols, 1f);
            double[] w = toDouble(ws);
            Tensor dy = tensor(arena, DType.F32, ws, rows, cols);
            Tensor dx = arena.allocate(DType.F32, rows, cols);
            float[] g0 = gaussian(rnd, cols, 1f);
            Tensor dGamma = tensor(arena, DType.F32, g0, cols);
            backend.rmsNormBackward(dy, xt, gt, rstd, dx, dGamma);
            Function<double[], double[]> byX = v -> rmsNorm(v, g, cols, null);
            assertClose("rmsNorm dx", finiteDifferences(x, w, byX), dx, 1e-4, 1e-4);
            assertClose("rmsNorm dGamma", plus(g0, finiteDifferences(g, w, v -> rmsNorm(x, v, cols, null))),
                    dGamma, 1e-4, 1e-4);
        }
    }

    static double[] plus(float[] a, double[] b) {
        double[] s = new double[b.length];
        for (int i = 0; i < s.length; i++) {
            s[i] = a[i] + b[i];
        }
        return s;
    }
}
