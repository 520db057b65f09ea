package org.megatronj.io.preprocess;

/** Input that preprocessing cannot use; the message names the file and line and says what was expected. */
public final class PreprocessException extends RuntimeException {
    public PreprocessException(String message) {
        super(message);
    }

    public PreprocessException(String message, Throwable cause) {
        super(message, cause);
    }
}
