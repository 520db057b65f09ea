package org.megatronj.memory.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * {@code c = alpha * op(a) @ op(b) + beta * c} when op(a) has only a few rows: decode steps of
 * generation and serving, where a linear layer sees 1 to 16 tokens. The blocked gemm
 * ({@link CpuGemm}) packs all of op(b), the whole weight matrix, on every call; for so few rows
 * that packing costs more than the product. Here op(a) is loaded once as fp32 and the weight is
 * streamed straight through, each element read once:
 * <ul>
 * <li>{@code transB} (a linear layer {@code x @ w^T}, w {@code [n, k]}): every output is the dot
 * product of a weight row with an activation row, four weight rows at a time, vectorised over k;
 * the lanes are added with {@link LaneMath#sum}.</li>
 * <li>not {@code transB} (b {@code [k, n]}): each row of b updates all outputs of its columns,
 * vectorised over n, k in order.</li>
 * </ul>
 * The columns are split into fixed chunks of {@link #COLUMNS} over the threads; each output
 * is computed the same way wherever it falls, so results do not depend on the thread count or
 * the JIT. They differ from {@link CpuGemm}'s in the last bits (another summation order).
 * Callers check the arguments first ({@link #accepts}).
 */
final class SmallRowsGemm {
    /** Products with at most this many rows of op(a) take this path. */
    static final int MAX_ROWS = 16;
    /** Output columns per task: a multiple of every vector length, so chunks split no vector. */
    static final int COLUMNS = 128;

    private static final VectorSpecies<Float> S = VectorMath.SPECIES;
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private SmallRowsGemm() {
    }

    /**
     * Whether this path takes the product: 2-D host tensors of valid dtypes and shapes with few
     * rows, c not overlapping a or b. Anything else goes to {@link CpuGemm}, which reports errors.
     */
    static boolean accepts(boolean transA, boolean transB, Tensor a, Tensor b, Tensor c) {
        if (a == null || b == null || c == null || !a.isAlive() || !b.isAlive() || !c.isAlive()
                || !a.device().isHost() || !b.device().isHost() || !c.device().isHost()
                || a.rank() != 2 || b.rank() != 2 || c.rank() != 2) {
            return false;
        }
        DType t = a.dtype();
        if (b.dtype() != t || (t != DType.F32 && t != DType.BF16 && t != DType.F16)
                || (c.dtype() != DType.F32 && c.dtype() != t)) {
            return false;
        }
        long m = transA ? a.dim(1) : a.dim(0);
        long k = transA ? a.dim(0) : a.dim(1);
        long kb = transB ? b.dim(1) : b.dim(0);
        long n = transB ? b.dim(0) : b.dim(1);
        if (m < 1 || m > MAX_ROWS || k != kb || c.dim(0) != m || c.dim(1) != n
                || k > Integer.MAX_VALUE / MAX_ROWS || n > Integer.MAX_VALUE) {
            return false;
        }
        return !overlaps(c, a) && !overlaps(c, b);
    }

    private static boolean overlaps(Tensor x, Tensor y) {
        return x.numel() > 0 && y.numel() > 0 && x.segment().asOverlappingSlice(y.segment()).isPresent();
    }

    /** The product; the arguments must pass {@link #accepts}. */
    static void gemm(CpuThreads threads, boolean vector, boolean transA, boolean transB, float alpha,
                     Tensor a, Tensor b, float beta, Tensor c) {
        int m = (int) c.dim(0);
        int n = (int) c.dim(1);
        int k = (int) (transA ? a.dim(0) : a.dim(1));
        float[] x = rowsOf(a, transA, m, k);
        int chunks = (n + COLUMNS - 1) / COLUMNS;
        long grain = Math.max(1, (1L << 16) / Math.max(1L, (long) m * k * COLUMNS));
        threads.parallelFor(chunks, grain, (c0, c1) -> {
            float[] out = new float[m * COLUMNS];
            float[] old = beta == 0f ? null : new float[COLUMNS];
            float[] w = new float[transB ? 4 * k : COLUMNS];
            for (long chunk = c0; chunk < c1; chunk++) {
                int j0 = (int) chunk * COLUMNS;
                int len = Math.min(COLUMNS, n - j0);
                if (transB) {
                    dotWeightRows(vector, x, m, k, b, j0, len, w, out);
                } else {
                    accumulateRows(vector, x, m, k, b, n, j0, len, w, out);
                }
                for (int i = 0; i < m; i++) {
                    finish(out, i * COLUMNS, len, alpha, beta, old, c, (long) i * n + j0);
                }
            }
        });
    }

    /** op(a) as fp32 rows {@code [m, k]}. */
    private static float[] rowsOf(Tensor a, boolean transA, int m, int k) {
        float[] x = new float[m * k];
        if (!transA) {
            FloatRows.load(a, 0, x, 0, m * k);
            return x;
        }
        float[] column = new float[m]; // a is [k, m]: row kk of a holds element kk of every row of op(a)
        for (int kk = 0; kk < k; kk++) {
            FloatRows.load(a, (long) kk * m, column, 0, m);
            for (int i = 0; i < m; i++) {
                x[i * k + kk] = column[i];
            }
        }
        return x;
    }

    /** {@code out[i * COLUMNS + j] = x_i . w_(j0 + j)} for weight rows {@code j0 .. j0 + len}. */
    private static void dotWeightRows(boolean vector, float[] x, int m, int k, Tensor w, int j0, int len,
                                      float[] rows, float[] out) {
        int j = 0;
        boolean direct = vector && w.dtype() == DType.F32; // read fp32 weights in place, no copy
        for (; j + 4 <= len; j += 4) {
            long first = (long) (j0 + j) * k;
            if (direct) {
                for (int i = 0; i < m; i++) {
                    dot4InPlace(x, i * k, w.segment(), first * Float.BYTES, k, out, i * COLUMNS + j);
                }
                continue;
            }
            FloatRows.load(w, first, rows, 0, 4 * k);
            for (int i = 0; i < m; i++) {
                dot4(vector, x, i * k, rows, k, out, i * COLUMNS + j);
            }
        }
        for (; j < len; j++) {
            FloatRows.load(w, (long) (j0 + j) * k, rows, 0, k);
            for (int i = 0; i < m; i++) {
                out[i * COLUMNS + j] = VectorMath.dot(vector, x, i * k, rows, 0, k);
            }
        }
    }

    /**
     * {@code out[o + r] = x[xOff ..] . w[r * k ..]} for r = 0..3, each exactly as
     * {@link VectorMath#dot} computes it (same lane order, same tail), so whether a column falls
     * in a group of four or in the remainder never changes its value.
     */
    private static void dot4(boolean vector, float[] x, int xOff, float[] w, int k, float[] out, int o) {
        int kk = 0;
        float s0 = 0f;
        float s1 = 0f;
        float s2 = 0f;
        float s3 = 0f;
        if (vector) {
            FloatVector a0 = FloatVector.zero(S);
            FloatVector a1 = a0;
            FloatVector a2 = a0;
            FloatVector a3 = a0;
            for (int bound = S.loopBound(k); kk < bound; kk += S.length()) {
                FloatVector xv = FloatVector.fromArray(S, x, xOff + kk);
                a0 = xv.fma(FloatVector.fromArray(S, w, kk), a0);
                a1 = xv.fma(FloatVector.fromArray(S, w, k + kk), a1);
                a2 = xv.fma(FloatVector.fromArray(S, w, 2 * k + kk), a2);
                a3 = xv.fma(FloatVector.fromArray(S, w, 3 * k + kk), a3);
            }
            s0 = LaneMath.sum(a0);
            s1 = LaneMath.sum(a1);
            s2 = LaneMath.sum(a2);
            s3 = LaneMath.sum(a3);
        }
        for (; kk < k; kk++) {
            float xv = x[xOff + kk];
            s0 += xv * w[kk];
            s1 += xv * w[k + kk];
            s2 += xv * w[2 * k + kk];
            s3 += xv * w[3 * k + kk];
        }
        out[o] = s0;
        out[o + 1] = s1;
        out[o + 2] = s2;
        out[o + 3] = s3;
    }

    /** {@link #dot4} (vector path) on four consecutive fp32 rows of k floats at byte {@code wOff} of w. */
    private static void dot4InPlace(float[] x, int xOff, MemorySegment w, long wOff, int k, float[] out, int o) {
        long row = (long) k * Float.BYTES;
        FloatVector a0 = FloatVector.zero(S);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        int kk = 0;
        for (int bound = S.loopBound(k); kk < bound; kk += S.length()) {
            FloatVector xv = FloatVector.fromArray(S, x, xOff + kk);
            long at = wOff + (long) kk * Float.BYTES;
            a0 = xv.fma(FloatVector.fromMemorySegment(S, w, at, NATIVE), a0);
            a1 = xv.fma(FloatVector.fromMemorySegment(S, w, at + row, NATIVE), a1);
            a2 = xv.fma(FloatVector.fromMemorySegment(S, w, at + 2 * row, NATIVE), a2);
            a3 = xv.fma(FloatVector.fromMemorySegment(S, w, at + 3 * row, NATIVE), a3);
        }
        float s0 = LaneMath.sum(a0);
        float s1 = LaneMath.sum(a1);
        float s2 = LaneMath.sum(a2);
        float s3 = LaneMath.sum(a3);
        for (; kk < k; kk++) {
            float xv = x[xOff + kk];
            long at = wOff + (long) kk * Float.BYTES;
            s0 += xv * w.get(F32, at);
            s1 += xv * w.get(F32, at + row);
            s2 += xv * w.get(F32, at + 2 * row);
            s3 += xv * w.get(F32, at + 3 * row);
        }
        out[o] = s0;
        out[o + 1] = s1;
        out[o + 2] = s2;
        out[o + 3] = s3;
    }

    /** {@code out[i * COLUMNS + j] = sum_kk x_i[kk] * b[kk, j0 + j]}, kk in order. */
    private static void accumulateRows(boolean vector, float[] x, int m, int k, Tensor b, int n, int j0, int len,
                                       float[] row, float[] out) {
        for (int i = 0; i < m; i++) {
            java.util.Arrays.fill(out, i * COLUMNS, i * COLUMNS + len, 0f);
        }
        for (int kk = 0; kk < k; kk++) {
            FloatRows.load(b, (long) kk * n + j0, row, 0, len);
            for (int i = 0; i < m; i++) {
                VectorMath.axpy(vector, x[i * k + kk], row, 0, out, i * COLUMNS, len);
            }
        }
    }

    /** {@code c[from ..] = alpha * out[off ..] + beta * c[from ..]}; beta == 0 ignores c (NaN included). */
    private static void finish(float[] out, int off, int len, float alpha, float beta, float[] old, Tensor c, long from) {
        if (beta == 0f) {
            for (int j = 0; j < len; j++) {
                out[off + j] *= alpha;
            }
        } else {
            FloatRows.load(c, from, old, 0, len);
            for (int j = 0; j < len; j++) {
                out[off + j] = alpha * out[off + j] + beta * old[j];
            }
        }
        FloatRows.store(out, off, c, from, len);
    }
}
