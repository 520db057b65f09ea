package org.megatronj.memory.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.BiConsumer;
import java.util.stream.Stream;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.MemoryStats;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.memory.TensorException;
import org.megatronj.memory.cpu.CpuBackend;

/**
 * The CUDA backend against the CPU reference, op by op, on fresh random inputs in F32, BF16 and
 * F16. Inputs are rounded to the dtype once and both backends see the same stored values; the
 * error allowed is relative (‖gpu − cpu‖ / ‖cpu‖): 1e-5 in F32 (more for long reductions),
 * 2e-3 in F16 and 1e-2 in BF16, an output rounding or two. Outputs that an op writes are
 * poisoned first, differently on each side (+inf on the CPU, NaN on the GPU, -1/-2 for ints),
 * so an element either backend leaves unwritten fails; outputs that accumulate (parameter
 * gradients) start from random values. Needs a GPU: tagged {@code gpu}.
 */
@Tag("gpu")
class CudaBackendTest {
    private static CpuBackend cpu;
    private static CudaBackend gpu;
    private TensorArena arena;
    private Random rnd;
    private long seed;

    @BeforeAll
    static void open() {
        GpuTests.requireGpu();
        cpu = new CpuBackend();
        gpu = new CudaBackend(0);
    }

    @AfterAll
    static void close() {
        if (gpu != null) {
            gpu.close();
        }
        if (cpu != null) {
            cpu.close();
        }
    }

    @BeforeEach
    void fresh() {
        arena = TensorArena.named("cuda-test");
        seed = System.nanoTime();
        rnd = new Random(seed);
    }

    @AfterEach
    void free() {
        gpu.synchronize();
        arena.close();
    }

    /** The same values on the host (for the CPU) and on the device. */
    private record Pair(Tensor cpu, Tensor gpu) {
    }

    private Pair random(DType dt, long... shape) {
        Tensor h = arena.allocate(dt, shape);
        for (long i = 0; i < h.numel(); i++) {
            h.setFloat(i, rnd.nextFloat() * 2 - 1);
        }
        return upload(h);
    }

    /** An output the op must write in full: +inf (-1) on the CPU side, NaN (-2) on the GPU side. */
    private Pair poisoned(DType dt, long... shape) {
        Tensor h = arena.allocate(dt, shape);
        Tensor onGpu = arena.allocate(dt, shape);
        for (long i = 0; i < h.numel(); i++) {
            if (dt == DType.I32) {
                h.setLong(i, -1);
                onGpu.setLong(i, -2);
            } else {
                h.setFloat(i, Float.POSITIVE_INFINITY);
                onGpu.setFloat(i, Float.NaN);
            }
        }
        Tensor d = upload(onGpu).gpu();
        return new Pair(h, d);
    }

    private Pair ints(int bound, long... shape) {
        Tensor h = arena.allocate(DType.I32, shape);
        for (long i = 0; i < h.numel(); i++) {
            h.setLong(i, rnd.nextInt(bound));
        }
        return upload(h);
    }

    private Pair upload(Tensor host) {
        Tensor d = gpu.allocate(arena, host.dtype(), host.shape());
        gpu.copy(host, d);
        return new Pair(host, d);
    }

    private float[] download(Tensor d) {
        Tensor h = arena.allocate(d.dtype(), d.shape());
        gpu.copy(d, h);
        return h.toFloatArray();
    }

    private static double tolerance(DType dt) {
        return switch (dt) {
            case BF16 -> 1e-2;
            case F16 -> 2e-3;
            default -> 1e-5;
        };
    }

    private void assertClose(String what, Pair p, double tol) {
        float[] expected = p.cpu().toFloatArray();
        float[] actual = download(p.gpu());
        double num = 0, den = 0;
        for (int i = 0; i < expected.length; i++) {
            assertFalse(Float.isNaN(actual[i]) && !Float.isNaN(expected[i]), what + ": NaN at " + i + " (seed " + seed + ")");
            if (Float.isInfinite(expected[i]) || Float.isNaN(expected[i])) {
                assertEquals(expected[i], actual[i], what + ": element " + i + " (seed " + seed + ")");
                continue;
            }
            double d = (double) actual[i] - expected[i];
            num += d * d;
            den += (double) expected[i] * expected[i];
        }
        double rel = Math.sqrt(num / Math.max(den, 1e-30));
        assertTrue(rel <= tol, what + ": relative error " + rel + " > " + tol + " (seed " + seed + ")");
    }

    /** Rows [from, to) of both sides. */
    private static Pair view(Pair p, long from, long to) {
        return new Pair(p.cpu().view(from, to), p.gpu().view(from, to));
    }

    /** The GPU side of a poisoned output still holds NaN outside rows [from, to): nothing was written there. */
    private void assertUntouched(String what, Pair p, long from, long to) {
        float[] actual = download(p.gpu());
        long rowSize = p.gpu().numel() / p.gpu().dim(0);
        for (int i = 0; i < actual.length; i++) {
            if (i / rowSize < from || i / rowSize >= to) {
                assertTrue(Float.isNaN(actual[i]), what + ": element " + i + " outside rows [" + from + ", " + to
                        + ") was written (" + actual[i] + ", seed " + seed + ")");
            }
        }
    }

    /** Runs {@code op} on both backends with the tensors of each side. */
    private static void both(BiConsumer<Backend, Boolean> op) {
        op.accept(cpu, false);
        op.accept(gpu, true);
    }

    private static Tensor side(Pair p, boolean onGpu) {
        return p == null ? null : onGpu ? p.gpu() : p.cpu();
    }

    // ---------------------------------------------------------------- tests

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void copyFillCastRoundTrip(DType dt) {
        Pair x = random(dt, 1000, 37);
        assertClose("copy", x, 0);
        Pair f = poisoned(DType.F32, 1000, 37);
        both((b, g) -> b.cast(side(x, g), side(f, g)));
        assertClose("cast " + dt + "->F32", f, 0);
        both((b, g) -> b.fill(side(x, g), 0.75f));
        assertClose("fill", x, 0);
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void gemmAllTransposesAndBatched(DType dt) {
        long m = 96, n = 80, k = 128;
        for (boolean ta : new boolean[] {false, true}) {
            for (boolean tb : new boolean[] {false, true}) {
                Pair a = random(dt, ta ? k : m, ta ? m : k);
                Pair b = random(dt, tb ? n : k, tb ? k : n);
                Pair c = random(DType.F32, m, n);
                both((be, g) -> be.gemm(ta, tb, 0.5f, side(a, g), side(b, g), 1.0f, side(c, g)));
                assertClose("gemm " + ta + "," + tb, c, dt == DType.F32 ? 1e-5 : 1e-3);
            }
        }
        Pair a = random(dt, 3, m, k);
        Pair b = random(dt, 3, n, k);
        Pair c = poisoned(dt, 3, m, n); // beta == 0: the old contents are ignored, NaN included
        both((be, g) -> be.gemmBatched(false, true, 1.0f, side(a, g), side(b, g), 0.0f, side(c, g)));
        assertClose("gemmBatched", c, tolerance(dt));
    }

    /** One {@code c = alpha op(a) op(b) + beta c} on fresh inputs, c in the input dtype, checked against the CPU. */
    private void checkGemm(String what, DType dt, boolean ta, boolean tb, long m, long n, long k, float alpha,
                           float beta) {
        Pair a = random(dt, ta ? k : m, ta ? m : k);
        Pair b = random(dt, tb ? n : k, tb ? k : n);
        Pair c = beta == 0 ? poisoned(dt, m, n) : random(dt, m, n);
        both((be, g) -> be.gemm(ta, tb, alpha, side(a, g), side(b, g), beta, side(c, g)));
        assertClose(what + " " + (ta ? "T" : "N") + (tb ? "T" : "N") + " " + m + "x" + n + "x" + k, c, tolerance(dt));
    }

    private void checkGemmBatched(DType dt, int batch, long m, long n, long k) {
        Pair a = random(dt, batch, m, k);
        Pair b = random(dt, batch, n, k);
        Pair c = poisoned(dt, batch, m, n);
        both((be, g) -> be.gemmBatched(false, true, 1.0f, side(a, g), side(b, g), 0.0f, side(c, g)));
        assertClose("gemmBatched x" + batch, c, tolerance(dt));
    }

    /**
     * CublasLtGemm caches one plan (descriptors, layouts, algorithm) per problem key. A repeated
     * shape must reuse its plan with new addresses and scalars; shapes that share most of the key
     * (same transposes, one dimension different; same shape, other transposes; other batch counts)
     * must get plans of their own; and an old plan must still be right after the others ran.
     * The F32 tolerance (1e-5) also rules out TF32, whose 10-bit mantissa gives ~5e-4 at k = 520.
     * Counts assume 256-byte aligned tensors (alignment is part of the key), as the pool returns.
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void gemmPlanCache(DType dt) {
        CublasLtGemm lt = gpu.gemm();
        int plans = lt.planCount();
        checkGemm("first call", dt, false, true, 72, 56, 520, 1, 0);
        assertEquals(plans + 1, lt.planCount(), "one plan for a new shape");
        checkGemm("same shape again", dt, false, true, 72, 56, 520, -0.5f, 0.75f);
        assertEquals(plans + 1, lt.planCount(), "a repeated shape reuses its plan");
        checkGemm("k differs", dt, false, true, 72, 56, 264, 1, 0);
        checkGemm("m differs", dt, false, true, 40, 56, 520, 1, 0);
        assertEquals(plans + 3, lt.planCount(), "shapes differing in one dimension get their own plans");
        for (boolean ta : new boolean[] {false, true}) {
            for (boolean tb : new boolean[] {false, true}) {
                checkGemm("transposes", dt, ta, tb, 72, 56, 520, 1, 0.5f);
            }
        }
        assertEquals(plans + 6, lt.planCount(), "NT was cached; NN, TN and TT are new");
        checkGemmBatched(dt, 3, 72, 56, 520);
        checkGemmBatched(dt, 5, 72, 56, 520);
        checkGemmBatched(dt, 3, 72, 56, 520);
        assertEquals(plans + 8, lt.planCount(), "one plan per batch count");
        checkGemm("first shape after the others", dt, false, true, 72, 56, 520, 2, 0);
        checkGemm("m differs, again", dt, false, true, 40, 56, 520, 1, 1);
        assertEquals(plans + 8, lt.planCount(), "no new plans for shapes seen before");
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void elementwiseAndBias(DType dt) {
        Pair a = random(dt, 64, 200);
        Pair b = random(dt, 64, 200);
        Pair out = poisoned(dt, 64, 200);
        both((be, g) -> be.add(side(a, g), side(b, g), side(out, g)));
        assertClose("add", out, tolerance(dt));
        both((be, g) -> be.axpy(-0.25f, side(a, g), side(b, g)));
        assertClose("axpy", b, tolerance(dt));
        both((be, g) -> be.scale(side(a, g), 3.0f));
        assertClose("scale", a, tolerance(dt));
        Pair bias = random(dt, 200);
        both((be, g) -> be.biasAdd(side(a, g), side(bias, g)));
        assertClose("biasAdd", a, tolerance(dt));
        Pair dBias = random(DType.F32, 200);
        both((be, g) -> be.biasBackward(side(a, g), side(dBias, g)));
        assertClose("biasBackward", dBias, 1e-5);
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void activations(DType dt) {
        for (boolean tanh : new boolean[] {false, true}) {
            Pair x = random(dt, 33, 130);
            Pair dy = random(dt, 33, 130);
            Pair y = poisoned(dt, 33, 130);
            Pair dx = poisoned(dt, 33, 130);
            both((be, g) -> be.geluForward(side(x, g), side(y, g), tanh));
            both((be, g) -> be.geluBackward(side(x, g), side(dy, g), side(dx, g), tanh));
            assertClose("gelu " + tanh, y, Math.max(tolerance(dt), 1e-5));
            assertClose("gelu' " + tanh, dx, Math.max(tolerance(dt), 1e-5));
        }
        Pair rx = random(dt, 33, 130);
        Pair rdy = random(dt, 33, 130);
        Pair ry = poisoned(dt, 33, 130);
        Pair rdx = poisoned(dt, 33, 130);
        both((be, g) -> be.squaredReluForward(side(rx, g), side(ry, g)));
        both((be, g) -> be.squaredReluBackward(side(rx, g), side(rdy, g), side(rdx, g)));
        assertClose("squared relu", ry, tolerance(dt));
        assertClose("squared relu'", rdx, tolerance(dt));
        Pair x = random(dt, 17, 2 * 96);
        Pair y = poisoned(dt, 17, 96);
        Pair dy = random(dt, 17, 96);
        Pair dx = poisoned(dt, 17, 2 * 96);
        both((be, g) -> be.swigluForward(side(x, g), side(y, g)));
        both((be, g) -> be.swigluBackward(side(x, g), side(dy, g), side(dx, g)));
        assertClose("swiglu", y, tolerance(dt));
        assertClose("swiglu'", dx, tolerance(dt));
    }

    /**
     * A mixture of experts' row ops: scaleRows (y[r, :] = x[r, :] * scales[r]) and rowDot (out[r] = a[r, :] . b[r, :],
     * a warp per row). One column, odd widths below and above a warp's 32 lanes (rows x cols not a multiple of 8), a
     * row longer than a block, more rows than megatron_row_dot's largest grid has warps and more elements than
     * megatron_scale_rows' has threads (both grid-stride loops turn), leading dims; each op into a poisoned output and
     * scaleRows in place. Then outputs and operands of another dtype (F32), and views at odd row offsets (unaligned, as
     * MoeLayer passes each expert's rows) whose neighbouring rows must stay untouched.
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void scaleRowsAndRowDot(DType dt) {
        long gridWarps = (long) gpu.multiprocessors() * 16 * CudaBackend.THREADS / 32;  // grid()'s cap, in warps
        long[][] shapes = {{1000, 1}, {37, 33}, {5, 31}, {1, 70}, {3, 4099}, {2 * gridWarps + 3, 17}, {2, 3, 65}};
        for (long[] shape : shapes) {
            long cols = shape[shape.length - 1];
            long rows = Tensor.numel(shape) / cols;
            String what = dt + Tensor.shapeString(shape);
            Pair x = random(dt, shape);
            Pair scales = random(DType.F32, rows);
            Pair y = poisoned(dt, shape);
            both((be, g) -> be.scaleRows(side(x, g), side(scales, g), side(y, g)));
            assertClose("scaleRows " + what, y, tolerance(dt));
            Pair b = random(dt, shape);
            Pair out = poisoned(DType.F32, rows);
            both((be, g) -> be.rowDot(side(x, g), side(b, g), side(out, g)));
            assertClose("rowDot " + what, out, cols > 1000 ? 2e-5 : 1e-5);
            both((be, g) -> be.scaleRows(side(x, g), side(scales, g), side(x, g)));
            assertClose("scaleRows in place " + what, x, tolerance(dt));
        }

        Pair x = random(dt, 41, 33);
        Pair scales = random(DType.F32, 41);
        Pair y32 = poisoned(DType.F32, 41, 33);
        both((be, g) -> be.scaleRows(side(x, g), side(scales, g), side(y32, g)));
        assertClose("scaleRows " + dt + " into F32", y32, 1e-6);
        Pair b32 = random(DType.F32, 41, 33);
        Pair out = poisoned(DType.F32, 41);
        both((be, g) -> be.rowDot(side(x, g), side(b32, g), side(out, g)));
        assertClose("rowDot " + dt + " . F32", out, 1e-5);

        Pair xv = view(x, 3, 40);
        Pair sv = view(scales, 1, 38);
        Pair y = poisoned(dt, 41, 33);
        both((be, g) -> be.scaleRows(side(xv, g), side(sv, g), side(view(y, 3, 40), g)));
        assertClose("scaleRows on views", view(y, 3, 40), tolerance(dt));
        assertUntouched("scaleRows on views", y, 3, 40);
        Pair b = random(dt, 41, 33);
        Pair outv = poisoned(DType.F32, 41);
        both((be, g) -> be.rowDot(side(xv, g), side(view(b, 1, 38), g), side(view(outv, 3, 40), g)));
        assertClose("rowDot on views", view(outv, 3, 40), 1e-5);
        assertUntouched("rowDot on views", outv, 3, 40);
        both((be, g) -> be.scaleRows(side(xv, g), side(sv, g), side(xv, g)));
        assertClose("scaleRows in place on a view (rows outside it unchanged)", x, tolerance(dt));
    }

    @Test
    void dropoutMaskIsBitIdenticalToCpu() {
        Pair x = random(DType.F32, 1001, 13);
        Pair y = poisoned(DType.F32, 1001, 13);
        Pair dx = poisoned(DType.F32, 1001, 13);
        long s = rnd.nextLong(), off = rnd.nextInt(1 << 20);
        both((be, g) -> be.dropoutForward(side(x, g), side(y, g), 0.3f, s, off));
        both((be, g) -> be.dropoutBackward(side(x, g), side(dx, g), 0.3f, s, off));
        assertClose("dropout", y, 0);
        assertClose("dropout'", dx, 0);
    }

    /**
     * The norms at transformer widths: the warp-per-row kernels (136 to 1024; 5000 rows, more than one
     * pass of the persistent backward grid up to 768) and the block-per-row ones above 1024, each with dx written
     * and accumulated (a pre-norm block's residual gradient), LayerNorm with and without beta, RMSNorm.
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void normsAtTransformerWidths(DType dt) {
        for (int cols : new int[] {136, 392, 768, 1024, 2048}) {  // the row kernels' K = 1..4, then the block kernels
            int rows = cols <= 768 ? 5000 : 700;
            for (boolean rms : new boolean[] {false, true}) {
                for (boolean accumulate : new boolean[] {false, true}) {
                    String what = (rms ? "rmsnorm" : "layernorm") + " h=" + cols + (accumulate ? " accumulate" : "");
                    Pair x = random(dt, rows, cols);
                    Pair gamma = random(dt, cols);
                    Pair beta = rms || accumulate ? null : random(dt, cols);  // beta absent once for LayerNorm
                    Pair y = poisoned(dt, rows, cols);
                    Pair mean = rms ? null : poisoned(DType.F32, rows);
                    Pair rstd = poisoned(DType.F32, rows);
                    Pair dy = random(dt, rows, cols);
                    Pair dx = accumulate ? random(dt, rows, cols) : poisoned(dt, rows, cols);
                    Pair dGamma = random(DType.F32, cols);
                    Pair dBeta = rms ? null : random(DType.F32, cols);
                    if (rms) {
                        both((be, g) -> be.rmsNormForward(side(x, g), side(gamma, g), 1e-5f, side(y, g), side(rstd, g)));
                        both((be, g) -> {
                            if (accumulate) {
                                be.rmsNormBackwardAccumulate(side(dy, g), side(x, g), side(gamma, g), side(rstd, g),
                                        side(dx, g), side(dGamma, g));
                            } else {
                                be.rmsNormBackward(side(dy, g), side(x, g), side(gamma, g), side(rstd, g), side(dx, g),
                                        side(dGamma, g));
                            }
                        });
                    } else {
                        both((be, g) -> be.layerNormForward(side(x, g), side(gamma, g), side(beta, g), 1e-5f, side(y, g),
                                side(mean, g), side(rstd, g)));
                        both((be, g) -> {
                            if (accumulate) {
                                be.layerNormBackwardAccumulate(side(dy, g), side(x, g), side(gamma, g), side(mean, g),
                                        side(rstd, g), side(dx, g), side(dGamma, g), side(dBeta, g));
                            } else {
                                be.layerNormBackward(side(dy, g), side(x, g), side(gamma, g), side(mean, g), side(rstd, g),
                                        side(dx, g), side(dGamma, g), side(dBeta, g));
                            }
                        });
                        assertClose(what + " mean", mean, 1e-5);
                        if (dBeta != null) {
                            assertClose(what + " dBeta", dBeta, 1e-5);
                        }
                    }
                    assertClose(what + " y", y, tolerance(dt));
                    assertClose(what + " rstd", rstd, 1e-5);
                    assertClose(what + " dx", dx, Math.max(tolerance(dt), 1e-4));
                    assertClose(what + " dGamma", dGamma, 1e-4);
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void embeddingNormsRotary(DType dt) {
        Pair ids = ints(50, 4, 7);
        Pair table = random(dt, 50, 64);
        Pair out = poisoned(dt, 28, 64);
        Pair dTable = random(DType.F32, 50, 64); // accumulates
        both((be, g) -> be.embeddingForward(side(ids, g), side(table, g), side(out, g)));
        both((be, g) -> be.embeddingBackward(side(ids, g), side(out, g), side(dTable, g)));
        assertClose("embedding", out, 0);
        assertClose("embedding'", dTable, 1e-6);

        Pair x = random(dt, 40, 300);
        Pair gamma = random(dt, 300);
        Pair beta = random(dt, 300);
        Pair y = poisoned(dt, 40, 300);
        Pair mean = poisoned(DType.F32, 40);
        Pair rstd = poisoned(DType.F32, 40);
        Pair dy = random(dt, 40, 300);
        Pair dx = poisoned(dt, 40, 300);
        Pair dGamma = random(DType.F32, 300); // dGamma and dBeta accumulate
        Pair dBeta = random(DType.F32, 300);
        both((be, g) -> be.layerNormForward(side(x, g), side(gamma, g), side(beta, g), 1e-5f, side(y, g), side(mean, g),
                side(rstd, g)));
        both((be, g) -> be.layerNormBackward(side(dy, g), side(x, g), side(gamma, g), side(mean, g), side(rstd, g),
                side(dx, g), side(dGamma, g), side(dBeta, g)));
        assertClose("layernorm", y, tolerance(dt));
        assertClose("layernorm rstd", rstd, 1e-5);
        assertClose("layernorm dx", dx, Math.max(tolerance(dt), 1e-4));
        assertClose("layernorm dGamma", dGamma, 1e-4);
        assertClose("layernorm dBeta", dBeta, 1e-5);
        Pair ry = poisoned(dt, 40, 300);
        Pair rRstd = poisoned(DType.F32, 40);
        Pair rdx = poisoned(dt, 40, 300);
        Pair rdGamma = random(DType.F32, 300);
        both((be, g) -> be.rmsNormForward(side(x, g), side(gamma, g), 1e-5f, side(ry, g), side(rRstd, g)));
        both((be, g) -> be.rmsNormBackward(side(dy, g), side(x, g), side(gamma, g), side(rRstd, g), side(rdx, g),
                side(rdGamma, g)));
        assertClose("rmsnorm", ry, tolerance(dt));
        assertClose("rmsnorm rstd", rRstd, 1e-5);
        assertClose("rmsnorm dx", rdx, Math.max(tolerance(dt), 1e-4));
        assertClose("rmsnorm dGamma", rdGamma, 1e-4);

        // rope in both layouts: r = 32 takes the chunked kernel, r = 20 (10 pairs) the one-pair-per-thread loop
        for (boolean interleaved : new boolean[] {false, true}) {
            for (int rot : new int[] {32, 20}) {
                String what = "rotary r=" + rot + (interleaved ? " interleaved" : "");
                Pair q = random(dt, 12, 2, 3, 64);
                Pair freqs = random(DType.F32, 12, rot);
                Pair r = poisoned(dt, 12, 2, 3, 64);
                both((be, g) -> be.rotaryForward(side(q, g), side(freqs, g), side(r, g), interleaved));
                assertClose(what, r, tolerance(dt));
                both((be, g) -> be.rotaryBackward(side(r, g), side(freqs, g), side(r, g), interleaved));
                assertClose(what + "' (in place)", r, tolerance(dt));
            }
        }
    }

    @Test
    void embeddingRejectsIdOutsideTable() {
        Tensor ids = arena.fromInts(new int[] {1, 2, 99, 3}, 4);
        Pair dIds = upload(ids);
        Pair table = random(DType.F32, 10, 8);
        Pair out = poisoned(DType.F32, 4, 8);
        // The GPU reports a bad id when the queued work completes (here at synchronize), not at the launch.
        gpu.embeddingForward(dIds.gpu(), table.gpu(), out.gpu());
        TensorException e = assertThrows(TensorException.class, gpu::synchronize);
        assertTrue(e.getMessage().contains("embeddingForward") && e.getMessage().contains("token id 99")
                && e.getMessage().contains("position 2"), e.getMessage());
        gpu.synchronize(); // reported once: the backend goes on
    }

    /** s, sk, b, np, ng, d, causal, padded. */
    private record AttentionCase(int s, int sk, int b, int np, int ng, int d, boolean causal, boolean padded) {
    }

    /**
     * Key lengths of a padded case (null otherwise): batch 0 fully masked when {@code emptyFirst}, the
     * others see at least 2 keys: with a single key the softmax is 1 whatever the scores, dq and dk are
     * 0 in exact arithmetic and a relative error compares two backends' rounding noise (seen on the
     * H100: 0.8 in fp32).
     */
    private Pair keyLengths(AttentionCase c, boolean emptyFirst) {
        if (!c.padded()) {
            return null;
        }
        int[] len = new int[c.b()];
        for (int i = 0; i < len.length; i++) {
            len[i] = emptyFirst && i == 0 ? 0 : 2 + rnd.nextInt(c.sk() - 1);
        }
        return upload(arena.fromInts(len, c.b()));
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void flashAttentionForwardAndBackward(DType dt) {
        AttentionCase[] cases = {
            new AttentionCase(70, 70, 2, 4, 4, 64, true, false),    // MHA causal
            new AttentionCase(33, 65, 2, 8, 2, 128, true, true),    // GQA, sk > s, padded
            new AttentionCase(40, 40, 2, 4, 1, 64, false, true),    // MQA, padded (batch 0 fully masked)
            new AttentionCase(17, 17, 3, 2, 2, 32, false, false),
            new AttentionCase(50, 50, 1, 3, 3, 96, true, false),
        };
        for (AttentionCase c : cases) {
            Pair q = random(dt, c.s(), c.b(), c.np(), c.d());
            Pair k = random(dt, c.sk(), c.b(), c.ng(), c.d());
            Pair v = random(dt, c.sk(), c.b(), c.ng(), c.d());
            Pair out = poisoned(dt, c.s(), c.b(), c.np(), c.d());
            Pair lse = poisoned(DType.F32, c.b(), c.np(), c.s());
            Pair kl = keyLengths(c, true);
            float scale = (float) (1 / Math.sqrt(c.d()));
            both((be, g) -> be.attentionForward(side(q, g), side(k, g), side(v, g), side(out, g), side(lse, g), scale,
                    c.causal(), side(kl, g)));
            assertClose("attention out " + c, out, Math.max(tolerance(dt), 1e-5));
            assertClose("attention lse " + c, lse, 1e-5);
            Pair dOut = random(dt, c.s(), c.b(), c.np(), c.d());
            Pair dq = poisoned(dt, c.s(), c.b(), c.np(), c.d());
            Pair dk = poisoned(dt, c.sk(), c.b(), c.ng(), c.d());
            Pair dv = poisoned(dt, c.sk(), c.b(), c.ng(), c.d());
            both((be, g) -> be.attentionBackward(side(dOut, g), side(q, g), side(k, g), side(v, g), side(out, g),
                    side(lse, g), side(dq, g), side(dk, g), side(dv, g), scale, c.causal(), side(kl, g)));
            double tol = dt == DType.F32 ? 1e-4 : 2 * tolerance(dt);
            assertClose("attention dq " + c, dq, tol);
            assertClose("attention dk " + c, dk, tol);
            assertClose("attention dv " + c, dv, tol);
        }
    }

    /**
     * Dropout on the attention probabilities in the FA2 kernels' _dropout twins against the CPU's
     * (the same Philox mask, element offset + ((h B + b) s + i) sk + j): forward and backward, MHA and
     * GQA, causal and padded, head dims 64 and 128; F32 (CUDA-core kernels, no dropout) is refused.
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void flashAttentionDropout(DType dt) {
        AttentionCase[] cases = {
            new AttentionCase(70, 70, 2, 4, 4, 64, true, false),
            new AttentionCase(33, 65, 2, 8, 2, 128, true, true),
            new AttentionCase(40, 40, 2, 4, 1, 64, false, true),
        };
        float p = 0.2f;
        long dropSeed = 1234567890123L, dropOffset = 77;
        for (AttentionCase c : cases) {
            Pair q = random(dt, c.s(), c.b(), c.np(), c.d());
            Pair k = random(dt, c.sk(), c.b(), c.ng(), c.d());
            Pair v = random(dt, c.sk(), c.b(), c.ng(), c.d());
            Pair out = poisoned(dt, c.s(), c.b(), c.np(), c.d());
            Pair lse = poisoned(DType.F32, c.b(), c.np(), c.s());
            Pair lengths = keyLengths(c, false);
            float scale = (float) (1 / Math.sqrt(c.d()));
            if (dt == DType.F32) {
                Tensor g = lse.gpu();
                TensorException e = assertThrows(TensorException.class, () -> gpu.attentionForward(q.gpu(), k.gpu(),
                        v.gpu(), out.gpu(), g, scale, c.causal(), side(lengths, true), null, p, dropSeed, dropOffset));
                assertTrue(e.getMessage().contains("tensor-core"), e.getMessage());
                continue;
            }
            both((be, g) -> be.attentionForward(side(q, g), side(k, g), side(v, g), side(out, g), side(lse, g), scale,
                    c.causal(), side(lengths, g), null, p, dropSeed, dropOffset));
            assertClose("dropout attention out " + c, out, tolerance(dt));
            assertClose("dropout attention lse " + c, lse, 1e-5);
            Pair dOut = random(dt, c.s(), c.b(), c.np(), c.d());
            Pair dq = poisoned(dt, c.s(), c.b(), c.np(), c.d());
            Pair dk = poisoned(dt, c.sk(), c.b(), c.ng(), c.d());
            Pair dv = poisoned(dt, c.sk(), c.b(), c.ng(), c.d());
            both((be, g) -> be.attentionBackward(side(dOut, g), side(q, g), side(k, g), side(v, g), side(out, g),
                    side(lse, g), side(dq, g), side(dk, g), side(dv, g), scale, c.causal(), side(lengths, g), null, p,
                    dropSeed, dropOffset));
            assertClose("dropout attention dq " + c, dq, 2 * tolerance(dt));
            assertClose("dropout attention dk " + c, dk, 2 * tolerance(dt));
            assertClose("dropout attention dv " + c, dv, 2 * tolerance(dt));
        }
    }

    /**
     * Attention on Megatron's fused linear_qkv output: on the GPU the FA2 kernels read q, k, v and write
     * dq, dk, dv in place (BF16/F16, d 64/128; F32 falls back to separating them), on the CPU the
     * Backend default separates them; both against each other like the dense op.
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void flashAttentionOnFusedQkv(DType dt) {
        AttentionCase[] cases = {
            new AttentionCase(70, 70, 2, 4, 4, 64, true, false),    // MHA, a partial last block
            new AttentionCase(96, 96, 2, 8, 2, 128, true, false),   // GQA: 4 query heads per group
            new AttentionCase(40, 40, 3, 4, 1, 64, false, false),   // MQA, not causal
        };
        assertEquals(dt != DType.F32, gpu.readsFusedQkv(dt, 64));
        for (AttentionCase c : cases) {
            long width = (long) (c.np() + 2 * c.ng()) * c.d();
            Pair qkv = random(dt, c.s(), c.b(), width);
            Pair out = poisoned(dt, c.s(), c.b(), c.np(), c.d());
            Pair lse = poisoned(DType.F32, c.b(), c.np(), c.s());
            float scale = (float) (1 / Math.sqrt(c.d()));
            both((be, g) -> be.attentionForwardFusedQkv(side(qkv, g), c.np(), c.ng(), side(out, g), side(lse, g), scale,
                    c.causal(), null));
            assertClose("fused-qkv attention out " + c, out, Math.max(tolerance(dt), 1e-5));
            assertClose("fused-qkv attention lse " + c, lse, 1e-5);
            Pair dOut = random(dt, c.s(), c.b(), c.np(), c.d());
            Pair dqkv = poisoned(dt, c.s(), c.b(), width);
            both((be, g) -> be.attentionBackwardFusedQkv(side(dOut, g), side(qkv, g), c.np(), c.ng(), side(out, g),
                    side(lse, g), side(dqkv, g), scale, c.causal(), null));
            assertClose("fused-qkv attention dqkv " + c, dqkv, dt == DType.F32 ? 1e-4 : 2 * tolerance(dt));
        }
    }

    /**
     * Documents ({@code keyStarts}, {@code --reset-attention-mask}): the FA2 kernels' _docs twins (BF16/F16,
     * with and without dropout, dense and on the fused qkv) and the CUDA-core kernels (F32) against the CPU.
     * Documents start inside key blocks and span several; none has a single token (see {@link #keyLengths}).
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void flashAttentionDocuments(DType dt) {
        record DocCase(int s, int b, int np, int ng, int d, int[][] firsts) {
        }
        DocCase[] cases = {
            new DocCase(150, 2, 4, 2, 64, new int[][] {{0, 40, 97}, {0, 64, 130}}),
            new DocCase(96, 2, 8, 2, 128, new int[][] {{0, 33}, {0}}),
            new DocCase(70, 2, 2, 1, dt == DType.F32 ? 32 : 64, new int[][] {{0, 5, 69 - 3}, {0, 17}}),
        };
        long dropSeed = 987654321L, dropOffset = 5;
        for (DocCase c : cases) {
            int[] startsArray = new int[c.b() * c.s()];
            for (int e = 0; e < c.b(); e++) {
                for (int i = 0, doc = 0; i < c.s(); i++) {
                    while (doc + 1 < c.firsts()[e].length && c.firsts()[e][doc + 1] <= i) {
                        doc++;
                    }
                    startsArray[e * c.s() + i] = c.firsts()[e][doc];
                }
            }
            Pair starts = upload(arena.fromInts(startsArray, c.b(), c.s()));
            float scale = (float) (1 / Math.sqrt(c.d()));
            String name = dt + " " + c;
            for (float p : dt == DType.F32 ? new float[] {0f} : new float[] {0f, 0.15f}) {
                Pair q = random(dt, c.s(), c.b(), c.np(), c.d());
                Pair k = random(dt, c.s(), c.b(), c.ng(), c.d());
                Pair v = random(dt, c.s(), c.b(), c.ng(), c.d());
                Pair out = poisoned(dt, c.s(), c.b(), c.np(), c.d());
                Pair lse = poisoned(DType.F32, c.b(), c.np(), c.s());
                both((be, g) -> be.attentionForward(side(q, g), side(k, g), side(v, g), side(out, g), side(lse, g), scale,
                        true, null, side(starts, g), p, dropSeed, dropOffset));
                assertClose("documents out p=" + p + " " + name, out, Math.max(tolerance(dt), 1e-5));
                assertClose("documents lse p=" + p + " " + name, lse, 1e-5);
                Pair dOut = random(dt, c.s(), c.b(), c.np(), c.d());
                Pair dq = poisoned(dt, c.s(), c.b(), c.np(), c.d());
                Pair dk = poisoned(dt, c.s(), c.b(), c.ng(), c.d());
                Pair dv = poisoned(dt, c.s(), c.b(), c.ng(), c.d());
                both((be, g) -> be.attentionBackward(side(dOut, g), side(q, g), side(k, g), side(v, g), side(out, g),
                        side(lse, g), side(dq, g), side(dk, g), side(dv, g), scale, true, null, side(starts, g), p,
                        dropSeed, dropOffset));
                double tol = dt == DType.F32 ? 1e-4 : 2 * tolerance(dt);
                assertClose("documents dq p=" + p + " " + name, dq, tol);
                assertClose("documents dk p=" + p + " " + name, dk, tol);
                assertClose("documents dv p=" + p + " " + name, dv, tol);
            }
            long width = (long) (c.np() + 2 * c.ng()) * c.d();
            Pair qkv = random(dt, c.s(), c.b(), width);
            Pair out = poisoned(dt, c.s(), c.b(), c.np(), c.d());
            Pair lse = poisoned(DType.F32, c.b(), c.np(), c.s());
            both((be, g) -> be.attentionForwardFusedQkv(side(qkv, g), c.np(), c.ng(), side(out, g), side(lse, g), scale,
                    true, side(starts, g)));
            assertClose("documents fused-qkv out " + name, out, Math.max(tolerance(dt), 1e-5));
            Pair dOut = random(dt, c.s(), c.b(), c.np(), c.d());
            Pair dqkv = poisoned(dt, c.s(), c.b(), width);
            both((be, g) -> be.attentionBackwardFusedQkv(side(dOut, g), side(qkv, g), c.np(), c.ng(), side(out, g),
                    side(lse, g), side(dqkv, g), scale, true, side(starts, g)));
            assertClose("documents fused-qkv dqkv " + name, dqkv, dt == DType.F32 ? 1e-4 : 2 * tolerance(dt));
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void crossEntropyPiecesAndSampling(DType dt) {
        int n = 24, v = 1000;
        long vocabStart = 500; // this rank holds columns [500, 1500) of the vocabulary
        Pair logits = random(dt, n, v);
        Pair targets = ints(2000, n);
        Pair rowMax = poisoned(DType.F32, n);
        Pair sumExp = poisoned(DType.F32, n);
        Pair target = poisoned(DType.F32, n);
        Pair loss = poisoned(DType.F32, n);
        Pair dLoss = random(DType.F32, n);
        Pair dLogits = poisoned(dt, n, v);
        both((be, g) -> {
            be.crossEntropyRowMax(side(logits, g), side(rowMax, g));
            be.crossEntropyTargetLogit(side(logits, g), side(targets, g), vocabStart, side(target, g));
            be.crossEntropySumExp(side(logits, g), side(rowMax, g), side(sumExp, g));
            be.crossEntropyLoss(side(rowMax, g), side(sumExp, g), side(target, g), side(loss, g));
            be.crossEntropyBackward(side(logits, g), side(targets, g), vocabStart, side(rowMax, g), side(sumExp, g),
                    side(dLoss, g), side(dLogits, g));
        });
        assertClose("rowMax", rowMax, 0);
        assertClose("targetLogit", target, 0);
        assertClose("sumExp", sumExp, 1e-5);
        assertClose("loss", loss, 1e-5);
        assertClose("dLogits", dLogits, Math.max(tolerance(dt), 1e-5));
        Pair arg = poisoned(DType.I32, n);
        Pair logp = poisoned(DType.F32, n, v);
        both((be, g) -> {
            be.argmax(side(logits, g), side(arg, g));
            be.logSoftmax(side(logits, g), 0.7f, side(logp, g));
        });
        assertClose("argmax", arg, 0);
        assertClose("logSoftmax", logp, 1e-5);
    }

    /**
     * crossEntropyRowMaxSumExp reads each row once (an online softmax) where the CPU's and the
     * GPU's two pieces read it twice: the row max exactly, the sum of exps to fp32 rounding (1e-5
     * per row against the GPU's two pieces, as the CPU test of the pieces). GPT-2's padded
     * vocabulary, its unpadded one and a small odd one (rows start at every alignment, so heads and
     * tails take the scalar path); logits in [-4, 4) plus a drift up or down the row, so the running
     * max of a thread keeps growing (rescaling) or is found early.
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void crossEntropyRowMaxSumExpInOnePass(DType dt) {
        for (int v : new int[] {50304, 50257, 999}) {
            int n = 24;
            Tensor h = arena.allocate(dt, n, v);
            for (int r = 0; r < n; r++) {
                float drift = (r % 3 - 1) * 6f; // down, flat, up
                for (int c = 0; c < v; c++) {
                    h.setFloat((long) r * v + c, (rnd.nextFloat() * 2 - 1) * 4 + drift * c / v);
                }
            }
            Pair logits = upload(h);
            Pair rowMax = poisoned(DType.F32, n);
            Pair sumExp = poisoned(DType.F32, n);
            both((be, g) -> be.crossEntropyRowMaxSumExp(side(logits, g), side(rowMax, g), side(sumExp, g)));
            assertClose("rowMax v=" + v, rowMax, 0);
            assertClose("sumExp v=" + v, sumExp, 1e-5);
            Tensor twoPassMax = poisoned(DType.F32, n).gpu();
            Tensor twoPassSum = poisoned(DType.F32, n).gpu();
            gpu.crossEntropyRowMax(logits.gpu(), twoPassMax);
            gpu.crossEntropySumExp(logits.gpu(), twoPassMax, twoPassSum);
            assertArrayEquals(download(twoPassMax), download(rowMax.gpu()), "rowMax v=" + v + ": one pass vs two");
            float[] expected = download(twoPassSum);
            float[] actual = download(sumExp.gpu());
            for (int r = 0; r < n; r++) {
                assertEquals(expected[r], actual[r], 1e-5 * expected[r],
                        "sumExp v=" + v + " row " + r + ": one pass vs two (seed " + seed + ")");
            }
        }
    }

    // ---------------------------------------------------------------- fused linear layers (cuBLASLt epilogues)

    /** F32 gets 2e-5: the fused gelu is computed from the fp32 sum (the CPU's from the stored pre). */
    private static double linearTolerance(DType dt) {
        return dt == DType.F32 ? 2e-5 : tolerance(dt);
    }

    /**
     * linearForward against the CPU's gemm + biasAdd + activation, for every activation, with and without
     * bias: GELU_TANH runs GELU_AUX(_BIAS) (y and the saved pre-activation), NONE, GELU_ERF and SQUARED_RELU
     * the BIAS epilogue (the last two then their kernel). out = 84 (aux leading dimension not a multiple of 8) takes the unfused path.
     * In F32 the tanh-vs-erf gap (about 2e-4 relative here) is ten times the tolerance, so the
     * check also pins cuBLASLt's GELU to the tanh form.
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void linearForwardFusesBiasAndGelu(DType dt) {
        long n = 48, in = 64;
        for (long out : new long[] {80, 84}) {
            for (Backend.Activation act : Backend.Activation.values()) {
                for (boolean withBias : new boolean[] {true, false}) {
                    String what = "linearForward " + act + (withBias ? " +bias" : "") + " out=" + out;
                    Pair x = random(dt, n, in);
                    Pair w = random(dt, out, in);
                    Pair bias = withBias ? random(dt, out) : null;
                    Pair y = poisoned(dt, n, out);
                    Pair pre = act == Backend.Activation.NONE ? null : poisoned(dt, n, out);
                    both((be, g) -> be.linearForward(side(x, g), side(w, g), side(bias, g), act, side(y, g),
                            side(pre, g)));
                    assertClose(what + " y", y, linearTolerance(dt));
                    if (pre != null) {
                        assertClose(what + " preActivation", pre, linearTolerance(dt));
                    }
                }
            }
        }
    }

    /**
     * linearForwardAdd (a layer feeding the residual stream) against the CPU's linearForward + add:
     * on the GPU one matmul reading the residual as C and writing y as D; the residual is left as it was.
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void linearForwardAddReadsTheResidualAsC(DType dt) {
        long n = 48, in = 64, out = 80;
        for (boolean withBias : new boolean[] {true, false}) {
            String what = "linearForwardAdd" + (withBias ? " +bias" : "");
            Pair x = random(dt, n, in);
            Pair w = random(dt, out, in);
            Pair bias = withBias ? random(dt, out) : null;
            Pair residual = random(dt, n, out);
            Pair y = poisoned(dt, n, out);
            both((be, g) -> be.linearForwardAdd(side(x, g), side(w, g), side(bias, g), side(residual, g), side(y, g)));
            assertClose(what + " y", y, linearTolerance(dt));
            assertClose(what + " residual unchanged", residual, 0);
        }
    }

    /**
     * linearDgrad against the CPU's gemm + the activation's backward: GELU_TANH runs the DGELU epilogue (dx =
     * (dy W) * gelu'(pre)), the others the matmul then their kernel; in = 68 takes the unfused path. Pre-activations span [-3, 3], where
     * gelu' is far from constant.
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void linearDgradFusesGeluDerivative(DType dt) {
        long n = 40, out = 96;
        for (long in : new long[] {64, 68}) {
            for (Backend.Activation act : Backend.Activation.values()) {
                Pair dy = random(dt, n, out);
                Pair w = random(dt, out, in);
                Pair pre = act == Backend.Activation.NONE ? null : random(dt, n, in);
                if (pre != null) {
                    both((be, g) -> be.scale(side(pre, g), 3f));
                }
                Pair dx = poisoned(dt, n, in);
                both((be, g) -> be.linearDgrad(side(dy, g), side(w, g), act, side(pre, g), side(dx, g)));
                assertClose("linearDgrad " + act + " in=" + in, dx, linearTolerance(dt));
            }
        }
    }

    /**
     * linearWgrad accumulates dW and dBias (F32, from random values, over two "micro-batches")
     * against the CPU's biasBackward + gemm: the BGRADB epilogue writes its bias gradient, so the
     * backend must add it; without bias plain accumulation.
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void linearWgradAccumulatesWeightAndBiasGradients(DType dt) {
        long n = 56, in = 64, out = 72;
        for (boolean withBias : new boolean[] {true, false}) {
            Pair dW = random(DType.F32, out, in);
            Pair dB = withBias ? random(DType.F32, out) : null;
            for (int microBatch = 0; microBatch < 2; microBatch++) {
                Pair dy = random(dt, n, out);
                Pair x = random(dt, n, in);
                both((be, g) -> be.linearWgrad(side(dy, g), side(x, g), side(dW, g), side(dB, g)));
            }
            assertClose("linearWgrad dWeight" + (withBias ? " +bias" : ""), dW, dt == DType.F32 ? 1e-5 : 1e-3);
            if (dB != null) {
                assertClose("linearWgrad dBias", dB, 1e-5);
            }
        }
    }

    /**
     * At GPT-2's MLP shapes in BF16 (fewer rows) every epilogue the layers use must run fused: a
     * fallback is correct but slow, and this names the one cuBLASLt refused.
     */
    @Test
    void gpt2ShapesRunFusedInBf16() {
        DType dt = DType.BF16;
        long n = 512, h = 768, ffn = 3072;
        int before = gpu.gemm().unsupported().size();
        Pair x = random(dt, n, h);
        Pair w1 = random(dt, ffn, h);
        Pair b1 = random(dt, ffn);
        Pair pre = poisoned(dt, n, ffn);
        Pair act = poisoned(dt, n, ffn);
        Pair w2 = random(dt, h, ffn);
        Pair b2 = random(dt, h);
        Pair y = poisoned(dt, n, h);
        Pair dW2 = random(DType.F32, h, ffn);
        Pair dB2 = random(DType.F32, h);
        Pair dPre = poisoned(dt, n, ffn);
        // The backward ops get inputs both backends share (not each one's own bf16 forward outputs, whose
        // roundings differ: seen on the H100 as 1.6e-3 in dW and 1.3e-3 in db), so fp32 accumulation is what
        // the tolerances below measure.
        Pair dy = random(dt, n, h);
        Pair a = random(dt, n, ffn);
        Pair p = random(dt, n, ffn);
        both((be, g) -> {
            be.linearForward(side(x, g), side(w1, g), side(b1, g), Backend.Activation.GELU_TANH, side(act, g),
                    side(pre, g));
            be.linearForward(side(act, g), side(w2, g), side(b2, g), Backend.Activation.NONE, side(y, g), null);
            be.linearWgrad(side(dy, g), side(a, g), side(dW2, g), side(dB2, g));
            be.linearDgrad(side(dy, g), side(w2, g), Backend.Activation.GELU_TANH, side(p, g), side(dPre, g));
        });
        List<String> refused = gpu.gemm().unsupported();
        assertEquals(List.of(), refused.subList(before, refused.size()), "epilogues cuBLASLt refused");
        assertClose("fc1 gelu", act, tolerance(dt));
        assertClose("fc2", y, tolerance(dt));
        // fp32 sums of n = 512 exact bf16 products in two orders: ~sqrt(n) * 6e-8, far under 1e-4.
        assertClose("fc2 dW", dW2, 1e-4);
        assertClose("fc2 db", dB2, 1e-4);
        assertClose("fc2 dgrad * gelu'", dPre, tolerance(dt));
    }

    /** Random F32 AdamW operands of {@code total} elements: param, grad, exp_avg and a non-negative exp_avg_sq. */
    private Pair[] adamState(long total) {
        Pair p = random(DType.F32, total);
        Pair gr = random(DType.F32, total);
        Pair m = random(DType.F32, total);
        Pair v = random(DType.F32, total);
        for (long i = 0; i < total; i++) {
            v.cpu().setFloat(i, Math.abs(v.cpu().getFloat(i)));
        }
        gpu.copy(v.cpu(), v.gpu());
        return new Pair[] {p, gr, m, v};
    }

    /**
     * multiTensorAdamW (one launch) against the CPU and, bit for bit, against one GPU adamW per
     * tensor: sizes from 1 to three chunks plus a tail, 4-byte aligned views (the scalar path),
     * mixed weight decay; a second step reuses the cached chunk table.
     */
    @Test
    void multiTensorAdamWMatchesPerTensorAdamW() {
        long[][] ranges = {{0, 1}, {16, 19}, {32, 132}, {133, 133 + 2 * CudaMultiTensorAdam.CHUNK + 4099},
                {70_000, 70_016}, {70_021, 71_000}};
        float[] decays = {0.1f, 0f, 0.1f, 0.05f, 0f, 0.1f};
        long total = 71_000;
        Pair[] state = adamState(total);
        Pair p = state[0], gr = state[1], m = state[2], v = state[3];
        Pair[] oneByOne = {copyOnGpu(p), copyOnGpu(m), copyOnGpu(v)};
        int[] tables = new int[3];
        for (int step = 1; step <= 2; step++) {
            long s = step;
            both((be, g) -> be.multiTensorAdamW(views(p, ranges, g), views(gr, ranges, g), views(m, ranges, g),
                    views(v, ranges, g), decays, 1e-3f, 0.9f, 0.95f, 1e-8f, s));
            for (int t = 0; t < ranges.length; t++) {
                long[] r = ranges[t];
                gpu.adamW(oneByOne[0].gpu().view(r[0], r[1]), gr.gpu().view(r[0], r[1]), oneByOne[1].gpu().view(r[0], r[1]),
                        oneByOne[2].gpu().view(r[0], r[1]), 1e-3f, 0.9f, 0.95f, 1e-8f, decays[t], s);
            }
            tables[step] = gpu.multiTensorAdam().tableCount();
        }
        assertEquals(tables[1], tables[2], "the second step reuses the first step's table");
        assertClose("multiTensorAdamW param", p, 1e-6);
        assertClose("multiTensorAdamW m", m, 1e-6);
        assertClose("multiTensorAdamW v", v, 1e-6);
        assertArrayEquals(download(oneByOne[0].gpu()), download(p.gpu()), "param: one launch vs one per tensor");
        assertArrayEquals(download(oneByOne[1].gpu()), download(m.gpu()), "m: one launch vs one per tensor");
        assertArrayEquals(download(oneByOne[2].gpu()), download(v.gpu()), "v: one launch vs one per tensor");
    }

    private Pair copyOnGpu(Pair p) {
        Tensor d = gpu.allocate(arena, p.gpu().dtype(), p.gpu().shape());
        gpu.copy(p.gpu(), d);
        return new Pair(p.cpu(), d);
    }

    private static List<Tensor> views(Pair p, long[][] ranges, boolean onGpu) {
        return views(side(p, onGpu), ranges, 0);
    }

    /** Views of {@code t} at each range moved {@code shift} elements on. */
    private static List<Tensor> views(Tensor t, long[][] ranges, long shift) {
        List<Tensor> out = new ArrayList<>();
        for (long[] r : ranges) {
            out.add(t.view(r[0] + shift, r[1] + shift));
        }
        return out;
    }

    /** Compute-copy dtype (null: none) and grad scale; copies at the params' offsets, or 2 elements off (the scalar path). */
    static Stream<Arguments> fusedAdamWCases() {
        List<Arguments> cases = new ArrayList<>();
        for (DType copy : new DType[] {null, DType.F32, DType.BF16, DType.F16}) {
            for (float gradScale : new float[] {0.37f, 1f}) {
                cases.add(Arguments.of(copy, gradScale, 0));
            }
        }
        cases.add(Arguments.of(DType.BF16, 0.37f, 2));
        cases.add(Arguments.of(DType.F32, 0.37f, 2));
        return cases.stream();
    }

    /**
     * multiTensorAdamW with a grad scale and compute copies (one launch) is, bit for bit, the GPU's
     * own scale (of a copy of the gradients), plain multiTensorAdamW and cast, and leaves the
     * gradients as they were; against the CPU's fused step to rounding. Sizes from 1 element to
     * three chunks plus a tail, 16-byte aligned (the float4 path) and not (the scalar path); copies
     * are views of one poisoned buffer. Step 1 writes no copies, steps 2 and 3 do: a chunk table
     * cached without copies must not serve a call with them.
     */
    @ParameterizedTest(name = "copies {0}, gradScale {1}, copy shift {2}")
    @MethodSource("fusedAdamWCases")
    void fusedMultiTensorAdamWIsScaleStepCast(DType copyType, float gradScale, int copyShift) {
        long[][] ranges = {{0, 1}, {16, 19}, {32, 132}, {136, 136 + 2 * CudaMultiTensorAdam.CHUNK + 4099},
                {70_100, 70_116}, {70_121, 71_000}};
        float[] decays = {0.1f, 0f, 0.1f, 0.05f, 0f, 0.1f};
        long total = 71_000;
        Pair[] state = adamState(total);
        Pair p = state[0], gr = state[1], m = state[2], v = state[3];
        float[] gradsBefore = download(gr.gpu());
        Pair[] composed = {copyOnGpu(p), copyOnGpu(m), copyOnGpu(v)};
        Tensor scaled = gpu.allocate(arena, DType.F32, total);
        Pair copies = copyType == null ? null : poisoned(copyType, total + copyShift);
        Tensor composedCopies = copyType == null ? null : poisoned(copyType, total + copyShift).gpu();
        for (int step = 1; step <= 3; step++) {
            long s = step;
            boolean withCopies = copies != null && step > 1;
            both((be, g) -> be.multiTensorAdamW(views(p, ranges, g), views(gr, ranges, g), views(m, ranges, g),
                    views(v, ranges, g), decays, 1e-3f, 0.9f, 0.95f, 1e-8f, s, gradScale,
                    withCopies ? views(side(copies, g), ranges, copyShift) : null));
            gpu.copy(gr.gpu(), scaled);
            gpu.scale(scaled, gradScale);
            gpu.multiTensorAdamW(views(composed[0].gpu(), ranges, 0), views(scaled, ranges, 0),
                    views(composed[1].gpu(), ranges, 0), views(composed[2].gpu(), ranges, 0), decays, 1e-3f, 0.9f, 0.95f,
                    1e-8f, s);
            for (int t = 0; withCopies && t < ranges.length; t++) {
                long[] r = ranges[t];
                gpu.cast(composed[0].gpu().view(r[0], r[1]), composedCopies.view(r[0] + copyShift, r[1] + copyShift));
            }
        }
        assertArrayEquals(gradsBefore, download(gr.gpu()), "the gradients are left unscaled");
        assertArrayEquals(download(composed[0].gpu()), download(p.gpu()), "param: fused vs scale + step");
        assertArrayEquals(download(composed[1].gpu()), download(m.gpu()), "m: fused vs scale + step");
        assertArrayEquals(download(composed[2].gpu()), download(v.gpu()), "v: fused vs scale + step");
        assertClose("fused multiTensorAdamW param", p, 1e-6);
        assertClose("fused multiTensorAdamW m", m, 1e-6);
        assertClose("fused multiTensorAdamW v", v, 1e-6);
        if (copies != null) {
            assertArrayEquals(download(composedCopies), download(copies.gpu()), "compute copies: fused vs cast");
            for (long[] r : ranges) {
                Pair written = new Pair(copies.cpu().view(r[0] + copyShift, r[1] + copyShift),
                        copies.gpu().view(r[0] + copyShift, r[1] + copyShift));
                assertClose("compute copy [" + r[0] + ", " + r[1] + ")", written, tolerance(copyType));
            }
        }
    }

    @Test
    void adamWNormsAndInfNan() {
        Pair p = random(DType.F32, 10_000);
        Pair gr = random(DType.F32, 10_000);
        Pair m = random(DType.F32, 10_000);
        Pair v = random(DType.F32, 10_000);
        for (long i = 0; i < v.cpu().numel(); i++) { // the second moment is non-negative
            v.cpu().setFloat(i, Math.abs(v.cpu().getFloat(i)));
        }
        gpu.copy(v.cpu(), v.gpu());
        both((be, g) -> be.adamW(side(p, g), side(gr, g), side(m, g), side(v, g), 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 3));
        assertClose("adamW param", p, 1e-6);
        assertClose("adamW m", m, 1e-6);
        assertClose("adamW v", v, 1e-6);
        // The GPU sums x^2 in fp64 (exact to ~1e-16 here). The CPU reference does not: its vector
        // path accumulates x*x into fp32 lanes with fma over runs of 16 vectors, then adds the lanes
        // in an fp32 tree of depth <= 4, and only then widens to double. Every term goes through at
        // most 16 + 4 = 20 fp32 roundings, and all terms are non-negative (no cancellation), so the
        // relative error is at most gamma_20 = 20u / (1 - 20u) ~ 1.2e-6 with u = 2^-24. Allow 2e-6
        // (an earlier 1e-9 failed on the H100 with 4.7e-8: 5079.001082658768 vs 5079.000845622322).
        double expected = cpu.sumOfSquares(p.cpu());
        double actual = gpu.sumOfSquares(p.gpu());
        assertEquals(expected, actual, 2e-6 * expected, "sum of squares (seed " + seed + ")");
        assertFalse(gpu.hasInfOrNan(p.gpu()));
        Tensor bad = arena.allocate(DType.BF16, 3000);
        bad.setFloat(2999, Float.NaN);
        assertTrue(gpu.hasInfOrNan(upload(bad).gpu()));
    }

    /** Zeros of both signs, NaN beside them, at an unaligned start and in every dtype: the CPU's count. */
    @Test
    void countZerosMatchesTheCpu() {
        for (DType dt : new DType[] {DType.F32, DType.BF16, DType.F16}) {
            Tensor host = arena.allocate(dt, 100_003);
            for (long i = 0; i < host.numel(); i++) {
                host.setFloat(i, i % 3 == 0 ? (i % 2 == 0 ? 0f : -0f) : i % 101 == 1 ? Float.NaN : (float) Math.sin(i));
            }
            Pair x = upload(host);
            assertEquals(cpu.countZeros(x.cpu()), gpu.countZeros(x.gpu()), dt.toString());
            assertEquals(cpu.countZeros(x.cpu().view(1, 99_999)), gpu.countZeros(x.gpu().view(1, 99_999)), dt + " unaligned");
        }
    }

    /** The memory report's figures: what the pool hands out, at most, and what it holds from the driver. */
    @Test
    void memoryStatsFollowThePool() {
        MemoryStats before = gpu.memoryStats();
        try (TensorArena scratch = TensorArena.named("stats")) {
            gpu.allocate(scratch, DType.BF16, 1 << 20);   // 2 MiB
            MemoryStats during = gpu.memoryStats();
            assertEquals(before.allocatedBytes() + (2 << 20), during.allocatedBytes());
            assertEquals(before.allocations() + 1, during.allocations());
            assertTrue(during.maxAllocatedBytes() >= during.allocatedBytes(), during.toString());
            assertTrue(during.reservedBytes() >= during.allocatedBytes() && during.maxReservedBytes() >= during.reservedBytes(),
                    during.toString());
        }
        gpu.synchronize();
        MemoryStats after = gpu.memoryStats();
        assertEquals(before.allocatedBytes(), after.allocatedBytes());
        assertTrue(after.maxAllocatedBytes() >= before.allocatedBytes() + (2 << 20), after.toString());
    }

    @Test
    void timerMeasuresGpuTime() {
        Pair a = random(DType.BF16, 1024, 1024);
        Pair c = poisoned(DType.F32, 1024, 1024);
        try (CudaTimer t = gpu.timer()) {
            t.start();
            gpu.gemm(false, true, 1, a.gpu(), a.gpu(), 0, c.gpu());
            t.stop();
            assertTrue(t.elapsedMillis() > 0);
        }
    }
}
