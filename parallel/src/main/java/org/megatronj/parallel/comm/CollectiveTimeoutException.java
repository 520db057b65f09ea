package org.megatronj.parallel.comm;

import java.util.List;

/**
 * A collective or receive that waited longer than the communicator's timeout. Instead of hanging
 * silently it says which operation (name and sequence number) on which group, and which ranks had
 * arrived and which had not, each with its (tp, pp, dp) position.
 */
public final class CollectiveTimeoutException extends CommException {
    private final String operation;
    private final long sequence;
    private final List<String> arrived;
    private final List<String> missing;

    public CollectiveTimeoutException(String message, String operation, long sequence, List<String> arrived, List<String> missing) {
        super(message);
        this.operation = operation;
        this.sequence = sequence;
        this.arrived = List.copyOf(arrived);
        this.missing = List.copyOf(missing);
    }

    /** The operation that timed out, e.g. "allReduce". */
    public String operation() {
        return operation;
    }

    /** Its sequence number on the communicator (0 for the first operation). */
    public long sequence() {
        return sequence;
    }

    /** Descriptions of the ranks that had reached the operation. */
    public List<String> arrived() {
        return arrived;
    }

    /** Descriptions of the ranks that had not. */
    public List<String> missing() {
        return missing;
    }
}
