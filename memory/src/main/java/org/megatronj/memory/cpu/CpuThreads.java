package org.megatronj.memory.cpu;

import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * The worker threads of the CPU backend. Kernels split their outer loop into contiguous
 * chunks with {@link #parallelFor}; each chunk runs on one thread, so a kernel's inner loop
 * stays a plain loop over memory. The thread count comes from {@code megatron.cpu.threads}
 * (default: available processors) and includes the calling thread: {@code threads - 1} workers
 * plus the caller, which runs chunks too.
 *
 * <p>Why not a {@code ForkJoinPool}: a model step is thousands of kernels of 0.1-5 ms, and a
 * parked worker takes tens of microseconds to wake; measured on 2 cores, two 66 us chunks took
 * as long as running both serially (the forking worker finished its own chunk and then popped
 * the second one before the other worker woke). Here idle workers poll for the next job for
 * {@link #SPIN_NANOS} before they park, so back-to-back kernels start on every core at once.
 */
public final class CpuThreads implements AutoCloseable {
    public static final String PROPERTY = "megatron.cpu.threads";

    /** How long an idle worker polls for work before parking: longer than the host-side gap between two kernels. */
    static final long SPIN_NANOS = 300_000;

    /** A body over the half-open range {@code [from, to)}. */
    @FunctionalInterface
    public interface RangeBody {
        void run(long from, long to);
    }

    private final int threads;
    private final Worker[] workers;
    private final ConcurrentLinkedQueue<Job> open = new ConcurrentLinkedQueue<>();
    private volatile boolean closed;

    public CpuThreads(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("CPU thread count must be >= 1, got " + threads);
        }
        this.threads = threads;
        this.workers = new Worker[threads - 1];
        for (int i = 0; i < workers.length; i++) {
            workers[i] = new Worker("megatron-cpu-" + i);
            workers[i].start();
        }
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
     * least {@code grain} iterations; returns when all are done. The calling thread runs chunks
     * itself. Called from one of this pool's own workers (nested parallelism) it simply runs
     * serially; any other thread (the main thread, ranks running as tasks of another pool) gets
     * the workers' help. Several threads may call it at once (ranks sharing one backend). An
     * exception thrown by the body reaches the caller as thrown, after the running chunks ended.
     */
    public void parallelFor(long n, long grain, RangeBody body) {
        if (n <= 0) {
            return;
        }
        long chunks = Math.min(threads, Math.max(1, n / Math.max(1, grain)));
        if (chunks <= 1 || workers.length == 0 || closed || Thread.currentThread() instanceof Worker w && w.owner() == this) {
            body.run(0, n);
            return;
        }
        Job job = new Job(body, n, (int) chunks, Thread.currentThread());
        open.add(job);
        for (Worker w : workers) {
            if (w.parked) {
                LockSupport.unpark(w);
            }
        }
        job.runChunks();
        open.remove(job);
        job.awaitDone();
        Throwable failure = job.failure.get();
        if (failure instanceof RuntimeException e) {
            throw e;
        }
        if (failure instanceof Error e) {
            throw e;
        }
        if (failure != null) { // a checked exception thrown sneakily: RangeBody declares none
            throw new IllegalStateException(failure);
        }
    }

    private Job claimable() {
        for (Job job : open) {
            if (job.hasWork()) {
                return job;
            }
        }
        return null;
    }

    @Override
    public void close() {
        closed = true;
        for (Worker w : workers) {
            LockSupport.unpark(w);
        }
    }

    /** One parallelFor call: its chunks are claimed from a counter by the caller and the workers. */
    private static final class Job {
        private final RangeBody body;
        private final long n;
        private final int chunks;
        private final Thread caller;
        private final AtomicInteger next = new AtomicInteger();
        private final AtomicInteger done = new AtomicInteger();
        private final AtomicReference<Throwable> failure = new AtomicReference<>();
        private volatile boolean callerParked;

        Job(RangeBody body, long n, int chunks, Thread caller) {
            this.body = body;
            this.n = n;
            this.chunks = chunks;
            this.caller = caller;
        }

        boolean hasWork() {
            return next.get() < chunks;
        }

        /** Claims and runs chunks until none is left; after a failure the rest are skipped. */
        void runChunks() {
            for (int c = next.getAndIncrement(); c < chunks; c = next.getAndIncrement()) {
                try {
                    if (failure.get() == null) {
                        body.run(n * c / chunks, n * (c + 1) / chunks);
                    }
                } catch (Throwable e) {
                    failure.compareAndSet(null, e);
                } finally {
                    // volatile write of done, then read of callerParked: the mirror of awaitDone
                    if (done.incrementAndGet() == chunks && callerParked) {
                        LockSupport.unpark(caller);
                    }
                }
            }
        }

        /** The caller waits for chunks that workers still run: polls briefly, then parks until the last one ends. */
        void awaitDone() {
            long start = System.nanoTime();
            while (done.get() < chunks) {
                if (System.nanoTime() - start < SPIN_NANOS) {
                    Thread.onSpinWait();
                } else {
                    callerParked = true;
                    if (done.get() < chunks) {
                        LockSupport.park(this);
                    }
                }
            }
        }
    }

    private final class Worker extends Thread {
        private volatile boolean parked;

        Worker(String name) {
            super(name);
            setDaemon(true);
        }

        CpuThreads owner() {
            return CpuThreads.this;
        }

        @Override
        public void run() {
            long idleSince = System.nanoTime();
            while (!closed) {
                Job job = claimable();
                if (job != null) {
                    job.runChunks();
                    idleSince = System.nanoTime();
                } else if (System.nanoTime() - idleSince < SPIN_NANOS) {
                    Thread.onSpinWait();
                } else {
                    // volatile write of parked, then read of the queue: the mirror of parallelFor
                    parked = true;
                    if (!closed && claimable() == null) {
                        LockSupport.park(this);
                    }
                    parked = false;
                    idleSince = System.nanoTime();
                }
            }
        }
    }
}
