package org.megatronj.memory.cpu;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.Random;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

/** Float64 reference gemm and the helpers the gemm tests share. */
final class GemmReference {
    private GemmReference() {
    }

    /** A tensor of the given dtype filled with uniform values in [-1, 1). */
    static Tensor random(TensorArena arena, Random rng, DType dtype, long... shape) {
        Tensor t = arena.allocate(dtype, shape);
        float[] v = new float[(int) t.numel()];
        for (int i = 0; i < v.length; i++) {
            v[i] = rng.nextFloat() * 2f - 1f;
        }
        return t.copyFrom(v);
    }

    /**
     * Checks {@code c} against {@code alpha * op(a) op(b) + beta * c0} computed in float64 from the
     * stored (already rounded) inputs; {@code c0} holds C's values before the call. The tolerance
     * scales with {@code sum |a||b|} (fp32 accumulation error) plus C's own rounding.
     */
    static void assertProduct(String what, boolean transA, boolean transB, float alpha, Tensor a, Tensor b,
                              float beta, float[] c0, Tensor c, long batch, int m, int n, int k) {
        float[] av = a.toFloatArray();
        float[] bv = b.toFloatArray();
        float[] cv = c.toFloatArray();
        double outputUlp = switch (c.dtype()) {
            case BF16 -> 1.0 / 256;
            case F16 -> 1.0 / 2048;
            default -> 0;
        };
        for (long bi = 0; bi < batch; bi++) {
            int aBase = (int) (bi * m * k);
            int bBase = (int) (bi * k * n);
            int cBase = (int) (bi * m * n);
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double sum = 0;
                    double magnitude = 0;
                    for (int p = 0; p < k; p++) {
                        double x = av[aBase + (transA ? p * m + i : i * k + p)];
                        double y = bv[bBase + (transB ? j * k + p : p * n + j)];
                        sum += x * y;
                        magnitude += Math.abs(x * y);
                    }
                    double expected = alpha * sum + (beta == 0 ? 0 : beta * (double) c0[cBase + i * n + j]);
                    double scale = Math.abs(alpha) * magnitude + Math.abs(beta == 0 ? 0 : beta * c0[cBase + i * n + j]);
                    double tolerance = 2e-6 * (k + 2) * scale / Math.sqrt(k + 2) + outputUlp * Math.abs(expected) + 1e-30;
                    double got = cv[cBase + i * n + j];
                    if (!(Math.abs(got - expected) <= tolerance)) {
                        fail(what + ": c" + (batch > 1 ? "[" + bi + "]" : "") + "[" + i + ", " + j + "] = " + got
                                + ", expected " + expected + " +- " + tolerance);
                    }
                }
            }
        }
    }
}
