package org.megatronj.cli;

import picocli.AutoComplete;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The {@code megatron} command: Megatron-LM's tools behind one picocli entry point.
 * Subcommands are registered in {@link #SUBCOMMANDS}, one line each.
 */
@Command(name = "megatron",
        mixinStandardHelpOptions = true,
        versionProvider = VersionProvider.class,
        description = "Megatron-J: pretrain, evaluate and serve GPT, BERT and T5 models on the JVM.",
        exitCodeListHeading = "%nExit codes:%n",
        exitCodeList = {
                "0:success",
                "1:the command failed (the message says why)",
                "2:invalid command line (unknown command or flag, bad value)"},
        subcommands = {CommandLine.HelpCommand.class, AutoComplete.GenerateCompletion.class})
public final class Megatron implements Runnable {

    /** Every subcommand, one entry each; keep alphabetical. */
    static final Class<?>[] SUBCOMMANDS = {
            CheckpointCommand.class,
            ClientCommand.class,
            DataCommand.class,
            DebugCommand.class,
            EvaluateCommand.class,
            GenerateCommand.class,
            InfoCommand.class,
            MergeDatasetsCommand.class,
            PlotLossCommand.class,
            PreprocessCommand.class,
            PretrainCommand.class,
            ServeCommand.class,
    };

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    /** Builds the command line with all subcommands; tests call this to run commands in-process. */
    public static CommandLine commandLine() {
        CommandLine cli = new CommandLine(new Megatron());
        for (Class<?> sub : SUBCOMMANDS) {
            cli.addSubcommand(sub);
        }
        cli.getSubcommands().get("generate-completion").getCommandSpec().usageMessage().hidden(true);
        cli.setExecutionExceptionHandler(new ErrorReporter());
        cli.setParameterExceptionHandler(new InvalidCommandLine());
        cli.setCaseInsensitiveEnumValuesAllowed(true);
        // Megatron's argparse keeps the last value of a repeated flag, so a flag after @args.txt overrides the file
        cli.setOverwrittenOptionsAllowed(true);
        return cli;
    }

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }
}
