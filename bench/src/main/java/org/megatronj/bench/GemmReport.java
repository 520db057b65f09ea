package org.megatronj.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
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
 * Runs {@link GemmBenchmark} for every shape and thread count, each row right after a short
 * {@link FmaPeakBenchmark} run on the same number of threads, and writes {@code gemm-cpu.md} (a
 * table: shape, threads, GFLOP/s, % of the measured peak) and {@code gemm-cpu.csv}.
 *
 * <p>Pairing each gemm with a peak measured moments before makes the mean percentage fair on a
 * machine that other processes share when the contention is steady: both see the same. The
 * "best" figures divide the fastest gemm iteration by the run's peak ceiling: the fastest peak
 * iteration seen on that thread count, or the thread count times the fastest single-thread
 * peak iteration if that is higher (FMA throughput scales with cores, and a busy machine rarely
 * leaves all cores free at once). The ceiling is conservative: contention can lower the best gemm
 * time's share of it, not raise it. Short iterations give more quiet moments to catch.
 *
 * <p>Usage: {@code GemmReport [--out DIR] [--threads 1,2] [--shapes a,b] [--warmup N]
 * [--iterations N] [--time SECONDS]} (gemm iterations; time per iteration may be fractional).
 */
public final class GemmReport {
    private GemmReport() {
    }

    record Settings(Path out, List<String> threads, List<String> shapes, int warmup, int iterations, double seconds) {
    }

    /** FMA peak in GFLOP/s: from the mean time of a run and from its fastest iteration. */
    record Peak(double mean, double best) {
        Peak max(Peak o) {
            return new Peak(Math.max(mean, o.mean), Math.max(best, o.best));
        }
    }

    /** One gemm measurement (milliseconds per product) and the peak measured just before it. */
    record Row(GemmShape shape, int threads, double msMean, double msError, double msBest, Peak peak, Peak ceiling) {
        double gflops() {
            return shape.flops() / (msMean * 1e6);
        }

        double bestGflops() {
            return shape.flops() / (msBest * 1e6);
        }

        double percentOfPeak() {
            return 100 * gflops() / peak.mean();
        }

        /** The peak just before this row fell short of the run's ceiling: other processes held cores. */
        boolean busy() {
            return peak.mean() < 0.9 * ceiling.mean();
        }

        double bestPercentOfPeak() {
            return 100 * bestGflops() / ceiling.best();
        }
    }

    public static void main(String[] args) throws RunnerException, IOException {
        Settings s = parse(args);
        List<Row> measured = new ArrayList<>();
        Map<Integer, Peak> highest = new TreeMap<>();
        for (String shape : s.shapes()) {
            for (String t : s.threads()) {
                int threads = Integer.parseInt(t);
                Peak peak = measurePeak(s, threads);
                highest.merge(threads, peak, Peak::max);
                measured.add(measureGemm(s, GemmShape.named(shape), threads, peak));
            }
        }
        Map<Integer, Peak> ceiling = new TreeMap<>();
        highest.forEach((t, p) -> ceiling.put(t, highest.containsKey(1)
                ? p.max(new Peak(t * highest.get(1).mean(), t * highest.get(1).best())) : p));
        List<Row> rows = measured.stream().map(r -> new Row(r.shape(), r.threads(), r.msMean(), r.msError(), r.msBest(),
                r.peak(), ceiling.get(r.threads()))).toList();
        Files.createDirectories(s.out());
        write(s.out().resolve("gemm-cpu.md"), markdown(s, highest, ceiling, rows));
        write(s.out().resolve("gemm-cpu.csv"), csv(rows));
        System.err.println("wrote " + s.out().resolve("gemm-cpu.md") + " and gemm-cpu.csv");
    }

    private static Settings parse(String[] args) {
        Path out = Path.of("bench", "results");
        List<String> threads = List.of("1", "2");
        List<String> shapes = GemmShape.ALL.stream().map(GemmShape::name).toList();
        int warmup = 4;
        int iterations = 10;
        double seconds = 0.5;
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

    private static ChainedOptionsBuilder options(String benchmark, int warmup, int iterations, double seconds) {
        TimeValue time = TimeValue.milliseconds(Math.round(seconds * 1000));
        return new OptionsBuilder()
                .include("^" + benchmark.replace(".", "\\.") + "$")
                .forks(1)
                .warmupIterations(warmup)
                .warmupTime(time)
                .measurementIterations(iterations)
                .measurementTime(time);
    }

    /** A short peak run (2 x 0.25 s warm-up, 8 x 0.25 s measured) on {@code threads} JMH threads. */
    private static Peak measurePeak(Settings s, int threads) throws RunnerException {
        RunResult r = single(new Runner(options(FmaPeakBenchmark.class.getName() + ".fma", 2, 8, 0.25)
                .threads(threads).build()).run());
        double gflopPerCall = threads * FmaPeakBenchmark.flopsPerInvocation() / 1e3; // over microseconds per call
        return new Peak(gflopPerCall / r.getPrimaryResult().getScore(), gflopPerCall / fastestIteration(r));
    }

    private static Row measureGemm(Settings s, GemmShape shape, int threads, Peak peak) throws RunnerException {
        RunResult r = single(new Runner(options(GemmBenchmark.class.getName() + ".gemm", s.warmup(), s.iterations(), s.seconds())
                .param("shape", shape.name())
                .param("threads", Integer.toString(threads))
                .param("dtype", "F32")
                .build()).run());
        double error = r.getPrimaryResult().getScoreError();
        return new Row(shape, threads, r.getPrimaryResult().getScore(), Double.isNaN(error) ? 0 : error,
                fastestIteration(r), peak, peak); // the run's peak ceiling is filled in once all rows are done
    }

    private static RunResult single(java.util.Collection<RunResult> results) {
        if (results.size() != 1) {
            throw new IllegalStateException("expected one JMH result, got " + results.size()
                    + " (is the benchmark jar built with the JMH annotation processor?)");
        }
        return results.iterator().next();
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

    private static String markdown(Settings s, Map<Integer, Peak> highest, Map<Integer, Peak> ceiling, List<Row> rows) {
        StringBuilder md = new StringBuilder();
        md.append("# CPU gemm (fp32) vs the measured FMA peak\n\n");
        md.append("Written by `bench/gemm.sh` (`org.megatronj.bench.GemmReport`) on ")
                .append(Instant.now().truncatedTo(ChronoUnit.SECONDS)).append(".\n\n");
        md.append("- CPU: ").append(cpuModel()).append(", ").append(Runtime.getRuntime().availableProcessors())
                .append(" logical processors; load average ").append(loadAverage()).append(" at the end\n");
        md.append("- JDK: ").append(Runtime.version()).append(" (").append(System.getProperty("java.vm.name")).append(")\n");
        md.append("- Vectors: ").append(VectorWidth.describe()).append("\n");
        md.append(String.format(Locale.ROOT, "- JMH, one fork per row: gemm %d x %.1f s warm-up and %d x %.1f s measured; "
                + "FMA peak (`FmaPeakBenchmark`) 2 x 0.25 s warm-up and 8 x 0.25 s measured just before each row\n",
                s.warmup(), s.seconds(), s.iterations(), s.seconds()));
        md.append("- Highest FMA peak seen (mean / fastest iteration):");
        highest.forEach((t, p) -> md.append(String.format(Locale.ROOT, " %d thread%s %.1f / %.1f GFLOP/s;",
                t, t == 1 ? "" : "s", p.mean(), p.best())));
        md.setLength(md.length() - 1);
        md.append("\n- Peak ceiling for the best columns (fastest iteration, at least threads x the 1-thread one):");
        ceiling.forEach((t, p) -> md.append(String.format(Locale.ROOT, " %d thread%s %.1f GFLOP/s;", t, t == 1 ? "" : "s", p.best())));
        md.setLength(md.length() - 1);
        if (highest.containsKey(1) && highest.keySet().stream().anyMatch(t -> t > 1
                && highest.get(t).best() < 0.9 * t * highest.get(1).best())) {
            md.append("\n\n**The machine was busy during this run**: the multi-thread FMA peak never reached 90% of ")
                    .append("threads x the single-thread one, so other processes held cores. The figures below are ")
                    .append("what the gemm got, not what it does on idle cores; rerun on a quiet machine.");
        }
        md.append("\n\nGFLOP/s = 2 m n k / mean time of one `CpuGemm.gemm` (alpha 1, beta 0, fp32 in and out). ")
                .append("% of peak divides it by the mean FMA peak measured just before, on the same thread count; ")
                .append("\"best\" divides the fastest gemm iteration by the peak ceiling above; ")
                .append("on a shared machine it is the steadier of the two figures. ")
                .append("\"(busy)\": the peak measured just before the row was under 90% of the run's highest, ")
                .append("so other processes held cores while that row ran.\n\n");
        md.append("| shape | op | m x n x k | threads | ms/gemm | GFLOP/s | peak GFLOP/s | % of peak | best GFLOP/s | best % of peak ceiling |\n");
        md.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for (Row r : rows) {
            GemmShape g = r.shape();
            md.append(String.format(Locale.ROOT, "| %s | %s | %d x %d x %d | %d | %.2f ± %.2f | %.1f | %.1f%s | %.0f%% | %.1f | %.0f%% |%n",
                    g.name(), g.transposes(), g.m(), g.n(), g.k(), r.threads(), r.msMean(), r.msError(),
                    r.gflops(), r.peak().mean(), r.busy() ? " (busy)" : "", r.percentOfPeak(), r.bestGflops(),
                    r.bestPercentOfPeak()));
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

    private static String csv(List<Row> rows) {
        StringBuilder csv = new StringBuilder("shape,op,m,n,k,threads,ms_mean,ms_error,gflops_mean,peak_gflops_mean,"
                + "percent_of_peak,gflops_best,peak_ceiling_gflops,best_percent_of_peak_ceiling\n");
        for (Row r : rows) {
            GemmShape g = r.shape();
            csv.append(String.format(Locale.ROOT, "%s,%s,%d,%d,%d,%d,%.4f,%.4f,%.2f,%.2f,%.1f,%.2f,%.2f,%.1f%n", g.name(),
                    g.transposes(), g.m(), g.n(), g.k(), r.threads(), r.msMean(), r.msError(), r.gflops(), r.peak().mean(),
                    r.percentOfPeak(), r.bestGflops(), r.ceiling().best(), r.bestPercentOfPeak()));
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

    private static String loadAverage() {
        double load = java.lang.management.ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
        return load < 0 ? "unknown" : String.format(Locale.ROOT, "%.1f", load);
    }

    /** Writes under a temporary name and renames, so a report is never half written. */
    private static void write(Path target, String text) throws IOException {
        Path tmp = target.resolveSibling(target.getFileName() + ".tmp");
        Files.writeString(tmp, text);
        Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }
}
