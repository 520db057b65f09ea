package org.megatronj.parallel.checkpoint;

/** A Hugging Face model folder this converter cannot map: the message names the file, the key and the value. */
public final class HfConfigException extends RuntimeException {
    public HfConfigException(String message) {
        super(message);
    }
}
