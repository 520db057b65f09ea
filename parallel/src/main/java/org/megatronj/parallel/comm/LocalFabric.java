package org.megatronj.parallel.comm;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.IntFunction;

/**
 * What the ranks of one in-JVM world share: the timeout, how to name a rank in messages, every
 * group created so far, and the abort flag that unblocks all waiting ranks when one rank fails.
 */
final class LocalFabric {
    private final int worldSize;
    private final IntFunction<String> rankDescriber;
    private final Duration timeout;
    private final List<LocalGroup> groups = new CopyOnWriteArrayList<>();
    private volatile String abortReason;
    private volatile Throwable abortCause;

    LocalFabric(int worldSize, IntFunction<String> rankDescriber, Duration timeout) {
        if (worldSize < 1) {
            throw new IllegalArgumentException("world size must be >= 1, got " + worldSize);
        }
        if (timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("communication timeout must be positive, got " + timeout);
        }
        this.worldSize = worldSize;
        this.rankDescriber = rankDescriber;
        this.timeout = timeout;
    }

    int worldSize() {
        return worldSize;
    }

    Duration timeout() {
        return timeout;
    }

    String describeRank(int globalRank) {
        return rankDescriber.apply(globalRank);
    }

    LocalGroup newGroup(String name, int[] globalRanks) {
        LocalGroup g = new LocalGroup(this, name, globalRanks);
        groups.add(g);
        return g;
    }

    /** Marks the world failed and wakes every waiting rank; the first reason wins. */
    void abort(String reason, Throwable cause) {
        synchronized (this) {
            if (abortReason != null) {
                return;
            }
            abortCause = cause;
            abortReason = reason;
        }
        for (LocalGroup g : groups) {
            g.wakeAll();
        }
    }

    boolean aborted() {
        return abortReason != null;
    }

    /** Throws if the world was aborted, naming the operation that was waiting. */
    void checkAborted(String operation) {
        String reason = abortReason;
        if (reason != null) {
            throw new CommException(operation + " abandoned: " + reason, abortCause);
        }
    }
}
