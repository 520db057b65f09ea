package org.megatronj.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code megatron data ...}: look inside indexed datasets and the GPT sample indices built over them. */
@Command(name = "data", mixinStandardHelpOptions = true,
        description = "Inspect indexed datasets, show samples, build GPT sample indices ahead of a run.",
        subcommands = {
                // one line per subcommand
                DataBuildIndicesCommand.class,
                DataInspectCommand.class,
                DataSampleCommand.class,
        })
final class DataCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }
}
