package org.megatronj.parallel.checkpoint;

import com.fasterxml.jackson.databind.node.ObjectNode;
import org.megatronj.io.checkpoint.Checkpoint;
import org.megatronj.io.checkpoint.CheckpointException;
import org.megatronj.io.checkpoint.CheckpointLayout;
import org.megatronj.io.checkpoint.CheckpointWriter;
import org.megatronj.io.checkpoint.ShardLayout;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.ParameterSpec;
import org.megatronj.model.PipelineLayout;
import org.megatronj.model.TransformerConfig;
import org.megatronj.parallel.ParallelConfig;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Consumer;

/**
 * {@code megatron checkpoint reshard}: converts the latest checkpoint under one folder from its
 * (tensor, pipeline) layout to another, as Megatron's {@code tools/checkpoint/convert.py}
 * (checkpoint_util): merges the shards into whole tensors ({@link FullModelState}), cuts them for
 * the target layout and writes one folder per target (tensor, pipeline) rank with the weights,
 * the optimizer state as {@code optimizer.safetensors} (per-parameter shards, loadable with or
 * without the distributed optimizer at any data-parallel size) unless left out, and the source's
 * metadata with the new layout. The iteration folder is written under a temporary name and
 * renamed, then the tracker is written. A 1 x 1 target is an ordinary single-rank checkpoint
 * ({@code mp_rank_00}) that {@code generate}, {@code evaluate} and {@code export-hf} read.
 */
public final class CheckpointResharder {

    /** What was written: the iteration folder, the layout, rank folders and bytes. */
    public record Result(Path iterationDir, ShardLayout source, ShardLayout target, int rankFolders, long bytes,
                         boolean optimizerState) {
    }

    private CheckpointResharder() {
    }

    /**
     * A layout message in reshard's terms: the checks are pretraining's and name its flags, which
     * a user of {@code checkpoint reshard} did not type.
     */
    public static String targetFlagNames(String message) {
        return message.replace("--tensor-model-parallel-size", "--target-tensor-parallel-size")
                .replace("--pipeline-model-parallel-size", "--target-pipeline-parallel-size")
                .replace("--num-layers-per-virtual-pipeline-stage", "--target-num-layers-per-virtual-pipeline-stage")
                .replace("--pipeline-model-parallel-layout", "--target-pipeline-model-parallel-layout");
    }

    /**
     * @param target        the target sizes: TP, PP, layers per virtual pipeline stage (0 = not interleaved) and the
     *                      layer split; sequence parallelism does not change the checkpoint
     * @param withOptimizer also convert the optimizer state (when the source has it)
     * @param progress      told about each written rank folder
     */
    public static Result reshard(Path load, Path save, ParallelConfig target, boolean withOptimizer, Consumer<String> progress) {
        Path iterDir = Checkpoint.latestIterationDir(load);
        ObjectNode meta;
        ShardLayout source;
        long iteration;
        try (Checkpoint first = Checkpoint.openLatestAnyRank(load)) {
            meta = first.metadata().deepCopy();
            source = ShardLayout.fromMetadata(meta);
            iteration = iterDir.equals(load) ? meta.path("iteration").asLong(0) : first.iteration();
        }
        if (meta.path("release").asBoolean(false)) {
            iteration = -1;
        }
        checkDistinct(load, save);
        TransformerConfig config = FullModelState.config(meta, iterDir);
        try {
            target.validateForModel(config.numLayers(), config.numAttentionHeads(), config.numQueryGroups(),
                    config.ffnHiddenSize(), config.seqLength());
            config.checkTensorParallelSize(target.tensorModelParallelSize());
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("cannot reshard " + iterDir + ": its model's " + targetFlagNames(e.getMessage()), e);
        }
        PipelineLayout split = target.pipelineLayout(config.numLayers());
        ShardLayout to = new ShardLayout(target.tensorModelParallelSize(), target.pipelineModelParallelSize(),
                split.chunksPerStage(), source.dataParallel(), false, split.isEven() ? null : split.layers());
        progress.accept("reading " + iterDir + " (" + source.describe() + ")");
        FullModelState full = FullModelState.read(iterDir, source, config, withOptimizer);
        Path partial = CheckpointWriter.preparePartial(save, iteration);
        long bytes = 0;
        int t = to.tensorParallel();
        for (int stage = 0; stage < to.pipelineParallel(); stage++) {
            for (int rank = 0; rank < t; rank++) {
                try (TensorArena arena = TensorArena.named("reshard-rank")) {
                    Map<String, Tensor> weights = new LinkedHashMap<>();
                    Map<String, Tensor> state = new LinkedHashMap<>();
                    for (ParameterSpec spec : FullModelState.stageSpecs(config, t, split, stage)) {
                        weights.put(spec.name(), arena.fromFloats(full.shard(spec, null, t, rank), spec.shape()));
                        for (String suffix : full.hasOptimizerState() ? full.stateSuffixes(spec.name()) : java.util.List.<String>of()) {
                            state.put(spec.name() + "." + suffix, arena.fromFloats(full.shard(spec, suffix, t, rank), spec.shape()));
                        }
                    }
                    ObjectNode rankMeta = meta.deepCopy();
                    rankMeta.remove(ShardLayout.KEY);
                    if (to.sharded()) {
                        to.writeTo(rankMeta, rank, stage);
                    }
                    rankMeta.put("resharded_from", source.describe());
                    String dir = to.rankDirName(rank, stage);
                    bytes += CheckpointWriter.writeRankFiles(partial, new CheckpointWriter.RankState(dir, weights, state, rankMeta),
                            Map.of());
                    progress.accept(String.format(java.util.Locale.ROOT, "wrote %s (%d of %d)", dir,
                            stage * t + rank + 1, t * to.pipelineParallel()));
                }
            }
        }
        CheckpointWriter.commit(save, iteration);
        return new Result(CheckpointLayout.resolveIterationDir(save, iteration), source, to, t * to.pipelineParallel(), bytes,
                full.hasOptimizerState());
    }

    /** Refuses to write into the folder being read (the renames would replace the source while it is mapped). */
    private static void checkDistinct(Path load, Path save) {
        try {
            Path a = load.toRealPath();
            Path b = Files.exists(save) ? save.toRealPath() : save.toAbsolutePath().normalize();
            if (a.equals(b) || a.startsWith(b) || b.startsWith(a)) {
                throw new CheckpointException("--save " + save + " must be a folder apart from --load " + load);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot resolve " + load + ": " + e.getMessage(), e);
        }
    }
}
