package org.megatronj.parallel.train;

import java.util.List;
import java.util.Locale;
import java.util.function.Consumer;
import java.util.function.Supplier;

import org.megatronj.memory.MemoryStats;

/**
 * Megatron's memory report at log lines: rank 0 prints the theoretical footprint ({@link TheoreticalMemory})
 * and every first rank of a data-parallel group its {@code [Rank r] (after N iterations) memory (MB) | ...}
 * line, at the first log line and at the next one while the optimizer state may not exist yet (until a
 * log line past the first iteration after the load), then every {@code --log-memory-interval} iterations.
 */
public final class MemoryReport {
    private static final double MB = 1024.0 * 1024.0;

    private final Supplier<MemoryStats> stats;
    private final int rank;
    private final Consumer<String> printer;
    private final List<String> theoretical;
    private final int interval;
    private boolean pending = true;

    /**
     * @param stats       this rank's tensor memory (its backend's)
     * @param rank        this rank's global rank, for the line's {@code [Rank r]}
     * @param printer     where this rank prints, or null on ranks other than their data-parallel group's first
     * @param theoretical the theoretical footprint's lines on rank 0, else empty
     * @param interval    {@code --log-memory-interval}, or 0
     */
    public MemoryReport(Supplier<MemoryStats> stats, int rank, Consumer<String> printer, List<String> theoretical, int interval) {
        if (interval < 0) {
            throw new IllegalArgumentException("--log-memory-interval must be positive, got " + interval);
        }
        this.stats = stats;
        this.rank = rank;
        this.printer = printer;
        this.theoretical = List.copyOf(theoretical);
        this.interval = interval;
    }

    public MemoryStats stats() {
        return stats.get();
    }

    /** At the log line of {@code iteration}, in a run that loaded {@code loadedIteration} (0 when it started afresh). */
    void atLogLine(long iteration, long loadedIteration) {
        boolean reported = false;
        if (pending) {
            theoretical.forEach(line -> print(line));
            report(iteration);
            reported = true;
            pending = iteration <= loadedIteration + 1;   // report once more, after the optimizer's first step
        }
        if (interval > 0 && iteration % interval == 0 && !reported) {
            report(iteration);
        }
    }

    private void report(long iteration) {
        MemoryStats m = stats.get();
        print(String.format(Locale.ROOT, "[Rank %d] (after %d iterations) memory (MB) | allocated: %s | max allocated: %s"
                        + " | reserved: %s | max reserved: %s", rank, iteration, mb(m.allocatedBytes()), mb(m.maxAllocatedBytes()),
                mb(m.reservedBytes()), mb(m.maxReservedBytes())));
    }

    private void print(String line) {
        if (printer != null) {
            printer.accept(line);
        }
    }

    private static String mb(long bytes) {
        return TrainingLog.pythonF(bytes / MB, 2);
    }
}
