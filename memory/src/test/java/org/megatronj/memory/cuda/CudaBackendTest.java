package org.megatronj.memory.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import java.util.function.BiConsumer;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.memory.TensorException;
import org.megatronj.memory.cpu.CpuBackend;

/**
 * The CUDA backend against the CPU reference, op by op, on fresh random inputs in F32, BF16 and
 * F16. Inputs are rounded to the dtype once and both backends see the same stored values; the
 * error allowed is relative (‖gpu − cpu‖ / ‖cpu‖): 1e-5 in F32 (more for long reductions),
 * 2e-3 in F16 and 1e-2 in BF16, an output rounding or two. Needs a GPU: tagged {@code gpu}.
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

    private Pair zeros(DType dt, long... shape) {
        return upload(arena.allocate(dt, shape));
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
        Pair f = zeros(DType.F32, 1000, 37);
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
        Pair c = zeros(dt, 3, m, n);
        both((be, g) -> be.gemmBatched(false, true, 1.0f, side(a, g), side(b, g), 0.0f, side(c, g)));
        assertClose("gemmBatched", c, tolerance(dt));
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void elementwiseAndBias(DType dt) {
        Pair a = random(dt, 64, 200);
        Pair b = random(dt, 64, 200);
        Pair out = zeros(dt, 64, 200);
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
            Pair y = zeros(dt, 33, 130);
            Pair dx = zeros(dt, 33, 130);
            both((be, g) -> be.geluForward(side(x, g), side(y, g), tanh));
            both((be, g) -> be.geluBackward(side(x, g), side(dy, g), side(dx, g), tanh));
            assertClose("gelu " + tanh, y, Math.max(tolerance(dt), 1e-5));
            assertClose("gelu' " + tanh, dx, Math.max(tolerance(dt), 1e-5));
        }
        Pair x = random(dt, 17, 2 * 96);
        Pair y = zeros(dt, 17, 96);
        Pair dy = random(dt, 17, 96);
        Pair dx = zeros(dt, 17, 2 * 96);
        both((be, g) -> be.swigluForward(side(x, g), side(y, g)));
        both((be, g) -> be.swigluBackward(side(x, g), side(dy, g), side(dx, g)));
        assertClose("swiglu", y, tolerance(dt));
        assertClose("swiglu'", dx, tolerance(dt));
    }

    @Test
    void dropoutMaskIsBitIdenticalToCpu() {
        Pair x = random(DType.F32, 1001, 13);
        Pair y = zeros(DType.F32, 1001, 13);
        Pair dx = zeros(DType.F32, 1001, 13);
        long s = rnd.nextLong(), off = rnd.nextInt(1 << 20);
        both((be, g) -> be.dropoutForward(side(x, g), side(y, g), 0.3f, s, off));
        both((be, g) -> be.dropoutBackward(side(x, g), side(dx, g), 0.3f, s, off));
        assertClose("dropout", y, 0);
        assertClose("dropout'", dx, 0);
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void embeddingNormsRotary(DType dt) {
        Pair ids = ints(50, 4, 7);
        Pair table = random(dt, 50, 64);
        Pair out = zeros(dt, 28, 64);
        Pair dTable = zeros(DType.F32, 50, 64);
        both((be, g) -> be.embeddingForward(side(ids, g), side(table, g), side(out, g)));
        both((be, g) -> be.embeddingBackward(side(ids, g), side(out, g), side(dTable, g)));
        assertClose("embedding", out, 0);
        assertClose("embedding'", dTable, 1e-6);

        Pair x = random(dt, 40, 300);
        Pair gamma = random(dt, 300);
        Pair beta = random(dt, 300);
        Pair y = zeros(dt, 40, 300);
        Pair mean = zeros(DType.F32, 40);
        Pair rstd = zeros(DType.F32, 40);
        Pair dy = random(dt, 40, 300);
        Pair dx = zeros(dt, 40, 300);
        Pair dGamma = zeros(DType.F32, 300);
        Pair dBeta = zeros(DType.F32, 300);
        both((be, g) -> be.layerNormForward(side(x, g), side(gamma, g), side(beta, g), 1e-5f, side(y, g), side(mean, g),
                side(rstd, g)));
        both((be, g) -> be.layerNormBackward(side(dy, g), side(x, g), side(gamma, g), side(mean, g), side(rstd, g),
                side(dx, g), side(dGamma, g), side(dBeta, g)));
        assertClose("layernorm", y, tolerance(dt));
        assertClose("layernorm rstd", rstd, 1e-5);
        assertClose("layernorm dx", dx, Math.max(tolerance(dt), 1e-4));
        assertClose("layernorm dGamma", dGamma, 1e-4);
        assertClose("layernorm dBeta", dBeta, 1e-5);
        both((be, g) -> be.rmsNormForward(side(x, g), side(gamma, g), 1e-5f, side(y, g), side(rstd, g)));
        both((be, g) -> be.rmsNormBackward(side(dy, g), side(x, g), side(gamma, g), side(rstd, g), side(dx, g),
                side(dGamma, g)));
        assertClose("rmsnorm", y, tolerance(dt));
        assertClose("rmsnorm dx", dx, Math.max(tolerance(dt), 1e-4));
        assertClose("rmsnorm dGamma", dGamma, 1e-4);

        Pair q = random(dt, 12, 2, 3, 64);
        Pair freqs = random(DType.F32, 12, 32);
        Pair r = zeros(dt, 12, 2, 3, 64);
        both((be, g) -> be.rotaryForward(side(q, g), side(freqs, g), side(r, g)));
        assertClose("rotary", r, tolerance(dt));
        both((be, g) -> be.rotaryBackward(side(r, g), side(freqs, g), side(r, g)));
        assertClose("rotary' (in place)", r, tolerance(dt));
    }

    @Test
    void embeddingRejectsIdOutsideTable() {
        Tensor ids = arena.fromInts(new int[] {1, 2, 99, 3}, 4);
        Pair dIds = upload(ids);
        Pair table = random(DType.F32, 10, 8);
        Pair out = zeros(DType.F32, 4, 8);
        TensorException e = assertThrows(TensorException.class,
                () -> gpu.embeddingForward(dIds.gpu(), table.gpu(), out.gpu()));
        assertTrue(e.getMessage().contains("99") && e.getMessage().contains("position 2"), e.getMessage());
    }

    /** s, sk, b, np, ng, d, causal, padded. */
    private record AttentionCase(int s, int sk, int b, int np, int ng, int d, boolean causal, boolean padded) {
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
            Pair out = zeros(dt, c.s(), c.b(), c.np(), c.d());
            Pair lse = zeros(DType.F32, c.b(), c.np(), c.s());
            Pair lengths = null;
            if (c.padded()) {
                int[] len = new int[c.b()];
                for (int i = 0; i < len.length; i++) {
                    len[i] = i == 0 ? 0 : 1 + rnd.nextInt(c.sk()); // batch 0 fully masked
                }
                lengths = upload(arena.fromInts(len, c.b()));
            }
            Pair kl = lengths;
            float scale = (float) (1 / Math.sqrt(c.d()));
            both((be, g) -> be.attentionForward(side(q, g), side(k, g), side(v, g), side(out, g), side(lse, g), scale,
                    c.causal(), side(kl, g)));
            assertClose("attention out " + c, out, Math.max(tolerance(dt), 1e-5));
            assertClose("attention lse " + c, lse, 1e-5);
            Pair dOut = random(dt, c.s(), c.b(), c.np(), c.d());
            Pair dq = zeros(dt, c.s(), c.b(), c.np(), c.d());
            Pair dk = zeros(dt, c.sk(), c.b(), c.ng(), c.d());
            Pair dv = zeros(dt, c.sk(), c.b(), c.ng(), c.d());
            both((be, g) -> be.attentionBackward(side(dOut, g), side(q, g), side(k, g), side(v, g), side(out, g),
                    side(lse, g), side(dq, g), side(dk, g), side(dv, g), scale, c.causal(), side(kl, g)));
            double tol = dt == DType.F32 ? 1e-4 : 2 * tolerance(dt);
            assertClose("attention dq " + c, dq, tol);
            assertClose("attention dk " + c, dk, tol);
            assertClose("attention dv " + c, dv, tol);
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void crossEntropyPiecesAndSampling(DType dt) {
        int n = 24, v = 1000;
        long vocabStart = 500; // this rank holds columns [500, 1500) of the vocabulary
        Pair logits = random(dt, n, v);
        Pair targets = ints(2000, n);
        Pair rowMax = zeros(DType.F32, n);
        Pair sumExp = zeros(DType.F32, n);
        Pair target = zeros(DType.F32, n);
        Pair loss = zeros(DType.F32, n);
        Pair dLoss = random(DType.F32, n);
        Pair dLogits = zeros(dt, n, v);
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
        Pair arg = zeros(DType.I32, n);
        Pair logp = zeros(DType.F32, n, v);
        both((be, g) -> {
            be.argmax(side(logits, g), side(arg, g));
            be.logSoftmax(side(logits, g), 0.7f, side(logp, g));
        });
        assertClose("argmax", arg, 0);
        assertClose("logSoftmax", logp, 1e-5);
    }

    @Test
    void adamWNormsAndInfNan() {
        Pair p = random(DType.F32, 10_000);
        Pair gr = random(DType.F32, 10_000);
        Pair m = random(DType.F32, 10_000);
        Pair v = zeros(DType.F32, 10_000);
        both((be, g) -> be.adamW(side(p, g), side(gr, g), side(m, g), side(v, g), 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 3));
        assertClose("adamW param", p, 1e-6);
        assertClose("adamW m", m, 1e-6);
        assertClose("adamW v", v, 1e-6);
        double expected = cpu.sumOfSquares(p.cpu());
        assertEquals(expected, gpu.sumOfSquares(p.gpu()), 1e-9 * expected);
        assertFalse(gpu.hasInfOrNan(p.gpu()));
        Tensor bad = arena.allocate(DType.BF16, 3000);
        bad.setFloat(2999, Float.NaN);
        assertTrue(gpu.hasInfOrNan(upload(bad).gpu()));
    }

    @Test
    void timerMeasuresGpuTime() {
        Pair a = random(DType.BF16, 1024, 1024);
        Pair c = zeros(DType.F32, 1024, 1024);
        try (CudaTimer t = gpu.timer()) {
            t.start();
            gpu.gemm(false, true, 1, a.gpu(), a.gpu(), 0, c.gpu());
            t.stop();
            assertTrue(t.elapsedMillis() > 0);
        }
    }
}
