package org.megatronj.io.tokenizer;

/** A vocabulary or merges file that does not parse, or text a tokenizer cannot encode; the message says where and why. */
public final class TokenizerException extends RuntimeException {
    public TokenizerException(String message) {
        super(message);
    }

    public TokenizerException(String message, Throwable cause) {
        super(message, cause);
    }
}
