package org.megatronj.memory.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The inner loops every kernel shares, on {@code float[]} runs. Each takes a {@code vector}
 * flag: false runs the scalar loop, so tests exercise both paths in one JVM. Vector loops
 * finish the tail (the part past the last full vector) with the scalar loop.
 */
final class VectorMath {
    /**
     * The species of every vector kernel: {@code -Dmegatron.vector.bits} or the widest the CPU has.
     * It must be a static final constant: the JIT turns Vector API calls into SIMD instructions
     * only for a species it can see at compile time (a species read from an instance field makes
     * every vector op allocate).
     */
    static final VectorSpecies<Float> SPECIES = VectorWidth.scalar()
            ? FloatVector.SPECIES_PREFERRED : VectorWidth.speciesOf(VectorWidth.bits());
    private static final VectorSpecies<Float> S = SPECIES;

    private VectorMath() {
    }

    /** {@code sum_i a[aOff+i] * b[bOff+i]}. */
    static float dot(boolean vector, float[] a, int aOff, float[] b, int bOff, int n) {
        int i = 0;
        float acc = 0f;
        if (vector) {
            FloatVector va = FloatVector.zero(S);
            int bound = S.loopBound(n);
            for (; i < bound; i += S.length()) {
                va = FloatVector.fromArray(S, a, aOff + i).fma(FloatVector.fromArray(S, b, bOff + i), va);
            }
            acc = LaneMath.sum(va);
        }
        for (; i < n; i++) {
            acc += a[aOff + i] * b[bOff + i];
        }
        return acc;
    }

    /** {@code y[yOff+i] += alpha * x[xOff+i]}. */
    static void axpy(boolean vector, float alpha, float[] x, int xOff, float[] y, int yOff, int n) {
        int i = 0;
        if (vector) {
            FloatVector va = FloatVector.broadcast(S, alpha);
            int bound = S.loopBound(n);
            for (; i < bound; i += S.length()) {
                FloatVector.fromArray(S, x, xOff + i).fma(va, FloatVector.fromArray(S, y, yOff + i))
                        .intoArray(y, yOff + i);
            }
        }
        for (; i < n; i++) {
            y[yOff + i] += alpha * x[xOff + i];
        }
    }

    /** {@code x[off+i] *= alpha}. */
    static void scale(boolean vector, float[] x, int off, int n, float alpha) {
        int i = 0;
        if (vector) {
            int bound = S.loopBound(n);
            for (; i < bound; i += S.length()) {
                FloatVector.fromArray(S, x, off + i).mul(alpha).intoArray(x, off + i);
            }
        }
        for (; i < n; i++) {
            x[off + i] *= alpha;
        }
    }

    /** {@code out[i] = a[i] + b[i]} for i in [0, n). */
    static void add(boolean vector, float[] a, float[] b, float[] out, int n) {
        int i = 0;
        if (vector) {
            int bound = S.loopBound(n);
            for (; i < bound; i += S.length()) {
                FloatVector.fromArray(S, a, i).add(FloatVector.fromArray(S, b, i)).intoArray(out, i);
            }
        }
        for (; i < n; i++) {
            out[i] = a[i] + b[i];
        }
    }

    /** {@code sum_i x[off+i]}. */
    static float sum(boolean vector, float[] x, int off, int n) {
        int i = 0;
        float acc = 0f;
        if (vector) {
            FloatVector v = FloatVector.zero(S);
            int bound = S.loopBound(n);
            for (; i < bound; i += S.length()) {
                v = v.add(FloatVector.fromArray(S, x, off + i));
            }
            acc = LaneMath.sum(v);
        }
        for (; i < n; i++) {
            acc += x[off + i];
        }
        return acc;
    }

    /** {@code max_i x[off+i]}; -inf for n == 0. NaN propagates. */
    static float max(boolean vector, float[] x, int off, int n) {
        int i = 0;
        float m = Float.NEGATIVE_INFINITY;
        if (vector) {
            FloatVector v = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
            int bound = S.loopBound(n);
            for (; i < bound; i += S.length()) {
                v = v.max(FloatVector.fromArray(S, x, off + i));
            }
            m = v.reduceLanes(VectorOperators.MAX);
        }
        for (; i < n; i++) {
            m = Math.max(m, x[off + i]);
        }
        return m;
    }

    /**
     * {@code x[off+i] = exp(x[off+i] * scale - shift)} in place; returns their sum. Callers never
     * pass {@code shift = -inf} (fully masked rows are handled before), or every value is NaN.
     */
    static float expInPlace(boolean vector, float[] x, int off, int n, float scale, float shift) {
        int i = 0;
        float acc = 0f;
        if (vector) {
            FloatVector vs = FloatVector.broadcast(S, scale);
            FloatVector minusShift = FloatVector.broadcast(S, -shift);
            FloatVector va = FloatVector.zero(S);
            int bound = S.loopBound(n);
            for (; i < bound; i += S.length()) {
                FloatVector e = LaneMath.exp(FloatVector.fromArray(S, x, off + i).fma(vs, minusShift));
                e.intoArray(x, off + i);
                va = va.add(e);
            }
            acc = LaneMath.sum(va);
        }
        for (; i < n; i++) {
            float e = (float) Math.exp(x[off + i] * scale - shift);
            x[off + i] = e;
            acc += e;
        }
        return acc;
    }

    /** {@code sum_i exp(x[off+i] - shift)} without writing. */
    static float sumExp(boolean vector, float[] x, int off, int n, float shift) {
        int i = 0;
        float acc = 0f;
        if (vector) {
            FloatVector vm = FloatVector.broadcast(S, shift);
            FloatVector va = FloatVector.zero(S);
            int bound = S.loopBound(n);
            for (; i < bound; i += S.length()) {
                va = va.add(LaneMath.exp(FloatVector.fromArray(S, x, off + i).sub(vm)));
            }
            acc = LaneMath.sum(va);
        }
        for (; i < n; i++) {
            acc += (float) Math.exp(x[off + i] - shift);
        }
        return acc;
    }
}
