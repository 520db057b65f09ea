package org.megatronj.memory.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.memory.TensorException;

/**
 * The blocked gemm against a float64 reference: every transpose case, odd sizes, alpha/beta,
 * 16-bit inputs and outputs, batches; both kernels (vector and scalar) in one JVM, with the
 * default blocking and with tiny blocks that force many kc/mc/nc blocks and edge tiles.
 */
class CpuGemmTest {
    private static final GemmBlocking TINY = new GemmBlocking(12, 16, 96);
    private static CpuThreads one;
    private static CpuThreads two;

    @BeforeAll
    static void startThreads() {
        one = new CpuThreads(1);
        two = new CpuThreads(2);
    }

    @AfterAll
    static void stopThreads() {
        one.close();
        two.close();
    }

    static Stream<Arguments> transposesKernelsAndBlockings() {
        List<Arguments> out = new ArrayList<>();
        for (GemmKernel kernel : new GemmKernel[] {GemmVectorKernel.INSTANCE, GemmScalarKernel.INSTANCE}) {
            for (GemmBlocking blocking : new GemmBlocking[] {GemmBlocking.DEFAULT, TINY}) {
                for (int t = 0; t < 4; t++) {
                    out.add(Arguments.of(kernel.getClass().getSimpleName(), kernel, blocking, (t & 1) != 0, (t & 2) != 0));
                }
            }
        }
        return out.stream();
    }

    @ParameterizedTest(name = "{0} {2} transA={3} transB={4}")
    @MethodSource("transposesKernelsAndBlockings")
    void matchesReferenceForOddSizes(String name, GemmKernel kernel, GemmBlocking blocking, boolean transA, boolean transB) {
        int[][] sizes = {{1, 1, 1}, {7, 33, 130}, {130, 7, 33}, {33, 130, 7}, {1, 130, 33}, {61, 97, 300}, {7, 600, 200}};
        Random rng = new Random(42);
        try (TensorArena arena = TensorArena.named("test")) {
            for (int[] s : sizes) {
                int m = s[0], n = s[1], k = s[2];
                Tensor a = GemmReference.random(arena, rng, DType.F32, transA ? new long[] {k, m} : new long[] {m, k});
                Tensor b = GemmReference.random(arena, rng, DType.F32, transB ? new long[] {n, k} : new long[] {k, n});
                Tensor c = GemmReference.random(arena, rng, DType.F32, m, n);
                float[] c0 = c.toFloatArray();
                CpuGemm.gemm(two, kernel, blocking, transA, transB, 0.75f, a, b, -0.5f, c);
                GemmReference.assertProduct(name + " " + m + "x" + n + "x" + k, transA, transB, 0.75f, a, b, -0.5f, c0, c, 1, m, n, k);
            }
        }
    }

    @Test
    void betaZeroIgnoresNaNAndBetaOneAccumulates() {
        Random rng = new Random(1);
        try (TensorArena arena = TensorArena.named("test")) {
            for (GemmKernel kernel : new GemmKernel[] {GemmVectorKernel.INSTANCE, GemmScalarKernel.INSTANCE}) {
                Tensor a = GemmReference.random(arena, rng, DType.F32, 50, 40);
                Tensor b = GemmReference.random(arena, rng, DType.F32, 40, 70);
                Tensor c = arena.allocate(DType.F32, 50, 70);
                fill(c, Float.NaN);
                CpuGemm.gemm(one, kernel, TINY, false, false, 1f, a, b, 0f, c);
                GemmReference.assertProduct("beta 0 over NaN", false, false, 1f, a, b, 0f, new float[50 * 70], c, 1, 50, 70, 40);
                float[] once = c.toFloatArray();
                CpuGemm.gemm(one, kernel, TINY, false, false, 1f, a, b, 1f, c);
                GemmReference.assertProduct("beta 1", false, false, 1f, a, b, 1f, once, c, 1, 50, 70, 40);
            }
        }
    }

    @Test
    void emptyInnerDimensionScalesC() {
        try (TensorArena arena = TensorArena.named("test")) {
            Tensor a = arena.allocate(DType.F32, 5, 0);
            Tensor b = arena.allocate(DType.F32, 0, 9);
            Tensor c = arena.fromFloats(new float[45], 5, 9);
            fill(c, 2f);
            CpuGemm.gemm(two, false, false, 1f, a, b, 3f, c);
            assertEquals(6f, c.getFloat(44));
            fill(c, Float.NaN);
            CpuGemm.gemm(two, false, false, 1f, a, b, 0f, c);
            assertEquals(0f, c.getFloat(0));
            Tensor empty = arena.allocate(DType.F32, 0, 9);
            CpuGemm.gemm(two, false, false, 1f, arena.allocate(DType.F32, 0, 4), arena.allocate(DType.F32, 4, 9), 0f, empty);
        }
    }

    static Stream<Arguments> halfPrecisionCases() {
        List<Arguments> out = new ArrayList<>();
        for (DType in : new DType[] {DType.BF16, DType.F16}) {
            for (DType c : new DType[] {DType.F32, in}) {
                for (GemmKernel kernel : new GemmKernel[] {GemmVectorKernel.INSTANCE, GemmScalarKernel.INSTANCE}) {
                    out.add(Arguments.of(in, c, kernel.getClass().getSimpleName(), kernel));
                }
            }
        }
        return out.stream();
    }

    @ParameterizedTest(name = "{0} inputs, {1} output, {2}")
    @MethodSource("halfPrecisionCases")
    void halfPrecisionInputsAccumulateInFp32(DType in, DType out, String name, GemmKernel kernel) {
        Random rng = new Random(7);
        try (TensorArena arena = TensorArena.named("test")) {
            for (int t = 0; t < 4; t++) {
                boolean transA = (t & 1) != 0, transB = (t & 2) != 0;
                int m = 37, n = 53, k = 300; // k > TINY.kc: a 16-bit C must still see one fp32 sum
                Tensor a = GemmReference.random(arena, rng, in, transA ? new long[] {k, m} : new long[] {m, k});
                Tensor b = GemmReference.random(arena, rng, in, transB ? new long[] {n, k} : new long[] {k, n});
                Tensor c = GemmReference.random(arena, rng, out, m, n);
                float[] c0 = c.toFloatArray();
                CpuGemm.gemm(two, kernel, TINY, transA, transB, 1.25f, a, b, 0.5f, c);
                GemmReference.assertProduct(in + "->" + out + " " + transA + "/" + transB, transA, transB, 1.25f, a, b, 0.5f, c0, c, 1, m, n, k);
            }
        }
    }

    @ParameterizedTest(name = "batch {0} on {1} threads")
    @MethodSource("batchCases")
    void batchedMatchesReferencePerMatrix(int batch, int threads) {
        Random rng = new Random(batch * 10L + threads);
        CpuThreads pool = threads == 1 ? one : two;
        try (TensorArena arena = TensorArena.named("test")) {
            for (int t = 0; t < 4; t++) {
                boolean transA = (t & 1) != 0, transB = (t & 2) != 0;
                int m = 19, n = 50, k = 33;
                Tensor a = GemmReference.random(arena, rng, DType.F32, transA ? new long[] {batch, k, m} : new long[] {batch, m, k});
                Tensor b = GemmReference.random(arena, rng, DType.F32, transB ? new long[] {batch, n, k} : new long[] {batch, k, n});
                Tensor c = GemmReference.random(arena, rng, DType.F32, batch, m, n);
                float[] c0 = c.toFloatArray();
                CpuGemm.gemmBatched(pool, GemmVectorKernel.INSTANCE, TINY, transA, transB, 2f, a, b, 1f, c);
                GemmReference.assertProduct("batched", transA, transB, 2f, a, b, 1f, c0, c, batch, m, n, k);
            }
        }
    }

    static Stream<Arguments> batchCases() {
        return Stream.of(Arguments.of(1, 2), Arguments.of(3, 2), Arguments.of(4, 2), Arguments.of(9, 2), Arguments.of(3, 1));
    }

    @Test
    void resultsDoNotDependOnThreadsOrKernel() {
        // Every element sums its k terms in the same order whatever the split or the kernel width.
        Random rng = new Random(3);
        try (TensorArena arena = TensorArena.named("test")) {
            Tensor a = GemmReference.random(arena, rng, DType.F32, 150, 333);
            Tensor b = GemmReference.random(arena, rng, DType.F32, 333, 101);
            Tensor c1 = arena.allocate(DType.F32, 150, 101);
            Tensor c2 = arena.allocate(DType.F32, 150, 101);
            Tensor c3 = arena.allocate(DType.F32, 150, 101);
            CpuGemm.gemm(one, GemmVectorKernel.INSTANCE, GemmBlocking.DEFAULT, false, false, 1f, a, b, 0f, c1);
            CpuGemm.gemm(two, GemmVectorKernel.INSTANCE, GemmBlocking.DEFAULT, false, false, 1f, a, b, 0f, c2);
            CpuGemm.gemm(two, GemmScalarKernel.INSTANCE, GemmBlocking.DEFAULT, false, false, 1f, a, b, 0f, c3);
            assertArrayEquals(c1.toFloatArray(), c2.toFloatArray());
            assertArrayEquals(c1.toFloatArray(), c3.toFloatArray());
        }
    }

    @Test
    void publicEntryPointsUseTheConfiguredKernel() {
        Random rng = new Random(5);
        try (TensorArena arena = TensorArena.named("test")) {
            Tensor a = GemmReference.random(arena, rng, DType.F32, 2, 64, 70);
            Tensor b = GemmReference.random(arena, rng, DType.F32, 2, 80, 70);
            Tensor c = arena.allocate(DType.F32, 2, 64, 80);
            CpuGemm.gemmBatched(two, false, true, 1f, a, b, 0f, c);
            GemmReference.assertProduct("gemmBatched", false, true, 1f, a, b, 0f, new float[2 * 64 * 80], c, 2, 64, 80, 70);
            Tensor c2 = arena.allocate(DType.F32, 64, 80);
            CpuGemm.gemm(two, false, true, 1f, a.select(1), b.select(1), 0f, c2);
            assertArrayEquals(c.select(1).toFloatArray(), c2.toFloatArray());
        }
    }

    @Test
    void rejectsMismatchedShapesAndDtypes() {
        try (TensorArena arena = TensorArena.named("test")) {
            Tensor a = arena.allocate(DType.F32, 4, 5);
            Tensor b = arena.allocate(DType.F32, 6, 7);
            Tensor c = arena.allocate(DType.F32, 4, 7);
            var e = assertThrows(TensorException.class, () -> CpuGemm.gemm(one, false, false, 1f, a, b, 0f, c));
            assertTrue(e.getMessage().contains("inner dimensions differ") && e.getMessage().contains("4x5"), e.getMessage());
            Tensor bt = arena.allocate(DType.F32, 5, 7);
            Tensor wrongC = arena.allocate(DType.F32, 7, 4);
            e = assertThrows(TensorException.class, () -> CpuGemm.gemm(one, false, false, 1f, a, bt, 0f, wrongC));
            assertTrue(e.getMessage().contains("expected [4, 7]"), e.getMessage());
            Tensor half = arena.allocate(DType.BF16, 5, 7);
            e = assertThrows(TensorException.class, () -> CpuGemm.gemm(one, false, false, 1f, a, half, 0f, c));
            assertTrue(e.getMessage().contains("BF16"), e.getMessage());
            Tensor ints = arena.allocate(DType.I32, 5, 7);
            e = assertThrows(TensorException.class, () -> CpuGemm.gemm(one, false, false, 1f, a.bitcast(DType.I32), ints, 0f, c));
            assertTrue(e.getMessage().contains("I32"), e.getMessage());
            Tensor f16c = arena.allocate(DType.F16, 4, 7);
            e = assertThrows(TensorException.class, () -> CpuGemm.gemm(one, false, false, 1f, a, bt, 0f, f16c));
            assertTrue(e.getMessage().contains("expected F32 or the input dtype"), e.getMessage());
            Tensor square = arena.allocate(DType.F32, 4, 4);
            e = assertThrows(TensorException.class, () -> CpuGemm.gemm(one, false, false, 1f, square, square, 0f, square));
            assertTrue(e.getMessage().contains("overlaps a"), e.getMessage());
            e = assertThrows(TensorException.class, () -> CpuGemm.gemm(one, false, false, 1f, a.reshape(1, 4, 5), bt, 0f, c));
            assertTrue(e.getMessage().contains("2-D"), e.getMessage());
            Tensor a3 = arena.allocate(DType.F32, 2, 4, 5);
            Tensor b3 = arena.allocate(DType.F32, 3, 5, 7);
            Tensor c3 = arena.allocate(DType.F32, 2, 4, 7);
            e = assertThrows(TensorException.class, () -> CpuGemm.gemmBatched(one, false, false, 1f, a3, b3, 0f, c3));
            assertTrue(e.getMessage().contains("batch sizes differ"), e.getMessage());
        }
    }

    @Test
    void rejectsTensorsOfClosedArenas() {
        TensorArena arena = TensorArena.named("closed");
        Tensor a = arena.allocate(DType.F32, 2, 2);
        arena.close();
        var e = assertThrows(TensorException.class, () -> CpuGemm.gemm(one, false, false, 1f, a, a, 0f, a));
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
    }

    private static void fill(Tensor t, float value) {
        float[] v = new float[(int) t.numel()];
        java.util.Arrays.fill(v, value);
        t.copyFrom(v);
    }
}
