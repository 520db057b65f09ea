package org.megatronj.memory.cpu;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicInteger;
import org.megatronj.memory.DType;
import org.megatronj.memory.FloatFormats;

/**
 * The GotoBLAS/BLIS loop nest around a {@link GemmKernel} for one {@code c = alpha * op(a) op(b)
 * + beta * c}, with the threads of a {@link CpuThreads} pool sharing the work:
 *
 * <pre>
 * for jc in n step nc
 *   for pc in k step kc
 *     pack B block [kc x nc] once, its nr-panels split among the threads (join)
 *     work units = row blocks of at most mc rows, up to 8 per thread (x column slices when rows are few);
 *     each thread claims units until none is left:               (join)
 *       pack its A block [rows x kc]
 *       for jr in its columns step nr      B micro-panel stays in L1 ...
 *         for ir in its rows step mr       ... while A micro-panels stream from L2
 *           tile = kernel(A panel, B panel); C += alpha * tile (beta on the first pc only)
 * </pre>
 *
 * Claiming units from a counter (rather than a fixed split) keeps both cores busy when another
 * process takes time from one of them. When C is BF16/F16 the whole k range is one block, so
 * partial sums are never rounded to 16 bits (fp32 accumulation as the contract asks); the block
 * sizes shrink to keep the same footprint. Every element sums its k terms in the same order
 * whatever the threads do, so results are reproducible bit for bit.
 */
final class GemmDriver {
    /**
     * Work units wanted per worker, where the rows allow: a unit is claimed whole, so the last ones decide
     * when all cores are done. Training GPT-2 124M (C = 512 rows) on 2 shared cores, the 2 units per core
     * that mc = 144 gave left one core waiting 5-9% of a step at the ends of gemm blocks; 8 cut that to ~2%,
     * and the step by 5.5% (bench/ab-builds.sh, median of 24 rounds). Smaller units cost little: A's rows
     * are packed once either way, and each B micro-panel, fetched from L3 once per unit, still serves 8 A
     * micro-panels.
     */
    static final int MIN_UNITS_PER_WORKER = 8;
    /** Rows a unit keeps at least when units are multiplied for balance (8 micro-panels of 4 rows). */
    static final int MIN_UNIT_ROWS = 32;

    private GemmDriver() {
    }

    /** One product: op(A) {@code [m, k]}, op(B) {@code [k, n]}, C {@code [m, n]} row-major at {@code cOffset}. */
    record Problem(int m, int n, int k, float alpha, GemmPacker.Source a, GemmPacker.Source b,
                   float beta, MemorySegment c, DType cType, long cOffset) {
    }

    /** Computes the product, on all of {@code threads} when {@code parallel}, else on the calling thread. */
    static void run(CpuThreads threads, boolean parallel, GemmKernel kernel, GemmBlocking blocking, Problem pr) {
        if (pr.m() == 0 || pr.n() == 0) {
            return;
        }
        if (pr.k() == 0) {
            scaleC(pr);
            return;
        }
        int workers = parallel ? threads.threads() : 1;
        int mr = kernel.mr();
        int nr = kernel.nr();
        int kc = pr.cType() == DType.F32 ? balancedKc(pr.k(), blocking.kc()) : pr.k();
        double shrink = Math.max(1.0, (double) kc / blocking.kc());
        int mc = roundUp((int) Math.max(mr, blocking.mc() / shrink), mr);
        int nc = roundUp((int) Math.max(nr, blocking.nc() / shrink), nr);
        int rowTiles = (pr.m() + mr - 1) / mr;
        // Units of at most mc rows; a multiple of the worker count, so that equal units end together on idle
        // cores; and several per worker, so that a core slowed by another process (or woken late) leaves the
        // other a short wait at the end, as long as a unit keeps MIN_UNIT_ROWS rows to reuse each B micro-panel.
        int wanted = workers == 1 ? 1 : Math.min(MIN_UNITS_PER_WORKER * workers, Math.max(1, pr.m() / MIN_UNIT_ROWS));
        int rowUnits = Math.min(rowTiles, roundUp(Math.max((pr.m() + mc - 1) / mc, wanted), workers));
        int maxUnitRows = (rowTiles + rowUnits - 1) / rowUnits * mr;
        float[] packedB = GemmBuffers.forCurrentThread().packedB(roundUp(Math.min(nc, pr.n()), nr) * kc);
        for (int jc = 0; jc < pr.n(); jc += nc) {
            int ncEff = Math.min(nc, pr.n() - jc);
            int panels = (ncEff + nr - 1) / nr;
            // Few row units (a short, wide C): cut the columns too, at the cost of packing A twice.
            int colSlices = rowUnits >= 2 * workers ? 1 : Math.min(panels, (2 * workers + rowUnits - 1) / rowUnits);
            for (int pc = 0; pc < pr.k(); pc += kc) {
                int kcEff = Math.min(kc, pr.k() - pc);
                float beta = pc == 0 ? pr.beta() : 1f;
                int col0 = jc;
                int k0 = pc;
                forEach(threads, parallel, panels, (from, to) -> GemmPacker.pack(pr.b(), col0 + (int) from * nr,
                        Math.min(ncEff, (int) to * nr) - (int) from * nr, k0, kcEff, nr, packedB, (int) from * nr * kcEff,
                        GemmBuffers.forCurrentThread()));
                int units = rowUnits * colSlices;
                AtomicInteger next = new AtomicInteger();
                forEach(threads, parallel, workers, (from, to) -> {
                    GemmBuffers buf = GemmBuffers.forCurrentThread();
                    float[] packedA = buf.packedA(maxUnitRows * kcEff);
                    float[] tile = buf.tile(mr * nr);
                    for (int u = next.getAndIncrement(); u < units; u = next.getAndIncrement()) {
                        int ru = u / colSlices;
                        int cs = u % colSlices;
                        int rowFrom = (int) ((long) rowTiles * ru / rowUnits) * mr;
                        int rowTo = Math.min(pr.m(), (int) ((long) rowTiles * (ru + 1) / rowUnits) * mr);
                        int panelFrom = panels * cs / colSlices;
                        int panelTo = panels * (cs + 1) / colSlices;
                        GemmPacker.pack(pr.a(), rowFrom, rowTo - rowFrom, k0, kcEff, mr, packedA, 0, buf);
                        for (int jp = panelFrom; jp < panelTo; jp++) {
                            int cols = Math.min(nr, ncEff - jp * nr);
                            for (int ir = 0; ir < rowTo - rowFrom; ir += mr) {
                                kernel.multiply(kcEff, cols, packedA, ir * kcEff, packedB, jp * nr * kcEff, tile);
                                int rows = Math.min(mr, rowTo - rowFrom - ir);
                                long cAt = pr.cOffset() + (long) (rowFrom + ir) * pr.n() + col0 + jp * nr;
                                if (pr.cType() == DType.F32) {
                                    kernel.updateF32(tile, rows, cols, pr.c(), cAt, pr.n(), pr.alpha(), beta);
                                } else {
                                    update16Bit(tile, nr, rows, cols, pr, cAt, beta);
                                }
                            }
                        }
                    }
                });
            }
        }
    }

    private static void forEach(CpuThreads threads, boolean parallel, long n, CpuThreads.RangeBody body) {
        if (parallel) {
            threads.parallelFor(n, 1, body);
        } else {
            body.run(0, n);
        }
    }

    /** {@code c = alpha * tile + beta * c} for a 16-bit C, element by element. */
    private static void update16Bit(float[] tile, int nr, int rows, int cols, Problem pr, long cAt, float beta) {
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
    private static void scaleC(Problem pr) {
        for (int i = 0; i < pr.m(); i++) {
            long row = pr.cOffset() + (long) i * pr.n();
            for (int j = 0; j < pr.n(); j++) {
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

    /**
     * The k block: at most {@code kcMax}, and the k range cut into equal blocks rather than full
     * ones and a short rest, since a short last block pays a whole pass of C updates for little work.
     */
    static int balancedKc(int k, int kcMax) {
        int blocks = (k + kcMax - 1) / kcMax;
        return (k + blocks - 1) / blocks;
    }

    static int roundUp(int x, int multiple) {
        return (x + multiple - 1) / multiple * multiple;
    }
}
