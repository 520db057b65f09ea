package org.megatronj.memory.cpu;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

import java.util.Random;

import static org.megatronj.memory.cpu.OpTesting.gaussian;
import static org.megatronj.memory.cpu.OpTesting.tensor;

/**
 * Every vector kernel family gives the same bits before and after the JIT compiles it: each
 * test runs an op on its input (while the kernel is still interpreted, when this test is the
 * first to touch it), calls it 20,000 times on small inputs so that C2 compiles it, then runs
 * the original input again and compares bit for bit. Two identical training runs, or a resumed
 * and an uninterrupted one, can only agree if this holds.
 */
class JitDeterminismTest {
    /** Enough for C2 to compile the kernels; {@code -Dmegatron.test.warmUpCalls} changes it. */
    private static final int WARM_UP_CALLS = Integer.getInteger("megatron.test.warmUpCalls", 20_000);
    /** Calls per arena during the warm-up, so its memory stays bounded. */
    private static final int CALLS_PER_ARENA = 500;
    private static final CpuBackend BACKEND = new CpuBackend(1, true);

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    /** An op on inputs of a size picked by {@code large}; returns the outputs to compare. */
    private interface Op {
        float[][] run(TensorArena arena, Random rnd, boolean large);
    }

    private static void assertStableUnderJit(String name, Op op) {
        long seed = OpTesting.random(name.hashCode()).nextLong();
        float[][] cold;
        try (TensorArena arena = new TensorArena("cold")) {
            cold = op.run(arena, new Random(seed), true);
        }
        Random rnd = OpTesting.random(2);
        for (int done = 0; done < WARM_UP_CALLS; done += CALLS_PER_ARENA) {
            try (TensorArena arena = new TensorArena("warm-up")) {
                for (int i = 0; i < CALLS_PER_ARENA; i++) {
                    op.run(arena, rnd, false);
                }
            }
        }
        try (TensorArena arena = new TensorArena("warm")) {
            float[][] warm = op.run(arena, new Random(seed), true);
            for (int i = 0; i < cold.length; i++) {
                DeterminismAssertions.assertSameBits(name + " output " + i, cold[i], warm[i]);
            }
        }
    }

    private static Tensor gauss(TensorArena arena, Random rnd, long... shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return tensor(arena, DType.F32, gaussian(rnd, (int) n, 1f), shape);
    }

    private static float[][] values(Tensor... ts) {
        float[][] v = new float[ts.length][];
        for (int i = 0; i < ts.length; i++) {
            v[i] = ts[i].toFloatArray();
        }
        return v;
    }

    /** Columns: two full 16-lane vectors and a tail on every width. */
    private static int cols(boolean large) {
        return large ? 301 : 37;
    }

    @Test
    void layerNormForwardAndBackward() {
        assertStableUnderJit("layer norm", (arena, rnd, large) -> {
            int rows = large ? 64 : 2;
            int h = cols(large);
            Tensor x = gauss(arena, rnd, rows, h);
            Tensor g = gauss(arena, rnd, h);
            Tensor b = gauss(arena, rnd, h);
            Tensor y = arena.allocate(DType.F32, rows, h);
            Tensor mean = arena.allocate(DType.F32, rows);
            Tensor rstd = arena.allocate(DType.F32, rows);
            BACKEND.layerNormForward(x, g, b, 1e-5f, y, mean, rstd);
            Tensor dy = gauss(arena, rnd, rows, h);
            Tensor dx = arena.allocate(DType.F32, rows, h);
            Tensor dg = arena.allocate(DType.F32, h);
            Tensor db = arena.allocate(DType.F32, h);
            BACKEND.layerNormBackward(dy, x, g, mean, rstd, dx, dg, db);
            return values(y, mean, rstd, dx, dg, db);
        });
    }

    @Test
    void rmsNormForwardAndBackward() {
        assertStableUnderJit("rms norm", (arena, rnd, large) -> {
            int rows = large ? 64 : 2;
            int h = cols(large);
            Tensor x = gauss(arena, rnd, rows, h);
            Tensor g = gauss(arena, rnd, h);
            Tensor y = arena.allocate(DType.F32, rows, h);
            Tensor rstd = arena.allocate(DType.F32, rows);
            BACKEND.rmsNormForward(x, g, 1e-5f, y, rstd);
            Tensor dy = gauss(arena, rnd, rows, h);
            Tensor dx = arena.allocate(DType.F32, rows, h);
            Tensor dg = arena.allocate(DType.F32, h);
            BACKEND.rmsNormBackward(dy, x, g, rstd, dx, dg);
            return values(y, rstd, dx, dg);
        });
    }

    @Test
    void activations() {
        assertStableUnderJit("gelu, squared relu and swiglu", (arena, rnd, large) -> {
            int n = large ? 4099 : 37;
            Tensor x = gauss(arena, rnd, 2, n);
            Tensor dy = gauss(arena, rnd, 2, n);
            Tensor tanhY = arena.allocate(DType.F32, 2, n);
            Tensor erfY = arena.allocate(DType.F32, 2, n);
            Tensor tanhDx = arena.allocate(DType.F32, 2, n);
            Tensor erfDx = arena.allocate(DType.F32, 2, n);
            BACKEND.geluForward(x, tanhY, true);
            BACKEND.geluForward(x, erfY, false);
            BACKEND.geluBackward(x, dy, tanhDx, true);
            BACKEND.geluBackward(x, dy, erfDx, false);
            Tensor reluY = arena.allocate(DType.F32, 2, n);
            Tensor reluDx = arena.allocate(DType.F32, 2, n);
            BACKEND.squaredReluForward(x, reluY);
            BACKEND.squaredReluBackward(x, dy, reluDx);
            Tensor swY = arena.allocate(DType.F32, 2, n / 2);
            Tensor swDx = arena.allocate(DType.F32, 2, 2 * (n / 2));
            Tensor swX = gauss(arena, rnd, 2, 2 * (n / 2));
            BACKEND.swigluForward(swX, swY);
            BACKEND.swigluBackward(swX, gauss(arena, rnd, 2, n / 2), swDx);
            return values(tanhY, erfY, tanhDx, erfDx, reluY, reluDx, swY, swDx);
        });
    }

    @Test
    void crossEntropyAndLogSoftmax() {
        assertStableUnderJit("cross entropy", (arena, rnd, large) -> {
            int rows = large ? 8 : 2;
            int v = large ? 1003 : 37;
            Tensor logits = tensor(arena, DType.F32, gaussian(rnd, rows * v, 3f), rows, v);
            int[] ids = new int[rows];
            for (int i = 0; i < rows; i++) {
                ids[i] = rnd.nextInt(v);
            }
            Tensor targets = arena.fromInts(ids, rows);
            Tensor rowMax = arena.allocate(DType.F32, rows);
            Tensor target = arena.allocate(DType.F32, rows);
            Tensor sumExp = arena.allocate(DType.F32, rows);
            Tensor loss = arena.allocate(DType.F32, rows);
            BACKEND.crossEntropyRowMax(logits, rowMax);
            BACKEND.crossEntropyTargetLogit(logits, targets, 0, target);
            BACKEND.crossEntropySumExp(logits, rowMax, sumExp);
            BACKEND.crossEntropyLoss(rowMax, sumExp, target, loss);
            Tensor dLoss = gauss(arena, rnd, rows);
            Tensor dLogits = arena.allocate(DType.F32, rows, v);
            BACKEND.crossEntropyBackward(logits, targets, 0, rowMax, sumExp, dLoss, dLogits);
            Tensor logp = arena.allocate(DType.F32, rows, v);
            BACKEND.logSoftmax(logits, 0.7f, logp);
            return values(sumExp, loss, dLogits, logp);
        });
    }

    @Test
    void attentionForwardAndBackward() {
        assertStableUnderJit("attention", (arena, rnd, large) -> {
            int s = large ? 40 : 3;
            int np = 2;
            int d = large ? 40 : 20;
            Tensor q = gauss(arena, rnd, s, 1, np, d);
            Tensor k = gauss(arena, rnd, s, 1, 1, d);
            Tensor v = gauss(arena, rnd, s, 1, 1, d);
            Tensor out = arena.allocate(DType.F32, s, 1, np, d);
            Tensor lse = arena.allocate(DType.F32, 1, np, s);
            float scale = (float) (1 / Math.sqrt(d));
            BACKEND.attentionForward(q, k, v, out, lse, scale, true, null);
            Tensor dOut = gauss(arena, rnd, s, 1, np, d);
            Tensor dq = arena.allocate(DType.F32, q.shape());
            Tensor dk = arena.allocate(DType.F32, k.shape());
            Tensor dv = arena.allocate(DType.F32, v.shape());
            BACKEND.attentionBackward(dOut, q, k, v, out, lse, dq, dk, dv, scale, true, null);
            return values(out, lse, dq, dk, dv);
        });
    }

    @Test
    void optimizerAndGradientNorm() {
        assertStableUnderJit("adamW and sum of squares", (arena, rnd, large) -> {
            int n = large ? 10_007 : 77;
            Tensor p = gauss(arena, rnd, n);
            Tensor g = gauss(arena, rnd, n);
            Tensor m = arena.allocate(DType.F32, n);
            Tensor v = arena.allocate(DType.F32, n);
            BACKEND.adamW(p, g, m, v, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1);
            float norm = (float) BACKEND.sumOfSquares(g);
            return new float[][] {p.toFloatArray(), m.toFloatArray(), v.toFloatArray(), {norm}};
        });
    }

    @Test
    void fewRowsGemm() {
        assertStableUnderJit("few-rows gemm", (arena, rnd, large) -> {
            int k = large ? 301 : 37;
            int n = large ? 260 : 9;
            Tensor x = gauss(arena, rnd, 3, k);
            Tensor w = gauss(arena, rnd, n, k);
            Tensor y = arena.allocate(DType.F32, 3, n);
            Tensor dx = arena.allocate(DType.F32, 3, k);
            BACKEND.gemm(false, true, 1f, x, w, 0f, y);
            BACKEND.gemm(false, false, 1f, y, w, 0f, dx);
            return values(y, dx);
        });
    }
}
