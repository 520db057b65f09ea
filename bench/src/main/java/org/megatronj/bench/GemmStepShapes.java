package org.megatronj.bench;

import java.util.List;
import java.util.Random;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.memory.cpu.CpuGemm;
import org.megatronj.memory.cpu.CpuThreads;

/**
 * Times every CPU gemm of one fp32 GPT training step of a {@link GptTrainBenchmark} config, shape
 * by shape: the four linear layers' forward, input-gradient and weight-gradient products (times the
 * layer count) and the LM head's three. Tells which products hold a step back, and how far the gemm
 * set runs from the FMA peak outside the model. Best of {@code reps} calls per shape, after one pass
 * over all shapes to compile the kernels.
 *
 * <p>Usage: {@code GemmStepShapes A|B|C [reps] [threads]} (defaults 5 and 2).
 */
public final class GemmStepShapes {
    /** op(A) {@code [m, k]} times op(B) {@code [k, n]}, {@code count} times a step. */
    record Product(String name, int m, int n, int k, boolean transA, boolean transB, int count) {
        double flops() {
            return 2.0 * m * n * k;
        }
    }

    private GemmStepShapes() {
    }

    static List<Product> products(GptTrainBenchmark.Shape s) {
        int t = s.seq() * s.microBatch();
        int h = s.hidden();
        int l = s.layers();
        int v = s.vocab();
        return List.of(
                new Product("qkv forward", t, 3 * h, h, false, true, l),
                new Product("proj forward", t, h, h, false, true, l),
                new Product("fc1 forward", t, 4 * h, h, false, true, l),
                new Product("fc2 forward", t, h, 4 * h, false, true, l),
                new Product("qkv input grad", t, h, 3 * h, false, false, l),
                new Product("proj input grad", t, h, h, false, false, l),
                new Product("fc1 input grad", t, h, 4 * h, false, false, l),
                new Product("fc2 input grad", t, 4 * h, h, false, false, l),
                new Product("qkv weight grad", 3 * h, h, t, true, false, l),
                new Product("proj weight grad", h, h, t, true, false, l),
                new Product("fc1 weight grad", 4 * h, h, t, true, false, l),
                new Product("fc2 weight grad", h, 4 * h, t, true, false, l),
                new Product("head forward", t, v, h, false, true, 1),
                new Product("head input grad", t, h, v, false, false, 1),
                new Product("head weight grad", v, h, t, true, false, 1));
    }

    public static void main(String[] args) {
        if (args.length < 1 || !GptTrainBenchmark.CONFIGS.containsKey(args[0])) {
            System.err.println("usage: GemmStepShapes A|B|C [reps] [threads]; configs " + GptTrainBenchmark.CONFIGS.keySet());
            System.exit(2);
        }
        GptTrainBenchmark.Shape shape = GptTrainBenchmark.CONFIGS.get(args[0]);
        int reps = args.length > 1 ? Integer.parseInt(args[1]) : 5;
        int threads = args.length > 2 ? Integer.parseInt(args[2]) : 2;
        List<Product> products = products(shape);
        try (TensorArena arena = TensorArena.named("gemm-step-shapes"); CpuThreads pool = new CpuThreads(threads)) {
            Random rng = new Random(1234);
            Tensor[][] operands = new Tensor[products.size()][];
            for (int i = 0; i < products.size(); i++) {
                Product p = products.get(i);
                operands[i] = new Tensor[] {
                    random(arena, rng, p.transA() ? p.k() : p.m(), p.transA() ? p.m() : p.k()),
                    random(arena, rng, p.transB() ? p.n() : p.k(), p.transB() ? p.k() : p.n()),
                    arena.allocate(DType.F32, p.m(), p.n())};
                multiply(pool, p, operands[i]); // compiles the kernels on every path before timing
            }
            System.out.printf("config %s, %d threads, best of %d calls per product%n", args[0], threads, reps);
            System.out.printf("%-18s %2s %18s %9s %8s %6s %9s%n", "product", "op", "m x n x k", "ms", "GFLOP/s", "count", "ms/step");
            double total = 0;
            double flops = 0;
            for (int i = 0; i < products.size(); i++) {
                Product p = products.get(i);
                double best = Double.MAX_VALUE;
                for (int r = 0; r < reps; r++) {
                    long t0 = System.nanoTime();
                    multiply(pool, p, operands[i]);
                    best = Math.min(best, (System.nanoTime() - t0) / 1e9);
                }
                total += best * p.count();
                flops += p.flops() * p.count();
                System.out.printf("%-18s %s%s %18s %9.2f %8.1f %6d %9.1f%n", p.name(), p.transA() ? "T" : "N",
                        p.transB() ? "T" : "N", p.m() + " x " + p.n() + " x " + p.k(), best * 1e3,
                        p.flops() / best / 1e9, p.count(), best * p.count() * 1e3);
            }
            System.out.printf("gemm set of one step: %.1f ms, %.1f GFLOP/s%n", total * 1e3, flops / total / 1e9);
        }
    }

    private static void multiply(CpuThreads pool, Product p, Tensor[] abc) {
        CpuGemm.gemm(pool, p.transA(), p.transB(), 1f, abc[0], abc[1], 0f, abc[2]);
    }

    private static Tensor random(TensorArena arena, Random rng, int rows, int cols) {
        Tensor t = arena.allocate(DType.F32, rows, cols);
        float[] v = new float[rows * cols];
        for (int i = 0; i < v.length; i++) {
            v[i] = rng.nextFloat() - 0.5f;
        }
        return t.copyFrom(v);
    }
}
