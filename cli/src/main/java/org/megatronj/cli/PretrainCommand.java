package org.megatronj.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code megatron pretrain gpt|...}: Megatron's pretrain_*.py scripts. */
@Command(name = "pretrain", mixinStandardHelpOptions = true,
        description = "Pretrain a model from scratch (or continue from --load).",
        subcommands = {PretrainGptCommand.class})
final class PretrainCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }
}
