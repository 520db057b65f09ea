package org.megatronj.memory.cpu;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinWorkerThread;
import java.util.concurrent.RecursiveAction;

/**
 * The worker threads of the CPU backend. Kernels split their outer loop into contiguous
 * chunks with {@link #parallelFor}; each chunk runs on one thread, so a kernel's inner loop
 * stays a plain loop over memory. The thread count comes from {@code megatron.cpu.threads}
 * (default: available processors).
 */
public final class CpuThreads implements AutoCloseable {
    public static final String PROPERTY = "megatron.cpu.threads";

    /** A body over the half-open range {@code [from, to)}. */
    @FunctionalInterface
    public interface RangeBody {
        void run(long from, long to);
    }

    private final int threads;
    private final ForkJoinPool pool;

    public CpuThreads(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("CPU thread count must be >= 1, got " + threads);
        }
        this.threads = threads;
        this.pool = threads == 1 ? null : new ForkJoinPool(threads, p -> {
            var t = ForkJoinPool.defaultForkJoinWorkerThreadFactory.newThread(p);
            t.setName("megatron-cpu-" + t.getPoolIndex());
            t.setDaemon(true);
            return t;
        }, null, false);
    }

    /** Threads from {@code -Dmegatron.cpu.threads}, else all available processors. */
    public static CpuThreads fromSystemProperties() {
        String p = System.getProperty(PROPERTY);
        int n = p == null || p.isBlank() ? Runtime.getRuntime().availableProcessors() : Integer.parseInt(p.trim());
        return new CpuThreads(n);
    }

    public int threads() {
        return threads;
    }

    /**
     * Runs {@code body} over {@code [0, n)} split into at most {@code threads} chunks of at
     * least {@code grain} iterations; returns when all are done. Called from one of this pool's
     * own workers (nested parallelism) it simply runs serially; threads of other pools (a
     * parallel stream, ranks run as tasks of the common pool) still get the full pool. Several
     * threads may call it at once (ranks sharing one backend).
     */
    public void parallelFor(long n, long grain, RangeBody body) {
        if (n <= 0) {
            return;
        }
        long chunks = Math.min(threads, Math.max(1, n / Math.max(1, grain)));
        if (chunks <= 1 || pool == null || isOwnWorker()) {
            body.run(0, n);
            return;
        }
        RecursiveAction[] tasks = new RecursiveAction[(int) chunks];
        for (int c = 0; c < chunks; c++) {
            long from = n * c / chunks;
            long to = n * (c + 1) / chunks;
            tasks[c] = new RecursiveAction() {
                @Override
                protected void compute() {
                    body.run(from, to);
                }
            };
        }
        try {
            pool.invoke(new RecursiveAction() {
                @Override
                protected void compute() {
                    invokeAll(tasks);
                }
            });
        } catch (RuntimeException e) {
            throw (RuntimeException) original(e);
        } catch (Error e) {
            throw (Error) original(e);
        }
    }

    /**
     * ForkJoin re-creates an exception thrown on a worker on the joining thread, with the
     * original as its cause and "Type: message" (or no message) as its message; users should see
     * the original. A chunk that failed on one worker and was joined by another is re-created
     * twice (worker, then caller), so copies are peeled off until the original remains.
     */
    private static Throwable original(Throwable e) {
        Throwable cause = e.getCause();
        while (cause != null && cause.getClass() == e.getClass()
                && (e.getMessage() == null || e.getMessage().equals(cause.toString()))) {
            e = cause;
            cause = e.getCause();
        }
        return e;
    }

    private boolean isOwnWorker() {
        return Thread.currentThread() instanceof ForkJoinWorkerThread worker && worker.getPool() == pool;
    }

    @Override
    public void close() {
        if (pool != null) {
            pool.shutdownNow();
        }
    }
}
