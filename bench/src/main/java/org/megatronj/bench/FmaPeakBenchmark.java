package org.megatronj.bench;

import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.megatronj.memory.cpu.VectorWidth;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The machine's fp32 FMA peak as Java can reach it: 12 independent accumulator vectors of the
 * width the CPU kernels use, each updated {@code x = x * 0.999 + 0.001} (a fixed point at 1, so
 * no overflow and no denormals), no memory traffic. Run on 1 and 2 JMH threads it gives the
 * per-core and the whole-machine peak the gemm figures are compared with.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class FmaPeakBenchmark {
    private static final VectorSpecies<Float> S =
            VectorWidth.floatSpecies() != null ? VectorWidth.floatSpecies() : FloatVector.SPECIES_PREFERRED;
    private static final int ACCUMULATORS = 12;
    private static final int STEPS = 1 << 16;

    /** Floating point operations of one call of {@link #fma} (an FMA counts two per lane). */
    public static double flopsPerInvocation() {
        return 2.0 * ACCUMULATORS * S.length() * STEPS;
    }

    public float seed = 0.5f;

    /** Prints {@link #flopsPerInvocation()}, for scripts that turn JMH's time per call into GFLOP/s. */
    public static void main(String[] args) {
        System.out.println(flopsPerInvocation());
    }

    @Benchmark
    public float fma() {
        FloatVector mul = FloatVector.broadcast(S, 0.999f);
        FloatVector add = FloatVector.broadcast(S, 0.001f);
        FloatVector x0 = FloatVector.broadcast(S, seed), x1 = x0.add(add), x2 = x1.add(add), x3 = x2.add(add);
        FloatVector x4 = x3.add(add), x5 = x4.add(add), x6 = x5.add(add), x7 = x6.add(add);
        FloatVector x8 = x7.add(add), x9 = x8.add(add), x10 = x9.add(add), x11 = x10.add(add);
        for (int i = 0; i < STEPS; i++) {
            x0 = x0.fma(mul, add);
            x1 = x1.fma(mul, add);
            x2 = x2.fma(mul, add);
            x3 = x3.fma(mul, add);
            x4 = x4.fma(mul, add);
            x5 = x5.fma(mul, add);
            x6 = x6.fma(mul, add);
            x7 = x7.fma(mul, add);
            x8 = x8.fma(mul, add);
            x9 = x9.fma(mul, add);
            x10 = x10.fma(mul, add);
            x11 = x11.fma(mul, add);
        }
        return x0.add(x1).add(x2).add(x3).add(x4).add(x5).add(x6).add(x7).add(x8).add(x9).add(x10).add(x11)
                .reduceLanes(VectorOperators.ADD);
    }
}
