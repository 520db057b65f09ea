package org.megatronj.memory.cpu;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

import java.util.Random;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.megatronj.memory.cpu.OpTesting.assertClose;
import static org.megatronj.memory.cpu.OpTesting.asStored;
import static org.megatronj.memory.cpu.OpTesting.finiteDifferences;
import static org.megatronj.memory.cpu.OpTesting.gaussian;
import static org.megatronj.memory.cpu.OpTesting.tensor;
import static org.megatronj.memory.cpu.OpTesting.toDouble;
import static org.megatronj.memory.cpu.OpTesting.uniform;

/** GELU (both forms), squared ReLU, SwiGLU and dropout against float64 references and finite differences. */
class ActivationOpsTest {

    static java.util.stream.Stream<CpuBackend> backends() {
        return OpTesting.backends();
    }

    static double geluTanh(double x) {
        return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
    }

    static double geluErf(double x) {
        return 0.5 * x * (1 + OpTesting.erf(x / Math.sqrt(2)));
    }

    static double silu(double x) {
        return x / (1 + Math.exp(-x));
    }

    @Test
    void float64ErfMatchesKnownValues() {
        assertEquals(0.8427007929497149, OpTesting.erf(1.0), 1e-15);
        assertEquals(-0.9953222650189527, OpTesting.erf(-2.0), 1e-15);
        assertEquals(0.9999779095030014, OpTesting.erf(3.0), 1e-15);
        assertEquals(0.1124629160182849, OpTesting.erf(0.1), 1e-16);
    }

    @ParameterizedTest
    @MethodSource("backends")
    void geluForwardAndBackward(CpuBackend backend) {
        Random rnd = OpTesting.random(3);
        int n = 1000 + rnd.nextInt(37);
        try (TensorArena arena = new TensorArena("test")) {
            for (boolean tanh : new boolean[] {true, false}) {
                Function<double[], double[]> ref = x -> {
                    double[] y = new double[x.length];
                    for (int i = 0; i < x.length; i++) {
                        y[i] = tanh ? geluTanh(x[i]) : geluErf(x[i]);
                    }
                    return y;
                };
                float[] xs = uniform(rnd, n, -7f, 7f);
                xs[0] = 0f;
                xs[1] = -9f;
                Tensor x = tensor(arena, DType.F32, xs, n);
                Tensor y = arena.allocate(DType.F32, n);
                backend.geluForward(x, y, tanh);
                assertClose("gelu tanh=" + tanh, ref.apply(toDouble(xs)), y, 1e-6, 2e-6);

                float[] ws = gaussian(rnd, n, 1f);
                Tensor dy = tensor(arena, DType.F32, ws, n);
                Tensor dx = arena.allocate(DType.F32, n);
                backend.geluBackward(x, dy, dx, tanh);
                double[] fd = elementwiseDerivative(toDouble(xs), toDouble(ws), ref);
                assertClose("gelu backward tanh=" + tanh, fd, dx, 1e-5, 1e-5);

                Tensor xb = tensor(arena, DType.BF16, xs, n);
                Tensor yb = arena.allocate(DType.BF16, n);
                backend.geluForward(xb, yb, tanh);
                assertClose("gelu bf16 tanh=" + tanh, ref.apply(asStored(xb)), yb, 1e-6, 8e-3);
            }
        }
    }

    /**
     * Squared ReLU against {@code max(x, 0)^2} and {@code 2 max(x, 0) dy} in float64, in F32 (the in-place vector loops
     * and their scalar tail) and BF16 (the block path), with zeros, negatives and NaN among the inputs.
     */
    @ParameterizedTest
    @MethodSource("backends")
    void squaredReluForwardAndBackward(CpuBackend backend) {
        Random rnd = OpTesting.random(6);
        int n = 1000 + rnd.nextInt(37);
        try (TensorArena arena = new TensorArena("test")) {
            float[] xs = uniform(rnd, n, -5f, 5f);
            xs[0] = 0f;
            xs[1] = -0f;
            xs[2] = Float.NaN;
            float[] ws = gaussian(rnd, n, 1f);
            for (DType dt : new DType[] {DType.F32, DType.BF16}) {
                Tensor x = tensor(arena, dt, xs, n);
                Tensor dy = tensor(arena, dt, ws, n);
                double[] xd = asStored(x);
                double[] dyd = asStored(dy);
                double[] y = new double[n];
                double[] dx = new double[n];
                for (int i = 0; i < n; i++) {
                    double r = xd[i] < 0 ? 0 : xd[i];   // NaN stays NaN, as in torch.relu
                    y[i] = r * r;
                    dx[i] = 2 * r * dyd[i];
                }
                Tensor out = arena.allocate(dt, n);
                backend.squaredReluForward(x, out);
                assertEquals(Float.NaN, out.getFloat(2), dt + " relu(NaN)^2");
                y[2] = 0;
                out.setFloat(2, 0f);
                double rtol = dt == DType.F32 ? 1e-6 : 8e-3;
                assertClose("squared relu " + dt, y, out, 1e-7, rtol);
                Tensor grad = arena.allocate(dt, n);
                backend.squaredReluBackward(x, dy, grad);
                assertEquals(Float.NaN, grad.getFloat(2), dt + " gradient at NaN");
                dx[2] = 0;
                grad.setFloat(2, 0f);
                assertClose("squared relu backward " + dt, dx, grad, 1e-7, rtol);
            }
        }
    }

    /** Elementwise ops have a diagonal Jacobian: differentiate each element (one probe per element, not per pair). */
    private static double[] elementwiseDerivative(double[] x, double[] w, Function<double[], double[]> f) {
        double[] g = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            g[i] = finiteDifferences(new double[] {x[i]}, new double[] {w[i]}, f)[0];
        }
        return g;
    }

    @ParameterizedTest
    @MethodSource("backends")
    void swigluForwardAndBackward(CpuBackend backend) {
        Random rnd = OpTesting.random(4);
        int rows = 1 + rnd.nextInt(4);
        int f = 13 + rnd.nextInt(20);
        try (TensorArena arena = new TensorArena("test")) {
            float[] xs = uniform(rnd, rows * 2 * f, -6f, 6f);
            Function<double[], double[]> ref = x -> {
                double[] y = new double[rows * f];
                for (int r = 0; r < rows; r++) {
                    for (int c = 0; c < f; c++) {
                        y[r * f + c] = silu(x[r * 2 * f + c]) * x[r * 2 * f + f + c];
                    }
                }
                return y;
            };
            Tensor x = tensor(arena, DType.F32, xs, rows, 2 * f);
            Tensor y = arena.allocate(DType.F32, rows, f);
            backend.swigluForward(x, y);
            assertClose("swiglu", ref.apply(toDouble(xs)), y, 1e-6, 2e-6);

            float[] ws = gaussian(rnd, rows * f, 1f);
            Tensor dy = tensor(arena, DType.F32, ws, rows, f);
            Tensor dx = arena.allocate(DType.F32, rows, 2 * f);
            backend.swigluBackward(x, dy, dx);
            assertClose("swiglu backward", finiteDifferences(toDouble(xs), toDouble(ws), ref), dx, 1e-5, 1e-5);
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void dropoutFollowsPhiloxDefinitionAndRecomputes(CpuBackend backend) {
        Random rnd = OpTesting.random(5);
        int n = 50_000 + rnd.nextInt(1000);
        float p = 0.1f + 0.3f * rnd.nextFloat();
        long seed = rnd.nextLong();
        long offset = rnd.nextInt(1 << 20) * 3L + 1; // not a multiple of 4: lanes start mid-block
        try (TensorArena arena = new TensorArena("test")) {
            float[] xs = uniform(rnd, n, 0.5f, 2f); // never zero, so a zero output means dropped
            Tensor x = tensor(arena, DType.F32, xs, n);
            Tensor y = arena.allocate(DType.F32, n);
            backend.dropoutForward(x, y, p, seed, offset);
            float scale = 1f / (1f - p);
            int kept = 0;
            for (int i = 0; i < n; i++) {
                boolean keep = Philox.uniform(seed, offset + i) >= p;
                assertEquals(keep ? xs[i] * scale : 0f, y.getFloat(i), "element " + i);
                kept += keep ? 1 : 0;
            }
            double rate = kept / (double) n;
            assertEquals(1 - p, rate, 5 * Math.sqrt(p * (1 - p) / n), "keep rate");

            // recompute: the same (seed, offset) gives the same mask; a later offset continues the stream
            Tensor again = arena.allocate(DType.F32, n);
            backend.dropoutForward(x, again, p, seed, offset);
            assertEquals(0.0, maxDiff(y, again));
            Tensor tail = arena.allocate(DType.F32, n - 7);
            backend.dropoutForward(x.view(7, n), tail, p, seed, offset + 7);
            for (int i = 7; i < n; i++) {
                assertEquals(y.getFloat(i), tail.getFloat(i - 7));
            }

            Tensor dx = arena.allocate(DType.F32, n);
            backend.dropoutBackward(x, dx, p, seed, offset);
            assertEquals(0.0, maxDiff(y, dx), "backward uses the forward mask");

            Tensor copy = arena.allocate(DType.F32, n);
            backend.dropoutForward(x, copy, 0f, seed, offset);
            assertEquals(0.0, maxDiff(x, copy), "p = 0 copies");
        }
    }

    private static double maxDiff(Tensor a, Tensor b) {
        double m = 0;
        for (long i = 0; i < a.numel(); i++) {
            m = Math.max(m, Math.abs(a.getFloat(i) - b.getFloat(i)));
        }
        return m;
    }
}
