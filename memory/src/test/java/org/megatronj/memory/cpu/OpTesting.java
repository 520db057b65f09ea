package org.megatronj.memory.cpu;

import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

import java.util.Random;
import java.util.function.Function;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * Shared pieces of the op tests: the backends to run (scalar and vector paths in one JVM),
 * random tensors, float64 comparisons and central finite differences.
 */
final class OpTesting {
    private static final CpuThreads THREADS = new CpuThreads(2);
    private static final CpuBackend SCALAR = new CpuBackend(THREADS, false);
    private static final CpuBackend VECTOR = new CpuBackend(THREADS, true);

    private OpTesting() {
    }

    /**
     * The scalar kernels and the vector kernels at this JVM's width ({@code -Dmegatron.vector.bits},
     * default the widest; run the suite again with another width to test it). Under
     * {@code -Dmegatron.vector.bits=0} both are scalar.
     */
    static Stream<CpuBackend> backends() {
        return Stream.of(SCALAR, VECTOR);
    }

    static CpuBackend vector() {
        return VECTOR;
    }

    /**
     * Fresh random inputs on every run. The seed goes to stderr (kept in the surefire report of a
     * failing test); {@code -Dmegatron.test.seed=N} replays it.
     */
    static Random random(long salt) {
        long base = Long.getLong("megatron.test.seed", System.nanoTime());
        System.err.println("random inputs: -Dmegatron.test.seed=" + base + " (salt " + salt + ")");
        return new Random(base ^ salt);
    }

    static float[] uniform(Random rnd, int n, float lo, float hi) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = lo + (hi - lo) * rnd.nextFloat();
        }
        return x;
    }

    static float[] gaussian(Random rnd, int n, float std) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (rnd.nextGaussian() * std);
        }
        return x;
    }

    /** A tensor of the given dtype holding {@code values} (rounded to the dtype). */
    static Tensor tensor(TensorArena arena, DType dtype, float[] values, long... shape) {
        Tensor t = arena.allocate(dtype, shape);
        t.copyFrom(values);
        return t;
    }

    /** The values as a 16-bit or 32-bit tensor would hold them, widened to double. */
    static double[] asStored(Tensor t) {
        float[] f = t.toFloatArray();
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            d[i] = f[i];
        }
        return d;
    }

    static double[] toDouble(float[] f) {
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            d[i] = f[i];
        }
        return d;
    }

    /** Asserts {@code |actual - expected| <= atol + rtol * |expected|} element-wise, naming the worst element. */
    static void assertClose(String what, double[] expected, Tensor actual, double atol, double rtol) {
        assertClose(what, expected, asStored(actual), atol, rtol);
    }

    static void assertClose(String what, double[] expected, double[] actual, double atol, double rtol) {
        if (expected.length != actual.length) {
            fail(what + ": expected " + expected.length + " values, got " + actual.length);
        }
        int worst = -1;
        double worstExcess = 0;
        for (int i = 0; i < expected.length; i++) {
            double e = expected[i];
            double a = actual[i];
            if (Double.isNaN(e) || Double.isInfinite(e)) {
                if (Double.compare(e, a) != 0) {
                    fail(what + "[" + i + "]: expected " + e + ", got " + a);
                }
                continue;
            }
            double excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
            if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Double.isNaN(a))) {
                worst = i;
                worstExcess = Double.isNaN(excess) ? Double.POSITIVE_INFINITY : excess;
            }
        }
        if (worst >= 0) {
            fail(what + "[" + worst + "]: expected " + expected[worst] + ", got " + actual[worst]
                    + " (tolerance " + atol + " + " + rtol + " * |expected|)");
        }
    }

    /**
     * Central finite differences of {@code L(x) = sum_i w_i f(x)_i} with respect to x, in float64:
     * the gradient an op's backward must produce for {@code dy = w}.
     */
    static double[] finiteDifferences(double[] x, double[] w, Function<double[], double[]> f) {
        double[] grad = new double[x.length];
        double[] probe = x.clone();
        for (int i = 0; i < x.length; i++) {
            double h = 1e-6 * Math.max(1, Math.abs(x[i]));
            probe[i] = x[i] + h;
            double up = dotProduct(w, f.apply(probe));
            probe[i] = x[i] - h;
            double down = dotProduct(w, f.apply(probe));
            probe[i] = x[i];
            grad[i] = (up - down) / (2 * h);
        }
        return grad;
    }

    static double dotProduct(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            s += a[i] * b[i];
        }
        return s;
    }

    /** erf in float64: {@code erf(x) = 2/sqrt(pi) e^{-x^2} sum_n 2^n x^{2n+1} / (2n+1)!!} (no cancellation). */
    static double erf(double x) {
        if (Math.abs(x) > 6) {
            return Math.signum(x);
        }
        double term = x;
        double sum = x;
        for (int n = 1; n < 200; n++) {
            term *= 2 * x * x / (2 * n + 1);
            sum += term;
            if (Math.abs(term) < 1e-17 * Math.abs(sum)) {
                break;
            }
        }
        return 2 / Math.sqrt(Math.PI) * Math.exp(-x * x) * sum;
    }
}
