package org.megatronj.cli;

import picocli.CommandLine;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.UnmatchedArgumentException;

import java.io.PrintWriter;
import java.util.List;

/**
 * How an invalid command line is reported (exit code 2): the problems and a pointer to {@code --help},
 * not picocli's default of the whole usage (240 lines for {@code pretrain gpt}, which pushed the
 * one line that mattered off the screen). picocli stops at the first problem it checks, and it checks
 * required flags before unknown ones: a mistyped {@code --num-layer} came out as "Missing required
 * option '--num-layers'" with no word about the typo, so unknown words are named here too, with
 * picocli's suggestions.
 */
final class InvalidCommandLine implements CommandLine.IParameterExceptionHandler {
    @Override
    public int handleParseException(ParameterException ex, String[] args) {
        CommandLine cmd = ex.getCommandLine();
        PrintWriter err = cmd.getErr();
        err.println(ex.getMessage());
        List<String> unmatched = cmd.getUnmatchedArguments();
        if (ex instanceof UnmatchedArgumentException) {
            UnmatchedArgumentException.printSuggestions(ex, err);
        } else if (!unmatched.isEmpty()) {
            UnmatchedArgumentException unknown = new UnmatchedArgumentException(cmd, unmatched);
            err.println(unknown.getMessage());
            UnmatchedArgumentException.printSuggestions(unknown, err);
        }
        err.println("Run '" + cmd.getCommandSpec().qualifiedName() + " --help' for its flags.");
        err.flush();
        return cmd.getCommandSpec().exitCodeOnInvalidInput();
    }
}
