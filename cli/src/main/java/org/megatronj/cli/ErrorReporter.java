package org.megatronj.cli;

import picocli.CommandLine;

/**
 * Turns an exception from a command into one clear line on stderr and exit code 1. The stack
 * trace is printed only with {@code MEGATRON_DEBUG=1}: users get the message, developers the trace.
 */
final class ErrorReporter implements CommandLine.IExecutionExceptionHandler {
    @Override
    public int handleExecutionException(Exception ex, CommandLine cmd, CommandLine.ParseResult parseResult) {
        String message = ex.getMessage() == null ? ex.toString() : ex.getMessage();
        cmd.getErr().println("megatron " + cmd.getCommandName() + ": error: " + message);
        Throwable cause = ex.getCause();
        while (cause != null) {
            if (cause.getMessage() != null && !message.contains(cause.getMessage())) {
                cmd.getErr().println("  caused by: " + cause.getMessage());
            }
            cause = cause.getCause();
        }
        if ("1".equals(System.getenv("MEGATRON_DEBUG"))) {
            ex.printStackTrace(cmd.getErr());
        }
        cmd.getErr().flush();
        return 1;
    }
}
