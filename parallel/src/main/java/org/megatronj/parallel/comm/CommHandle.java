package org.megatronj.parallel.comm;

/**
 * An operation issued on a communicator's stream that may still be running (torch's
 * {@code Work}). {@link #await} blocks until it completed and rethrows its failure; the NCCL
 * implementation waits on the CUDA event recorded after the operation.
 */
public interface CommHandle {

    /** Blocks until the operation completed; rethrows its {@link CommException} if it failed. */
    void await();

    /** True once the operation completed, successfully or not. */
    boolean isDone();

    /** A handle of an operation that finished when it was issued (a group of one rank, an empty tensor). */
    static CommHandle completed() {
        return Completed.INSTANCE;
    }

    /** Waits for each handle in order; rethrows the first failure after waiting for all. */
    static void awaitAll(Iterable<? extends CommHandle> handles) {
        RuntimeException first = null;
        for (CommHandle h : handles) {
            try {
                h.await();
            } catch (RuntimeException e) {
                if (first == null) {
                    first = e;
                } else {
                    first.addSuppressed(e);
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }

    enum Completed implements CommHandle {
        INSTANCE;

        @Override
        public void await() {
        }

        @Override
        public boolean isDone() {
            return true;
        }
    }
}
