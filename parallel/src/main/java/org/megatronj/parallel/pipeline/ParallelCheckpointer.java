package org.megatronj.parallel.pipeline;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.GPTModel;
import org.megatronj.model.LossResult;
import org.megatronj.model.MicroBatch;
import org.megatronj.model.Parameter;
import org.megatronj.model.ParameterSpec;
import org.megatronj.model.TensorShards;
import org.megatronj.model.TransformerConfig;
import org.megatronj.model.layers.HostTransfer;
import org.megatronj.parallel.comm.Communicator;
import org.megatronj.parallel.comm.ProcessGroups;
import org.megatronj.parallel.optim.DistributedAdam;
import org.megatronj.parallel.train.OptimizerParamScheduler;
import org.megatronj.parallel.train.ResumePoint;
import org.megatronj.parallel.train.TrainableModel;
import org.megatronj.parallel.train.TrainingCheckpointer;
import org.megatronj.parallel.train.TrainingCheckpoints;
import org.megatronj.parallel.train.TrainingOptimizer;

/**
 * Checkpoints of a parallel run in the single-rank layout: on save the ranks gather their
 * tensor-parallel shards, pipeline stages and distributed-optimizer shards into whole tensors on
 * rank 0, which writes exactly what a one-rank run writes (weights and per-parameter optimizer
 * state under their Megatron names); on load every rank reads the whole tensors and keeps its
 * shard. So any layout resumes any checkpoint (resharding comes for free), and {@code generate}
 * and {@code checkpoint export-hf} read it as they are. Every rank calls both methods together.
 */
public final class ParallelCheckpointer implements TrainingCheckpoints {
    private static final String WORD_EMBEDDING = "embedding.word_embeddings.weight";

    private final TrainingCheckpointer inner;
    private final ParallelGptRank rank;
    private final TransformerConfig config;
    private final List<ParameterSpec> fullSpecs;

    public ParallelCheckpointer(TrainingCheckpointer inner, ParallelGptRank rank) {
        this.inner = inner;
        this.rank = rank;
        this.config = rank.chunks().getFirst().config();
        this.fullSpecs = ParameterSpec.forGpt(config);
    }

    // ------------------------------------------------------------------ save

    @Override
    public long save(Path root, ResumePoint state, TrainableModel model, TrainingOptimizer optimizer,
                     OptimizerParamScheduler scheduler) {
        ProcessGroups groups = rank.context().groups();
        List<String> suffixes = stateSuffixes(optimizer);
        Map<String, float[]> weights = new LinkedHashMap<>();
        Map<String, float[]> moments = new LinkedHashMap<>();
        List<float[][]> storeState = distributedState();
        for (ParameterSpec spec : fullSpecs) {
            float[] w = gather(spec, (chunk, p) -> HostTransfer.downloadFloats(chunk.backend(), p.data()));
            if (w != null) {
                weights.put(spec.name(), w);
            }
            for (int k = 0; k < suffixes.size(); k++) {
                String key = spec.name() + "." + suffixes.get(k);
                int which = k;
                float[] m = gather(spec, (chunk, p) -> storeState != null
                        ? slice(storeState.get(rank.chunks().indexOf(chunk))[which], chunk, p)
                        : HostTransfer.downloadFloats(chunk.backend(), optimizer.stateTensors().get(key)));
                if (m != null) {
                    moments.put(key, m);
                }
            }
        }
        long bytes = 0;
        if (groups.world().rank() == 0) {
            try (TensorArena arena = TensorArena.named("checkpoint-gather")) {
                List<Parameter> whole = new ArrayList<>();
                for (ParameterSpec spec : fullSpecs) {
                    Tensor t = arena.fromFloats(weights.get(spec.name()), spec.shape());
                    whole.add(new Parameter(spec.name(), t, t, spec.weightDecay()));
                }
                Map<String, Tensor> wholeState = new LinkedHashMap<>();
                for (ParameterSpec spec : fullSpecs) {
                    for (String suffix : suffixes) {
                        String key = spec.name() + "." + suffix;
                        wholeState.put(key, arena.fromFloats(moments.get(key), spec.shape()));
                    }
                }
                bytes = inner.save(root, state, wholeModel(whole), view(optimizer, wholeState), scheduler);
            }
        }
        groups.world().barrier();   // the checkpoint is complete before any rank goes on (or exits)
        return bytes;
    }

    /** The per-parameter state names of this optimizer ("exp_avg", "exp_avg_sq"; "momentum_buffer"; none). */
    private List<String> stateSuffixes(TrainingOptimizer optimizer) {
        if (rank.optimizer() instanceof DistributedAdam) {
            return List.of("exp_avg", "exp_avg_sq");
        }
        TreeSet<String> suffixes = new TreeSet<>();
        Parameter any = rank.parameters().getFirst();
        for (String key : optimizer.stateTensors().keySet()) {
            if (key.startsWith(any.name() + ".")) {
                suffixes.add(key.substring(any.name().length() + 1));
            }
        }
        return List.copyOf(suffixes);
    }

    /** With the distributed optimizer: each chunk's two moments laid out like its flat store (collective over DP). */
    private List<float[][]> distributedState() {
        if (!(rank.optimizer() instanceof DistributedAdam adam)) {
            return null;
        }
        List<float[][]> out = new ArrayList<>();
        for (int c = 0; c < rank.chunks().size(); c++) {
            out.add(new float[][] {adam.gatherState(c, false), adam.gatherState(c, true)});
        }
        return out;
    }

    private static float[] slice(float[] store, GPTModel chunk, Parameter p) {
        int from = Math.toIntExact(chunk.parameterStore().offset(p.name()));
        return java.util.Arrays.copyOfRange(store, from, from + Math.toIntExact(p.numel()));
    }

    private interface ShardReader {
        float[] read(GPTModel chunk, Parameter p);
    }

    /**
     * The whole tensor of {@code spec} on world rank 0 (null elsewhere): the TP ranks of the stage
     * holding it (data-parallel rank 0) all-gather their shards, and its TP rank 0 sends the merged
     * tensor to world rank 0.
     */
    private float[] gather(ParameterSpec spec, ShardReader reader) {
        ProcessGroups groups = rank.context().groups();
        int owner = ownerStage(spec.name());
        Communicator world = groups.world();
        int ownerRank = rank.context().state().globalRank(0, owner, 0);
        float[] full = null;
        if (groups.pipeline().rank() == owner && groups.data().rank() == 0) {
            GPTModel chunk = holder(spec.name());
            Parameter p = chunk.parameter(spec.name());
            ParameterSpec local = chunk.parameterSpecs().stream().filter(s -> s.name().equals(spec.name())).findFirst()
                    .orElseThrow();
            float[] mine = reader.read(chunk, p);
            Communicator tp = groups.tensor();
            float[][] shards = new float[tp.size()][];
            if (tp.size() == 1) {
                shards[0] = mine;
            } else {
                try (TensorArena arena = TensorArena.named("checkpoint-tp-gather")) {
                    Tensor all = arena.allocate(DType.F32, (long) mine.length * tp.size());
                    tp.allGather(arena.fromFloats(mine, mine.length), all);
                    float[] flat = all.toFloatArray();
                    for (int r = 0; r < tp.size(); r++) {
                        shards[r] = java.util.Arrays.copyOfRange(flat, r * mine.length, (r + 1) * mine.length);
                    }
                }
            }
            full = TensorShards.merge(shards, local.fullShape(tp.size()), local.split());
            if (world.rank() == ownerRank && ownerRank != 0) {
                try (TensorArena arena = TensorArena.named("checkpoint-send")) {
                    world.send(arena.fromFloats(full, full.length), 0);
                }
            }
        }
        if (world.rank() == 0) {
            if (ownerRank != 0) {
                try (TensorArena arena = TensorArena.named("checkpoint-recv")) {
                    Tensor t = arena.allocate(DType.F32, numel(spec));
                    world.recv(t, ownerRank);
                    full = t.toFloatArray();
                }
            }
            return full;
        }
        return null;
    }

    /** The pipeline stage whose chunk holds {@code name} (the word embedding: the first stage's). */
    private int ownerStage(String name) {
        int stages = rank.context().groups().pipeline().size();
        var layout = rank.context().state().config();
        int chunksPerStage = layout.virtualPipelineModelParallelSize(config.numLayers());
        for (int v = 0; v < chunksPerStage; v++) {
            for (int stage = 0; stage < stages; stage++) {
                var chunk = org.megatronj.model.ModelChunk.of(config, stage, stages, v, chunksPerStage);
                if (ParameterSpec.forGpt(config, 1, chunk).stream().anyMatch(s -> s.name().equals(name))) {
                    return stage;
                }
            }
        }
        throw new IllegalStateException("no pipeline stage holds parameter " + name);
    }

    /** This rank's chunk holding {@code name} (for the tied embedding on the first stage, the first chunk). */
    private GPTModel holder(String name) {
        for (GPTModel chunk : rank.chunks()) {
            if (chunk.parameterSpecs().stream().anyMatch(s -> s.name().equals(name))) {
                return chunk;
            }
        }
        throw new IllegalStateException("this rank holds no parameter " + name);
    }

    private static long numel(ParameterSpec spec) {
        long n = 1;
        for (long d : spec.shape()) {
            n *= d;
        }
        return n;
    }

    // ------------------------------------------------------------------ load

    @Override
    public ResumePoint load(Path root, TrainableModel model, TrainingOptimizer optimizer, OptimizerParamScheduler scheduler,
                            boolean finetune, boolean noLoadOptim, boolean noLoadRng, long seed) {
        List<String> suffixes = stateSuffixes(optimizer);
        try (TensorArena arena = TensorArena.named("checkpoint-load")) {
            Map<String, Tensor> weights = new LinkedHashMap<>();
            List<Parameter> whole = new ArrayList<>();
            for (ParameterSpec spec : fullSpecs) {
                Tensor t = arena.allocate(DType.F32, spec.shape());
                weights.put(spec.name(), t);
                whole.add(new Parameter(spec.name(), t, t, spec.weightDecay()));
            }
            // Optimizer state only for the parameters this rank holds (the loader reads the names it is given).
            Map<String, Tensor> state = new LinkedHashMap<>();
            for (ParameterSpec spec : fullSpecs) {
                if (holds(spec.name())) {
                    for (String suffix : suffixes) {
                        state.put(spec.name() + "." + suffix, arena.allocate(DType.F32, spec.shape()));
                    }
                }
            }
            long steps = optimizer.stepCount();
            ResumePoint resume = inner.load(root, wholeModel(whole), view(optimizer, state), scheduler, finetune, noLoadOptim,
                    noLoadRng, seed);
            boolean loadedState = optimizer.stepCount() != steps || (!finetune && !noLoadOptim);
            int t = rank.context().groups().tensor().size();
            int tpRank = rank.context().groups().tensor().rank();
            List<float[][]> storeState = new ArrayList<>();
            for (GPTModel chunk : rank.chunks()) {
                float[][] store = {new float[Math.toIntExact(chunk.parameterStore().flatData().numel())],
                        new float[Math.toIntExact(chunk.parameterStore().flatData().numel())]};
                storeState.add(store);
                for (ParameterSpec local : chunk.parameterSpecs()) {
                    long[] fullShape = local.fullShape(t);
                    Parameter p = chunk.parameter(local.name());
                    float[] shard = TensorShards.shard(weights.get(local.name()).toFloatArray(), fullShape, local.split(), t, tpRank);
                    HostTransfer.uploadFloats(chunk.backend(), shard, p.data());
                    for (int k = 0; k < suffixes.size() && loadedState; k++) {
                        String key = local.name() + "." + suffixes.get(k);
                        Tensor loaded = state.get(key);
                        if (loaded == null) {
                            continue;
                        }
                        float[] m = TensorShards.shard(loaded.toFloatArray(), fullShape, local.split(), t, tpRank);
                        if (rank.optimizer() instanceof DistributedAdam) {
                            int from = Math.toIntExact(chunk.parameterStore().offset(local.name()));
                            System.arraycopy(m, 0, store[k], from, m.length);
                        } else {
                            HostTransfer.uploadFloats(chunk.backend(), m, optimizer.stateTensors().get(key));
                        }
                    }
                }
            }
            if (loadedState && rank.optimizer() instanceof DistributedAdam adam) {
                for (int c = 0; c < rank.chunks().size(); c++) {
                    adam.loadState(c, false, storeState.get(c)[0]);
                    adam.loadState(c, true, storeState.get(c)[1]);
                }
            }
            return resume;
        }
    }

    private boolean holds(String name) {
        return rank.chunks().stream().anyMatch(c -> c.parameterSpecs().stream().anyMatch(s -> s.name().equals(name)));
    }

    // ------------------------------------------------------------------ whole-model views for the single-rank checkpointer

    private static TrainableModel wholeModel(List<Parameter> parameters) {
        return new TrainableModel() {
            @Override
            public List<Parameter> parameters() {
                return parameters;
            }

            @Override
            public LossResult forwardBackward(MicroBatch batch, float gradScale, long rngOffset) {
                throw new IllegalStateException("a checkpoint view has no forward");
            }

            @Override
            public LossResult forwardLoss(MicroBatch batch) {
                throw new IllegalStateException("a checkpoint view has no forward");
            }
        };
    }

    /** The rank's optimizer with {@code state} (whole per-parameter tensors) as its state. */
    private static TrainingOptimizer view(TrainingOptimizer optimizer, Map<String, Tensor> state) {
        return new TrainingOptimizer() {
            @Override
            public String name() {
                return optimizer.name();
            }

            @Override
            public double clipGradNorm(double maxNorm) {
                throw new IllegalStateException("a checkpoint view does not step");
            }

            @Override
            public void step(double lr) {
                throw new IllegalStateException("a checkpoint view does not step");
            }

            @Override
            public Map<String, Tensor> stateTensors() {
                return state;
            }

            @Override
            public long stepCount() {
                return optimizer.stepCount();
            }

            @Override
            public void setStepCount(long steps) {
                optimizer.setStepCount(steps);
            }
        };
    }
}
