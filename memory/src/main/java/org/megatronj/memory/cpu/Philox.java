package org.megatronj.memory.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

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
 *
 * <p>The vector path ({@link #mask} and {@link #applyDropout} unless {@code -Dmegatron.vector.bits=0})
 * runs one Philox block per int lane: the 32x32->64-bit products are taken in long lanes (the
 * even and odd int lanes of a vector in turn), and the four outputs of each block are then
 * interleaved back into element order. It computes the same integers, so its mask is the
 * scalar one bit for bit. An unaligned head (e % 4 != 0), tails of at most 12 elements and
 * steps whose low counter word would wrap go through the scalar loop; a longer tail is a last
 * vector step with masked loads and stores.
 */
public final class Philox {
    static final int M0 = 0xD2511F53;
    static final int M1 = 0xCD9E8D57;
    static final int W0 = 0x9E3779B9;
    static final int W1 = 0xBB67AE85;

    /** Whether {@link #mask} and {@link #applyDropout} take the vector path ({@code -Dmegatron.vector.bits} not 0). */
    static final boolean VECTOR = !VectorWidth.scalar();
    private static final VectorSpecies<Float> FS = VectorMath.SPECIES;
    private static final VectorSpecies<Integer> IS = FS.withLanes(int.class).check(int.class);
    private static final VectorSpecies<Long> LS = FS.withLanes(long.class).check(long.class);
    /** Lanes per vector: L Philox blocks, 4L elements per step. */
    private static final int L = IS.length();
    private static final IntVector IOTA = IntVector.zero(IS).addIndex(1);
    /** Two-vector selections (indices in [0, 2L)): zip the low / high halves of two vectors. */
    private static final IntVector ZIP_LO = IntVector.fromArray(IS, zipIndices(0), 0);
    private static final IntVector ZIP_HI = IntVector.fromArray(IS, zipIndices(L / 2), 0);
    private static final long LOW32 = 0xffffffffL;
    /** Tails of at most this many elements take the scalar loop (a vector step costs about as much as 16 scalar blocks). */
    private static final int SCALAR_TAIL = 12;
    /** The int lanes that are the high halves of long lanes (little-endian lane order, as the Vector API defines). */
    private static final VectorMask<Integer> ODD_LANES = VectorMask.fromLong(IS, 0xAAAAAAAAAAAAAAAAL);

    private Philox() {
    }

    private static int[] zipIndices(int from) {
        int[] idx = new int[L];
        for (int t = 0; t < L; t++) {
            idx[t] = from + t / 2 + (t % 2 == 0 ? 0 : L);
        }
        return idx;
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
        applyDropout(VECTOR, seed, offset, from, x, n, p, scale);
    }

    /** {@link #applyDropout(long, long, long, float[], int, float, float)} on the vector or the scalar path (same bits). */
    static void applyDropout(boolean vector, long seed, long offset, long from, float[] x, int n, float p, float scale) {
        if (vector) {
            dropoutVector(seed, offset + from, x, null, 0, n, p, scale);
        } else {
            dropoutScalar(seed, offset + from, x, null, 0, n, p, scale);
        }
    }

    /**
     * {@code z[zOff + i] = keep ? scale : 0} for {@code i < n}, where element {@code i} is element
     * {@code e + i} of the stream (the multipliers of {@link #applyDropout}, for kernels that use
     * the mask twice, such as attention's backward).
     */
    static void mask(long seed, long e, float[] z, int zOff, int n, float p, float scale) {
        mask(VECTOR, seed, e, z, zOff, n, p, scale);
    }

    /** {@link #mask(long, long, float[], int, int, float, float)} on the vector or the scalar path (same bits). */
    static void mask(boolean vector, long seed, long e, float[] z, int zOff, int n, float p, float scale) {
        if (vector) {
            dropoutVector(seed, e, null, z, zOff, n, p, scale);
        } else {
            dropoutScalar(seed, e, null, z, zOff, n, p, scale);
        }
    }

    /**
     * The scalar path of both, as {@link #dropoutVector}: with {@code x} non-null, {@code x[off + i]} is
     * dropped in place; otherwise {@code z[off + i]} receives the multiplier. Element i is stream element e + i.
     */
    private static void dropoutScalar(long seed, long e, float[] x, float[] z, int off, int n, float p, float scale) {
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
                boolean keep = toUniform(r[lane + j]) >= p;
                if (x != null) {
                    x[off + i + j] = keep ? x[off + i + j] * scale : 0f;
                } else {
                    z[off + i + j] = keep ? scale : 0f;
                }
            }
            i += count;
            e += count;
        }
    }

    /**
     * The vector path of both: with {@code x} non-null, {@code x[zOff + i]} is dropped in place;
     * otherwise {@code z[zOff + i]} receives the multiplier. Element i is stream element e + i.
     */
    private static void dropoutVector(long seed, long e, float[] x, float[] z, int off, int n, float p, float scale) {
        int i = 0;
        int head = (int) (-e & 3); // scalar up to the first aligned group
        if (head > 0) {
            int count = Math.min(head, n);
            dropoutScalar(seed, e, x, z, off, count, p, scale);
            i = count;
        }
        int k0 = (int) seed;
        int k1 = (int) (seed >>> 32);
        int step = 4 * L;
        FloatVector scaleV = FloatVector.broadcast(FS, scale);
        FloatVector zero = FloatVector.zero(FS);
        int limit = off + n;
        // full steps, then a last partial one with masked stores unless only a few groups are left
        for (; n - i > SCALAR_TAIL; i += step) {
            long block = (e + i) >>> 2;
            int lo = (int) block;
            if (Integer.compareUnsigned(lo, -L) > 0) { // the low counter word wraps inside this step: rare
                dropoutScalar(seed, e + i, x, z, off + i, Math.min(step, n - i), p, scale);
                continue;
            }
            // round 1 (c2 = c3 = 0): (c0, c1, c2, c3) = (c1 ^ k0, 0, hi(M0 c0) ^ k1, lo(M0 c0))
            IntVector c0 = IOTA.add(lo);
            IntVector c2 = mulHi(c0, M0).lanewise(VectorOperators.XOR, k1);
            IntVector c3 = c0.mul(M0);
            c0 = IntVector.broadcast(IS, (int) (block >>> 32) ^ k0);
            IntVector c1 = IntVector.zero(IS);
            int rk0 = k0;
            int rk1 = k1;
            for (int round = 1; round < 10; round++) {
                rk0 += W0;
                rk1 += W1;
                IntVector hi0 = mulHi(c0, M0);
                IntVector lo0 = c0.mul(M0);
                IntVector hi1 = mulHi(c2, M1);
                IntVector lo1 = c2.mul(M1);
                c0 = hi1.lanewise(VectorOperators.XOR, c1).lanewise(VectorOperators.XOR, rk0);
                c1 = lo1;
                c2 = hi0.lanewise(VectorOperators.XOR, c3).lanewise(VectorOperators.XOR, rk1);
                c3 = lo0;
            }
            // block j of lane j -> elements 4j .. 4j+3 = (c0[j], c1[j], c2[j], c3[j])
            IntVector aLo = ZIP_LO.selectFrom(c0, c2);
            IntVector aHi = ZIP_HI.selectFrom(c0, c2);
            IntVector bLo = ZIP_LO.selectFrom(c1, c3);
            IntVector bHi = ZIP_HI.selectFrom(c1, c3);
            store(ZIP_LO.selectFrom(aLo, bLo), x, z, off + i, p, scaleV, zero, limit);
            store(ZIP_HI.selectFrom(aLo, bLo), x, z, off + i + L, p, scaleV, zero, limit);
            store(ZIP_LO.selectFrom(aHi, bHi), x, z, off + i + 2 * L, p, scaleV, zero, limit);
            store(ZIP_HI.selectFrom(aHi, bHi), x, z, off + i + 3 * L, p, scaleV, zero, limit);
        }
        if (i < n) {
            dropoutScalar(seed, e + i, x, z, off + i, n - i, p, scale);
        }
    }

    /** Keep where {@code (r >>> 8) * 2^-24 >= p} (exact, as {@link #toUniform}); write the multiplier or the dropped x. */
    private static void store(IntVector r, float[] x, float[] z, int at, float p, FloatVector scaleV, FloatVector zero,
                              int limit) {
        if (at >= limit) {
            return;
        }
        FloatVector u = ((FloatVector) r.lanewise(VectorOperators.LSHR, 8).convert(VectorOperators.I2F, 0)).mul(0x1.0p-24f);
        VectorMask<Float> keep = u.compare(VectorOperators.GE, p);
        if (at + L <= limit) {
            if (x != null) {
                zero.blend(FloatVector.fromArray(FS, x, at).mul(scaleV), keep).intoArray(x, at);
            } else {
                zero.blend(scaleV, keep).intoArray(z, at);
            }
        } else { // the last, partial vector: lanes at + t < limit only
            VectorMask<Float> inRange = FS.indexInRange(at, limit);
            if (x != null) {
                zero.blend(FloatVector.fromArray(FS, x, at, inRange).mul(scaleV), keep).intoArray(x, at, inRange);
            } else {
                zero.blend(scaleV, keep).intoArray(z, at, inRange);
            }
        }
    }

    /** The high 32 bits of the unsigned 64-bit products {@code c * m} per lane. */
    private static IntVector mulHi(IntVector c, int m) {
        LongVector mv = LongVector.broadcast(LS, m & LOW32);
        LongVector cl = c.reinterpretAsLongs();
        LongVector even = cl.and(LOW32).mul(mv);                            // the low int of each long: its product
        LongVector odd = cl.lanewise(VectorOperators.LSHR, 32).mul(mv);     // the high int of each long
        return even.lanewise(VectorOperators.LSHR, 32).reinterpretAsInts().blend(odd.reinterpretAsInts(), ODD_LANES);
    }
}
