package org.megatronj.memory.cpu;

import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

import java.util.Locale;
import java.util.Random;

/**
 * Decode-shaped linear layers {@code y[m, n] = x[m, 768] w[n, 768]^T} (m = 1..8; n = the GPT-2
 * vocabulary 50304, the fused QKV 2304 and the MLP 3072): the blocked {@link CpuGemm} against
 * {@link SmallRowsGemm}. A main class, not a test (timings belong in benchmarks); run with the
 * test classpath: {@code java --add-modules jdk.incubator.vector -cp ... SmallRowsGemmBenchmark [threads] [dtype]}.
 * Prints one line per shape: median milliseconds per call of each and the speed-up.
 */
final class SmallRowsGemmBenchmark {
    private SmallRowsGemmBenchmark() {
    }

    public static void main(String[] args) {
        int threads = args.length > 0 ? Integer.parseInt(args[0]) : Runtime.getRuntime().availableProcessors();
        DType dtype = args.length > 1 ? DType.valueOf(args[1]) : DType.F32;
        int k = 768;
        Random rng = new Random(1);
        try (CpuThreads pool = new CpuThreads(threads); TensorArena arena = TensorArena.named("bench")) {
            System.out.printf(Locale.ROOT, "threads=%d dtype=%s vector=%s%n", threads, dtype, VectorWidth.describe());
            for (int n : new int[] {50304, 2304, 3072}) {
                Tensor w = GemmReference.random(arena, rng, dtype, n, k);
                for (int m : new int[] {1, 2, 4, 8}) {
                    Tensor x = GemmReference.random(arena, rng, dtype, m, k);
                    Tensor y = arena.allocate(DType.F32, m, n);
                    double blocked = medianMillis(() -> CpuGemm.gemm(pool, false, true, 1f, x, w, 0f, y), n);
                    double fast = medianMillis(() -> SmallRowsGemm.gemm(pool, true, false, true, 1f, x, w, 0f, y), n);
                    System.out.printf(Locale.ROOT, "m=%d n=%5d k=%d  CpuGemm %8.3f ms  SmallRowsGemm %8.3f ms  speed-up %5.1fx%n",
                            m, n, k, blocked, fast, blocked / fast);
                }
            }
        }
    }

    /** Median of timed runs after a warm-up; fewer runs for the large vocabulary product. */
    private static double medianMillis(Runnable r, int n) {
        int runs = n > 10_000 ? 15 : 101;
        for (int i = 0; i < runs; i++) {
            r.run();
        }
        double[] t = new double[runs];
        for (int i = 0; i < runs; i++) {
            long t0 = System.nanoTime();
            r.run();
            t[i] = (System.nanoTime() - t0) / 1e6;
        }
        java.util.Arrays.sort(t);
        return t[runs / 2];
    }
}
