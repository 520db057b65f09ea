package org.megatronj.memory.cpu;

import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Memory-bound elementwise ops: add, axpy, scale, bias add and its backward, cast, fill, copy.
 * Arguments are checked by {@link CpuBackend}; these kernels assume valid shapes.
 */
final class ElementwiseKernels {
    private final CpuThreads threads;
    private final boolean vector;

    ElementwiseKernels(CpuThreads threads, boolean vectorized) {
        this.threads = threads;
        this.vector = vectorized;
    }

    /** {@code out = a + b}; out may alias a or b (each block is loaded before it is stored). */
    void add(Tensor a, Tensor b, Tensor out) {
        Blocks.run(threads, out.numel(), (from, len, x, y, z) -> {
            FloatRows.load(a, from, x, 0, len);
            FloatRows.load(b, from, y, 0, len);
            VectorMath.add(vector, x, y, z, len);
            FloatRows.store(z, 0, out, from, len);
        });
    }

    /** {@code y += alpha * x}. */
    void axpy(float alpha, Tensor x, Tensor y) {
        Blocks.run(threads, y.numel(), (from, len, xs, ys, unused) -> {
            FloatRows.load(x, from, xs, 0, len);
            FloatRows.load(y, from, ys, 0, len);
            VectorMath.axpy(vector, alpha, xs, 0, ys, 0, len);
            FloatRows.store(ys, 0, y, from, len);
        });
    }

    void scale(Tensor x, float alpha) {
        Blocks.run(threads, x.numel(), (from, len, xs, unused1, unused2) -> {
            FloatRows.load(x, from, xs, 0, len);
            VectorMath.scale(vector, xs, 0, len, alpha);
            FloatRows.store(xs, 0, x, from, len);
        });
    }

    /** {@code y[r, :] = x[r, :] * scales[r]} for rows of width {@code cols}. */
    void scaleRows(Tensor x, Tensor scales, Tensor y, int cols) {
        long rows = cols == 0 ? 0 : x.numel() / cols;
        threads.parallelFor(rows, Math.max(1, Blocks.SIZE / Math.max(cols, 1)), (r0, r1) -> {
            float[] row = new float[cols];
            float[] scale = new float[1];
            for (long r = r0; r < r1; r++) {
                FloatRows.load(scales, r, scale, 0, 1);
                FloatRows.load(x, r * cols, row, 0, cols);
                VectorMath.scale(vector, row, 0, cols, scale[0]);
                FloatRows.store(row, 0, y, r * cols, cols);
            }
        });
    }

    /** {@code out[r] = a[r, :] . b[r, :]} for rows of width {@code cols}, in F32. */
    void rowDot(Tensor a, Tensor b, Tensor out, int cols) {
        long rows = cols == 0 ? 0 : a.numel() / cols;
        threads.parallelFor(rows, Math.max(1, Blocks.SIZE / Math.max(cols, 1)), (r0, r1) -> {
            float[] ar = new float[cols];
            float[] br = new float[cols];
            float[] dot = new float[1];
            for (long r = r0; r < r1; r++) {
                FloatRows.load(a, r * cols, ar, 0, cols);
                FloatRows.load(b, r * cols, br, 0, cols);
                dot[0] = VectorMath.dot(vector, ar, 0, br, 0, cols);
                FloatRows.store(dot, 0, out, r, 1);
            }
        });
    }

    /** {@code x[r, :] += bias} for rows of width {@code cols}. */
    void biasAdd(Tensor x, Tensor bias, int cols) {
        float[] bv = new float[cols];
        FloatRows.load(bias, 0, bv, 0, cols);
        long rows = cols == 0 ? 0 : x.numel() / cols;
        threads.parallelFor(rows, Math.max(1, Blocks.SIZE / Math.max(cols, 1)), (r0, r1) -> {
            float[] row = new float[cols];
            for (long r = r0; r < r1; r++) {
                FloatRows.load(x, r * cols, row, 0, cols);
                VectorMath.axpy(vector, 1f, bv, 0, row, 0, cols);
                FloatRows.store(row, 0, x, r * cols, cols);
            }
        });
    }

    /**
     * {@code dBias += sum over rows of dy}. Columns are split among threads, so every column is
     * summed by one thread in row order: the result does not depend on the thread count.
     */
    void biasBackward(Tensor dy, Tensor dBias, int cols) {
        long rows = cols == 0 ? 0 : dy.numel() / cols;
        int chunk = 64; // 64 columns: h = 768 still gives 12 pieces of work
        int chunks = (cols + chunk - 1) / chunk;
        threads.parallelFor(chunks, 1, (c0, c1) -> {
            float[] acc = new float[chunk];
            float[] row = new float[chunk];
            for (long c = c0; c < c1; c++) {
                int from = (int) c * chunk;
                int len = Math.min(chunk, cols - from);
                FloatRows.load(dBias, from, acc, 0, len);
                for (long r = 0; r < rows; r++) {
                    FloatRows.load(dy, r * cols + from, row, 0, len);
                    VectorMath.axpy(vector, 1f, row, 0, acc, 0, len);
                }
                FloatRows.store(acc, 0, dBias, from, len);
            }
        });
    }

    /** Converts between float dtypes through fp32 (round to nearest even on store). */
    void cast(Tensor src, Tensor dst) {
        if (src.dtype() == dst.dtype()) {
            copy(src, dst);
            return;
        }
        Blocks.run(threads, src.numel(), (from, len, x, unused1, unused2) -> {
            FloatRows.load(src, from, x, 0, len);
            FloatRows.store(x, 0, dst, from, len);
        });
    }

    static void copy(Tensor src, Tensor dst) {
        MemorySegment.copy(src.segment(), 0, dst.segment(), 0, src.byteSize());
    }

    void fill(Tensor x, float value) {
        if (Float.floatToRawIntBits(value) == 0) {
            x.segment().fill((byte) 0);
            return;
        }
        if (x.dtype().isFloatingPoint()) {
            Blocks.run(threads, x.numel(), (from, len, buf, unused1, unused2) -> {
                java.util.Arrays.fill(buf, 0, len, value);
                FloatRows.store(buf, 0, x, from, len);
            });
            return;
        }
        long n = x.numel();
        if (x.dtype() == DType.I32) {
            int v = (int) value;
            for (long i = 0; i < n; i++) {
                x.segment().setAtIndex(ValueLayout.JAVA_INT_UNALIGNED, i, v);
            }
            return;
        }
        for (long i = 0; i < n; i++) {
            x.setFloat(i, value);
        }
    }
}
