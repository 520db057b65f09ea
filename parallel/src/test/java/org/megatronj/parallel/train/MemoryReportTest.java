package org.megatronj.parallel.train;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.megatronj.memory.MemoryStats;

/** When Megatron's training_log reports memory: report_memory_flag and --log-memory-interval. */
class MemoryReportTest {
    private static final MemoryStats STATS = new MemoryStats(3 << 20, 5 << 20, 4 << 20, 6 << 20, 7);

    private static List<String> run(long loaded, int logInterval, int memoryInterval, long lastIteration, List<String> theory) {
        List<String> lines = new ArrayList<>();
        MemoryReport report = new MemoryReport(() -> STATS, 2, lines::add, theory, memoryInterval);
        for (long it = loaded + 1; it <= lastIteration; it++) {
            if (it % logInterval == 0) {
                report.atLogLine(it, loaded);
            }
        }
        return lines;
    }

    @Test
    void reportsAtTheFirstLogLinesThenEveryInterval() {
        assertEquals(List.of("T", "[Rank 2] (after 1 iterations) memory (MB) | allocated: 3.00 | max allocated: 5.00 | reserved: 4.00"
                        + " | max reserved: 6.00", "T", "[Rank 2] (after 2 iterations) memory (MB) | allocated: 3.00 | max allocated:"
                        + " 5.00 | reserved: 4.00 | max reserved: 6.00"), run(0, 1, 0, 6, List.of("T")));
        assertEquals(1, run(0, 10, 0, 50, List.of()).size(), "the first log line is past the first step");
        assertEquals(List.of(10L, 20L, 40L, 60L), iterations(run(0, 10, 20, 60, List.of())), "10 once, then 20, 40, 60");
        assertEquals(List.of(101L, 102L), iterations(run(100, 1, 0, 105, List.of())), "resumed at 100");
    }

    private static List<Long> iterations(List<String> lines) {
        return lines.stream().map(l -> Long.parseLong(l.replaceAll(".*\\(after (\\d+) iterations\\).*", "$1"))).toList();
    }
}
