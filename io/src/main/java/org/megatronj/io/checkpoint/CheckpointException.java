package org.megatronj.io.checkpoint;

/** A checkpoint directory is missing, incomplete or does not fit the model; the message says which file and why. */
public final class CheckpointException extends RuntimeException {
    public CheckpointException(String message) {
        super(message);
    }

    public CheckpointException(String message, Throwable cause) {
        super(message, cause);
    }
}
