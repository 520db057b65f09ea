package org.megatronj.io.random;

/**
 * NumPy's {@code numpy.random.default_rng(seed)}: a {@code PCG64} bit generator seeded through
 * {@code SeedSequence}, with the bounded 32-bit integer draw behind
 * {@code Generator.integers(low, high, size, dtype=numpy.int32)}. Megatron's mock GPT data takes its
 * sequence lengths from exactly that call, so the same numbers, bit for bit, make the same samples.
 *
 * <ul>
 *   <li>{@code SeedSequence(seed).generate_state(4, uint64)}: the entropy as 32-bit words (low first),
 *       hashed into a pool of 4 words and mixed; the state words are drawn from the pool with a second
 *       hash (numpy/random/bit_generator.pyx).</li>
 *   <li>PCG64 (pcg64.h): 128-bit LCG with PCG's default multiplier, XSL-RR output; seeded with
 *       {@code state = 0; inc = seq << 1 | 1; step; state += initstate; step}.</li>
 *   <li>32-bit draws halve a 64-bit draw, low half first, keeping the high half for the next call.</li>
 *   <li>Bounded draws: Lemire's multiply-shift with rejection (distributions.c
 *       {@code buffered_bounded_lemire_uint32}), NumPy's default (not the masked method).</li>
 * </ul>
 * Not thread-safe.
 */
public final class Pcg64 {
    private static final int INIT_A = 0x43b0d7e5;
    private static final int MULT_A = 0x931e8875;
    private static final int INIT_B = 0x8b51f9dd;
    private static final int MULT_B = 0x58f38ded;
    private static final int MIX_MULT_L = 0xca01f9dd;
    private static final int MIX_MULT_R = 0x4973f715;
    private static final int POOL_SIZE = 4;

    // PCG's default 128-bit multiplier 2549297995355413924 * 2^64 + 4865540595714422341
    private static final long MULT_HI = 2549297995355413924L;
    private static final long MULT_LO = 4865540595714422341L;

    private long stateHi;
    private long stateLo;
    private final long incHi;
    private final long incLo;
    private boolean hasUint32;
    private int uint32;

    /** {@code default_rng(seed)} for a non-negative integer seed. */
    public Pcg64(long seed) {
        if (seed < 0) {
            throw new IllegalArgumentException("SeedSequence needs a non-negative seed, got " + seed);
        }
        long[] s = seedSequenceState(seed, 4);
        incHi = (s[2] << 1) | (s[3] >>> 63);
        incLo = (s[3] << 1) | 1;
        step();
        long lo = stateLo + s[1];
        stateHi = stateHi + s[0] + (Long.compareUnsigned(lo, stateLo) < 0 ? 1 : 0);
        stateLo = lo;
        step();
    }

    /** {@code SeedSequence(entropy).generate_state(words, numpy.uint64)}. */
    static long[] seedSequenceState(long entropy, int words) {
        int[] ent = entropy >>> 32 == 0 ? new int[] {(int) entropy} : new int[] {(int) entropy, (int) (entropy >>> 32)};
        int[] hashConst = {INIT_A};
        int[] pool = new int[POOL_SIZE];
        for (int i = 0; i < POOL_SIZE; i++) {
            pool[i] = hashMix(i < ent.length ? ent[i] : 0, hashConst);
        }
        for (int src = 0; src < POOL_SIZE; src++) {
            for (int dst = 0; dst < POOL_SIZE; dst++) {
                if (src != dst) {
                    pool[dst] = mix(pool[dst], hashMix(pool[src], hashConst));
                }
            }
        }
        // a seed has at most 2 words, never more than the pool: no extra entropy to fold in
        int hb = INIT_B;
        long[] out = new long[words];
        for (int i = 0; i < 2 * words; i++) {
            int d = pool[i % POOL_SIZE] ^ hb;
            hb *= MULT_B;
            d *= hb;
            d ^= d >>> 16;
            out[i / 2] |= (d & 0xffffffffL) << (32 * (i % 2));
        }
        return out;
    }

    private static int hashMix(int value, int[] hashConst) {
        value ^= hashConst[0];
        hashConst[0] *= MULT_A;
        value *= hashConst[0];
        return value ^ (value >>> 16);
    }

    private static int mix(int x, int y) {
        int r = MIX_MULT_L * x - MIX_MULT_R * y;
        return r ^ (r >>> 16);
    }

    private void step() {
        long lo = stateLo * MULT_LO;
        long hi = Math.unsignedMultiplyHigh(stateLo, MULT_LO) + stateLo * MULT_HI + stateHi * MULT_LO;
        long sum = lo + incLo;
        stateHi = hi + incHi + (Long.compareUnsigned(sum, lo) < 0 ? 1 : 0);
        stateLo = sum;
    }

    /** The next 64 random bits ({@code next_uint64}). */
    public long nextLong() {
        step();
        return Long.rotateRight(stateHi ^ stateLo, (int) (stateHi >>> 58));
    }

    /** The next 32 random bits ({@code next_uint32}), as an int holding the unsigned value. */
    public int nextInt() {
        if (hasUint32) {
            hasUint32 = false;
            return uint32;
        }
        long n = nextLong();
        hasUint32 = true;
        uint32 = (int) (n >>> 32);
        return (int) n;
    }

    /** {@code integers(low, high, size, dtype=numpy.int32)}: {@code size} draws from {@code [low, high)}. */
    public int[] integers(int low, int high, int size) {
        if (high <= low) {
            throw new IllegalArgumentException("integers needs low < high, got low=" + low + ", high=" + high);
        }
        long range = (long) high - 1 - low;
        int[] out = new int[size];
        for (int i = 0; i < size; i++) {
            out[i] = (int) (low + bounded(range));
        }
        return out;
    }

    /** A draw from {@code [0, range]} as NumPy's {@code random_bounded_uint32_fill} makes it. */
    private long bounded(long range) {
        if (range == 0) {
            return 0;   // NumPy draws nothing for a one-value range
        }
        if (range == 0xffffffffL) {
            return nextInt() & 0xffffffffL;
        }
        long exclusive = range + 1;
        long m = (nextInt() & 0xffffffffL) * exclusive;
        long leftover = m & 0xffffffffL;
        if (leftover < exclusive) {
            long threshold = ((1L << 32) - exclusive) % exclusive;
            while (leftover < threshold) {
                m = (nextInt() & 0xffffffffL) * exclusive;
                leftover = m & 0xffffffffL;
            }
        }
        return m >>> 32;
    }
}
