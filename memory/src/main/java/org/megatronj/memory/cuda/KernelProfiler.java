package org.megatronj.memory.cuda;

import static org.megatronj.bindings.cuda.cuda_h.*;

import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * GPU time per kernel (and per cuBLASLt matmul shape), measured with a pair of CUDA events around
 * every launch: where an iteration's GPU time goes, without Nsight. The first call of each name is
 * left out of the totals: it carries one-time costs (lazy module loading, cuBLASLt's heuristic
 * query for a new shape) that would otherwise swamp a short profiled run. Turned on by
 * {@code MEGATRON_CUDA_PROFILE=FILE} (or {@code -Dmegatron.cuda.profile=FILE}); the table is
 * written to FILE (or stderr for {@code -}) when the backend closes. The events add a few
 * microseconds per launch, so use it to find where time goes, not to time a run.
 */
final class KernelProfiler implements AutoCloseable {
    private static final int BATCH = 2048; // launches between harvests of finished event pairs

    private record Pending(String name, MemorySegment begin, MemorySegment end) {
    }

    private static final class Totals {
        long calls;        // after the first
        double millis;     // after the first
        double firstMillis;
        boolean seen;
    }

    private final String destination;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment elapsed = arena.allocate(ValueLayout.JAVA_FLOAT);
    private final ArrayDeque<MemorySegment> free = new ArrayDeque<>();
    private final List<Pending> pending = new ArrayList<>();
    private final Map<String, Totals> totals = new LinkedHashMap<>();
    private MemorySegment open;
    private String openName;

    private KernelProfiler(String destination) {
        this.destination = destination;
    }

    /** A profiler when the environment asks for one, else null. */
    static KernelProfiler fromEnvironment() {
        String where = System.getProperty("megatron.cuda.profile", System.getenv("MEGATRON_CUDA_PROFILE"));
        return where == null || where.isBlank() ? null : new KernelProfiler(where.strip());
    }

    synchronized void begin(String name, CudaStream stream) {
        open = event();
        openName = name;
        CudaCheck.driver("cuEventRecord", cuEventRecord(open, stream.handle()));
    }

    synchronized void end(CudaStream stream) {
        MemorySegment stop = event();
        CudaCheck.driver("cuEventRecord", cuEventRecord(stop, stream.handle()));
        pending.add(new Pending(openName, open, stop));
        if (pending.size() >= BATCH) {
            harvest();
        }
    }

    private MemorySegment event() {
        MemorySegment e = free.poll();
        if (e != null) {
            return e;
        }
        MemorySegment p = arena.allocate(ValueLayout.ADDRESS);
        CudaCheck.driver("cuEventCreate", cuEventCreate(p, CU_EVENT_DEFAULT()));
        return p.get(ValueLayout.ADDRESS, 0);
    }

    private void harvest() {
        if (pending.isEmpty()) {
            return;
        }
        CudaCheck.driver("cuEventSynchronize", cuEventSynchronize(pending.getLast().end()));
        for (Pending p : pending) {
            CudaCheck.driver("cuEventElapsedTime_v2", cuEventElapsedTime_v2(elapsed, p.begin(), p.end()));
            Totals t = totals.computeIfAbsent(p.name(), k -> new Totals());
            float ms = elapsed.get(ValueLayout.JAVA_FLOAT, 0);
            if (t.seen) {
                t.calls++;
                t.millis += ms;
            } else {
                t.seen = true;
                t.firstMillis = ms;
            }
            free.add(p.begin());
            free.add(p.end());
        }
        pending.clear();
    }

    /** The table: kernel, calls, total ms, share, mean microseconds (first calls apart); largest total first. */
    synchronized String report() {
        harvest();
        double all = totals.values().stream().mapToDouble(t -> t.millis).sum();
        double first = totals.values().stream().mapToDouble(t -> t.firstMillis).sum();
        StringBuilder sb = new StringBuilder(String.format(Locale.ROOT,
                "GPU time per kernel (CUDA events around each launch): %.1f ms after each name's first call,"
                        + " %.1f ms in the first calls (left out below)%n%-72s %8s %11s %7s %10s%n",
                all, first, "kernel", "calls", "total ms", "share", "mean us"));
        totals.entrySet().stream()
                .filter(e -> e.getValue().calls > 0)
                .sorted((a, b) -> Double.compare(b.getValue().millis, a.getValue().millis))
                .forEach(e -> sb.append(String.format(Locale.ROOT, "%-72s %8d %11.2f %6.1f%% %10.1f%n", e.getKey(),
                        e.getValue().calls, e.getValue().millis, 100 * e.getValue().millis / Math.max(all, 1e-9),
                        1000 * e.getValue().millis / e.getValue().calls)));
        return sb.toString();
    }

    @Override
    public synchronized void close() {
        String table = report();
        try {
            if (destination.equals("-")) {
                System.err.print(table);
            } else {
                Files.writeString(Path.of(destination), table);
            }
        } catch (IOException e) {
            System.err.println("MEGATRON_CUDA_PROFILE: cannot write " + destination + ": " + e.getMessage());
            System.err.print(table);
        } finally {
            for (MemorySegment e : free) {
                cuEventDestroy_v2(e);
            }
            arena.close();
        }
    }
}
