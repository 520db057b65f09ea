package org.megatronj.parallel.pipeline;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import org.megatronj.io.checkpoint.Checkpoint;
import org.megatronj.io.checkpoint.CheckpointException;
import org.megatronj.io.checkpoint.CheckpointLayout;
import org.megatronj.io.checkpoint.CheckpointWriter;
import org.megatronj.io.checkpoint.OptimizerStateFiles;
import org.megatronj.io.checkpoint.ShardLayout;
import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.PipelineLayout;
import org.megatronj.model.GPTModel;
import org.megatronj.model.Parameter;
import org.megatronj.model.ParameterSpec;
import org.megatronj.model.TransformerConfig;
import org.megatronj.model.layers.HostTransfer;
import org.megatronj.model.optim.OptimizerParamScheduler;
import org.megatronj.parallel.checkpoint.FullModelState;
import org.megatronj.parallel.comm.Communicator;
import org.megatronj.parallel.comm.ProcessGroups;
import org.megatronj.parallel.optim.DistributedAdam;
import org.megatronj.parallel.optim.FlatShard;
import org.megatronj.parallel.train.BackgroundSave;
import org.megatronj.parallel.train.ResumePoint;
import org.megatronj.parallel.train.TrainableModel;
import org.megatronj.parallel.train.TrainingCheckpointer;
import org.megatronj.parallel.train.TrainingCheckpoints;
import org.megatronj.parallel.train.TrainingOptimizer;

/**
 * Sharded checkpoints of a parallel run, in Megatron's layout: one folder per (tensor, pipeline)
 * rank, {@code iter_NNNNNNN/mp_rank_TT} (PP = 1) or {@code mp_rank_TT_PPP} (PP &gt; 1), written by
 * the ranks themselves. Data-parallel rank 0 of each model-parallel group writes the weights
 * ({@code model.safetensors}, its shards under their Megatron names), {@code metadata.json} (with
 * the layout under {@code "parallel"}) and, without the distributed optimizer,
 * {@code optimizer.safetensors}; with it every DP rank writes the moments it owns to
 * {@code distrib_optim_dp_DDD.safetensors} ({@link OptimizerStateFiles}). All write under a
 * temporary iteration folder; after a barrier world rank 0 renames it and writes the tracker.
 *
 * <p>Loading: a checkpoint loads directly at the (TP, PP, chunks per stage) it was saved at, at
 * any DP size (distributed-optimizer moments are re-split for the new DP); a 1 x 1 checkpoint (a
 * single-rank run, an import) loads at any layout, each rank keeping its shard; any other
 * mismatch is an error naming {@code megatron checkpoint reshard}. TP = PP = 1 saves exactly the
 * single-rank layout. Every rank calls both methods together.
 *
 * <p>Context parallelism: CP ranks hold replicas of the weights, as DP ranks do, so "data-parallel" above means
 * DP x CP ({@link ProcessGroups#dataWithContext()}): its rank 0 writes the folder, every one of its ranks a
 * distributed-optimizer shard file, and the layout records DP x CP as the data-parallel size (the number of shard
 * files). A checkpoint thus loads at another CP size under the data-parallel rules.
 */
public final class ParallelCheckpointer implements TrainingCheckpoints {
    private final TrainingCheckpointer inner;
    private final ParallelGptRank rank;
    private final TransformerConfig config;
    private final ShardLayout layout;

    public ParallelCheckpointer(TrainingCheckpointer inner, ParallelGptRank rank) {
        this.inner = inner;
        this.rank = rank;
        this.config = rank.chunks().getFirst().config();
        ProcessGroups g = rank.context().groups();
        PipelineLayout split = rank.pipelineLayout();
        this.layout = new ShardLayout(g.tensor().size(), g.pipeline().size(), rank.chunks().size(), g.dataWithContext().size(),
                rank.optimizer() instanceof DistributedAdam, split.isEven() ? null : split.layers());
    }

    /** This run's layout, as its checkpoints record it. */
    public ShardLayout layout() {
        return layout;
    }

    @Override
    public String rankLabel() {
        ProcessGroups g = rank.context().groups();
        return String.format(Locale.ROOT, "[ t %d/%d, p %d/%d ]", g.tensor().rank() + 1, layout.tensorParallel(),
                g.pipeline().rank() + 1, layout.pipelineParallel());
    }

    private String rankDirName() {
        ProcessGroups g = rank.context().groups();
        return layout.rankDirName(g.tensor().rank(), g.pipeline().rank());
    }

    private Backend backend() {
        return rank.chunks().getFirst().backend();
    }

    // ------------------------------------------------------------------ save

    @Override
    public long save(Path root, ResumePoint state, TrainableModel model, TrainingOptimizer optimizer,
                     OptimizerParamScheduler scheduler, Contents contents) {
        long bytes;
        try (TensorArena arena = TensorArena.named("checkpoint-save")) {
            RankFiles files = prepare(root, state, optimizer, scheduler, contents, arena);
            bytes = files.write(root, state.iteration());
        }
        publish(root, state.iteration());
        return bytes;
    }

    @Override
    public PendingSave saveAsync(Path root, ResumePoint state, TrainableModel model, TrainingOptimizer optimizer,
                                 OptimizerParamScheduler scheduler, Contents contents) {
        TensorArena snapshot = TensorArena.named("checkpoint-snapshot");
        try {
            RankFiles files = prepare(root, state, optimizer, scheduler, contents, snapshot);   // host copies already
            return new BackgroundSave(snapshot, () -> files.write(root, state.iteration()), () -> publish(root, state.iteration()));
        } catch (RuntimeException e) {
            snapshot.close();
            throw e;
        }
    }

    /** What this rank writes: its folder's files (data-parallel rank 0) and its distributed-optimizer shard. */
    private record RankFiles(CheckpointWriter.RankState state, Map<String, Map<String, Tensor>> extra) {
        long write(Path root, long iteration) {
            return CheckpointWriter.writeRankFiles(CheckpointWriter.partialDir(root, iteration), state, extra);
        }
    }

    /**
     * Creates the hidden partial folder (rank 0; all meet at a barrier after) and copies this rank's tensors into
     * {@code arena} (host copies, which training may not change).
     */
    private RankFiles prepare(Path root, ResumePoint state, TrainingOptimizer optimizer, OptimizerParamScheduler scheduler,
                              Contents contents, TensorArena arena) {
        ProcessGroups g = rank.context().groups();
        Communicator world = g.world();
        if (world.rank() == 0) {
            CheckpointWriter.preparePartial(root, state.iteration());
        }
        world.barrier();   // the partial folder exists before anyone writes into it
        Map<String, Map<String, Tensor>> extra = new LinkedHashMap<>();
        if (contents.optimizer() && rank.optimizer() instanceof DistributedAdam adam) {
            extra.put(OptimizerStateFiles.distribFileName(g.dataWithContext().rank()), distributedPieces(adam, arena));
        }
        if (g.dataWithContext().rank() != 0) {
            return new RankFiles(new CheckpointWriter.RankState(rankDirName(), null, Map.of(), null), extra);
        }
        Map<String, Tensor> weights = new LinkedHashMap<>();
        for (Parameter p : rank.parameters()) {
            weights.putIfAbsent(p.name(), host(arena, p.data()));
        }
        Map<String, Tensor> optimizerState = new LinkedHashMap<>();
        if (contents.optimizer() && !(rank.optimizer() instanceof DistributedAdam)) {
            for (Map.Entry<String, Tensor> e : optimizer.stateTensors().entrySet()) {
                optimizerState.put(e.getKey(), host(arena, e.getValue()));
            }
        }
        ObjectNode meta = inner.metadata(state, optimizer, scheduler, contents);
        if (layout.sharded() || layout.distributedOptimizer()) {
            layout.writeTo(meta, g.tensor().rank(), g.pipeline().rank());
        }
        return new RankFiles(new CheckpointWriter.RankState(rankDirName(), weights, optimizerState, meta), extra);
    }

    /** Once every rank's files are complete, rank 0 publishes the checkpoint before any rank goes on (or exits). */
    private void publish(Path root, long iteration) {
        Communicator world = rank.context().groups().world();
        world.barrier();
        if (world.rank() == 0) {
            inner.publish(root, iteration);
        }
        world.barrier();
    }

    /** This DP rank's pieces of the Adam moments, named {@code <param>.exp_avg@<offset in the parameter>}. */
    private Map<String, Tensor> distributedPieces(DistributedAdam adam, TensorArena arena) {
        Map<String, Tensor> pieces = new LinkedHashMap<>();
        Map<String, Tensor> state = adam.stateTensors();
        for (int c = 0; c < rank.chunks().size(); c++) {
            float[] m = HostTransfer.downloadFloats(backend(), state.get("chunk" + c + ".exp_avg"));
            float[] v = HostTransfer.downloadFloats(backend(), state.get("chunk" + c + ".exp_avg_sq"));
            for (FlatShard.Segment s : adam.shard(c).segments()) {
                int from = Math.toIntExact(s.stateOffset());
                int to = Math.toIntExact(s.stateOffset() + s.numel());
                String name = s.parameter().name();
                pieces.put(OptimizerStateFiles.pieceName(name + ".exp_avg", s.from()),
                        arena.fromFloats(java.util.Arrays.copyOfRange(m, from, to), s.numel()));
                pieces.put(OptimizerStateFiles.pieceName(name + ".exp_avg_sq", s.from()),
                        arena.fromFloats(java.util.Arrays.copyOfRange(v, from, to), s.numel()));
            }
        }
        return pieces;
    }

    /** A host copy of {@code t} (device tensors cannot be written from the host). */
    private Tensor host(TensorArena arena, Tensor t) {
        return arena.fromFloats(HostTransfer.downloadFloats(backend(), t), t.shape());
    }

    // ------------------------------------------------------------------ load

    @Override
    public ResumePoint load(Path root, TrainableModel model, TrainingOptimizer optimizer, OptimizerParamScheduler scheduler,
                            boolean finetune, boolean noLoadOptim, boolean noLoadRng, long seed) {
        ShardLayout saved;
        try (Checkpoint any = Checkpoint.openLatestAnyRank(root)) {
            saved = ShardLayout.fromMetadata(any.metadata());
        }
        if (saved.sameModelParallel(layout)) {
            try (Checkpoint ckpt = Checkpoint.openLatestShard(root, rankDirName())) {
                return inner.restore(ckpt, () -> inner.loadWeightsAsConfigured(ckpt, rank.parameters()), optimizer, scheduler,
                        finetune, noLoadOptim, noLoadRng, seed, () -> installState(OptimizerStateFiles.readAll(ckpt.rankDir()),
                                optimizer));
            }
        }
        if (saved.sharded()) {
            // the suggested command must produce this run's chunks too, or loading its output fails again
            PipelineLayout split = rank.pipelineLayout();
            String target = !split.isEven()
                    ? " --target-pipeline-model-parallel-layout \"" + split.toLayoutString() + "\""
                    : layout.chunksPerStage() > 1
                    ? " --target-num-layers-per-virtual-pipeline-stage " + split.layers()[0] : "";
            throw new CheckpointException(Checkpoint.latestIterationDir(root) + " is a checkpoint of " + saved.describe()
                    + ", but this run is tensor-parallel " + layout.tensorParallel() + ", pipeline-parallel "
                    + layout.pipelineParallel() + (layout.chunksPerStage() > 1 ? " (" + layout.chunksPerStage()
                    + " chunks per stage)" : "") + (split.isEven() ? "" : " split " + split.toLayoutString())
                    + ": convert it first with 'megatron checkpoint reshard --load " + root
                    + " --save <new folder> --target-tensor-parallel-size " + layout.tensorParallel()
                    + " --target-pipeline-parallel-size " + layout.pipelineParallel() + target + "'");
        }
        return loadWhole(root, optimizer, scheduler, finetune, noLoadOptim, noLoadRng, seed);
    }

    /** A 1 x 1 checkpoint at another layout: every rank reads the whole tensors and keeps its shard. */
    private ResumePoint loadWhole(Path root, TrainingOptimizer optimizer, OptimizerParamScheduler scheduler, boolean finetune,
                                  boolean noLoadOptim, boolean noLoadRng, long seed) {
        try (Checkpoint ckpt = Checkpoint.openLatest(root, CheckpointLayout.rankDirName(0, 0, false))) {
            TrainingCheckpointer.checkSavedContents(ckpt, finetune, noLoadOptim, noLoadRng);
            boolean withState = TrainingCheckpointer.loadsOptimizerState(ckpt.metadata(), finetune, noLoadOptim);
            FullModelState full = FullModelState.read(ckpt.rankDir().getParent(), ShardLayout.SINGLE, config, withState);
            int t = layout.tensorParallel();
            int tpRank = rank.context().groups().tensor().rank();
            return inner.restore(ckpt, () -> {
                for (GPTModel chunk : rank.chunks()) {
                    for (ParameterSpec spec : chunk.parameterSpecs()) {
                        HostTransfer.uploadFloats(backend(), full.shard(spec, null, t, tpRank), chunk.parameter(spec.name()).data());
                    }
                }
            }, optimizer, scheduler, finetune, noLoadOptim, noLoadRng, seed, () -> {
                if (!full.hasOptimizerState()) {
                    throw new CheckpointException(ckpt.rankDir() + " holds no optimizer state (pass --no-load-optim to load"
                            + " the weights only)");
                }
                Map<String, float[]> state = new LinkedHashMap<>();
                for (GPTModel chunk : rank.chunks()) {
                    for (ParameterSpec spec : chunk.parameterSpecs()) {
                        for (String suffix : full.stateSuffixes(spec.name())) {
                            state.put(spec.name() + "." + suffix, full.shard(spec, suffix, t, tpRank));
                        }
                    }
                }
                installState(state, optimizer);
            });
        }
    }

    /**
     * Puts per-parameter optimizer state (this rank's shards, by {@code <param>.<suffix>}) into
     * the optimizer: the distributed optimizer takes each chunk's moments laid out like its flat
     * store and keeps its DP share; any other optimizer its state tensors by name.
     */
    private void installState(Map<String, float[]> state, TrainingOptimizer optimizer) {
        if (rank.optimizer() instanceof DistributedAdam adam) {
            for (int c = 0; c < rank.chunks().size(); c++) {
                GPTModel chunk = rank.chunks().get(c);
                int size = Math.toIntExact(chunk.parameterStore().flatData().numel());
                float[][] store = {new float[size], new float[size]};
                String[] suffixes = {"exp_avg", "exp_avg_sq"};
                for (Parameter p : chunk.parameters()) {
                    int offset = Math.toIntExact(chunk.parameterStore().offset(p.name()));
                    for (int k = 0; k < 2; k++) {
                        float[] values = require(state, p.name() + "." + suffixes[k], p.numel());
                        System.arraycopy(values, 0, store[k], offset, values.length);
                    }
                }
                adam.loadState(c, false, store[0]);
                adam.loadState(c, true, store[1]);
            }
            return;
        }
        for (Map.Entry<String, Tensor> e : optimizer.stateTensors().entrySet()) {
            HostTransfer.uploadFloats(backend(), require(state, e.getKey(), e.getValue().numel()), e.getValue());
        }
    }

    private static float[] require(Map<String, float[]> state, String key, long numel) {
        float[] values = state.get(key);
        if (values == null) {
            throw new CheckpointException("optimizer state '" + key + "' is missing from the checkpoint (saved with another"
                    + " optimizer? pass --no-load-optim to start it afresh)");
        }
        if (values.length != numel) {
            throw new CheckpointException("optimizer state '" + key + "' has " + values.length + " elements in the checkpoint"
                    + " but " + numel + " in this run");
        }
        return values;
    }
}
