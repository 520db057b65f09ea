package org.megatronj.memory.cpu;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.memory.TensorException;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The few-rows product ({@link SmallRowsGemm}, what {@link CpuBackend#gemm} uses for decode)
 * against the float64 reference and against the blocked {@link CpuGemm}, for every transpose,
 * dtype, alpha and beta, on the vector and scalar paths.
 */
class SmallRowsGemmTest {
    private static final CpuThreads THREADS = new CpuThreads(3);
    private static final CpuBackend VECTOR = new CpuBackend(THREADS, true);
    private static final CpuBackend SCALAR = new CpuBackend(THREADS, false);

    @AfterAll
    static void close() {
        THREADS.close();
    }

    private static Tensor operand(TensorArena arena, Random rng, DType dtype, boolean trans, int rows, int cols) {
        return GemmReference.random(arena, rng, dtype, trans ? new long[] {cols, rows} : new long[] {rows, cols});
    }

    @Test
    void matchesTheReferenceForEveryTransposeAndDtype() {
        Random rng = new Random(11);
        DType[][] dtypes = {{DType.F32, DType.F32}, {DType.BF16, DType.F32}, {DType.BF16, DType.BF16},
                {DType.F16, DType.F32}, {DType.F16, DType.F16}};
        try (TensorArena arena = TensorArena.named("test")) {
            for (CpuBackend backend : new CpuBackend[] {VECTOR, SCALAR}) {
                for (DType[] io : dtypes) {
                    for (int t = 0; t < 4; t++) {
                        boolean transA = (t & 1) != 0;
                        boolean transB = (t & 2) != 0;
                        for (int m : new int[] {1, 3, 16}) {
                          // k: a tail after the last full vector; 107 also a single bf16 block after the double ones
                          for (int k : new int[] {75, 107}) {
                            int n = 301; // several column chunks, a remainder after the groups of four
                            Tensor a = operand(arena, rng, io[0], transA, m, k);
                            Tensor b = operand(arena, rng, io[0], transB, k, n);
                            Tensor c = GemmReference.random(arena, rng, io[1], m, n);
                            float[] c0 = c.toFloatArray();
                            assertTrue(SmallRowsGemm.accepts(transA, transB, a, b, c));
                            backend.gemm(transA, transB, 0.75f, a, b, -0.5f, c);
                            GemmReference.assertProduct(backend + " " + io[0] + "->" + io[1] + " " + transA + "/" + transB
                                    + " m=" + m + " k=" + k, transA, transB, 0.75f, a, b, -0.5f, c0, c, 1, m, n, k);
                          }
                        }
                    }
                }
            }
        }
    }

    @Test
    void agreesWithTheBlockedGemm() {
        Random rng = new Random(12);
        try (TensorArena arena = TensorArena.named("test")) {
            for (int t = 0; t < 4; t++) {
                boolean transA = (t & 1) != 0;
                boolean transB = (t & 2) != 0;
                int m = 8;
                int n = 520;
                int k = 768;
                Tensor a = operand(arena, rng, DType.F32, transA, m, k);
                Tensor b = operand(arena, rng, DType.F32, transB, k, n);
                Tensor fast = arena.allocate(DType.F32, m, n);
                Tensor blocked = arena.allocate(DType.F32, m, n);
                VECTOR.gemm(transA, transB, 1f, a, b, 0f, fast);
                CpuGemm.gemm(THREADS, transA, transB, 1f, a, b, 0f, blocked);
                float[] x = fast.toFloatArray();
                float[] y = blocked.toFloatArray();
                for (int i = 0; i < x.length; i++) {
                    // both are fp32 sums of 768 products of magnitude < 1, in different orders
                    assertEquals(y[i], x[i], 2e-5f * (1f + Math.abs(y[i])), "element " + i + " " + transA + "/" + transB);
                }
            }
        }
    }

    @Test
    void bf16WeightsGiveEachRowTheSameBitsWhateverTheOtherRows() {
        // Decode batches rows in pairs over a bf16 weight row; a row alone must get the same bits (greedy
        // decoding of a batch equals decoding each prompt alone).
        Random rng = new Random(5);
        try (TensorArena arena = TensorArena.named("test")) {
            int k = 779;   // double blocks, one single block and a tail
            int n = 133;
            Tensor w = GemmReference.random(arena, rng, DType.BF16, n, k);
            Tensor x = GemmReference.random(arena, rng, DType.BF16, 5, k);
            Tensor all = arena.allocate(DType.F32, 5, n);
            VECTOR.gemm(false, true, 1f, x, w, 0f, all);
            float[] together = all.toFloatArray();
            for (int i = 0; i < 5; i++) {
                Tensor one = arena.allocate(DType.F32, 1, n);
                VECTOR.gemm(false, true, 1f, x.view(i, i + 1), w, 0f, one);
                DeterminismAssertions.assertSameBits("row " + i, java.util.Arrays.copyOfRange(together, i * n, (i + 1) * n),
                        one.toFloatArray());
            }
        }
    }

    @Test
    void betaZeroIgnoresNaNAndBetaOneAccumulates() {
        Random rng = new Random(13);
        try (TensorArena arena = TensorArena.named("test")) {
            Tensor x = GemmReference.random(arena, rng, DType.F32, 2, 40);
            Tensor w = GemmReference.random(arena, rng, DType.F32, 33, 40);
            Tensor y = arena.allocate(DType.F32, 2, 33);
            VECTOR.fill(y, Float.NaN);
            VECTOR.gemm(false, true, 1f, x, w, 0f, y);
            GemmReference.assertProduct("beta 0 over NaN", false, true, 1f, x, w, 0f, new float[2 * 33], y, 1, 2, 33, 40);
            float[] once = y.toFloatArray();
            VECTOR.gemm(false, true, 1f, x, w, 1f, y);
            GemmReference.assertProduct("beta 1", false, true, 1f, x, w, 1f, once, y, 1, 2, 33, 40);
        }
    }

    @Test
    void emptyInnerDimensionScalesC() {
        try (TensorArena arena = TensorArena.named("test")) {
            Tensor x = arena.allocate(DType.F32, 2, 0);
            Tensor w = arena.allocate(DType.F32, 5, 0);
            Tensor y = arena.allocate(DType.F32, 2, 5);
            VECTOR.fill(y, 3f);
            VECTOR.gemm(false, true, 1f, x, w, 0.5f, y);
            for (float v : y.toFloatArray()) {
                assertEquals(1.5f, v);
            }
        }
    }

    @Test
    void leavesLargeOrInvalidProductsToTheBlockedGemm() {
        try (TensorArena arena = TensorArena.named("test")) {
            Tensor x = arena.allocate(DType.F32, 17, 8);
            Tensor w = arena.allocate(DType.F32, 4, 8);
            assertFalse(SmallRowsGemm.accepts(false, true, x, w, arena.allocate(DType.F32, 17, 4)), "17 rows");
            Tensor x2 = arena.allocate(DType.F32, 2, 8);
            Tensor bad = arena.allocate(DType.F32, 4, 7);
            Tensor y = arena.allocate(DType.F32, 2, 4);
            assertFalse(SmallRowsGemm.accepts(false, true, x2, bad, y));
            TensorException e = assertThrows(TensorException.class, () -> VECTOR.gemm(false, true, 1f, x2, bad, 0f, y));
            assertTrue(e.getMessage().contains("inner dimensions differ"), e.getMessage());
            Tensor half = arena.allocate(DType.BF16, 4, 8);
            assertFalse(SmallRowsGemm.accepts(false, true, x2, half, y), "mixed dtypes");
        }
    }

    @Test
    void resultDoesNotDependOnTheThreadCount() {
        Random rng = new Random(14);
        try (TensorArena arena = TensorArena.named("test"); CpuBackend one = new CpuBackend(1, true)) {
            Tensor x = GemmReference.random(arena, rng, DType.F32, 4, 200);
            Tensor w = GemmReference.random(arena, rng, DType.F32, 1000, 200);
            Tensor y1 = arena.allocate(DType.F32, 4, 1000);
            Tensor y3 = arena.allocate(DType.F32, 4, 1000);
            one.gemm(false, true, 1f, x, w, 0f, y1);
            VECTOR.gemm(false, true, 1f, x, w, 0f, y3);
            DeterminismAssertions.assertSameBits("1 vs 3 threads", y1.toFloatArray(), y3.toFloatArray());
        }
    }
}
