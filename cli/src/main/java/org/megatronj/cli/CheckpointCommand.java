package org.megatronj.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * {@code megatron checkpoint ...}: look into checkpoints, convert them between parallel layouts, to and from Hugging Face,
 * and to and from Megatron-LM's torch format.
 */
@Command(name = "checkpoint", mixinStandardHelpOptions = true,
        description = "Inspect and reshard checkpoints; import and export Hugging Face GPT-2 models and Megatron-LM"
                + " torch-format checkpoints.",
        subcommands = {CheckpointInspectCommand.class, CheckpointImportHfCommand.class, CheckpointExportHfCommand.class,
                CheckpointImportTorchCommand.class, CheckpointExportTorchCommand.class, CheckpointReshardCommand.class})
final class CheckpointCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }
}
