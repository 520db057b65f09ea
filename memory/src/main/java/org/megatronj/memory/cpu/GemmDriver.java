package org.megatronj.memory.cpu;

import java.lang.foreign.MemorySegment;
import org.megatronj.memory.DType;
import org.megatronj.memory.FloatFormats;

/**
 * The GotoBLAS/BLIS loop nest around a {@link GemmKernel} for one {@code c = alpha * op(a) op(b)
 * + beta * c}, restricted to a rectangle of C so that threads can share the work:
 *
 * <pre>
 * for jc in cols step nc            B block  [kc x nc] packed once per (jc, pc)
 *   for pc in k step kc
 *     for ic in rows step mc        A block  [mc x kc] packed once per (jc, pc, ic)
 *       for jr in nc step nr          B micro-panel stays in L1 ...
 *         for ir in mc step mr        ... while A micro-panels stream from L2
 *           tile = kernel(A panel, B panel); C += alpha * tile (beta on the first pc only)
 * </pre>
 *
 * When C is BF16/F16 the whole k range is one block, so partial sums are never rounded to
 * 16 bits (fp32 accumulation as the contract asks); the block sizes shrink to keep the same
 * footprint.
 */
final class GemmDriver {
    private GemmDriver() {
    }

    /** One product: op(A) {@code [m, k]}, op(B) {@code [k, n]}, C {@code [m, n]} row-major at {@code cOffset}. */
    record Problem(int m, int n, int k, float alpha, GemmPacker.Source a, GemmPacker.Source b,
                   float beta, MemorySegment c, DType cType, long cOffset) {
    }

    /** Computes rows {@code [rowFrom, rowTo)} and columns {@code [colFrom, colTo)} of C on the calling thread. */
    static void run(GemmKernel kernel, GemmBlocking blocking, Problem pr, int rowFrom, int rowTo, int colFrom, int colTo) {
        if (rowFrom >= rowTo || colFrom >= colTo) {
            return;
        }
        if (pr.k() == 0) {
            scaleC(pr, rowFrom, rowTo, colFrom, colTo);
            return;
        }
        int mr = kernel.mr();
        int nr = kernel.nr();
        int kc = pr.cType() == DType.F32 ? Math.min(blocking.kc(), pr.k()) : pr.k();
        double shrink = Math.max(1.0, (double) kc / blocking.kc());
        int mc = roundUp((int) Math.max(mr, blocking.mc() / shrink), mr);
        int nc = roundUp((int) Math.max(nr, blocking.nc() / shrink), nr);
        GemmBuffers buf = GemmBuffers.forCurrentThread();
        float[] packedB = buf.packedB(roundUp(Math.min(nc, colTo - colFrom), nr) * kc);
        float[] packedA = buf.packedA(roundUp(Math.min(mc, rowTo - rowFrom), mr) * kc);
        float[] tile = buf.tile(mr * nr);
        for (int jc = colFrom; jc < colTo; jc += nc) {
            int ncEff = Math.min(nc, colTo - jc);
            for (int pc = 0; pc < pr.k(); pc += kc) {
                int kcEff = Math.min(kc, pr.k() - pc);
                float beta = pc == 0 ? pr.beta() : 1f;
                GemmPacker.pack(pr.b(), jc, ncEff, pc, kcEff, nr, packedB, buf);
                for (int ic = rowFrom; ic < rowTo; ic += mc) {
                    int mcEff = Math.min(mc, rowTo - ic);
                    GemmPacker.pack(pr.a(), ic, mcEff, pc, kcEff, mr, packedA, buf);
                    for (int jr = 0; jr < ncEff; jr += nr) {
                        int bOff = (jr / nr) * nr * kcEff;
                        int cols = Math.min(nr, ncEff - jr);
                        for (int ir = 0; ir < mcEff; ir += mr) {
                            kernel.multiply(kcEff, packedA, (ir / mr) * mr * kcEff, packedB, bOff, tile);
                            int rows = Math.min(mr, mcEff - ir);
                            long cAt = pr.cOffset() + (long) (ic + ir) * pr.n() + jc + jr;
                            if (rows == mr && cols == nr && pr.cType() == DType.F32) {
                                kernel.updateF32(tile, pr.c(), cAt, pr.n(), pr.alpha(), beta);
                            } else {
                                updateEdge(tile, nr, rows, cols, pr, cAt, beta);
                            }
                        }
                    }
                }
            }
        }
    }

    /** {@code c = alpha * tile + beta * c} for a partial tile or a 16-bit C, element by element. */
    private static void updateEdge(float[] tile, int nr, int rows, int cols, Problem pr, long cAt, float beta) {
        for (int r = 0; r < rows; r++) {
            long row = cAt + (long) r * pr.n();
            for (int j = 0; j < cols; j++) {
                float v = pr.alpha() * tile[r * nr + j];
                if (beta != 0f) {
                    v = Math.fma(beta, get(pr, row + j), v);
                }
                set(pr, row + j, v);
            }
        }
    }

    /** k == 0: the product is empty, so {@code c = beta * c} (zero when beta is zero, NaN included). */
    private static void scaleC(Problem pr, int rowFrom, int rowTo, int colFrom, int colTo) {
        for (int i = rowFrom; i < rowTo; i++) {
            long row = pr.cOffset() + (long) i * pr.n();
            for (int j = colFrom; j < colTo; j++) {
                set(pr, row + j, pr.beta() == 0f ? 0f : pr.beta() * get(pr, row + j));
            }
        }
    }

    private static float get(Problem pr, long i) {
        MemorySegment c = pr.c();
        return switch (pr.cType()) {
            case F32 -> c.getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED, i);
            case BF16 -> FloatFormats.bf16ToFloat(c.getAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, i));
            case F16 -> FloatFormats.f16ToFloat(c.getAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, i));
            default -> throw new IllegalStateException("gemm: C of type " + pr.cType());
        };
    }

    private static void set(Problem pr, long i, float v) {
        MemorySegment c = pr.c();
        switch (pr.cType()) {
            case F32 -> c.setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED, i, v);
            case BF16 -> c.setAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, i, FloatFormats.floatToBf16(v));
            case F16 -> c.setAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, i, FloatFormats.floatToF16(v));
            default -> throw new IllegalStateException("gemm: C of type " + pr.cType());
        }
    }

    static int roundUp(int x, int multiple) {
        return (x + multiple - 1) / multiple * multiple;
    }
}
