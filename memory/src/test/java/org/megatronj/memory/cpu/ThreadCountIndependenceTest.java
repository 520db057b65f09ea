package org.megatronj.memory.cpu;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.megatronj.memory.cpu.OpTesting.gaussian;
import static org.megatronj.memory.cpu.OpTesting.tensor;

/**
 * Reductions split work into pieces fixed by the shapes, added in a fixed order, so results are
 * bit-identical whatever the thread count, on the scalar and on the vector kernels (whose lane
 * sums and {@code exp} go through {@link LaneMath}, so the JIT does not change them either; see
 * {@link JitDeterminismTest}).
 */
class ThreadCountIndependenceTest {
    private static final CpuBackend ONE = new CpuBackend(1, false);
    private static final CpuBackend THREE = new CpuBackend(3, false);
    private static final CpuBackend ONE_VECTOR = new CpuBackend(1, true);
    private static final CpuBackend THREE_VECTOR = new CpuBackend(3, true);

    @AfterAll
    static void close() {
        ONE.close();
        THREE.close();
        ONE_VECTOR.close();
        THREE_VECTOR.close();
    }

    private interface Run {
        Tensor[] apply(CpuBackend backend, TensorArena arena);
    }

    private static void assertSame(Run run) {
        CpuBackend[][] pairs = {{ONE, THREE}, {ONE_VECTOR, THREE_VECTOR}};
        for (CpuBackend[] pair : pairs) {
            try (TensorArena arena = new TensorArena("test")) {
                Tensor[] a = run.apply(pair[0], arena);
                Tensor[] b = run.apply(pair[1], arena);
                for (int i = 0; i < a.length; i++) {
                    assertArrayEquals(a[i].toFloatArray(), b[i].toFloatArray(), pair[0] + " vs " + pair[1] + ": output " + i);
                }
            }
        }
    }

    @Test
    void normBackwardParameterGradients() {
        Random rnd = OpTesting.random(70);
        int rows = 300;
        int h = 96;
        float[] x = gaussian(rnd, rows * h, 1f);
        float[] dy = gaussian(rnd, rows * h, 1f);
        float[] g = gaussian(rnd, h, 1f);
        assertSame((be, arena) -> {
            Tensor xt = tensor(arena, DType.F32, x, rows, h);
            Tensor gt = tensor(arena, DType.F32, g, h);
            Tensor y = arena.allocate(DType.F32, rows, h);
            Tensor mean = arena.allocate(DType.F32, rows);
            Tensor rstd = arena.allocate(DType.F32, rows);
            be.layerNormForward(xt, gt, null, 1e-5f, y, mean, rstd);
            Tensor dx = arena.allocate(DType.F32, rows, h);
            Tensor dGamma = arena.allocate(DType.F32, h);
            Tensor dBeta = arena.allocate(DType.F32, h);
            be.layerNormBackward(tensor(arena, DType.F32, dy, rows, h), xt, gt, mean, rstd, dx, dGamma, dBeta);
            Tensor dGammaRms = arena.allocate(DType.F32, h);
            be.rmsNormForward(xt, gt, 1e-5f, y, rstd);
            be.rmsNormBackward(tensor(arena, DType.F32, dy, rows, h), xt, gt, rstd, dx, dGammaRms);
            Tensor dBias = arena.allocate(DType.F32, h);
            be.biasBackward(xt, dBias);
            return new Tensor[] {dx, dGamma, dBeta, dGammaRms, dBias};
        });
    }

    @Test
    void attentionAndEmbeddingGradients() {
        Random rnd = OpTesting.random(71);
        int s = 130; // three key blocks: with 6 (batch, group) pairs the backward splits keys into parts
        int b = 3;
        int np = 4;
        int ng = 2;
        int d = 16;
        float[] q = gaussian(rnd, s * b * np * d, 1f);
        float[] kv = gaussian(rnd, s * b * ng * d, 1f);
        int[] ids = new int[s * b];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = rnd.nextInt(7);
        }
        assertSame((be, arena) -> {
            Tensor qt = tensor(arena, DType.F32, q, s, b, np, d);
            Tensor kt = tensor(arena, DType.F32, kv, s, b, ng, d);
            Tensor out = arena.allocate(DType.F32, s, b, np, d);
            Tensor lse = arena.allocate(DType.F32, b, np, s);
            be.attentionForward(qt, kt, kt, out, lse, 0.25f, true, null);
            Tensor dq = arena.allocate(DType.F32, s, b, np, d);
            Tensor dk = arena.allocate(DType.F32, s, b, ng, d);
            Tensor dv = arena.allocate(DType.F32, s, b, ng, d);
            be.attentionBackward(qt, qt, kt, kt, out, lse, dq, dk, dv, 0.25f, true, null);
            Tensor dTable = arena.allocate(DType.F32, 7, np * d);
            be.embeddingBackward(arena.fromInts(ids, s, b), qt.reshape(s * b, np * d), dTable);
            return new Tensor[] {out, lse, dq, dk, dv, dTable};
        });
    }

    @Test
    void sumOfSquares() {
        float[] x = gaussian(OpTesting.random(72), 100_003, 1f);
        try (TensorArena arena = new TensorArena("test")) {
            Tensor t = tensor(arena, DType.F32, x, x.length);
            assertEquals(ONE.sumOfSquares(t), THREE.sumOfSquares(t));
            assertEquals(ONE_VECTOR.sumOfSquares(t), THREE_VECTOR.sumOfSquares(t));
        }
    }
}
