package org.megatronj.memory.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link LaneMath} is accurate, handles the special values, and gives the same bits before and
 * after the JIT compiles it (what {@code reduceLanes(ADD)} and {@code lanewise(EXP)} do not).
 */
class LaneMathTest {
    private static final VectorSpecies<Float> S = VectorMath.SPECIES;

    private static float[] apply(java.util.function.UnaryOperator<FloatVector> f, float[] x) {
        float[] out = new float[x.length];
        for (int i = 0; i < x.length; i += S.length()) {
            f.apply(FloatVector.fromArray(S, x, i)).intoArray(out, i);
        }
        return out;
    }

    private static float[] inputs(Random rnd, int vectors, float lo, float hi) {
        float[] x = new float[vectors * S.length()];
        for (int i = 0; i < x.length; i++) {
            x[i] = lo + (hi - lo) * rnd.nextFloat();
        }
        return x;
    }

    private static double ulpError(float actual, double expected) {
        return Math.abs(actual - expected) / Math.ulp((float) expected);
    }

    @Test
    void expIsWithinOneUlpOverTheNormalRange() {
        float[] x = inputs(new Random(1), 4096, -87f, 88.7f);
        float[] y = apply(LaneMath::exp, x);
        double worst = 0;
        for (int i = 0; i < x.length; i++) {
            worst = Math.max(worst, ulpError(y[i], Math.exp(x[i])));
        }
        assertTrue(worst <= 1.0, "exp worst error " + worst + " ulp");
    }

    @Test
    void tanhIsWithinThreeUlp() {
        Random rnd = new Random(2);
        float[] x = inputs(rnd, 4096, -10f, 10f);
        float[] small = inputs(rnd, 1024, -1e-3f, 1e-3f);
        for (float[] xs : new float[][] {x, small}) {
            float[] y = apply(LaneMath::tanh, xs);
            double worst = 0;
            for (int i = 0; i < xs.length; i++) {
                worst = Math.max(worst, ulpError(y[i], Math.tanh(xs[i])));
            }
            assertTrue(worst <= 3.0, "tanh worst error " + worst + " ulp");
        }
    }

    @Test
    void specialValues() {
        float[] x = new float[S.length()];
        float[] cases = {Float.NEGATIVE_INFINITY, Float.POSITIVE_INFINITY, Float.NaN, 0f, -0f, 89f, -104f, -95f};
        for (float c : cases) {
            java.util.Arrays.fill(x, c);
            float e = apply(LaneMath::exp, x)[0];
            float t = apply(LaneMath::tanh, x)[0];
            if (Float.isNaN(c)) {
                assertTrue(Float.isNaN(e) && Float.isNaN(t), "NaN in, NaN out");
                continue;
            }
            double exact = Math.exp(c);
            if (exact < Float.MIN_NORMAL && exact > 0) { // subnormal results: within one subnormal step
                assertEquals(exact, e, Float.MIN_VALUE, "exp(" + c + ")");
            } else {
                assertEquals((float) exact, e, "exp(" + c + ")");
            }
            assertEquals(Float.floatToRawIntBits((float) Math.tanh(c)), Float.floatToRawIntBits(t), "tanh(" + c + ")");
        }
    }

    @Test
    void sumAddsLanesAsTheDocumentedTree() {
        Random rnd = new Random(3);
        float[] x = new float[S.length()];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rnd.nextGaussian() * (i % 3 == 0 ? 1000f : 1f);
        }
        assertEquals(Float.floatToRawIntBits(butterflySum(x)),
                Float.floatToRawIntBits(LaneMath.sum(FloatVector.fromArray(S, x, 0))));
    }

    /** Lane 0 of the butterfly: lane i meets lane i ^ h for h = n/2, ..., 1. */
    private static float butterflySum(float[] lanes) {
        float[] v = lanes.clone();
        for (int h = v.length / 2; h >= 1; h /= 2) {
            float[] next = new float[v.length];
            for (int i = 0; i < v.length; i++) {
                next[i] = v[i] + v[i ^ h];
            }
            v = next;
        }
        return v[0];
    }

    @Test
    void sameBitsBeforeAndAfterJitCompilation() {
        Random rnd = new Random(4);
        float[] x = inputs(rnd, 8, -20f, 20f);
        float[] exp0 = apply(LaneMath::exp, x);
        float[] tanh0 = apply(LaneMath::tanh, x);
        float sum0 = LaneMath.sum(FloatVector.fromArray(S, x, 0));
        float[] w = inputs(rnd, 1, -5f, 5f);
        float sink = 0;
        for (int i = 0; i < 30_000; i++) {
            w[i % w.length] += 1e-3f;
            FloatVector v = FloatVector.fromArray(S, w, 0);
            sink += LaneMath.sum(LaneMath.exp(v)) + LaneMath.sum(LaneMath.tanh(v));
        }
        assertTrue(Float.isFinite(sink));
        DeterminismAssertions.assertSameBits("exp", exp0, apply(LaneMath::exp, x));
        DeterminismAssertions.assertSameBits("tanh", tanh0, apply(LaneMath::tanh, x));
        assertEquals(Float.floatToRawIntBits(sum0), Float.floatToRawIntBits(LaneMath.sum(FloatVector.fromArray(S, x, 0))));
        assertEquals(Float.floatToRawIntBits(butterflySum(java.util.Arrays.copyOf(x, S.length()))), Float.floatToRawIntBits(sum0));
    }
}
