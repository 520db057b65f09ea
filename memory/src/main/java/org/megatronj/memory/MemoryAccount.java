package org.megatronj.memory;

/**
 * Host tensor memory counted per training rank. Ranks of a one-process run are threads, so an
 * account belongs to the thread that {@link #enter}s it (and the threads it starts); each
 * {@link TensorArena} charges the account current where it was made, also when another thread
 * closes it. Host memory is not cached: what is reserved is what is allocated.
 */
public final class MemoryAccount {
    private static final MemoryAccount PROCESS = new MemoryAccount();
    private static final InheritableThreadLocal<MemoryAccount> CURRENT = new InheritableThreadLocal<>() {
        @Override
        protected MemoryAccount initialValue() {
            return PROCESS;
        }
    };

    private long bytes;
    private long peakBytes;
    private long allocations;

    /** The account of this thread: its rank's, or the process's. */
    public static MemoryAccount current() {
        return CURRENT.get();
    }

    /** Charges this thread's (and its future threads') tensors to a fresh account: a rank's. */
    public static MemoryAccount enter() {
        MemoryAccount account = new MemoryAccount();
        CURRENT.set(account);
        return account;
    }

    synchronized void allocated(long n) {
        bytes += n;
        allocations++;
        peakBytes = Math.max(peakBytes, bytes);
    }

    synchronized void freed(long n, long count) {
        bytes -= n;
        allocations -= count;
    }

    public synchronized MemoryStats stats() {
        return new MemoryStats(bytes, peakBytes, bytes, peakBytes, allocations);
    }
}
