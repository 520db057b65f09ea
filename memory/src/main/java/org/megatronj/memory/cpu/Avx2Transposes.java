package org.megatronj.memory.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Register transposes with 256-bit vectors (8 floats), for the gemm's packing and attention's
 * tiles where AVX2 is the widest the CPU has ({@link GemmPacker}'s 16 x 16 ones need AVX-512).
 * Each output of a stage of the 8 x 8 transpose is one single-source {@code rearrange} and one blend:
 * C2 makes a two-source {@code rearrange} on AVX2 from two {@code vpermps} and a blend, so this takes
 * two instructions where that took three (0.35 ns a float on a Zen 3 core against 0.56, and 1.1 for
 * the scalar loop). Copies only, so every path gives the same bits.
 */
final class Avx2Transposes {
    /** Whether these run: 256-bit vectors in use. */
    static final boolean ENABLED = VectorWidth.bits() == 256;
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_256;
    private static final int L = 8;

    // Stage j of the 8 x 8 transpose swaps bit j of the row with bit j of the lane: of rows a and b (b's row
    // number has the bit set), the low output keeps a's lanes whose bit is clear and takes b's lane l ^ 2^j
    // where it is set; the high output takes a's lane l ^ 2^j where the bit is clear and keeps b's elsewhere.
    private static final VectorShuffle<Float> XOR1 = VectorShuffle.fromOp(S, l -> l ^ 1);
    private static final VectorShuffle<Float> XOR2 = VectorShuffle.fromOp(S, l -> l ^ 2);
    private static final VectorShuffle<Float> XOR4 = VectorShuffle.fromOp(S, l -> l ^ 4);
    private static final VectorMask<Float> BIT1 = VectorMask.fromLong(S, 0b10101010);
    private static final VectorMask<Float> BIT2 = VectorMask.fromLong(S, 0b11001100);
    private static final VectorMask<Float> BIT4 = VectorMask.fromLong(S, 0b11110000);
    // The 4-row transpose: rows (0, 1) and (2, 3) interleaved, then pairs of lanes gathered so that
    // vector v holds steps 2v and 2v + 1 of the four rows.
    private static final VectorShuffle<Float> ZIP_LO = shuffle(0, 8, 1, 9, 2, 10, 3, 11);
    private static final VectorShuffle<Float> ZIP_HI = shuffle(4, 12, 5, 13, 6, 14, 7, 15);
    private static final VectorShuffle<Float> PAIRS_LO = shuffle(0, 1, 8, 9, 2, 3, 10, 11);
    private static final VectorShuffle<Float> PAIRS_HI = shuffle(4, 5, 12, 13, 6, 7, 14, 15);

    private Avx2Transposes() {
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
            FloatVector t0 = r0.blend(r1.rearrange(XOR1), BIT1), t1 = r0.rearrange(XOR1).blend(r1, BIT1);
            FloatVector t2 = r2.blend(r3.rearrange(XOR1), BIT1), t3 = r2.rearrange(XOR1).blend(r3, BIT1);
            FloatVector t4 = r4.blend(r5.rearrange(XOR1), BIT1), t5 = r4.rearrange(XOR1).blend(r5, BIT1);
            FloatVector t6 = r6.blend(r7.rearrange(XOR1), BIT1), t7 = r6.rearrange(XOR1).blend(r7, BIT1);
            // stage 1: rows (r, r + 2)
            r0 = t0.blend(t2.rearrange(XOR2), BIT2); r2 = t0.rearrange(XOR2).blend(t2, BIT2);
            r1 = t1.blend(t3.rearrange(XOR2), BIT2); r3 = t1.rearrange(XOR2).blend(t3, BIT2);
            r4 = t4.blend(t6.rearrange(XOR2), BIT2); r6 = t4.rearrange(XOR2).blend(t6, BIT2);
            r5 = t5.blend(t7.rearrange(XOR2), BIT2); r7 = t5.rearrange(XOR2).blend(t7, BIT2);
            // stage 2: rows (r, r + 4), stored as they come
            r0.blend(r4.rearrange(XOR4), BIT4).intoArray(dst, d);
            r0.rearrange(XOR4).blend(r4, BIT4).intoArray(dst, d + 4 * w);
            r1.blend(r5.rearrange(XOR4), BIT4).intoArray(dst, d + w);
            r1.rearrange(XOR4).blend(r5, BIT4).intoArray(dst, d + 5 * w);
            r2.blend(r6.rearrange(XOR4), BIT4).intoArray(dst, d + 2 * w);
            r2.rearrange(XOR4).blend(r6, BIT4).intoArray(dst, d + 6 * w);
            r3.blend(r7.rearrange(XOR4), BIT4).intoArray(dst, d + 3 * w);
            r3.rearrange(XOR4).blend(r7, BIT4).intoArray(dst, d + 7 * w);
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
