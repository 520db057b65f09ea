package org.megatronj.memory.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Lane reductions and transcendental functions on vectors that give the same bits in every
 * execution mode of the JVM: interpreter, C1 and C2.
 *
 * <p>Why not the Vector API's own: {@code reduceLanes(ADD)} leaves the summation order
 * unspecified; the Java fallback (interpreter, C1) adds lanes 0, 1, 2, ... in sequence while the
 * C2 intrinsic adds them as a tree, so a sum changes in its last bits once a kernel is compiled.
 * {@code lanewise(EXP/TANH/...)} calls {@code Math.exp} per lane in the fallback but a
 * short-vector math library (SVML) in compiled code, which rounds differently. Either way two
 * identical training runs drift apart from the first step, and a resumed run never matches an
 * uninterrupted one.
 *
 * <p>Everything here is built only from operations IEEE 754 rounds exactly (add, mul, fma, div,
 * min/max, compares, blends, integer and bit operations) combined in a fixed order, so the
 * interpreter and the JIT compute the same function. Accuracy: {@link #exp} within 1 ulp of the
 * correctly rounded result for normal results (Cephes {@code expf}), {@link #tanh} within 3 ulp.
 */
final class LaneMath {
    private static final VectorSpecies<Float> S = VectorMath.SPECIES;
    /**
     * The int species of S's shape. Bit casts name it (and S) as constants: {@code viewAsFloatingLanes()}
     * derives its target species at run time, which C2 did not always fold, and the cast then ran in
     * the Vector API's Java fallback inside hot loops (gelu's backward at a third of its speed).
     */
    private static final VectorSpecies<Integer> IS = VectorSpecies.of(int.class, S.vectorShape());

    /** Butterfly shuffles {@code i -> i ^ h}; null where the species has no such step. */
    private static final VectorShuffle<Float> XOR8 = butterfly(8);
    private static final VectorShuffle<Float> XOR4 = butterfly(4);
    private static final VectorShuffle<Float> XOR2 = butterfly(2);
    private static final VectorShuffle<Float> XOR1 = butterfly(1);

    // exp: x = n ln2 + r, |r| <= ln2 / 2; exp(x) = 2^n (1 + r + r^2 P(r)) (Cephes expf). Its constants are
    // vectors made once: each scalar operand (x.max(-104f), p.fma(r, c)) has C2 parse a broadcast, and in
    // expInPlace those nodes took C2 past its inlining cutoff (NodeCountInliningCutoff) before the final
    // lane sum, which was then called with its vector boxed, allocating on every call.
    private static final FloatVector EXP_LO = FloatVector.broadcast(S, -104f);  // exp(-104) < 2^-150: rounds to 0
    private static final FloatVector EXP_HI = FloatVector.broadcast(S, 89f);    // exp(89) > Float.MAX_VALUE: +inf
    private static final FloatVector LOG2E = FloatVector.broadcast(S, 1.44269504088896341f);
    /** ln 2 = LN2_HI + LN2_LO with few bits in LN2_HI (n LN2_HI is exact); these are their negatives. */
    private static final FloatVector MINUS_LN2_HI = FloatVector.broadcast(S, -0.693359375f);
    private static final FloatVector MINUS_LN2_LO = FloatVector.broadcast(S, 2.12194440e-4f);
    /** Cephes expf's P(r), highest power first. */
    private static final FloatVector P0 = FloatVector.broadcast(S, 1.9875691500e-4f);
    private static final FloatVector P1 = FloatVector.broadcast(S, 1.3981999507e-3f);
    private static final FloatVector P2 = FloatVector.broadcast(S, 8.3334519073e-3f);
    private static final FloatVector P3 = FloatVector.broadcast(S, 4.1665795894e-2f);
    private static final FloatVector P4 = FloatVector.broadcast(S, 1.6666665459e-1f);
    private static final FloatVector P5 = FloatVector.broadcast(S, 5.0000001201e-1f);
    private static final FloatVector ONE = FloatVector.broadcast(S, 1f);
    private static final FloatVector MINUS_100 = FloatVector.broadcast(S, -100f);
    private static final FloatVector PLUS_100 = FloatVector.broadcast(S, 100f);
    /** 1.5 * 2^23: adding it rounds to an integer, whose value then sits in the low mantissa bits. */
    private static final FloatVector ROUND_MAGIC = FloatVector.broadcast(S, 12582912f);
    /** 1.5 * 2^23 + 127: see {@link #exp}. */
    private static final FloatVector EXPONENT_MAGIC = FloatVector.broadcast(S, 12583039f);
    private static final IntVector TWO_POW_23 = IntVector.broadcast(IS, 1 << 23);

    // tanh below 0.625: x + x^3 Q(x^2) (Cephes tanhf); above: 1 - 2 / (exp(2|x|) + 1)
    private static final float TANH_SMALL = 0.625f;

    private LaneMath() {
    }

    private static VectorShuffle<Float> butterfly(int h) {
        return S.length() > h ? VectorShuffle.fromOp(S, i -> i ^ h) : null;
    }

    /**
     * The sum of the lanes of {@code v}, always added as the same tree (lane i with lane i ^ 8,
     * then ^ 4, ^ 2, ^ 1). {@code S.length()} is a constant, so the JIT drops the unused steps.
     */
    static float sum(FloatVector v) {
        int n = S.length();
        if (n > 8) {
            v = v.add(v.rearrange(XOR8));
        }
        if (n > 4) {
            v = v.add(v.rearrange(XOR4));
        }
        if (n > 2) {
            v = v.add(v.rearrange(XOR2));
        }
        if (n > 1) {
            v = v.add(v.rearrange(XOR1));
        }
        return v.lane(0);
    }

    /**
     * {@code e^x} per lane; +inf above 88.72, 0 below -103.97 (subnormals in between), NaN stays NaN.
     *
     * <p>One method with no helpers of ours that take or return vectors: C2 inlines the Vector API's own
     * methods whatever its budget, but ours only while a compilation has nodes to spare, and in large kernels
     * that inline exp (attention's tiles) a helper it left out was called with its vectors boxed, allocating
     * on every call.
     */
    static FloatVector exp(FloatVector x) {
        // x clamped to [EXP_LO, EXP_HI] by compares and blends (a NaN passes and is put back at the end): Java's
        // max and min, with their NaN and signed-zero rules, take C2 five AVX2 instructions each
        FloatVector xc = x.blend(EXP_LO, x.lt(EXP_LO)).blend(EXP_HI, x.compare(VectorOperators.GT, EXP_HI));
        FloatVector t = xc.fma(LOG2E, ROUND_MAGIC);   // round(x log2 e) + magic
        FloatVector n = t.sub(ROUND_MAGIC);
        FloatVector r = n.fma(MINUS_LN2_HI, xc);
        r = n.fma(MINUS_LN2_LO, r);
        FloatVector p = r.fma(P0, P1);
        p = p.fma(r, P2);
        p = p.fma(r, P3);
        p = p.fma(r, P4);
        p = p.fma(r, P5);
        FloatVector y = p.fma(r.mul(r), r).add(ONE);
        // 2^n as two factors 2^n1 and 2^(n - n1), n1 = n clamped to [-100, 100]: for n in [-150, 128] both are
        // normal floats and y 2^n1 is exact, so the second product is the only rounding, whatever the split.
        // Clamp and split are float operations on the integer-valued n (exact); integer lanes only build
        // the exponent bits. (Few integer operations and no shifts: inside large compiled kernels C2 ran out
        // of its inlining budget on them and left them to the Vector API's Java fallback.)
        FloatVector n1 = n.blend(MINUS_100, n.lt(MINUS_100)).blend(PLUS_100, n.compare(VectorOperators.GT, PLUS_100));
        // 2^e for integer-valued e in [-126, 127]: e + 127 lands in the low mantissa bits of e + 127 + 1.5 * 2^23,
        // and an integer multiply by 2^23 moves it into the exponent field while the magic's own bits overflow away
        IntVector e1 = (IntVector) n1.add(EXPONENT_MAGIC).reinterpretShape(IS, 0);
        IntVector e2 = (IntVector) n.sub(n1).add(EXPONENT_MAGIC).reinterpretShape(IS, 0);
        FloatVector y1 = y.mul((FloatVector) e1.mul(TWO_POW_23).reinterpretShape(S, 0));   // exact: a normal float
        FloatVector result = y1.mul((FloatVector) e2.mul(TWO_POW_23).reinterpretShape(S, 0)); // the only rounding
        return result.blend(x, x.test(VectorOperators.IS_NAN));
    }

    /** {@code p * x + c}, rounded once. */
    private static FloatVector horner(FloatVector p, FloatVector x, float c) {
        return p.fma(x, p.broadcast(c));
    }

    /** {@code tanh(x)} per lane; +-1 for large |x|, NaN stays NaN, the sign of zero is kept. */
    static FloatVector tanh(FloatVector x) {
        FloatVector a = x.abs();
        FloatVector e = exp(a.add(a));
        FloatVector large = e.add(1f);
        large = large.broadcast(2f).div(large).neg().add(1f);
        large = large.blend(large.neg(), x.compare(VectorOperators.LT, 0f));
        FloatVector z = x.mul(x);
        FloatVector q = z.fma(-5.70498872745e-3f, 2.06390887954e-2f);
        q = horner(q, z, -5.37397155531e-2f);
        q = horner(q, z, 1.33314422036e-1f);
        q = horner(q, z, -3.33332819422e-1f);
        FloatVector small = q.mul(z).fma(x, x).blend(x, x.eq(0f)); // tanh(-0) = -0
        VectorMask<Float> isSmall = a.compare(VectorOperators.LT, TANH_SMALL);
        return large.blend(small, isSmall);
    }
}
