package org.megatronj.io.safetensors;

/** A safetensors file is missing, truncated or malformed; the message names the file and what was expected. */
public final class SafetensorsException extends RuntimeException {
    public SafetensorsException(String message) {
        super(message);
    }

    public SafetensorsException(String message, Throwable cause) {
        super(message, cause);
    }
}
