package org.megatronj.bench;

import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.memory.cpu.CpuGemm;
import org.megatronj.memory.cpu.CpuThreads;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Time of one CPU gemm {@code C = op(A) op(B)} (alpha 1, beta 0) for the shapes of
 * {@link GemmShape}, on a {@link CpuThreads} pool of {@code threads} workers. GFLOP/s is
 * {@code 2 m n k / time}; {@link GemmReport} puts it next to {@link FmaPeakBenchmark}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "-XX:MaxInlineLevel=32"})
public class GemmBenchmark {

    @Param({"square-512", "square-1024", "square-2048", "gpt-qkv-fwd", "gpt-qkv-dgrad", "gpt-qkv-wgrad"})
    public String shape;

    @Param({"1", "2"})
    public int threads;

    /** Input dtype (F32, BF16 or F16); C is F32. */
    @Param({"F32"})
    public String dtype;

    private TensorArena arena;
    private CpuThreads pool;
    private GemmShape s;
    private Tensor a;
    private Tensor b;
    private Tensor c;

    @Setup(Level.Trial)
    public void setUp() {
        s = GemmShape.named(shape);
        arena = TensorArena.named("gemm-benchmark");
        pool = new CpuThreads(threads);
        DType in = DType.parse(dtype);
        Random rng = new Random(1234);
        a = random(in, rng, s.transA() ? new long[] {s.k(), s.m()} : new long[] {s.m(), s.k()});
        b = random(in, rng, s.transB() ? new long[] {s.n(), s.k()} : new long[] {s.k(), s.n()});
        c = arena.allocate(DType.F32, s.m(), s.n());
    }

    private Tensor random(DType dtype, Random rng, long[] shape) {
        Tensor t = arena.allocate(dtype, shape);
        float[] v = new float[(int) t.numel()];
        for (int i = 0; i < v.length; i++) {
            v[i] = rng.nextFloat() - 0.5f;
        }
        return t.copyFrom(v);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        pool.close();
        arena.close();
    }

    @Benchmark
    public void gemm() {
        CpuGemm.gemm(pool, s.transA(), s.transB(), 1f, a, b, 0f, c);
    }
}
