package org.megatronj.memory;

/**
 * A bad argument to a tensor operation: wrong shape or dtype, a tensor on the wrong device,
 * or a tensor whose arena is already closed. The message names the op, what it was given and
 * what it expected.
 */
public final class TensorException extends RuntimeException {
    public TensorException(String message) {
        super(message);
    }

    public TensorException(String message, Throwable cause) {
        super(message, cause);
    }
}
