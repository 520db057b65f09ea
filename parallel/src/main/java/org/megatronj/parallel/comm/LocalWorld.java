package org.megatronj.parallel.comm;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import org.megatronj.memory.MemoryAccount;
import org.megatronj.parallel.ParallelConfig;
import org.megatronj.parallel.ParallelState;

/**
 * Runs N ranks as threads of this JVM, each with its {@link RankContext} (layout and
 * {@link LocalCommunicator} groups), and returns when all have finished. The first rank to fail
 * aborts the world, so ranks waiting in a collective stop at once instead of timing out, and its
 * failure is rethrown as a {@link RankFailedException} naming the rank and its (tp, pp, dp) position;
 * the other ranks' failures are attached as suppressed exceptions.
 */
public final class LocalWorld {
    /** Megatron's default {@code --distributed-timeout-minutes}. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofMinutes(10);

    private LocalWorld() {
    }

    /** {@code worldSize} data-parallel ranks (TP = PP = 1). */
    public static void run(int worldSize, Consumer<RankContext> body) {
        run(ParallelConfig.single(), worldSize, DEFAULT_TIMEOUT, body);
    }

    public static void run(ParallelConfig config, int worldSize, Consumer<RankContext> body) {
        run(config, worldSize, DEFAULT_TIMEOUT, body);
    }

    /**
     * @param timeout how long any collective or receive waits for the other ranks before it fails
     */
    public static void run(ParallelConfig config, int worldSize, Duration timeout, Consumer<RankContext> body) {
        config.validateWorldSize(worldSize);
        ParallelState layout = ParallelState.of(config, worldSize, 0);
        List<LocalCommunicator> worlds = LocalCommunicator.createWorld(worldSize, layout::describeRank, timeout);
        AtomicReference<RankFailedException> first = new AtomicReference<>();
        List<Throwable> others = java.util.Collections.synchronizedList(new ArrayList<>());
        List<Thread> threads = new ArrayList<>(worldSize);
        for (int r = 0; r < worldSize; r++) {
            ParallelState state = ParallelState.of(config, worldSize, r);
            LocalCommunicator world = worlds.get(r);
            threads.add(Thread.ofPlatform().name("rank-" + r).start(() -> runRank(state, world, body, first, others)));
        }
        boolean interrupted = false;
        for (Thread t : threads) {
            while (t.isAlive()) {
                try {
                    t.join();
                } catch (InterruptedException e) {
                    interrupted = true;
                    worlds.get(0).abortWorld("the thread running the local world was interrupted", e);
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        RankFailedException failure = first.get();
        if (failure != null) {
            others.forEach(failure::addSuppressed);
            throw failure;
        }
    }

    /**
     * What went wrong, for the one line the CLI prints: an exception's own message, which says it
     * (the class name is noise there); an error, or an exception without a message, by its class.
     */
    private static String reason(Throwable t) {
        return t instanceof Exception && t.getMessage() != null ? t.getMessage() : t.toString();
    }

    private static void runRank(ParallelState state, LocalCommunicator world, Consumer<RankContext> body,
                                AtomicReference<RankFailedException> first, List<Throwable> others) {
        ProcessGroups groups = null;
        MemoryAccount.enter();   // this rank's tensors, for its memory report
        try {
            groups = ProcessGroups.create(world, state);
            body.accept(new RankContext(state, groups));
        } catch (Throwable t) {
            // Abort before closing: closing waits for this rank's queued operations, which may wait on the others.
            String message = state.describe() + " failed: " + reason(t);
            RankFailedException failure = new RankFailedException(state.rank(), message, t);
            if (first.compareAndSet(null, failure)) {
                world.abortWorld(message, t);
            } else {
                others.add(t);
            }
        } finally {
            try {
                if (groups != null) {
                    groups.close();
                } else {
                    world.close();
                }
            } catch (RuntimeException e) {
                others.add(e);
            }
        }
    }
}
