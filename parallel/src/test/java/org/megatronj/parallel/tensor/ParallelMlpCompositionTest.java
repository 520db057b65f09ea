package org.megatronj.parallel.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.parallel.TestBackends;
import org.megatronj.parallel.ParallelConfig;
import org.megatronj.parallel.comm.LocalWorld;

/**
 * The Megatron MLP pattern built from the mappings: a column-parallel linear (weight A split by
 * output rows) then a row-parallel linear (weight B split by input columns), with and without
 * sequence parallelism, checked against one rank's math in double precision: output, input
 * gradient and the local shard of A's gradient.
 */
class ParallelMlpCompositionTest {
    private static final int S = 4;
    private static final int B = 2;
    private static final int H = 8;
    private static final int F = 16;
    private static final int ROWS = S * B;

    private static float[] random(int n, int salt) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) Math.sin(1.7 * i + 0.3 * salt) * 0.5f;
        }
        return v;
    }

    /** {@code c[m, n] = sum_k a[m, k] * b[k, n]} with a, b given by index functions, in double. */
    private static double[] matmul(int m, int k, int n, Matrix a, Matrix b) {
        double[] c = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double acc = 0;
                for (int p = 0; p < k; p++) {
                    acc += a.at(i, p) * b.at(p, j);
                }
                c[i * n + j] = acc;
            }
        }
        return c;
    }

    private interface Matrix {
        double at(int i, int j);
    }

    private static void assertClose(double[] expected, int expectedOffset, float[] actual, String what) {
        double scale = 0;
        for (double e : expected) {
            scale = Math.max(scale, Math.abs(e));
        }
        for (int i = 0; i < actual.length; i++) {
            assertEquals(expected[expectedOffset + i], actual[i], 1e-5 * scale, what + " element " + i);
        }
    }

    @ParameterizedTest(name = "tp={0} sequenceParallel={1}")
    @CsvSource({"2,false", "4,false", "2,true", "4,true"})
    void matchesSingleRankMath(int tp, boolean sequenceParallel) {
        float[] x = random(ROWS * H, 1);      // [s, b, h]
        float[] a = random(F * H, 2);         // [f, h]  (Megatron's [out, in])
        float[] b = random(H * F, 3);         // [h, f]
        float[] dy = random(ROWS * H, 4);     // [s, b, h]
        // one rank: z = x A^T, y = z B^T; dz = dy B, dx = dz A, dA = dz^T x
        double[] z = matmul(ROWS, H, F, (i, p) -> x[i * H + p], (p, j) -> a[j * H + p]);
        double[] y = matmul(ROWS, F, H, (i, p) -> z[i * F + p], (p, j) -> b[j * F + p]);
        double[] dz = matmul(ROWS, H, F, (i, p) -> dy[i * H + p], (p, j) -> b[p * F + j]);
        double[] dx = matmul(ROWS, F, H, (i, p) -> dz[i * F + p], (p, j) -> a[p * H + j]);
        double[] dA = matmul(F, ROWS, H, (i, p) -> dz[p * F + i], (p, j) -> x[p * H + j]);

        int fLocal = F / tp;
        int sLocal = S / tp;
        LocalWorld.run(ParallelConfig.of(tp, 1), tp, ctx -> {
            int r = ctx.groups().tensor().rank();
            try (Backend backend = TestBackends.cpu();
                 TensorArena arena = new TensorArena("mlp");
                 TensorParallelMappings m = new TensorParallelMappings(ctx.groups().tensor(), backend)) {
                Tensor aFull = arena.fromFloats(a, F, H);
                Tensor aLocal = aFull.view((long) r * fLocal, (long) (r + 1) * fLocal);      // [f/t, h]
                Tensor bLocal = arena.allocate(DType.F32, H, fLocal);                        // [h, f/t]
                for (int i = 0; i < H; i++) {
                    for (int j = 0; j < fLocal; j++) {
                        bLocal.setFloat((long) i * fLocal + j, b[i * F + r * fLocal + j]);
                    }
                }
                RegionMapping enter = sequenceParallel ? m.gatherFromSequenceParallelRegion(true) : m.copyToTensorParallelRegion();
                RegionMapping exit = sequenceParallel ? m.reduceScatterToSequenceParallelRegion() : m.reduceFromTensorParallelRegion();

                // forward
                Tensor xIn = sequenceParallel
                        ? arena.fromFloats(java.util.Arrays.copyOfRange(x, r * sLocal * B * H, (r + 1) * sLocal * B * H), sLocal, B, H)
                        : arena.fromFloats(x, S, B, H);
                Tensor xTp = arena.allocate(DType.F32, S, B, H);
                enter.forward(xIn, xTp);
                Tensor zLocal = arena.allocate(DType.F32, ROWS, fLocal);
                backend.gemm(false, true, 1f, xTp.reshape(ROWS, H), aLocal, 0f, zLocal);
                Tensor yPartial = arena.allocate(DType.F32, S, B, H);
                backend.gemm(false, true, 1f, zLocal, bLocal, 0f, yPartial.reshape(ROWS, H));
                Tensor yOut = arena.allocate(DType.F32, exit.outputShape(yPartial.shape()));
                exit.forward(yPartial, yOut);
                int rowOffset = sequenceParallel ? r * sLocal * B * H : 0;
                assertClose(y, rowOffset, yOut.toFloatArray(), "y");

                // backward
                Tensor dyIn = sequenceParallel
                        ? arena.fromFloats(java.util.Arrays.copyOfRange(dy, r * sLocal * B * H, (r + 1) * sLocal * B * H), sLocal, B, H)
                        : arena.fromFloats(dy, S, B, H);
                Tensor dyTp = arena.allocate(DType.F32, S, B, H);
                exit.backward(dyIn, dyTp);
                Tensor dzLocal = arena.allocate(DType.F32, ROWS, fLocal);
                backend.gemm(false, false, 1f, dyTp.reshape(ROWS, H), bLocal, 0f, dzLocal);
                Tensor dxPartial = arena.allocate(DType.F32, S, B, H);
                backend.gemm(false, false, 1f, dzLocal, aLocal, 0f, dxPartial.reshape(ROWS, H));
                Tensor dxOut = arena.allocate(DType.F32, xIn.shape());
                enter.backward(dxPartial, dxOut);
                assertClose(dx, rowOffset, dxOut.toFloatArray(), "dx");
                Tensor dALocal = arena.allocate(DType.F32, fLocal, H);
                backend.gemm(true, false, 1f, dzLocal, xTp.reshape(ROWS, H), 0f, dALocal);
                assertClose(dA, r * fLocal * H, dALocal.toFloatArray(), "dA shard");
            }
        });
    }
}
