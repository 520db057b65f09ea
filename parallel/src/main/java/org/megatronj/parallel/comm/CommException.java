package org.megatronj.parallel.comm;

/**
 * A failed communication: mismatched collectives, tensors of different sizes on different ranks,
 * a rank that failed while others waited for it. The message always names the operation (name and
 * sequence number), the group and the rank with its (tp, pp, dp) position.
 */
public class CommException extends RuntimeException {
    public CommException(String message) {
        super(message);
    }

    public CommException(String message, Throwable cause) {
        super(message, cause);
    }
}
