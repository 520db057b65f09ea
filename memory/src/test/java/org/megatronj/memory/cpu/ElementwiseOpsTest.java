package org.megatronj.memory.cpu;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;
import static org.megatronj.memory.cpu.OpTesting.assertClose;
import static org.megatronj.memory.cpu.OpTesting.asStored;
import static org.megatronj.memory.cpu.OpTesting.gaussian;
import static org.megatronj.memory.cpu.OpTesting.tensor;

/**
 * add, axpy, scale, bias and its backward, fill and copy, and a mixture of experts' scaleRows and rowDot, on sizes
 * that are not multiples of the vector width.
 */
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

    /**
     * Row shapes for scaleRows and rowDot: one row, one column, odd widths below and above the vector width, a row
     * longer than a 4096-element block, many short rows (several threads' share), leading dims, no rows.
     */
    private static long[][] rowShapes(Random rnd) {
        return new long[][] {{1, 1}, {7, 1}, {5, 3}, {13, 33}, {1, 70}, {3, 4099 + rnd.nextInt(13)},
                {2000 + rnd.nextInt(7), 5}, {2, 3, 17}, {0, 4}};
    }

    private static double tolerance(DType dtype) {
        return dtype == DType.F32 ? 1e-6 : dtype == DType.BF16 ? 8e-3 : 1e-3;
    }

    /** y[r, :] = x[r, :] * scales[r]: into a poisoned output of x's dtype and of F32, then in place (y == x). */
    @ParameterizedTest
    @MethodSource("backends")
    void scaleRowsMatchesFloat64(CpuBackend backend) {
        Random rnd = OpTesting.random(3);
        try (TensorArena arena = new TensorArena("test")) {
            for (long[] shape : rowShapes(rnd)) {
                int n = (int) Tensor.numel(shape);
                int cols = (int) shape[shape.length - 1];
                int rows = n / cols;
                Tensor scales = tensor(arena, DType.F32, gaussian(rnd, rows, 1f), rows);
                double[] sv = asStored(scales);
                for (DType dtype : new DType[] {DType.F32, DType.BF16, DType.F16}) {
                    String what = "scaleRows " + dtype + Tensor.shapeString(shape);
                    Tensor x = tensor(arena, dtype, gaussian(rnd, n, 1f), shape);
                    double[] xv = asStored(x);
                    double[] expected = new double[n];
                    for (int i = 0; i < n; i++) {
                        expected[i] = xv[i] * sv[i / cols];
                    }
                    for (DType out : new DType[] {dtype, DType.F32}) {
                        Tensor y = arena.allocate(out, shape);
                        backend.fill(y, Float.NaN);
                        backend.scaleRows(x, scales, y);
                        assertClose(what + ", y " + out + ", element", expected, y, tolerance(out), tolerance(out));
                    }
                    assertArrayEquals(xv, asStored(x), what + ": x changed");
                    assertArrayEquals(sv, asStored(scales), what + ": scales changed");
                    backend.scaleRows(x, scales, x);
                    assertClose(what + " in place, element", expected, x, tolerance(dtype), tolerance(dtype));
                }
            }
        }
    }

    /**
     * out[r] = a[r, :] . b[r, :] in F32 into a poisoned output, a and b of every dtype pair. The products of stored
     * values are exact in float64, so the only error is F32's summation (in any order): allowed per row as
     * 2e-6 * sum |a b| (random rounding errors stay far below it; a missed or doubled term does not).
     */
    @ParameterizedTest
    @MethodSource("backends")
    void rowDotMatchesFloat64(CpuBackend backend) {
        Random rnd = OpTesting.random(4);
        DType[] dtypes = {DType.F32, DType.BF16, DType.F16};
        try (TensorArena arena = new TensorArena("test")) {
            for (long[] shape : rowShapes(rnd)) {
                int n = (int) Tensor.numel(shape);
                int cols = (int) shape[shape.length - 1];
                int rows = n / cols;
                for (DType da : dtypes) {
                    for (DType db : dtypes) {
                        String what = "rowDot a " + da + ", b " + db + Tensor.shapeString(shape);
                        Tensor a = tensor(arena, da, gaussian(rnd, n, 1f), shape);
                        Tensor b = tensor(arena, db, gaussian(rnd, n, 1f), shape);
                        double[] av = asStored(a);
                        double[] bv = asStored(b);
                        Tensor out = arena.allocate(DType.F32, rows);
                        backend.fill(out, Float.NaN);
                        backend.rowDot(a, b, out);
                        double[] got = asStored(out);
                        for (int r = 0; r < rows; r++) {
                            double dot = 0;
                            double abs = 0;
                            for (int c = r * cols; c < (r + 1) * cols; c++) {
                                dot += av[c] * bv[c];
                                abs += Math.abs(av[c] * bv[c]);
                            }
                            if (!(Math.abs(got[r] - dot) <= 2e-6 * abs)) {
                                fail(what + ", row " + r + ": expected " + dot + ", got " + got[r] + " (tolerance 2e-6 * "
                                        + abs + ")");
                            }
                        }
                        assertArrayEquals(av, asStored(a), what + ": a changed");
                        assertArrayEquals(bv, asStored(b), what + ": b changed");
                    }
                }
            }
        }
    }

    /** a . a with a row of 4099 ones, and rows of zeros (a NaN poison left anywhere shows). */
    @ParameterizedTest
    @MethodSource("backends")
    void rowDotExactSums(CpuBackend backend) {
        try (TensorArena arena = new TensorArena("test")) {
            Tensor a = arena.allocate(DType.BF16, 3, 4099);
            backend.fill(a, 0f);
            backend.fill(a.view(1, 2), 1f);
            Tensor out = arena.allocate(DType.F32, 3);
            backend.fill(out, Float.NaN);
            backend.rowDot(a, a, out);
            assertArrayEquals(new float[] {0f, 4099f, 0f}, out.toFloatArray());
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
