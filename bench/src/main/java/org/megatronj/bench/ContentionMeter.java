package org.megatronj.bench;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Contention-aware timing on a shared machine, the Java twin of the baselines' {@code quiet.py}:
 * reads the machine's CPU jiffies ({@code /proc/stat}) and this process's ({@code /proc/self/stat})
 * around a timed region, so each measurement carries the share of the machine other processes used
 * meanwhile ("other") and this process's own CPU time. Linux only; elsewhere the figures are NaN.
 */
final class ContentionMeter {
    /** Jiffies of the whole machine (total, busy) and of this process (user + system). */
    record Sample(long machineTotal, long machineBusy, long self, long nanos) {
    }

    /** One timed region: wall seconds, own CPU seconds, and the other processes' share of the machine. */
    record Interval(double seconds, double cpuSeconds, double otherFraction) {
    }

    private static final Path PROC_STAT = Path.of("/proc/stat");
    private static final Path SELF_STAT = Path.of("/proc/self/stat");
    /** USER_HZ; 100 on every mainstream Linux configuration (sysconf is not reachable without native calls). */
    private static final double CLOCK_TICKS = 100.0;

    private final boolean available = Files.isReadable(PROC_STAT) && Files.isReadable(SELF_STAT);

    Sample sample() {
        long t = System.nanoTime();
        if (!available) {
            return new Sample(0, 0, 0, t);
        }
        long[] machine = machineJiffies();
        return new Sample(machine[0], machine[1], selfJiffies(), t);
    }

    Interval between(Sample a, Sample b) {
        double seconds = (b.nanos() - a.nanos()) / 1e9;
        if (!available) {
            return new Interval(seconds, Double.NaN, Double.NaN);
        }
        long total = Math.max(1, b.machineTotal() - a.machineTotal());
        long self = b.self() - a.self();
        long other = Math.max(0, (b.machineBusy() - a.machineBusy()) - self);
        return new Interval(seconds, self / CLOCK_TICKS, (double) other / total);
    }

    /** The 1-minute load average, or NaN where /proc/loadavg is missing. */
    static double loadAverage() {
        try {
            return Double.parseDouble(Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+")[0]);
        } catch (IOException | RuntimeException e) {
            return Double.NaN;
        }
    }

    private static long[] machineJiffies() {
        String first = read(PROC_STAT).lines().findFirst().orElseThrow(
                () -> new IllegalStateException("/proc/stat is empty"));
        String[] f = first.trim().split("\\s+");
        long total = 0;
        for (int i = 1; i < f.length; i++) {
            total += Long.parseLong(f[i]);
        }
        long idle = Long.parseLong(f[4]) + Long.parseLong(f[5]);     // idle + iowait
        return new long[] {total, total - idle};
    }

    private static long selfJiffies() {
        String s = read(SELF_STAT);
        // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
        String[] f = s.substring(s.lastIndexOf(')') + 2).split("\\s+");
        return Long.parseLong(f[11]) + Long.parseLong(f[12]);
    }

    private static String read(Path p) {
        try {
            return Files.readString(p);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + p, e);
        }
    }
}
