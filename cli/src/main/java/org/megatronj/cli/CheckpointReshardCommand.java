package org.megatronj.cli;

import org.megatronj.io.checkpoint.CheckpointLayout;
import org.megatronj.parallel.ParallelConfig;
import org.megatronj.parallel.PipelineSplit;
import org.megatronj.parallel.checkpoint.CheckpointResharder;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code megatron checkpoint reshard}: Megatron's {@code tools/checkpoint/convert.py}
 * (checkpoint_util) for our checkpoints: the latest checkpoint under {@code --load}, saved at any
 * (tensor, pipeline) layout, rewritten under {@code --save} for the target layout.
 */
@Command(name = "reshard", mixinStandardHelpOptions = true,
        description = {"Convert a checkpoint to another tensor/pipeline-parallel layout (Megatron's checkpoint_util):",
                "merge the shards into whole tensors and cut them for the target, optimizer state included.",
                "A 1 x 1 target is a single-rank checkpoint (generate, evaluate, export-hf read it)."})
final class CheckpointReshardCommand implements Callable<Integer> {
    @Option(names = "--load", required = true, paramLabel = "DIR", description = "Checkpoint folder to read (its latest iteration).")
    Path load;

    @Option(names = "--save", required = true, paramLabel = "DIR",
            description = "Folder to write the converted checkpoint into (same iteration; a folder apart from --load).")
    Path save;

    @Option(names = "--target-tensor-parallel-size", required = true, paramLabel = "N", description = "Target TP size.")
    int targetTensorParallel;

    @Option(names = "--target-pipeline-parallel-size", required = true, paramLabel = "N", description = "Target PP size.")
    int targetPipelineParallel;

    @Option(names = "--target-num-layers-per-virtual-pipeline-stage", paramLabel = "N", defaultValue = "0",
            description = "Target layers per model chunk of the interleaved schedule (default 0: not interleaved).")
    int targetLayersPerVirtualStage;

    @Option(names = "--target-pipeline-model-parallel-layout", paramLabel = "LAYOUT",
            description = "Target layer split in Megatron's --pipeline-model-parallel-layout form (\"Et*3|t*5|t*5|t*3L\");"
                    + " its number of '|'-separated stages is the target PP size times the chunks per stage.")
    String targetLayout;

    @Option(names = "--no-optim", description = "Convert the weights only (resume with --no-load-optim or --finetune).")
    boolean noOptim;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        // checked here, so that the messages name this command's flags rather than pretrain's
        if (targetTensorParallel < 1 || targetPipelineParallel < 1 || targetLayersPerVirtualStage < 0) {
            throw new IllegalArgumentException("--target-tensor-parallel-size and --target-pipeline-parallel-size must be >= 1"
                    + " and --target-num-layers-per-virtual-pipeline-stage >= 1 when given; got " + targetTensorParallel + ", "
                    + targetPipelineParallel + ", " + targetLayersPerVirtualStage);
        }
        CheckpointLayout.requireNoCheckpoint(save, "--save");
        ParallelConfig target;
        try {
            target = new ParallelConfig(targetTensorParallel, targetPipelineParallel, targetLayersPerVirtualStage, false)
                    .withPipelineSplit(targetLayout == null ? PipelineSplit.EVEN
                            : new PipelineSplit(null, null, false, false, null, targetLayout));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(CheckpointResharder.targetFlagNames(e.getMessage()), e);
        }
        long start = System.nanoTime();
        CheckpointResharder.Result r = CheckpointResharder.reshard(load, save, target, !noOptim, line -> {
            err.printf(Locale.ROOT, "[reshard %6.1f s] %s%n", (System.nanoTime() - start) / 1e9, line);
            err.flush();
        });
        out.printf(Locale.ROOT, "resharded %s -> %s: %s -> %s, %d rank folder(s), %.1f MiB, optimizer state %s%n", load,
                r.iterationDir(), r.source().describe(), r.target().describe(), r.rankFolders(), r.bytes() / 1048576.0,
                r.optimizerState() ? "converted" : noOptim ? "left out (--no-optim)" : "absent in the source");
        out.flush();
        return 0;
    }
}
