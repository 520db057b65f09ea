package org.megatronj.memory.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.LongAdder;

/** AdamW, the sum of squares behind grad-norm clipping, and the inf/NaN check of loss scaling. */
final class OptimizerKernels {
    /** The vector species, a constant so that the JIT compiles vector ops to SIMD instructions. */
    private static final VectorSpecies<Float> S = VectorMath.SPECIES;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    private final CpuThreads threads;
    private final boolean vector;

    OptimizerKernels(CpuThreads threads, boolean vectorized) {
        this.threads = threads;
        this.vector = vectorized;
    }

    /**
     * See {@code Backend#adamW}; bias corrections computed in double, the update in fp32. Each
     * gradient element is used as {@code g * gradScale}, and {@code computeCopy} (null: none)
     * receives the updated parameter in its dtype: the bits of {@code scale}, the step, then
     * {@code cast} ({@code Backend#multiTensorAdamW}), while each block is still in cache.
     */
    void adamW(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq,
               float lr, float beta1, float beta2, float eps, float weightDecay, long step,
               float gradScale, Tensor computeCopy) {
        float bc1 = (float) (1.0 - Math.pow(beta1, step));
        float bc2 = (float) (1.0 - Math.pow(beta2, step));
        float ob1 = 1f - beta1;
        float ob2 = 1f - beta2;
        long n = param.numel();
        long blocks = (n + Blocks.SIZE - 1) / Blocks.SIZE;
        if (vector && computeCopy == null && param.dtype() == DType.F32 && grad.dtype() == DType.F32
                && expAvg.dtype() == DType.F32 && expAvgSq.dtype() == DType.F32) {
            AdamWStep scalars = new AdamWStep(lr, beta1, beta2, eps, weightDecay, gradScale, bc1, bc2);
            MemorySegment p = param.segment();
            MemorySegment g = grad.segment();
            MemorySegment m = expAvg.segment();
            MemorySegment v = expAvgSq.segment();
            threads.parallelFor(blocks, 2, (b0, b1) ->
                    adamWF32(scalars, p, g, m, v, b0 * Blocks.SIZE, Math.min(n, b1 * Blocks.SIZE)));
            return;
        }
        threads.parallelFor(blocks, 2, (b0, b1) -> {
            float[] p = new float[Blocks.SIZE];
            float[] g = new float[Blocks.SIZE];
            float[] m = new float[Blocks.SIZE];
            float[] v = new float[Blocks.SIZE];
            for (long blk = b0; blk < b1; blk++) {
                long from = blk * Blocks.SIZE;
                int len = (int) Math.min(Blocks.SIZE, n - from);
                FloatRows.load(param, from, p, 0, len);
                FloatRows.load(grad, from, g, 0, len);
                FloatRows.load(expAvg, from, m, 0, len);
                FloatRows.load(expAvgSq, from, v, 0, len);
                int i = 0;
                if (vector) {
                    for (int bound = S.loopBound(len); i < bound; i += S.length()) {
                        FloatVector gv = FloatVector.fromArray(S, g, i).mul(gradScale);
                        FloatVector mv = FloatVector.fromArray(S, m, i).mul(beta1).add(gv.mul(ob1));
                        FloatVector vv = FloatVector.fromArray(S, v, i).mul(beta2).add(gv.mul(gv).mul(ob2));
                        FloatVector pv = FloatVector.fromArray(S, p, i);
                        FloatVector update = mv.div(bc1).div(vv.div(bc2).sqrt().add(eps)).add(pv.mul(weightDecay));
                        pv.sub(update.mul(lr)).intoArray(p, i);
                        mv.intoArray(m, i);
                        vv.intoArray(v, i);
                    }
                }
                for (; i < len; i++) {
                    float gi = g[i] * gradScale;
                    float mi = beta1 * m[i] + ob1 * gi;
                    float vi = beta2 * v[i] + ob2 * (gi * gi);
                    float update = (mi / bc1) / ((float) Math.sqrt(vi / bc2) + eps) + weightDecay * p[i];
                    p[i] -= lr * update;
                    m[i] = mi;
                    v[i] = vi;
                }
                FloatRows.store(p, 0, param, from, len);
                FloatRows.store(m, 0, expAvg, from, len);
                FloatRows.store(v, 0, expAvgSq, from, len);
                if (computeCopy != null) {
                    FloatRows.store(p, 0, computeCopy, from, len);
                }
            }
        });
    }

    /** The scalars of one AdamW step. */
    private record AdamWStep(float lr, float beta1, float beta2, float eps, float weightDecay, float gradScale,
                             float bc1, float bc2) {
    }

    /**
     * AdamW on F32 tensors read and written in place, elements {@code [from, to)}: the arithmetic of
     * the block path, element by element (its scalar tail is the tensor's last n % 16 elements here
     * too), without copying four operands through arrays. Memory-bound: 28 bytes an element.
     */
    private static void adamWF32(AdamWStep st, MemorySegment ps, MemorySegment gs, MemorySegment ms, MemorySegment vs,
                                 long from, long to) {
        float ob1 = 1f - st.beta1();
        float ob2 = 1f - st.beta2();
        long i = from;
        for (; i + S.length() <= to; i += S.length()) {
            long at = i * Float.BYTES;
            FloatVector gv = FloatVector.fromMemorySegment(S, gs, at, LE).mul(st.gradScale());
            FloatVector mv = FloatVector.fromMemorySegment(S, ms, at, LE).mul(st.beta1()).add(gv.mul(ob1));
            FloatVector vv = FloatVector.fromMemorySegment(S, vs, at, LE).mul(st.beta2()).add(gv.mul(gv).mul(ob2));
            FloatVector pv = FloatVector.fromMemorySegment(S, ps, at, LE);
            FloatVector update = mv.div(st.bc1()).div(vv.div(st.bc2()).sqrt().add(st.eps())).add(pv.mul(st.weightDecay()));
            pv.sub(update.mul(st.lr())).intoMemorySegment(ps, at, LE);
            mv.intoMemorySegment(ms, at, LE);
            vv.intoMemorySegment(vs, at, LE);
        }
        for (; i < to; i++) {
            float gi = gs.getAtIndex(F32, i) * st.gradScale();
            float mi = st.beta1() * ms.getAtIndex(F32, i) + ob1 * gi;
            float vi = st.beta2() * vs.getAtIndex(F32, i) + ob2 * (gi * gi);
            float pi = ps.getAtIndex(F32, i);
            float update = (mi / st.bc1()) / ((float) Math.sqrt(vi / st.bc2()) + st.eps()) + st.weightDecay() * pi;
            ps.setAtIndex(F32, i, pi - st.lr() * update);
            ms.setAtIndex(F32, i, mi);
            vs.setAtIndex(F32, i, vi);
        }
    }

    /**
     * Sum of squares: each block of {@link Blocks#SIZE} elements is summed in double (the vector
     * path squares in fp32 and adds runs of 16 vectors in fp32 before widening), and the block
     * sums are added in order, so the result does not depend on the thread count.
     */
    double sumOfSquares(Tensor x) {
        long n = x.numel();
        long blocks = (n + Blocks.SIZE - 1) / Blocks.SIZE;
        double[] partial = new double[(int) blocks];
        threads.parallelFor(blocks, 4, (b0, b1) -> {
            float[] buf = new float[Blocks.SIZE];
            for (long blk = b0; blk < b1; blk++) {
                long from = blk * Blocks.SIZE;
                int len = (int) Math.min(Blocks.SIZE, n - from);
                FloatRows.load(x, from, buf, 0, len);
                partial[(int) blk] = sumSquares(buf, len);
            }
        });
        double total = 0;
        for (double p : partial) {
            total += p;
        }
        return total;
    }

    private double sumSquares(float[] buf, int len) {
        double acc = 0;
        int i = 0;
        if (vector) {
            int run = 16 * S.length();
            for (int bound = S.loopBound(len); i < bound; ) {
                int end = Math.min(bound, i + run);
                FloatVector va = FloatVector.zero(S);
                for (; i < end; i += S.length()) {
                    FloatVector v = FloatVector.fromArray(S, buf, i);
                    va = v.fma(v, va);
                }
                acc += LaneMath.sum(va);
            }
        }
        for (; i < len; i++) {
            acc += (double) buf[i] * buf[i];
        }
        return acc;
    }

    boolean hasInfOrNan(Tensor x) {
        long n = x.numel();
        AtomicBoolean found = new AtomicBoolean();
        Blocks.run(threads, n, (from, len, buf, unused1, unused2) -> {
            if (found.get()) {
                return;
            }
            FloatRows.load(x, from, buf, 0, len);
            int i = 0;
            if (vector) {
                for (int bound = S.loopBound(len); i < bound; i += S.length()) {
                    if (!FloatVector.fromArray(S, buf, i).test(VectorOperators.IS_FINITE).allTrue()) {
                        found.set(true);
                        return;
                    }
                }
            }
            for (; i < len; i++) {
                if (!Float.isFinite(buf[i])) {
                    found.set(true);
                    return;
                }
            }
        });
        return found.get();
    }

    long countZeros(Tensor x) {
        LongAdder zeros = new LongAdder();
        Blocks.run(threads, x.numel(), (from, len, buf, unused1, unused2) -> {
            FloatRows.load(x, from, buf, 0, len);
            long count = 0;
            int i = 0;
            if (vector) {
                for (int bound = S.loopBound(len); i < bound; i += S.length()) {
                    count += FloatVector.fromArray(S, buf, i).compare(VectorOperators.EQ, 0f).trueCount();
                }
            }
            for (; i < len; i++) {
                count += buf[i] == 0f ? 1 : 0;
            }
            zeros.add(count);
        });
        return zeros.sum();
    }
}
