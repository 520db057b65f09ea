package org.megatronj.cli.serve;

/** A request the server refuses: the message is sent back with HTTP 400 and the server carries on. */
public final class BadRequestException extends RuntimeException {
    public BadRequestException(String message) {
        super(message);
    }
}
