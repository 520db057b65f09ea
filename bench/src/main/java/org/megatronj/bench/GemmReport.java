package org.megatronj.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import org.megatronj.memory.cpu.VectorWidth;
import org.openjdk.jmh.results.BenchmarkResult;
import org.openjdk.jmh.results.IterationResult;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;

/**
 * Runs {@link FmaPeakBenchmark} and {@link GemmBenchmark} in one session and writes
 * {@code gemm-cpu.md} (a table: shape, threads, GFLOP/s, % of the measured peak) and
 * {@code gemm-cpu.csv}. The peak is measured before and after the gemms and the higher value
 * kept, so a busy machine can only make the percentages look worse, never better.
 *
 * <p>Usage: {@code GemmReport [--out DIR] [--threads 1,2] [--shapes a,b] [--warmup N]
 * [--iterations N] [--time SECONDS]} (time per iteration, may be fractional).
 */
public final class GemmReport {
    private GemmReport() {
    }

    record Settings(Path out, List<String> threads, List<String> shapes, int warmup, int iterations, double seconds) {
    }

    /** FMA peak in GFLOP/s at one thread count: from the mean time of a run and from its fastest iteration. */
    record Peak(double mean, double best) {
        Peak max(Peak o) {
            return new Peak(Math.max(mean, o.mean), Math.max(best, o.best));
        }
    }

    record Row(GemmShape shape, int threads, double msMean, double msError, double msBest) {
        double gflops() {
            return shape.flops() / (msMean * 1e6);
        }

        double bestGflops() {
            return shape.flops() / (msBest * 1e6);
        }
    }

    public static void main(String[] args) throws RunnerException, IOException {
        Settings s = parse(args);
        Map<Integer, Peak> peak = new TreeMap<>();
        measurePeak(s, peak);
        List<Row> rows = measureGemms(s);
        measurePeak(s, peak);
        Files.createDirectories(s.out());
        write(s.out().resolve("gemm-cpu.md"), markdown(s, peak, rows));
        write(s.out().resolve("gemm-cpu.csv"), csv(peak, rows));
        System.err.println("wrote " + s.out().resolve("gemm-cpu.md") + " and gemm-cpu.csv");
    }

    private static Settings parse(String[] args) {
        Path out = Path.of("bench", "results");
        List<String> threads = List.of("1", "2");
        List<String> shapes = GemmShape.ALL.stream().map(GemmShape::name).toList();
        int warmup = 3;
        int iterations = 5;
        double seconds = 1;
        for (int i = 0; i < args.length; i++) {
            String flag = args[i];
            if (i + 1 >= args.length) {
                throw new IllegalArgumentException(flag + " needs a value");
            }
            String v = args[++i];
            switch (flag) {
                case "--out" -> out = Path.of(v);
                case "--threads" -> threads = List.of(v.split(","));
                case "--shapes" -> {
                    shapes = List.of(v.split(","));
                    shapes.forEach(GemmShape::named); // fails early on a typo
                }
                case "--warmup" -> warmup = Integer.parseInt(v);
                case "--iterations" -> iterations = Integer.parseInt(v);
                case "--time" -> seconds = Double.parseDouble(v);
                default -> throw new IllegalArgumentException("unknown option " + flag
                        + "; expected --out, --threads, --shapes, --warmup, --iterations or --time");
            }
        }
        return new Settings(out, threads, shapes, warmup, iterations, seconds);
    }

    private static ChainedOptionsBuilder options(Settings s, String benchmark) {
        return new OptionsBuilder()
                .include("^" + benchmark.replace(".", "\\.") + "$")
                .forks(1)
                .warmupIterations(s.warmup())
                .warmupTime(TimeValue.milliseconds(Math.round(s.seconds() * 1000)))
                .measurementIterations(s.iterations())
                .measurementTime(TimeValue.milliseconds(Math.round(s.seconds() * 1000)));
    }

    /** Updates {@code peak} (GFLOP/s per thread count) with a new measurement, keeping the maximum. */
    private static void measurePeak(Settings s, Map<Integer, Peak> peak) throws RunnerException {
        for (String t : s.threads()) {
            int threads = Integer.parseInt(t);
            Collection<RunResult> results = new Runner(options(s, FmaPeakBenchmark.class.getName() + ".fma")
                    .threads(threads).build()).run();
            for (RunResult r : results) {
                double perCall = threads * FmaPeakBenchmark.flopsPerInvocation() / 1e3; // GFLOP per (us/call)
                Peak p = new Peak(perCall / r.getPrimaryResult().getScore(), perCall / fastestIteration(r));
                peak.merge(threads, p, Peak::max);
            }
        }
    }

    private static List<Row> measureGemms(Settings s) throws RunnerException {
        Collection<RunResult> results = new Runner(options(s, GemmBenchmark.class.getName() + ".gemm")
                .param("shape", s.shapes().toArray(String[]::new))
                .param("threads", s.threads().toArray(String[]::new))
                .param("dtype", "F32")
                .build()).run();
        List<Row> rows = new ArrayList<>();
        for (RunResult r : results) {
            GemmShape shape = GemmShape.named(r.getParams().getParam("shape"));
            int threads = Integer.parseInt(r.getParams().getParam("threads"));
            double best = fastestIteration(r);
            double error = r.getPrimaryResult().getScoreError();
            rows.add(new Row(shape, threads, r.getPrimaryResult().getScore(), Double.isNaN(error) ? 0 : error, best));
        }
        rows.sort((x, y) -> x.shape() == y.shape() ? Integer.compare(x.threads(), y.threads())
                : Integer.compare(GemmShape.ALL.indexOf(x.shape()), GemmShape.ALL.indexOf(y.shape())));
        return rows;
    }

    /** The lowest time per call among the measurement iterations of a run. */
    private static double fastestIteration(RunResult r) {
        double best = Double.MAX_VALUE;
        for (BenchmarkResult b : r.getBenchmarkResults()) {
            for (IterationResult it : b.getIterationResults()) {
                best = Math.min(best, it.getPrimaryResult().getScore());
            }
        }
        return best;
    }

    private static String markdown(Settings s, Map<Integer, Peak> peak, List<Row> rows) {
        StringBuilder md = new StringBuilder();
        md.append("# CPU gemm (fp32) vs the measured FMA peak\n\n");
        md.append("Written by `bench/gemm.sh` (`org.megatronj.bench.GemmReport`) on ")
                .append(Instant.now().truncatedTo(ChronoUnit.SECONDS)).append(".\n\n");
        md.append("- CPU: ").append(cpuModel()).append(", ").append(Runtime.getRuntime().availableProcessors())
                .append(" logical processors\n");
        md.append("- JDK: ").append(Runtime.version()).append(" (").append(System.getProperty("java.vm.name")).append(")\n");
        md.append("- Vectors: ").append(VectorWidth.describe()).append("\n");
        md.append("- JMH: 1 fork, ").append(s.warmup()).append(" x ").append(s.seconds()).append(" s warm-up, ")
                .append(s.iterations()).append(" x ").append(s.seconds()).append(" s measurement per row\n");
        md.append("- FMA peak (`FmaPeakBenchmark`, the higher of a run before and one after the gemms; mean / fastest iteration):");
        peak.forEach((t, g) -> md.append(String.format(Locale.ROOT, " %d thread%s %.1f / %.1f GFLOP/s;",
                t, t == 1 ? "" : "s", g.mean(), g.best())));
        md.setLength(md.length() - 1);
        md.append("\n\nGFLOP/s = 2 m n k / mean time of one `CpuGemm.gemm` (alpha 1, beta 0, C fp32); ")
                .append("% of peak divides it by the mean FMA peak at the same thread count. ")
                .append("The \"best\" columns use the fastest iteration of each (gemm and peak), ")
                .append("which is what the hardware does when other processes leave it alone.\n\n");
        md.append("| shape | op | m x n x k | threads | ms/gemm | GFLOP/s | % of peak | best GFLOP/s | best % of best peak |\n");
        md.append("|---|---|---|---:|---:|---:|---:|---:|---:|\n");
        for (Row r : rows) {
            GemmShape g = r.shape();
            Peak p = peak.getOrDefault(r.threads(), new Peak(Double.NaN, Double.NaN));
            md.append(String.format(Locale.ROOT, "| %s | %s | %d x %d x %d | %d | %.2f ± %.2f | %.1f | %.0f%% | %.1f | %.0f%% |%n",
                    g.name(), g.transposes(), g.m(), g.n(), g.k(), r.threads(), r.msMean(), r.msError(),
                    r.gflops(), 100 * r.gflops() / p.mean(), r.bestGflops(), 100 * r.bestGflops() / p.best()));
        }
        md.append("\nShapes: ");
        for (GemmShape g : GemmShape.ALL) {
            if (s.shapes().contains(g.name())) {
                md.append("`").append(g.name()).append("` ").append(g.meaning()).append("; ");
            }
        }
        md.setLength(md.length() - 2);
        md.append(".\n");
        return md.toString();
    }

    private static String csv(Map<Integer, Peak> peak, List<Row> rows) {
        StringBuilder csv = new StringBuilder("shape,op,m,n,k,threads,ms_mean,ms_error,gflops_mean,peak_gflops_mean,"
                + "percent_of_peak,gflops_best,peak_gflops_best,percent_of_best_peak\n");
        for (Row r : rows) {
            GemmShape g = r.shape();
            Peak p = peak.getOrDefault(r.threads(), new Peak(Double.NaN, Double.NaN));
            csv.append(String.format(Locale.ROOT, "%s,%s,%d,%d,%d,%d,%.4f,%.4f,%.2f,%.2f,%.1f,%.2f,%.2f,%.1f%n", g.name(),
                    g.transposes(), g.m(), g.n(), g.k(), r.threads(), r.msMean(), r.msError(), r.gflops(), p.mean(),
                    100 * r.gflops() / p.mean(), r.bestGflops(), p.best(), 100 * r.bestGflops() / p.best()));
        }
        return csv.toString();
    }

    private static String cpuModel() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("model name")) {
                    return line.substring(line.indexOf(':') + 1).trim();
                }
            }
        } catch (IOException | RuntimeException e) {
            // not Linux: fall back to the architecture name
        }
        return System.getProperty("os.arch");
    }

    /** Writes under a temporary name and renames, so a report is never half written. */
    private static void write(Path target, String text) throws IOException {
        Path tmp = target.resolveSibling(target.getFileName() + ".tmp");
        Files.writeString(tmp, text);
        Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }
}
