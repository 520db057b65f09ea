package org.megatronj.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Stream;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.megatronj.io.checkpoint.CheckpointLayout;
import org.megatronj.io.checkpoint.CheckpointWriter;
import org.megatronj.io.checkpoint.ShardLayout;
import org.megatronj.io.torch.DistributedCheckpoint;
import org.megatronj.io.torch.TorchFile;
import org.megatronj.memory.TensorArena;
import org.megatronj.parallel.ParallelConfig;
import org.megatronj.parallel.checkpoint.CheckpointResharder;
import org.megatronj.parallel.train.TrainingCheckpointer;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code megatron checkpoint import-torch}: a Megatron-LM {@code --ckpt-format torch} or {@code torch_dist} checkpoint
 * to a Megatron-J one.
 */
@Command(name = "import-torch", mixinStandardHelpOptions = true,
        description = {"Convert a Megatron-LM checkpoint of a Megatron-core GPT saved with --ckpt-format torch",
                "(iter_N/mp_rank_TT[_PPP][_EEE]/model_optim_rng.pt, its tensor, pipeline and expert-parallel shards merged;",
                "MoE experts as SequentialMLP, TEGroupedMLP or the legacy GroupedMLP saved them) or torch_dist, the default",
                "(iter_N/.metadata, __R_K.distcp, common.pt: PyTorch distributed checkpoint files of any parallel layout)",
                "into an F32 release checkpoint whose arguments are the run's model and tokenizer flags: generate,",
                "evaluate and serve read it as it is, pretrain gpt --load it with --use-checkpoint-args (weights only;",
                "the optimizer state is not read). The tokenizer is the run's unless tokenizer flags are given (its files",
                "must be readable here). Nothing in the files is executed: their pickles are read as data."})
final class CheckpointImportTorchCommand implements Callable<Integer> {
    @Option(names = "--load", required = true, paramLabel = "DIR",
            description = "Megatron-LM's checkpoint folder (its --save: latest_checkpointed_iteration.txt and iter_*/).")
    Path load;

    @Option(names = "--save", required = true, paramLabel = "DIR", description = "Checkpoint folder to write (tracker 'release').")
    Path save;

    @CommandLine.Mixin
    TokenizerOptions tokenizer;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        CheckpointLayout.requireNoCheckpoint(save, "--save");
        Path iterationDir = MegatronTorchCheckpoint.latestIterationDir(load);
        if (MegatronDistCheckpoint.isDistributed(iterationDir)) {
            return importDistributed(iterationDir);
        }
        MegatronTorchCheckpoint.Ranks ranks = MegatronTorchCheckpoint.ranks(iterationDir);
        int tp = ranks.tensorParallel(), pp = ranks.pipelineParallel(), ep = ranks.expertParallel();
        Path first = ranks.first();
        ObjectMapper json = new ObjectMapper();
        MegatronTorchCheckpoint.Contents c;
        try (TorchFile torch = TorchFile.open(first)) {
            c = MegatronTorchCheckpoint.read(torch, first, tokenizer, ranks);
        }
        ObjectNode extra = json.createObjectNode();
        extra.put("imported_from", ranks.iterationDir().toString());
        extra.put("imported_iteration", c.iteration());
        TrainingCheckpointer ours = new TrainingCheckpointer(json.valueToTree(c.config()), MegatronTorchCheckpoint.savedArgs(c));
        PrintWriter out = spec.commandLine().getOut();
        long bytes;
        if (tp * pp == 1) {
            try (TensorArena arena = TensorArena.named("import-torch")) {
                bytes = ours.saveRelease(save, MegatronTorchCheckpoint.weights(ranks, 0, 0, c, arena),
                        extra);
            }
        } else {
            bytes = importShards(ranks, c, ours.releaseMetadata(extra), out);
        }
        out.printf("imported %s (iteration %d; %d layers, hidden %d, padded vocab %d%s): %.1f MiB -> %s%n  model flags: %s%n",
                ranks.iterationDir(), c.iteration(), c.config().numLayers(), c.config().hiddenSize(),
                c.config().paddedVocabSize(), tp * pp * ep == 1 ? "" : ", merged from " + tp + " tensor x " + pp + " pipeline"
                        + (ep > 1 ? " x " + ep + " expert-parallel" : "") + " ranks",
                bytes / 1048576.0, save, String.join(" ", c.modelFlags()));
        return 0;
    }

    /**
     * A torch_dist iteration folder: its tensors are global whatever the saving run's parallel layout (every rank wrote
     * its chunks at their global offsets), so they make one rank's weights directly, with no merge.
     */
    private Integer importDistributed(Path iterationDir) {
        ObjectMapper json = new ObjectMapper();
        try (DistributedCheckpoint dcp = DistributedCheckpoint.open(iterationDir);
             TensorArena arena = TensorArena.named("import-torch")) {
            Map<?, ?> common = MegatronDistCheckpoint.commonState(dcp);
            Map<?, ?> args = MegatronTorchCheckpoint.namespace(common.get("args"), iterationDir);
            int tp = args.get("tensor_model_parallel_size") instanceof Number n ? n.intValue() : 1;
            int pp = args.get("pipeline_model_parallel_size") instanceof Number n ? n.intValue() : 1;
            MegatronTorchCheckpoint.Contents c = MegatronTorchCheckpoint.contents(common, iterationDir, tokenizer, tp,
                    MegatronDistCheckpoint.embeddingRows(dcp));
            ObjectNode extra = json.createObjectNode();
            extra.put("imported_from", iterationDir.toString());
            extra.put("imported_iteration", c.iteration());
            TrainingCheckpointer ours = new TrainingCheckpointer(json.valueToTree(c.config()), MegatronTorchCheckpoint.savedArgs(c));
            long bytes = ours.saveRelease(save, MegatronDistCheckpoint.weights(dcp, c.config(), c.modelFlags(), arena), extra);
            spec.commandLine().getOut().printf("imported %s (iteration %d; %d layers, hidden %d, padded vocab %d, torch_dist saved"
                            + " by %d tensor x %d pipeline ranks): %.1f MiB -> %s%n  model flags: %s%n", iterationDir, c.iteration(),
                    c.config().numLayers(), c.config().hiddenSize(), c.config().paddedVocabSize(), tp, pp, bytes / 1048576.0, save,
                    String.join(" ", c.modelFlags()));
            return 0;
        }
    }

    /**
     * Each rank file as the shard of Megatron-J's layout with the same sizes (a hidden folder beside {@code --save}), then
     * that checkpoint resharded to one rank into {@code --save}. Returns the bytes written there.
     */
    private long importShards(MegatronTorchCheckpoint.Ranks ranks, MegatronTorchCheckpoint.Contents c, ObjectNode metadata,
                              PrintWriter out) {
        int tp = ranks.tensorParallel(), pp = ranks.pipelineParallel();
        Path shards = save.toAbsolutePath().resolveSibling("." + save.getFileName() + ".shards");
        ShardLayout layout = new ShardLayout(tp, pp, 1, 1, false, c.pipeline().isEven() ? null : c.pipeline().layers());
        try {
            Path partial = CheckpointWriter.preparePartial(shards, -1);
            for (int t = 0; t < tp; t++) {
                for (int p = 0; p < pp; p++) {
                    ObjectNode meta = metadata.deepCopy();
                    layout.writeTo(meta, t, p);
                    try (TensorArena arena = TensorArena.named("import-torch")) {
                        CheckpointWriter.writeRankFiles(partial, new CheckpointWriter.RankState(layout.rankDirName(t, p),
                                MegatronTorchCheckpoint.weights(ranks, t, p, c, arena), Map.of(), meta),
                                Map.of());
                    }
                    for (Path file : ranks.files()[t][p]) {
                        out.println("  read " + ranks.iterationDir().relativize(file));
                    }
                }
            }
            CheckpointWriter.commit(shards, -1);
            return CheckpointResharder.reshard(shards, save, ParallelConfig.single(), false, line -> { }).bytes();
        } finally {
            deleteTree(shards);
        }
    }

    private static void deleteTree(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot remove the shards' folder " + dir + ": " + e.getMessage(), e);
        }
    }
}
