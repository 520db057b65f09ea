package org.megatronj.memory.cpu;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.megatronj.memory.cpu.OpTesting.assertClose;
import static org.megatronj.memory.cpu.OpTesting.asStored;
import static org.megatronj.memory.cpu.OpTesting.gaussian;
import static org.megatronj.memory.cpu.OpTesting.tensor;

/** add, axpy, scale, bias and its backward, fill and copy on sizes that are not multiples of the vector width. */
class ElementwiseOpsTest {

    static java.util.stream.Stream<CpuBackend> backends() {
        return OpTesting.backends();
    }

    @ParameterizedTest
    @MethodSource("backends")
    void addAxpyScaleMatchFloat64(CpuBackend backend) {
        Random rnd = OpTesting.random(1);
        int rows = 3 + rnd.nextInt(5);
        int cols = 4099 + rnd.nextInt(13); // spans more than one 4096-element block
        try (TensorArena arena = new TensorArena("test")) {
            for (DType dtype : new DType[] {DType.F32, DType.BF16, DType.F16}) {
                Tensor a = tensor(arena, dtype, gaussian(rnd, rows * cols, 1f), rows, cols);
                Tensor b = tensor(arena, dtype, gaussian(rnd, rows * cols, 1f), rows, cols);
                double[] av = asStored(a);
                double[] bv = asStored(b);
                double tol = dtype == DType.F32 ? 1e-6 : dtype == DType.BF16 ? 8e-3 : 1e-3;

                Tensor out = arena.allocate(dtype, rows, cols);
                backend.add(a, b, out);
                double[] sum = new double[av.length];
                for (int i = 0; i < sum.length; i++) {
                    sum[i] = av[i] + bv[i];
                }
                assertClose("add " + dtype, sum, out, tol, tol);

                backend.add(a, b, a); // out aliasing a
                assertClose("add in place " + dtype, sum, a, tol, tol);
                av = asStored(a);

                float alpha = 0.37f;
                backend.axpy(alpha, a, b);
                double[] axpy = new double[av.length];
                for (int i = 0; i < axpy.length; i++) {
                    axpy[i] = bv[i] + alpha * av[i];
                }
                assertClose("axpy " + dtype, axpy, b, tol, tol);

                backend.scale(a, -1.5f);
                double[] scaled = new double[av.length];
                for (int i = 0; i < scaled.length; i++) {
                    scaled[i] = -1.5 * av[i];
                }
                assertClose("scale " + dtype, scaled, a, tol, tol);
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void biasAddAndBiasBackward(CpuBackend backend) {
        Random rnd = OpTesting.random(2);
        int rows = 2 + rnd.nextInt(40);
        int cols = 517 + rnd.nextInt(600); // many 64-column chunks and a ragged last one
        try (TensorArena arena = new TensorArena("test")) {
            float[] x = gaussian(rnd, rows * cols, 1f);
            float[] bias = gaussian(rnd, cols, 1f);
            Tensor xt = tensor(arena, DType.F32, x, 1, rows, cols).reshape(-1, cols);
            Tensor bt = tensor(arena, DType.F32, bias, cols);
            backend.biasAdd(xt, bt);
            double[] expected = new double[x.length];
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c++) {
                    expected[r * cols + c] = (double) x[r * cols + c] + bias[c];
                }
            }
            assertClose("biasAdd", expected, xt, 1e-6, 1e-6);

            float[] initial = gaussian(rnd, cols, 1f);
            Tensor dBias = tensor(arena, DType.F32, initial, cols);
            Tensor dy = tensor(arena, DType.BF16, x, rows, cols);
            double[] dyv = asStored(dy);
            backend.biasBackward(dy, dBias);
            double[] sums = new double[cols];
            for (int c = 0; c < cols; c++) {
                sums[c] = initial[c];
                for (int r = 0; r < rows; r++) {
                    sums[c] += dyv[r * cols + c];
                }
            }
            assertClose("biasBackward accumulates", sums, dBias, 1e-5, 1e-5);
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void fillAndCopy(CpuBackend backend) {
        try (TensorArena arena = new TensorArena("test")) {
            Tensor x = arena.allocate(DType.BF16, 3, 1001);
            backend.fill(x, 1.5f);
            for (float v : x.toFloatArray()) {
                assertEquals(1.5f, v);
            }
            Tensor ids = arena.allocate(DType.I32, 7);
            backend.fill(ids, 3f);
            for (int i = 0; i < 7; i++) {
                assertEquals(3, ids.getLong(i));
            }
            Tensor y = arena.allocate(DType.BF16, 3003);
            backend.copy(x, y);
            assertArrayEquals(x.toFloatArray(), y.toFloatArray());
            backend.fill(y, 0f);
            assertEquals(0.0, backend.sumOfSquares(y));
        }
    }
}
