package org.megatronj.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code megatron debug ...}: numerics checks against reference implementations. */
@Command(name = "debug", mixinStandardHelpOptions = true,
        description = "Numerics checks: run models on given inputs and dump losses, logits and gradients.",
        subcommands = {DebugForwardBackwardCommand.class})
final class DebugCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }
}
