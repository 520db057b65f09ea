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
}
