package org.megatronj.memory.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
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
 * BF16 weights (inference with {@code --bf16}) are read in place, 2 bytes per weight: one int
 * vector load holds 2L bf16 values, and since a bf16 is the upper half of an fp32, a shift left by
 * 16 gives the even elements as floats and masking the low half gives the odd ones. The
 * activations are deinterleaved once per call to match ({@link #deinterleave}), so the weight
 * needs no shuffle; the products accumulate in fp32.
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
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final VectorSpecies<Integer> IS = VectorSpecies.of(int.class, S.vectorShape());
    /** bf16 elements per int vector load: two per lane. */
    private static final int PAIR = 2 * S.length();
    private static final int ODD_MASK = 0xFFFF0000;

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
        boolean bf16 = vector && transB && b.dtype() == DType.BF16;
        float[] xs = bf16 ? deinterleave(x, m, k) : x;
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
                    if (bf16) {
                        dotBf16WeightRows(xs, m, k, b.segment(), j0, len, out);
                    } else {
                        dotWeightRows(vector, x, m, k, b, j0, len, w, out);
                    }
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

    /**
     * Each row of x with, in every block of {@link #PAIR} elements, the even elements first and the
     * odd ones after ({@code x[2i]} at {@code i}, {@code x[2i + 1]} at {@code L + i}), the order in
     * which {@link #dotBf16} widens a block of bf16 weights; the tail after the last block as is.
     */
    static float[] deinterleave(float[] x, int m, int k) {
        float[] xs = x.clone();
        int half = S.length();
        for (int i = 0; i < m; i++) {
            int row = i * k;
            for (int kk = 0; kk + PAIR <= k; kk += PAIR) {
                for (int e = 0; e < half; e++) {
                    xs[row + kk + e] = x[row + kk + 2 * e];
                    xs[row + kk + half + e] = x[row + kk + 2 * e + 1];
                }
            }
        }
        return xs;
    }

    /**
     * {@link #dotWeightRows} for BF16 weight rows read in place (vector path), xs from
     * {@link #deinterleave}. One weight row at a time, so the weight is read as one sequential
     * stream (measured on Zen 4: 15 GB/s per core against 12 with four interleaved row streams);
     * with several rows of x the weight row is re-read from L1.
     */
    private static void dotBf16WeightRows(float[] xs, int m, int k, MemorySegment w, int j0, int len, float[] out) {
        long row = (long) k * 2;
        for (int j = 0; j < len; j++) {
            long at = (j0 + j) * row;
            int i = 0;
            for (; i + 2 <= m; i += 2) {
                dotBf16Pair(xs, i * k, (i + 1) * k, w, at, k, out, i * COLUMNS + j, (i + 1) * COLUMNS + j);
            }
            if (i < m) {
                out[i * COLUMNS + j] = dotBf16(xs, i * k, w, at, k);
            }
        }
    }

    /**
     * {@code xs[xOff ..] . w} for one bf16 row of k elements at byte {@code wOff}: two blocks of
     * {@link #PAIR} per iteration into four fp32 accumulators (even and odd elements of each block),
     * then at most one more block, the accumulators added as {@code (e0 + d0) + (e1 + d1)} and
     * summed with {@link LaneMath#sum}, then the tail in order.
     */
    static float dotBf16(float[] xs, int xOff, MemorySegment w, long wOff, int k) {
        FloatVector e0 = FloatVector.zero(S);
        FloatVector d0 = e0;
        FloatVector e1 = e0;
        FloatVector d1 = e0;
        int half = S.length();
        int kk = 0;
        for (; kk + 2 * PAIR <= k; kk += 2 * PAIR) {
            long at = wOff + (long) kk * 2;
            IntVector w0 = IntVector.fromMemorySegment(IS, w, at, ByteOrder.LITTLE_ENDIAN);
            IntVector w1 = IntVector.fromMemorySegment(IS, w, at + 2L * PAIR, ByteOrder.LITTLE_ENDIAN);
            e0 = FloatVector.fromArray(S, xs, xOff + kk).fma(w0.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats(), e0);
            d0 = FloatVector.fromArray(S, xs, xOff + kk + half).fma(w0.and(ODD_MASK).reinterpretAsFloats(), d0);
            e1 = FloatVector.fromArray(S, xs, xOff + kk + PAIR).fma(w1.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats(), e1);
            d1 = FloatVector.fromArray(S, xs, xOff + kk + PAIR + half).fma(w1.and(ODD_MASK).reinterpretAsFloats(), d1);
        }
        if (kk + PAIR <= k) {
            IntVector w0 = IntVector.fromMemorySegment(IS, w, wOff + (long) kk * 2, ByteOrder.LITTLE_ENDIAN);
            e0 = FloatVector.fromArray(S, xs, xOff + kk).fma(w0.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats(), e0);
            d0 = FloatVector.fromArray(S, xs, xOff + kk + half).fma(w0.and(ODD_MASK).reinterpretAsFloats(), d0);
            kk += PAIR;
        }
        float s = LaneMath.sum(e0.add(d0).add(e1.add(d1)));
        for (; kk < k; kk++) {
            s += xs[xOff + kk] * bf16(w, wOff + (long) kk * 2);
        }
        return s;
    }

    /**
     * {@link #dotBf16} of one weight row with two rows of x (at {@code xa}, {@code xb}) sharing the
     * weight's loads and widening; each result is computed exactly as {@link #dotBf16} computes it.
     */
    private static void dotBf16Pair(float[] xs, int xa, int xb, MemorySegment w, long wOff, int k, float[] out, int oa,
                                    int ob) {
        FloatVector ae0 = FloatVector.zero(S);
        FloatVector ad0 = ae0;
        FloatVector ae1 = ae0;
        FloatVector ad1 = ae0;
        FloatVector be0 = ae0;
        FloatVector bd0 = ae0;
        FloatVector be1 = ae0;
        FloatVector bd1 = ae0;
        int half = S.length();
        int kk = 0;
        for (; kk + 2 * PAIR <= k; kk += 2 * PAIR) {
            long at = wOff + (long) kk * 2;
            IntVector w0 = IntVector.fromMemorySegment(IS, w, at, ByteOrder.LITTLE_ENDIAN);
            IntVector w1 = IntVector.fromMemorySegment(IS, w, at + 2L * PAIR, ByteOrder.LITTLE_ENDIAN);
            FloatVector we0 = w0.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector wd0 = w0.and(ODD_MASK).reinterpretAsFloats();
            FloatVector we1 = w1.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector wd1 = w1.and(ODD_MASK).reinterpretAsFloats();
            ae0 = FloatVector.fromArray(S, xs, xa + kk).fma(we0, ae0);
            ad0 = FloatVector.fromArray(S, xs, xa + kk + half).fma(wd0, ad0);
            ae1 = FloatVector.fromArray(S, xs, xa + kk + PAIR).fma(we1, ae1);
            ad1 = FloatVector.fromArray(S, xs, xa + kk + PAIR + half).fma(wd1, ad1);
            be0 = FloatVector.fromArray(S, xs, xb + kk).fma(we0, be0);
            bd0 = FloatVector.fromArray(S, xs, xb + kk + half).fma(wd0, bd0);
            be1 = FloatVector.fromArray(S, xs, xb + kk + PAIR).fma(we1, be1);
            bd1 = FloatVector.fromArray(S, xs, xb + kk + PAIR + half).fma(wd1, bd1);
        }
        if (kk + PAIR <= k) {
            IntVector w0 = IntVector.fromMemorySegment(IS, w, wOff + (long) kk * 2, ByteOrder.LITTLE_ENDIAN);
            FloatVector we0 = w0.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector wd0 = w0.and(ODD_MASK).reinterpretAsFloats();
            ae0 = FloatVector.fromArray(S, xs, xa + kk).fma(we0, ae0);
            ad0 = FloatVector.fromArray(S, xs, xa + kk + half).fma(wd0, ad0);
            be0 = FloatVector.fromArray(S, xs, xb + kk).fma(we0, be0);
            bd0 = FloatVector.fromArray(S, xs, xb + kk + half).fma(wd0, bd0);
            kk += PAIR;
        }
        float sa = LaneMath.sum(ae0.add(ad0).add(ae1.add(ad1)));
        float sb = LaneMath.sum(be0.add(bd0).add(be1.add(bd1)));
        for (; kk < k; kk++) {
            float wk = bf16(w, wOff + (long) kk * 2);
            sa += xs[xa + kk] * wk;
            sb += xs[xb + kk] * wk;
        }
        out[oa] = sa;
        out[ob] = sb;
    }

    private static float bf16(MemorySegment w, long at) {
        return Float.intBitsToFloat((w.get(I16, at) & 0xffff) << 16);
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
