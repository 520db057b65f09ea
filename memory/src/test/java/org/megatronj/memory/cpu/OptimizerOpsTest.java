package org.megatronj.memory.cpu;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.megatronj.memory.cpu.OpTesting.assertClose;
import static org.megatronj.memory.cpu.OpTesting.gaussian;
import static org.megatronj.memory.cpu.OpTesting.tensor;

/** AdamW against a float64 transcription of the formula; sum of squares; inf/NaN detection; zero counts. */
class OptimizerOpsTest {

    static java.util.stream.Stream<CpuBackend> backends() {
        return OpTesting.backends();
    }

    @ParameterizedTest
    @MethodSource("backends")
    void adamWMatchesFloat64OverSeveralSteps(CpuBackend backend) {
        Random rnd = OpTesting.random(50);
        int n = 4096 + 1000 + rnd.nextInt(100);
        float lr = 3e-3f;
        float b1 = 0.9f;
        float b2 = 0.95f;
        float eps = 1e-8f;
        float wd = 0.1f;
        try (TensorArena arena = new TensorArena("test")) {
            float[] p0 = gaussian(rnd, n, 1f);
            Tensor p = tensor(arena, DType.F32, p0, n);
            Tensor m = arena.allocate(DType.F32, n);
            Tensor v = arena.allocate(DType.F32, n);
            double[] pr = OpTesting.toDouble(p0);
            double[] mr = new double[n];
            double[] vr = new double[n];
            for (int step = 1; step <= 3; step++) {
                float[] g = gaussian(rnd, n, 0.1f);
                g[0] = 0f;
                backend.adamW(p, tensor(arena, DType.F32, g, n), m, v, lr, b1, b2, eps, wd, step);
                for (int i = 0; i < n; i++) {
                    mr[i] = b1 * mr[i] + (1 - (double) b1) * g[i];
                    vr[i] = b2 * vr[i] + (1 - (double) b2) * g[i] * g[i];
                    double mh = mr[i] / (1 - Math.pow(b1, step));
                    double vh = vr[i] / (1 - Math.pow(b2, step));
                    pr[i] -= lr * (mh / (Math.sqrt(vh) + eps) + wd * pr[i]);
                }
                assertClose("m step " + step, mr, m, 1e-7, 1e-5);
                assertClose("v step " + step, vr, v, 1e-9, 1e-5);
                assertClose("p step " + step, pr, p, 1e-6, 1e-5);
            }
        }
    }

    /** F32 tensors updated in place and the block path (which a compute copy takes) give the same bits. */
    @ParameterizedTest
    @MethodSource("backends")
    void inPlacePathEqualsBlockPath(CpuBackend backend) {
        Random rnd = OpTesting.random(51);
        int n = 2 * 4096 + 37; // two whole blocks and a tail that is not a whole vector
        try (TensorArena arena = new TensorArena("test")) {
            float[] p0 = gaussian(rnd, n, 1f);
            float[] m0 = gaussian(rnd, n, 0.01f);
            float[] v0 = OpTesting.uniform(rnd, n, 0f, 1e-3f);
            Tensor[] direct = {tensor(arena, DType.F32, p0, n), tensor(arena, DType.F32, m0, n), tensor(arena, DType.F32, v0, n)};
            Tensor[] blocks = {tensor(arena, DType.F32, p0, n), tensor(arena, DType.F32, m0, n), tensor(arena, DType.F32, v0, n)};
            Tensor copy = arena.allocate(DType.F32, n);
            for (int step = 1; step <= 2; step++) {
                Tensor g = tensor(arena, DType.F32, gaussian(rnd, n, 0.1f), n);
                backend.multiTensorAdamW(List.of(direct[0]), List.of(g), List.of(direct[1]), List.of(direct[2]),
                        new float[] {0.1f}, 3e-3f, 0.9f, 0.95f, 1e-8f, step, 0.5f, null);
                backend.multiTensorAdamW(List.of(blocks[0]), List.of(g), List.of(blocks[1]), List.of(blocks[2]),
                        new float[] {0.1f}, 3e-3f, 0.9f, 0.95f, 1e-8f, step, 0.5f, List.of(copy));
                for (int k = 0; k < 3; k++) {
                    assertArrayEquals(blocks[k].toFloatArray(), direct[k].toFloatArray(), "tensor " + k + " step " + step);
                }
                assertArrayEquals(blocks[0].toFloatArray(), copy.toFloatArray(), "compute copy step " + step);
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void sumOfSquaresAndInfNanCheck(CpuBackend backend) {
        Random rnd = OpTesting.random(51);
        int n = 3 * 4096 + 17 + rnd.nextInt(100);
        try (TensorArena arena = new TensorArena("test")) {
            for (DType dtype : new DType[] {DType.F32, DType.BF16, DType.F16}) {
                Tensor x = tensor(arena, dtype, gaussian(rnd, n, 3f), n);
                double expected = 0;
                for (int i = 0; i < n; i++) {
                    expected += (double) x.getFloat(i) * x.getFloat(i);
                }
                assertEquals(expected, backend.sumOfSquares(x), 1e-6 * expected, dtype.toString());
                assertFalse(backend.hasInfOrNan(x), dtype.toString());
                for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
                    int at = rnd.nextInt(n);
                    float old = x.getFloat(at);
                    x.setFloat(at, bad);
                    assertTrue(backend.hasInfOrNan(x), dtype + " with " + bad + " at " + at);
                    x.setFloat(at, old);
                }
                x.setFloat(n - 1, 70000f); // overflows to inf in fp16 only
                assertEquals(dtype == DType.F16, backend.hasInfOrNan(x), dtype + " with 70000");
            }
        }
    }

    /** Zeros of both signs count, NaN and the smallest subnormal do not, in every block and the vector tail. */
    @ParameterizedTest
    @MethodSource("backends")
    void countZerosCountsBothSignsAndNothingElse(CpuBackend backend) {
        Random rnd = OpTesting.random(52);
        int n = 3 * 4096 + 17 + rnd.nextInt(100);
        try (TensorArena arena = new TensorArena("test")) {
            for (DType dtype : new DType[] {DType.F32, DType.BF16, DType.F16}) {
                Tensor x = tensor(arena, dtype, gaussian(rnd, n, 3f), n);
                long expected = 0;
                for (int i = 0; i < n; i++) {
                    if (rnd.nextInt(5) == 0) {
                        x.setFloat(i, rnd.nextBoolean() ? 0f : -0f);
                    } else if (rnd.nextInt(50) == 0) {
                        x.setFloat(i, rnd.nextBoolean() ? Float.NaN : dtype == DType.F32 ? Float.MIN_VALUE : 1e-7f);
                    }
                    expected += x.getFloat(i) == 0f ? 1 : 0;
                }
                assertTrue(expected > n / 6, "zeros were placed: " + expected);
                assertEquals(expected, backend.countZeros(x), dtype.toString());
                assertEquals(x.getFloat(n - 1) == 0f ? 1 : 0, backend.countZeros(x.view(n - 1, n)), dtype + " one element");
            }
        }
    }
}
