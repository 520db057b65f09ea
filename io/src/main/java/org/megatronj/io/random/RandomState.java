package org.megatronj.io.random;

/**
 * NumPy's legacy {@code numpy.random.RandomState}: the MT19937 generator with its classic integer
 * seeding ({@code init_genrand}) and the draws Megatron's dataset code uses — {@code shuffle} of a 1-D
 * array and the bounded integer behind it. Same seed, same calls, same numbers as NumPy, bit for bit,
 * so that index files built here equal the ones Megatron-LM builds.
 *
 * <p>Not thread-safe: one instance per split dataset, used in a fixed order.
 */
public final class RandomState {
    private static final int N = 624;
    private static final int M = 397;
    private static final int MATRIX_A = 0x9908b0df;
    private static final int UPPER_MASK = 0x80000000;
    private static final int LOWER_MASK = 0x7fffffff;

    private static final int SHUFFLE_BATCH = 1024;

    private final int[] mt = new int[N];
    private int position;

    /** {@code RandomState(seed)}; NumPy accepts seeds in [0, 2^32), so do we. */
    public RandomState(long seed) {
        if (seed < 0 || seed > 0xffffffffL) {
            throw new IllegalArgumentException("seed must be between 0 and 2**32 - 1, got " + seed);
        }
        int s = (int) seed;
        for (int i = 0; i < N; i++) {
            mt[i] = s;
            s = 1812433253 * (s ^ (s >>> 30)) + i + 1;
        }
        position = N;
    }

    /** The next tempered 32-bit output, as an int holding the unsigned bits. */
    public int nextInt32() {
        if (position == N) {
            twist();
        }
        int y = mt[position++];
        y ^= y >>> 11;
        y ^= (y << 7) & 0x9d2c5680;
        y ^= (y << 15) & 0xefc60000;
        y ^= y >>> 18;
        return y;
    }

    /** The next output as an unsigned value in [0, 2^32). */
    public long nextUnsigned32() {
        return nextInt32() & 0xffffffffL;
    }

    /** {@code (next32 << 32) | next32}, NumPy's 64-bit draw from MT19937. */
    public long nextLong64() {
        long high = nextUnsigned32();
        return (high << 32) | nextUnsigned32();
    }

    /**
     * A uniform integer in [0, max] drawn the way NumPy's {@code random_interval} does: mask the
     * draws to the smallest all-ones bit pattern covering {@code max} and reject values above it.
     * 32-bit draws when {@code max} fits in 32 bits, 64-bit draws otherwise; {@code max == 0}
     * returns 0 without drawing.
     */
    public long randomInterval(long max) {
        if (max < 0) {
            throw new IllegalArgumentException("max must be >= 0, got " + max);
        }
        if (max == 0) {
            return 0;
        }
        long mask = max;
        mask |= mask >>> 1;
        mask |= mask >>> 2;
        mask |= mask >>> 4;
        mask |= mask >>> 8;
        mask |= mask >>> 16;
        mask |= mask >>> 32;
        long value;
        if (max <= 0xffffffffL) {
            while ((value = nextUnsigned32() & mask) > max) {
                // rejected: draw again
            }
        } else {
            while ((value = nextLong64() & mask) > max) {
                // rejected: draw again
            }
        }
        return value;
    }

    /**
     * In-place {@code shuffle} of {@code a[from, from + length)} as NumPy shuffles a 1-D array.
     * The swap targets are drawn a batch ahead of the swaps: same draws, same swaps in the same
     * order, but the cache misses of a large array's random swaps overlap instead of queueing
     * behind the generator.
     */
    public void shuffle(int[] a, int from, int length) {
        int[] targets = new int[Math.min(SHUFFLE_BATCH, Math.max(length, 1))];
        for (int i = length - 1; i > 0; ) {
            int count = Math.min(targets.length, i);
            for (int k = 0; k < count; k++) {
                targets[k] = (int) randomInterval(i - k);
            }
            for (int k = 0; k < count; k++, i--) {
                int j = from + targets[k];
                int t = a[from + i];
                a[from + i] = a[j];
                a[j] = t;
            }
        }
    }

    /** In-place {@code shuffle} of a whole 1-D array. */
    public void shuffle(int[] a) {
        shuffle(a, 0, a.length);
    }

    /** In-place {@code shuffle} of {@code a[from, from + length)} (int64 arrays). */
    public void shuffle(long[] a, int from, int length) {
        for (int i = length - 1; i > 0; i--) {
            int j = (int) randomInterval(i);
            long t = a[from + i];
            a[from + i] = a[from + j];
            a[from + j] = t;
        }
    }

    private void twist() {
        int[] s = mt;
        int i = 0;
        for (; i < N - M; i++) {
            int y = (s[i] & UPPER_MASK) | (s[i + 1] & LOWER_MASK);
            s[i] = s[i + M] ^ (y >>> 1) ^ ((y & 1) == 0 ? 0 : MATRIX_A);
        }
        for (; i < N - 1; i++) {
            int y = (s[i] & UPPER_MASK) | (s[i + 1] & LOWER_MASK);
            s[i] = s[i + (M - N)] ^ (y >>> 1) ^ ((y & 1) == 0 ? 0 : MATRIX_A);
        }
        int y = (s[N - 1] & UPPER_MASK) | (s[0] & LOWER_MASK);
        s[N - 1] = s[M - 1] ^ (y >>> 1) ^ ((y & 1) == 0 ? 0 : MATRIX_A);
        position = 0;
    }
}
