package org.megatronj.memory.cpu;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * The Vector API micro-kernel: a 6 x (3 vectors) tile of C held in 18 vector accumulators
 * (6 x 48 floats with AVX-512), or a 4 x (2 vectors) tile in 8 where the CPU has 16 vector
 * registers (4 x 16 floats with AVX2). Each step of the k loop loads the B vectors, broadcasts
 * the elements of A and issues 18 or 8 independent FMAs, enough to hide the FMA latency on two
 * pipes. At the right edge of C, panels with fewer vectors of real columns run narrower loops
 * instead of multiplying the zero padding (n = 256 would otherwise waste 11% of its work with the
 * wide tile).
 *
 * <p>The species is a static final constant so that C2 compiles every vector operation to one
 * instruction; it is the width {@link VectorWidth} picks, or the CPU's preferred width when the
 * scalar path is forced (this class is then only used by tests).
 */
final class GemmVectorKernel implements GemmKernel {
    static final GemmVectorKernel INSTANCE = new GemmVectorKernel();

    private static final VectorSpecies<Float> S =
            VectorWidth.floatSpecies() != null ? VectorWidth.floatSpecies() : FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    /**
     * The tile shape follows the register file: AVX-512 comes with 32 vector registers, AVX2 and
     * SSE with 16. 6 x 3 vectors needs 18 accumulators, 3 B vectors and a broadcast; 4 x 2 vectors
     * needs 8, 2 and one or two broadcasts. (6 x 2 vectors, 15 registers on paper, already spilled
     * one accumulator under C2's scheduling: its loop-carried store and reload halved the speed.)
     */
    private static final boolean WIDE = S.vectorBitSize() >= 512;
    private static final int MR = WIDE ? 6 : 4;
    private static final int NR = (WIDE ? 3 : 2) * L;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    private GemmVectorKernel() {
    }

    @Override
    public int mr() {
        return MR;
    }

    @Override
    public int nr() {
        return NR;
    }

    @Override
    public void multiply(int kc, int cols, float[] a, int aOff, float[] b, int bOff, float[] tile) {
        if (!WIDE) {
            if (cols <= L) {
                multiply4x1(kc, a, aOff, b, bOff, tile);
            } else {
                multiply4x2(kc, a, aOff, b, bOff, tile);
            }
        } else if (cols <= L) {
            multiply6x1(kc, a, aOff, b, bOff, tile);
        } else if (cols <= 2 * L) {
            multiply6x2(kc, a, aOff, b, bOff, tile);
        } else {
            multiply6x3(kc, a, aOff, b, bOff, tile);
        }
    }

    private static void multiply6x3(int kc, float[] a, int aOff, float[] b, int bOff, float[] tile) {
        FloatVector c00 = FloatVector.zero(S), c01 = c00, c02 = c00;
        FloatVector c10 = c00, c11 = c00, c12 = c00;
        FloatVector c20 = c00, c21 = c00, c22 = c00;
        FloatVector c30 = c00, c31 = c00, c32 = c00;
        FloatVector c40 = c00, c41 = c00, c42 = c00;
        FloatVector c50 = c00, c51 = c00, c52 = c00;
        int ap = aOff;
        int bp = bOff;
        for (int p = 0; p < kc; p++, ap += MR, bp += NR) {
            FloatVector b0 = FloatVector.fromArray(S, b, bp);
            FloatVector b1 = FloatVector.fromArray(S, b, bp + L);
            FloatVector b2 = FloatVector.fromArray(S, b, bp + 2 * L);
            FloatVector av = FloatVector.broadcast(S, a[ap]);
            c00 = b0.fma(av, c00);
            c01 = b1.fma(av, c01);
            c02 = b2.fma(av, c02);
            av = FloatVector.broadcast(S, a[ap + 1]);
            c10 = b0.fma(av, c10);
            c11 = b1.fma(av, c11);
            c12 = b2.fma(av, c12);
            av = FloatVector.broadcast(S, a[ap + 2]);
            c20 = b0.fma(av, c20);
            c21 = b1.fma(av, c21);
            c22 = b2.fma(av, c22);
            av = FloatVector.broadcast(S, a[ap + 3]);
            c30 = b0.fma(av, c30);
            c31 = b1.fma(av, c31);
            c32 = b2.fma(av, c32);
            av = FloatVector.broadcast(S, a[ap + 4]);
            c40 = b0.fma(av, c40);
            c41 = b1.fma(av, c41);
            c42 = b2.fma(av, c42);
            av = FloatVector.broadcast(S, a[ap + 5]);
            c50 = b0.fma(av, c50);
            c51 = b1.fma(av, c51);
            c52 = b2.fma(av, c52);
        }
        c00.intoArray(tile, 0);
        c01.intoArray(tile, L);
        c02.intoArray(tile, 2 * L);
        c10.intoArray(tile, NR);
        c11.intoArray(tile, NR + L);
        c12.intoArray(tile, NR + 2 * L);
        c20.intoArray(tile, 2 * NR);
        c21.intoArray(tile, 2 * NR + L);
        c22.intoArray(tile, 2 * NR + 2 * L);
        c30.intoArray(tile, 3 * NR);
        c31.intoArray(tile, 3 * NR + L);
        c32.intoArray(tile, 3 * NR + 2 * L);
        c40.intoArray(tile, 4 * NR);
        c41.intoArray(tile, 4 * NR + L);
        c42.intoArray(tile, 4 * NR + 2 * L);
        c50.intoArray(tile, 5 * NR);
        c51.intoArray(tile, 5 * NR + L);
        c52.intoArray(tile, 5 * NR + 2 * L);
    }

    /** The right edge of C when it ends within the first vector of a wide panel (e.g. n = 256 = 5 x 48 + 16). */
    private static void multiply6x1(int kc, float[] a, int aOff, float[] b, int bOff, float[] tile) {
        FloatVector c0 = FloatVector.zero(S), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
        int ap = aOff;
        int bp = bOff;
        for (int p = 0; p < kc; p++, ap += MR, bp += NR) {
            FloatVector b0 = FloatVector.fromArray(S, b, bp);
            c0 = b0.fma(FloatVector.broadcast(S, a[ap]), c0);
            c1 = b0.fma(FloatVector.broadcast(S, a[ap + 1]), c1);
            c2 = b0.fma(FloatVector.broadcast(S, a[ap + 2]), c2);
            c3 = b0.fma(FloatVector.broadcast(S, a[ap + 3]), c3);
            c4 = b0.fma(FloatVector.broadcast(S, a[ap + 4]), c4);
            c5 = b0.fma(FloatVector.broadcast(S, a[ap + 5]), c5);
        }
        c0.intoArray(tile, 0);
        c1.intoArray(tile, NR);
        c2.intoArray(tile, 2 * NR);
        c3.intoArray(tile, 3 * NR);
        c4.intoArray(tile, 4 * NR);
        c5.intoArray(tile, 5 * NR);
    }

    /** The right edge of C when it ends within the second vector of a wide panel. */
    private static void multiply6x2(int kc, float[] a, int aOff, float[] b, int bOff, float[] tile) {
        FloatVector c00 = FloatVector.zero(S), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
        FloatVector c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
        int ap = aOff;
        int bp = bOff;
        for (int p = 0; p < kc; p++, ap += MR, bp += NR) {
            FloatVector b0 = FloatVector.fromArray(S, b, bp);
            FloatVector b1 = FloatVector.fromArray(S, b, bp + L);
            FloatVector av = FloatVector.broadcast(S, a[ap]);
            c00 = b0.fma(av, c00);
            c01 = b1.fma(av, c01);
            av = FloatVector.broadcast(S, a[ap + 1]);
            c10 = b0.fma(av, c10);
            c11 = b1.fma(av, c11);
            av = FloatVector.broadcast(S, a[ap + 2]);
            c20 = b0.fma(av, c20);
            c21 = b1.fma(av, c21);
            av = FloatVector.broadcast(S, a[ap + 3]);
            c30 = b0.fma(av, c30);
            c31 = b1.fma(av, c31);
            av = FloatVector.broadcast(S, a[ap + 4]);
            c40 = b0.fma(av, c40);
            c41 = b1.fma(av, c41);
            av = FloatVector.broadcast(S, a[ap + 5]);
            c50 = b0.fma(av, c50);
            c51 = b1.fma(av, c51);
        }
        c00.intoArray(tile, 0);
        c01.intoArray(tile, L);
        c10.intoArray(tile, NR);
        c11.intoArray(tile, NR + L);
        c20.intoArray(tile, 2 * NR);
        c21.intoArray(tile, 2 * NR + L);
        c30.intoArray(tile, 3 * NR);
        c31.intoArray(tile, 3 * NR + L);
        c40.intoArray(tile, 4 * NR);
        c41.intoArray(tile, 4 * NR + L);
        c50.intoArray(tile, 5 * NR);
        c51.intoArray(tile, 5 * NR + L);
    }

    /** The whole tile with 16 vector registers (AVX2): 8 accumulators, enough for two FMA pipes of latency 4. */
    private static void multiply4x2(int kc, float[] a, int aOff, float[] b, int bOff, float[] tile) {
        FloatVector c00 = FloatVector.zero(S), c01 = c00, c10 = c00, c11 = c00;
        FloatVector c20 = c00, c21 = c00, c30 = c00, c31 = c00;
        int ap = aOff;
        int bp = bOff;
        for (int p = 0; p < kc; p++, ap += MR, bp += NR) {
            FloatVector b0 = FloatVector.fromArray(S, b, bp);
            FloatVector b1 = FloatVector.fromArray(S, b, bp + L);
            FloatVector av = FloatVector.broadcast(S, a[ap]);
            c00 = b0.fma(av, c00);
            c01 = b1.fma(av, c01);
            av = FloatVector.broadcast(S, a[ap + 1]);
            c10 = b0.fma(av, c10);
            c11 = b1.fma(av, c11);
            av = FloatVector.broadcast(S, a[ap + 2]);
            c20 = b0.fma(av, c20);
            c21 = b1.fma(av, c21);
            av = FloatVector.broadcast(S, a[ap + 3]);
            c30 = b0.fma(av, c30);
            c31 = b1.fma(av, c31);
        }
        c00.intoArray(tile, 0);
        c01.intoArray(tile, L);
        c10.intoArray(tile, NR);
        c11.intoArray(tile, NR + L);
        c20.intoArray(tile, 2 * NR);
        c21.intoArray(tile, 2 * NR + L);
        c30.intoArray(tile, 3 * NR);
        c31.intoArray(tile, 3 * NR + L);
    }

    /** The right edge of C when it ends within the first vector of a 16-register panel. */
    private static void multiply4x1(int kc, float[] a, int aOff, float[] b, int bOff, float[] tile) {
        FloatVector c0 = FloatVector.zero(S), c1 = c0, c2 = c0, c3 = c0;
        int ap = aOff;
        int bp = bOff;
        for (int p = 0; p < kc; p++, ap += MR, bp += NR) {
            FloatVector b0 = FloatVector.fromArray(S, b, bp);
            c0 = b0.fma(FloatVector.broadcast(S, a[ap]), c0);
            c1 = b0.fma(FloatVector.broadcast(S, a[ap + 1]), c1);
            c2 = b0.fma(FloatVector.broadcast(S, a[ap + 2]), c2);
            c3 = b0.fma(FloatVector.broadcast(S, a[ap + 3]), c3);
        }
        c0.intoArray(tile, 0);
        c1.intoArray(tile, NR);
        c2.intoArray(tile, 2 * NR);
        c3.intoArray(tile, 3 * NR);
    }

    @Override
    public void updateF32(float[] tile, int rows, int cols, MemorySegment c, long cOff, long ldc, float alpha,
                          float beta) {
        FloatVector alphas = FloatVector.broadcast(S, alpha);
        FloatVector betas = FloatVector.broadcast(S, beta);
        for (int r = 0; r < rows; r++) {
            long row = (cOff + r * ldc) * Float.BYTES;
            for (int j = 0; j < cols; j += L) {
                FloatVector v = FloatVector.fromArray(S, tile, r * NR + j).mul(alphas);
                long at = row + (long) j * Float.BYTES;
                if (j + L <= cols) {
                    if (beta != 0f) {
                        v = FloatVector.fromMemorySegment(S, c, at, LE).fma(betas, v);
                    }
                    v.intoMemorySegment(c, at, LE);
                } else {
                    // The right edge of C: masked, so nothing past the last column is read or written.
                    VectorMask<Float> inside = S.indexInRange(j, cols);
                    if (beta != 0f) {
                        v = FloatVector.fromMemorySegment(S, c, at, LE, inside).fma(betas, v);
                    }
                    v.intoMemorySegment(c, at, LE, inside);
                }
            }
        }
    }
}
