package org.megatronj.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import java.io.UncheckedIOException;
import java.net.ConnectException;
import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import org.megatronj.io.JsonErrors;
import picocli.CommandLine;

/**
 * Turns an exception from a command into one clear line on stderr and exit code 1. The stack
 * trace is printed only with {@code MEGATRON_DEBUG=1}: users get the message, developers the trace.
 */
final class ErrorReporter implements CommandLine.IExecutionExceptionHandler {
    @Override
    public int handleExecutionException(Exception ex, CommandLine cmd, CommandLine.ParseResult parseResult) {
        String message = describe(ex);
        cmd.getErr().println(cmd.getCommandSpec().qualifiedName() + ": error: " + message);
        Throwable cause = ex.getCause();
        while (cause != null) {
            String reason = describe(cause);
            if (!message.contains(reason)) {
                cmd.getErr().println("  caused by: " + reason);
            }
            cause = cause.getCause();
        }
        if ("1".equals(System.getenv("MEGATRON_DEBUG"))) {
            ex.printStackTrace(cmd.getErr());
        }
        cmd.getErr().flush();
        return 1;
    }

    /**
     * The message of {@code t} with the reason spelled out where Java leaves it implicit: a
     * {@code NoSuchFileException}'s message is only the path, a refused connection's is null.
     */
    static String describe(Throwable t) {
        if (t instanceof UncheckedIOException u && u.getCause() != null
                && (u.getMessage() == null || u.getMessage().equals(u.getCause().toString()))) {
            return describe(u.getCause());
        }
        if (t instanceof JsonProcessingException json) {
            return JsonErrors.describe(json);
        }
        String reason = switch (t) {
            case NoSuchFileException _ -> "no such file or directory";
            case FileAlreadyExistsException _ -> "already exists";
            case AccessDeniedException _ -> "permission denied";
            case NotDirectoryException _ -> "not a directory";
            case DirectoryNotEmptyException _ -> "directory not empty";
            case FileSystemException f when f.getReason() == null -> "file system error (" + f.getClass().getSimpleName() + ")";
            case ConnectException _ when t.getMessage() == null -> "connection refused";
            default -> null;
        };
        if (t.getMessage() == null) {
            return reason != null ? reason : t.toString();
        }
        return reason == null ? t.getMessage() : t.getMessage() + ": " + reason;
    }
}
