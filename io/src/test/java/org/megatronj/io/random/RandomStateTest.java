package org.megatronj.io.random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class RandomStateTest {

    @Test
    void firstOutputsOfSeed1234MatchNumpy() {
        // numpy.random.RandomState(1234).randint(0, 2**32, dtype=numpy.uint32)... = the raw MT19937 outputs
        long[] expected = {822569775L, 2137449171L, 2671936806L, 3512589365L, 1880026316L, 2629000564L, 3373089432L, 3312965625L};
        RandomState rng = new RandomState(1234);
        for (long e : expected) {
            assertEquals(e, rng.nextUnsigned32());
        }
    }

    @Test
    void shuffleOfTenMatchesNumpy() {
        int[] a = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
        new RandomState(1234).shuffle(a);
        assertArrayEquals(new int[] {7, 2, 9, 1, 0, 8, 4, 5, 6, 3}, a);
    }

    @Test
    void intShuffleAndLongShuffleConsumeTheSameDraws() {
        // 5000 elements: several of the int shuffle's look-ahead batches against the plain long shuffle
        int[] a = new int[5000];
        long[] b = new long[5000];
        for (int i = 0; i < a.length; i++) {
            a[i] = i;
            b[i] = i;
        }
        new RandomState(7).shuffle(a);
        new RandomState(7).shuffle(b, 0, b.length);
        for (int i = 0; i < a.length; i++) {
            assertEquals(a[i], b[i]);
        }
    }

    @Test
    void randomIntervalStaysInRangeAndZeroDrawsNothing() {
        RandomState r1 = new RandomState(99);
        RandomState r2 = new RandomState(99);
        assertEquals(0, r1.randomInterval(0));
        assertEquals(r2.nextInt32(), r1.nextInt32(), "randomInterval(0) must not consume a draw");
        for (long max : new long[] {1, 2, 3, 5, 1000, 0xffffffffL, 0x1_0000_0000L, Long.MAX_VALUE}) {
            for (int i = 0; i < 200; i++) {
                long v = r1.randomInterval(max);
                assertTrue(v >= 0 && v <= max, v + " outside [0, " + max + "]");
            }
        }
    }

    @Test
    void rejectsSeedsNumpyRejects() {
        assertThrows(IllegalArgumentException.class, () -> new RandomState(-1));
        assertThrows(IllegalArgumentException.class, () -> new RandomState(1L << 32));
        new RandomState(0xffffffffL).nextInt32();
    }
}
