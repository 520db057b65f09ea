package org.megatronj.memory.cpu;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Philox4x32-10 against the known-answer vectors of Random123 ({@code tests/kat_vectors}), and the element mapping. */
class PhiloxTest {

    private static int[] philox(int c0, int c1, int c2, int c3, int k0, int k1) {
        int[] out = new int[4];
        Philox.philox4x32x10(c0, c1, c2, c3, k0, k1, out);
        return out;
    }

    @Test
    void knownAnswerVectors() {
        assertArrayEquals(new int[] {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}, philox(0, 0, 0, 0, 0, 0));
        assertArrayEquals(new int[] {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}, philox(-1, -1, -1, -1, -1, -1));
        assertArrayEquals(new int[] {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
                philox(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0));
    }

    @Test
    void elementMapsToCounterBlockAndLane() {
        long seed = 0x1234_5678_9abc_def0L;
        long e = (5L << 32) * 4 + 4 * 7 + 2; // block (7, 5), lane 2
        int[] r = philox(7, 5, 0, 0, 0x9abcdef0, 0x12345678);
        assertEquals((r[2] >>> 8) * 0x1.0p-24f, Philox.uniform(seed, e));
        float[] x = {1, 2, 3, 4, 5, 6, 7, 8, 9};
        Philox.applyDropout(seed, e - 3, 1, x, 9, 0.5f, 2f); // elements e-2 .. e+6: crosses two group boundaries
        for (int i = 0; i < 9; i++) {
            boolean keep = Philox.uniform(seed, e - 2 + i) >= 0.5f;
            assertEquals(keep ? 2f * (i + 1) : 0f, x[i], "element " + i);
        }
    }

    @Test
    void uniformsLookUniform() {
        int n = 1 << 16;
        double sum = 0;
        int[] bins = new int[16];
        for (int i = 0; i < n; i++) {
            float u = Philox.uniform(42, i);
            assertTrue(u >= 0f && u < 1f);
            sum += u;
            bins[(int) (u * 16)]++;
        }
        assertEquals(0.5, sum / n, 0.01);
        for (int b : bins) {
            assertEquals(n / 16.0, b, 5 * Math.sqrt(n / 16.0));
        }
    }

    /** The vector path's mask and dropout equal the scalar path's bit for bit: unaligned starts, tails, counter carries. */
    @Test
    void vectorPathMatchesScalarBitForBit() {
        java.util.Random rnd = new java.util.Random(17);
        long[] bases = {0L, 1L, 2L, 3L, 12345L, (0xffffffffL << 2) - 37, (0xffffffffL << 2) - 64 * 4 + 1,
                -1L, -200L, Long.MAX_VALUE - 100, 1L << 40};
        float[] ps = {0.1f, 0.5f, 0.3f, 0f, 1f, 0.999f, 1e-7f, Float.NaN};
        int cases = 0;
        for (long base : bases) {
            for (int t = 0; t < 60; t++) {
                long seed = t % 3 == 0 ? rnd.nextLong() : t;
                long e = base + rnd.nextInt(9);
                int n = t < 20 ? t : rnd.nextInt(600);
                int off = rnd.nextInt(5);
                float p = ps[t % ps.length];
                float scale = 1f / (1f - p);
                float[] zs = new float[off + n + 3];
                float[] zv = new float[off + n + 3];
                java.util.Arrays.fill(zs, -7f);
                java.util.Arrays.fill(zv, -7f);
                Philox.mask(false, seed, e, zs, off, n, p, scale);
                Philox.mask(true, seed, e, zv, off, n, p, scale);
                assertBits(zs, zv, "mask seed=" + seed + " e=" + e + " n=" + n + " p=" + p);
                for (int i = 0; i < n; i++) { // and the definition
                    assertEquals(Float.floatToRawIntBits(Philox.uniform(seed, e + i) >= p ? scale : 0f),
                            Float.floatToRawIntBits(zv[off + i]), "element " + i);
                }
                float[] xs = new float[n];
                for (int i = 0; i < n; i++) {
                    xs[i] = (float) rnd.nextGaussian();
                }
                if (n > 0) {
                    xs[n / 2] = Float.NaN;
                }
                float[] xv = xs.clone();
                long from = rnd.nextInt(3);
                Philox.applyDropout(false, seed, e - from, from, xs, n, p, scale);
                Philox.applyDropout(true, seed, e - from, from, xv, n, p, scale);
                assertBits(xs, xv, "dropout seed=" + seed + " e=" + e + " n=" + n + " p=" + p);
                cases++;
            }
        }
        assertTrue(cases > 600);
        // and once the JIT has compiled both paths (the vector ops then run as SIMD instructions)
        float[] zs = new float[300];
        float[] zv = new float[300];
        for (int t = 0; t < 5000; t++) {
            long e = (t * 0x9E3779B97F4A7C15L) >>> 20;
            int n = 200 + t % 97;
            Philox.mask(false, t, e, zs, 1, n, 0.1f, 1f / 0.9f);
            Philox.mask(true, t, e, zv, 1, n, 0.1f, 1f / 0.9f);
            if (!java.util.Arrays.equals(zs, zv)) {
                assertBits(zs, zv, "compiled mask t=" + t);
            }
        }
    }

    private static void assertBits(float[] expected, float[] actual, String what) {
        for (int i = 0; i < expected.length; i++) {
            assertEquals(Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(actual[i]), what + " index " + i);
        }
    }
}
