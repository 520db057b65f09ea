package org.megatronj.cli.evaluate;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Window counts, starts and masks checked against Megatron's _LMDataset run in Python on the same sizes. */
class LmWindowsTest {
    static int[] tokens(int n) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = 100 + i;
        }
        return t;
    }

    static void check(int n, int seq, Integer overlap, float[][] masks, int[] firsts) {
        LmWindows w = new LmWindows(tokens(n), seq, overlap, 0);
        assertEquals(masks.length, w.size());
        int[] in = new int[seq];
        int[] target = new int[seq];
        float[] mask = new float[seq];
        for (int i = 0; i < masks.length; i++) {
            w.window(i, in, target, mask);
            assertArrayEquals(masks[i], mask, "window " + i);
            assertEquals(firsts[i], in[0]);
            for (int t = 0; t < seq; t++) {
                if (mask[t] == 1f) {
                    assertEquals(in[t] + 1, target[t]);
                }
            }
        }
    }

    static float[] m(int... bits) {
        float[] out = new float[bits.length];
        for (int i = 0; i < bits.length; i++) {
            out[i] = bits[i];
        }
        return out;
    }

    @Test
    void disjointWindows() {
        check(20, 8, null, new float[][] {m(1, 1, 1, 1, 1, 1, 1, 1), m(1, 1, 1, 1, 1, 1, 1, 1), m(1, 1, 1, 0, 0, 0, 0, 0)},
                new int[] {100, 108, 116});
        check(9, 8, null, new float[][] {m(1, 1, 1, 1, 1, 1, 1, 1)}, new int[] {100});
    }

    @Test
    void overlappingWindows() {
        check(20, 8, 3, new float[][] {m(1, 1, 1, 1, 1, 1, 1, 1), m(0, 0, 0, 0, 0, 1, 1, 1), m(0, 0, 0, 0, 0, 1, 1, 1),
                        m(0, 0, 0, 0, 0, 1, 1, 1), m(0, 0, 0, 0, 0, 1, 1, 0), m(0, 0, 0, 0, 0, 0, 0, 0), m(0, 0, 0, 0, 0, 0, 0, 0)},
                new int[] {100, 103, 106, 109, 112, 115, 118});
        check(10, 8, 5, new float[][] {m(1, 1, 1, 1, 1, 1, 1, 1), m(0, 0, 0, 1, 0, 0, 0, 0)}, new int[] {100, 105});
        check(2, 8, 4, new float[][] {m(1, 0, 0, 0, 0, 0, 0, 0)}, new int[] {100});
    }

    @Test
    void overlapOutsideOneToSeqLengthIsRefused() {
        // A stride of 10 over windows of 8 would leave 2 tokens per window unscored yet counted in the loss.
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new LmWindows(tokens(40), 8, 10, 0));
        assertTrue(e.getMessage().contains("--overlapping-eval 10 must be in [1, --seq-length 8]"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new LmWindows(tokens(40), 8, 0, 0));
        assertEquals(5, new LmWindows(tokens(41), 8, 8, 0).size());
    }
}
