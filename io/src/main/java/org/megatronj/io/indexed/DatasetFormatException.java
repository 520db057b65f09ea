package org.megatronj.io.indexed;

/**
 * A {@code .bin}/{@code .idx} pair that cannot be read or written as Megatron's indexed dataset:
 * the message names the file, the byte offset where it applies, what was expected and what was found.
 */
public final class DatasetFormatException extends RuntimeException {
    public DatasetFormatException(String message) {
        super(message);
    }

    public DatasetFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
