package org.megatronj.memory.cpu;

/**
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11; the
 * generator behind cuRAND's {@code curandStatePhilox4_32_10_t}) and the dropout mask built on
 * it. The mask is a pure function of {@code (seed, offset + i)}, so a recomputed forward, a
 * resumed run and the CUDA kernels produce the same mask. The exact definition, which the
 * CUDA kernel mirrors bit for bit:
 *
 * <pre>
 *   key     = (k0, k1) = (low 32 bits of seed, high 32 bits of seed)
 *   e       = offset + i                      (64-bit, wrapping; i = flat element index)
 *   counter = (c0, c1, c2, c3) = (low 32 of e/4, high 32 of e/4, 0, 0)   (e/4 unsigned)
 *   (r0, r1, r2, r3) = philox4x32_10(counter, key)
 *   r       = r[e % 4]                         (the lane of this element)
 *   u       = (r >>> 8) * 2^-24                (float in [0, 1), exact)
 *   keep    = u >= p                           (float comparison; drop probability p)
 *   y       = keep ? x * (1f / (1f - p)) : 0   (the scale computed once in float)
 *
 *   philox4x32_10: 10 rounds; before each round but the first, k0 += 0x9E3779B9 and
 *   k1 += 0xBB67AE85 (mod 2^32). One round, with M0 = 0xD2511F53 and M1 = 0xCD9E8D57:
 *     (hi0, lo0) = M0 * c0   (64-bit product)
 *     (hi1, lo1) = M1 * c2
 *     (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
 * </pre>
 *
 * The four lanes of a counter serve four consecutive elements, so a kernel that handles
 * elements in groups of four (aligned to e % 4 == 0) runs Philox once per group.
 */
public final class Philox {
    static final int M0 = 0xD2511F53;
    static final int M1 = 0xCD9E8D57;
    static final int W0 = 0x9E3779B9;
    static final int W1 = 0xBB67AE85;

    private Philox() {
    }

    /** The four 32-bit outputs of Philox4x32-10 for a counter and key, written to {@code out}. */
    public static void philox4x32x10(int c0, int c1, int c2, int c3, int k0, int k1, int[] out) {
        for (int round = 0; round < 10; round++) {
            if (round > 0) {
                k0 += W0;
                k1 += W1;
            }
            long p0 = (M0 & 0xffffffffL) * (c0 & 0xffffffffL);
            long p1 = (M1 & 0xffffffffL) * (c2 & 0xffffffffL);
            int hi0 = (int) (p0 >>> 32);
            int lo0 = (int) p0;
            int hi1 = (int) (p1 >>> 32);
            int lo1 = (int) p1;
            int n0 = hi1 ^ c1 ^ k0;
            int n2 = hi0 ^ c3 ^ k1;
            c0 = n0;
            c1 = lo1;
            c2 = n2;
            c3 = lo0;
        }
        out[0] = c0;
        out[1] = c1;
        out[2] = c2;
        out[3] = c3;
    }

    /** The uniform in [0, 1) of element {@code e = offset + i} (see the class comment). */
    public static float uniform(long seed, long e) {
        int[] r = new int[4];
        long block = e >>> 2;
        philox4x32x10((int) block, (int) (block >>> 32), 0, 0, (int) seed, (int) (seed >>> 32), r);
        return toUniform(r[(int) (e & 3)]);
    }

    static float toUniform(int r) {
        return (r >>> 8) * 0x1.0p-24f;
    }

    /**
     * {@code x[i] = keep ? x[i] * scale : 0} for {@code i < n}, where element {@code i} is element
     * {@code offset + from + i} of the stream: one Philox call serves each aligned group of four.
     */
    static void applyDropout(long seed, long offset, long from, float[] x, int n, float p, float scale) {
        int k0 = (int) seed;
        int k1 = (int) (seed >>> 32);
        int[] r = new int[4];
        long e = offset + from;
        int i = 0;
        while (i < n) {
            long block = e >>> 2;
            int lane = (int) (e & 3);
            int count = Math.min(4 - lane, n - i);
            philox4x32x10((int) block, (int) (block >>> 32), 0, 0, k0, k1, r);
            for (int j = 0; j < count; j++) {
                x[i + j] = toUniform(r[lane + j]) >= p ? x[i + j] * scale : 0f;
            }
            i += count;
            e += count;
        }
    }

    /**
     * {@code z[zOff + i] = keep ? scale : 0} for {@code i < n}, where element {@code i} is element
     * {@code e + i} of the stream (the multipliers of {@link #applyDropout}, for kernels that use
     * the mask twice, such as attention's backward).
     */
    static void mask(long seed, long e, float[] z, int zOff, int n, float p, float scale) {
        int k0 = (int) seed;
        int k1 = (int) (seed >>> 32);
        int[] r = new int[4];
        int i = 0;
        while (i < n) {
            long block = e >>> 2;
            int lane = (int) (e & 3);
            int count = Math.min(4 - lane, n - i);
            philox4x32x10((int) block, (int) (block >>> 32), 0, 0, k0, k1, r);
            for (int j = 0; j < count; j++) {
                z[zOff + i + j] = toUniform(r[lane + j]) >= p ? scale : 0f;
            }
            i += count;
            e += count;
        }
    }
}
