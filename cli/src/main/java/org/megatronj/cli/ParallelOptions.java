package org.megatronj.cli;

import org.megatronj.model.ActivationRecompute;
import org.megatronj.model.PipelineLayout;
import org.megatronj.model.TransformerConfig;
import org.megatronj.parallel.ParallelConfig;
import org.megatronj.parallel.PipelineSplit;
import picocli.CommandLine.Option;

/**
 * Megatron's parallelism and recompute flags. On the CPU the ranks of {@code --world-size} run as
 * threads of this process; data parallelism is what remains: {@code world / (TP x PP x CP)}.
 */
public final class ParallelOptions {
    @Option(names = "--tensor-model-parallel-size", paramLabel = "T", defaultValue = "1",
            description = "Ranks that split every layer's weights (default ${DEFAULT-VALUE}).")
    int tensorModelParallelSize;

    @Option(names = "--pipeline-model-parallel-size", paramLabel = "P", defaultValue = "1",
            description = "Pipeline stages that split the layer stack (default ${DEFAULT-VALUE}).")
    int pipelineModelParallelSize;

    @Option(names = "--num-layers-per-virtual-pipeline-stage", paramLabel = "N",
            description = "Layers per model chunk: the interleaved 1F1B schedule with L / (P x N) chunks per stage.")
    int numLayersPerVirtualPipelineStage;

    @Option(names = "--num-virtual-stages-per-pipeline-rank", paramLabel = "V",
            description = "Model chunks per pipeline stage (the interleaved schedule), the alternative to"
                    + " --num-layers-per-virtual-pipeline-stage that uneven splits need.")
    Integer numVirtualStagesPerPipelineRank;

    @Option(names = "--decoder-first-pipeline-num-layers", paramLabel = "N",
            description = "Layers on the first pipeline stage; the others' evenly over the middle stages (Megatron's uneven split).")
    Integer decoderFirstPipelineNumLayers;

    @Option(names = "--decoder-last-pipeline-num-layers", paramLabel = "N",
            description = "Layers on the last pipeline stage; the others' evenly over the middle stages.")
    Integer decoderLastPipelineNumLayers;

    @Option(names = "--account-for-embedding-in-pipeline-split",
            description = "Count the embedding as a layer when splitting: the first stage holds one layer less.")
    boolean accountForEmbeddingInPipelineSplit;

    @Option(names = "--account-for-loss-in-pipeline-split",
            description = "Count the output layer and loss as a layer when splitting: the last stage holds one layer less.")
    boolean accountForLossInPipelineSplit;

    @Option(names = "--pipeline-model-parallel-layout", paramLabel = "LAYOUT",
            description = "Megatron's explicit split: virtual stages separated by '|' (chunk 0 of every rank, then chunk 1,"
                    + " ...), E the embedding, t a transformer layer, m an MTP depth (on the last stage), L the loss, x*n and"
                    + " (...)*n repeats, commas ignored;"
                    + " e.g. \"Et*3|t*5|t*5|t*3L\". More stages than P: the interleaved schedule.")
    String pipelineModelParallelLayout;

    @Option(names = "--sequence-parallel", description = "Split norms, dropouts and the residual stream along the sequence"
            + " over the tensor-parallel ranks (needs T > 1; at T = 1 it is switched off with a warning, as in Megatron).")
    boolean sequenceParallel;

    @Option(names = "--context-parallel-size", paramLabel = "C", defaultValue = "1",
            description = "Ranks that split every sequence (default ${DEFAULT-VALUE}): each holds 2 of its 2C chunks and"
                    + " attends to the keys and values all-gathered from the others; --seq-length must divide by 2C.")
    int contextParallelSize;

    /** Megatron's communication choices for context parallelism. */
    static final java.util.List<String> CP_COMM_TYPES = java.util.List.of("p2p", "a2a", "allgather", "a2a+p2p");

    @Option(names = "--cp-comm-type", paramLabel = "TYPE", arity = "1..*", defaultValue = "p2p",
            description = "Megatron's context-parallel communication: p2p, a2a, allgather or a2a+p2p, one for all layers or"
                    + " one per layer. Accepted and recorded; here every layer all-gathers the keys and values (Megatron's"
                    + " allgather), which gives the same numbers as the others.")
    java.util.List<String> cpCommType;

    @Option(names = "--world-size", paramLabel = "N", description = "Ranks (threads) in all (default T x P x C, i.e. no"
            + " data parallelism); data-parallel size = N / (T x P x C).")
    Integer worldSize;

    @Option(names = "--use-tp-pp-dp-mapping", description = "Lay ranks out \"tp-cp-pp-dp\" (pipeline stages nearer than"
            + " data-parallel replicas) instead of Megatron's default \"tp-cp-dp-pp\"; the same numbers, other ranks per role.")
    boolean useTpPpDpMapping;

    @Option(names = "--num-distributed-optimizer-instances", paramLabel = "N", defaultValue = "1", description = "Megatron's"
            + " copies of the distributed optimizer over the data-parallel ranks (each shards over DP / N): the same numbers;"
            + " Megatron-J shards over all of them (checked as Megatron checks N).")
    int numDistributedOptimizerInstances;

    @Option(names = "--use-distributed-optimizer", description = "Shard Adam's state and the gradient reduction over the"
            + " data-parallel ranks (reduce-scatter, step the shard, all-gather the parameters).")
    boolean useDistributedOptimizer;

    @Option(names = "--overlap-grad-reduce", description = "Reduce gradient buckets during the last backward of an iteration.")
    boolean overlapGradReduce;

    @Option(names = "--ddp-bucket-size", paramLabel = "ELEMENTS", description = "Gradient bucket size with"
            + " --overlap-grad-reduce (default max(40M, 1M x DP)).")
    Long ddpBucketSize;

    @Option(names = "--recompute-activations", description = "--recompute-granularity selective (Megatron's"
            + " shorthand): recompute the --recompute-modules, by default the attention core only.")
    boolean recomputeActivations;

    @Option(names = "--recompute-modules", paramLabel = "M", arity = "1..*", preprocessor = LastOccurrenceWins.class,
            description = "With --recompute-granularity selective (ignored otherwise, as Megatron reads it): the submodules whose activations are recomputed in"
                    + " backward instead of stored per layer: core_attn (the default; the memory-efficient attention"
                    + " never stores its probabilities), layernorm (the input and pre-MLP norms' outputs), mlp (the dense"
                    + " MLP's fc1 and activation outputs), moe_act (the experts' activation outputs; needs"
                    + " --moe-grouped-gemm), shared_experts, mla_up_proj (MLA's q, k, v) and moe (the whole MoE layer).")
    java.util.List<String> recomputeModules;

    @Option(names = "--recompute-granularity", paramLabel = "G", description = "full or selective.")
    String recomputeGranularity;

    @Option(names = "--recompute-method", paramLabel = "M", description = "uniform or block (with --recompute-granularity full).")
    String recomputeMethod;

    @Option(names = "--recompute-num-layers", paramLabel = "N",
            description = "Layers per recompute group (uniform) or recomputed layers per stage (block); required with"
                    + " --recompute-granularity full, refused with selective (as Megatron).")
    Integer recomputeNumLayers;

    /** The layout, checked against the model's dimensions (Megatron's messages, with the numbers). */
    public ParallelConfig toConfig(TransformerConfig model) {
        ParallelConfig c = new ParallelConfig(tensorModelParallelSize, pipelineModelParallelSize,
                numLayersPerVirtualPipelineStage, sequenceParallel, contextParallelSize, useTpPpDpMapping, pipelineSplit());
        c.validateWorldSize(worldSize());
        if (numDistributedOptimizerInstances < 1 || dataParallelSize() % numDistributedOptimizerInstances != 0) {
            throw new IllegalArgumentException("--num-distributed-optimizer-instances " + numDistributedOptimizerInstances
                    + " must divide the data-parallel size " + dataParallelSize());
        }
        validateCpCommType(model.numLayers());
        if (pipelineModelParallelLayout != null
                && PipelineLayout.mtpLayers(pipelineModelParallelLayout) != model.mtpNumLayers()) {
            throw new IllegalArgumentException("--pipeline-model-parallel-layout \"" + pipelineModelParallelLayout + "\": Number"
                    + " of mtp layers in layout (" + PipelineLayout.mtpLayers(pipelineModelParallelLayout) + ") must match"
                    + " mtp_num_layers (" + model.mtpNumLayers() + ", --mtp-num-layers)");
        }
        if (ddpBucketSize != null && ddpBucketSize < 1) {   // the layers below read <= 0 as "not given": the default
            throw new IllegalArgumentException("--ddp-bucket-size must be >= 1 element, got " + ddpBucketSize);
        }
        return c.validateForModel(model.numLayers(), model.numAttentionHeads(), model.numQueryGroups(), model.ffnHiddenSize(),
                model.seqLength());
    }

    /** Megatron's uneven pipeline flags and explicit layout. */
    PipelineSplit pipelineSplit() {
        return new PipelineSplit(decoderFirstPipelineNumLayers, decoderLastPipelineNumLayers,
                accountForEmbeddingInPipelineSplit, accountForLossInPipelineSplit, numVirtualStagesPerPipelineRank,
                pipelineModelParallelLayout);
    }

    /** {@code --cp-comm-type}: Megatron's names, one value or one per layer. */
    private void validateCpCommType(int numLayers) {
        for (String type : cpCommType) {
            if (!CP_COMM_TYPES.contains(type)) {
                throw new IllegalArgumentException("--cp-comm-type " + type + " is not one of " + String.join(", ", CP_COMM_TYPES));
            }
        }
        if (cpCommType.size() != 1 && cpCommType.size() != numLayers) {
            throw new IllegalArgumentException("--cp-comm-type takes one type for all layers or one per layer (--num-layers "
                    + numLayers + "), got " + cpCommType.size());
        }
    }

    /** {@code --cp-comm-type} as given (every type runs as the all-gather implementation). */
    public java.util.List<String> cpCommType() {
        return java.util.List.copyOf(cpCommType);
    }

    public int contextParallelSize() {
        return contextParallelSize;
    }

    public int worldSize() {
        if (worldSize == null) {
            return tensorModelParallelSize * pipelineModelParallelSize * Math.max(contextParallelSize, 1);
        }
        if (worldSize < 1) {
            throw new IllegalArgumentException("--world-size must be >= 1, got " + worldSize);
        }
        return worldSize;
    }

    public int dataParallelSize() {
        return worldSize() / (tensorModelParallelSize * pipelineModelParallelSize * Math.max(contextParallelSize, 1));
    }

    /** True when the run needs more than one rank. */
    public boolean parallel() {
        return worldSize() > 1;
    }

    /** {@code --recompute-*} as the model's setting; Megatron's rules for which flags go together. */
    public ActivationRecompute recompute() {
        return recompute(false);
    }

    /**
     * As {@link #recompute()}; {@code moeLayerRecompute}: Megatron's deprecated {@code --moe-layer-recompute}, which
     * means selective granularity with "moe" added to the modules (refused with full granularity, in its words).
     */
    public ActivationRecompute recompute(boolean moeLayerRecompute) {
        ActivationRecompute r = recomputeFlags(moeLayerRecompute);
        return moeLayerRecompute ? r.withMoeLayerRecompute() : r;
    }

    private ActivationRecompute recomputeFlags(boolean moeLayerRecompute) {
        ActivationRecompute.Granularity g = ActivationRecompute.Granularity.parse(recomputeGranularity);
        if (moeLayerRecompute && g == ActivationRecompute.Granularity.FULL) {
            throw new IllegalArgumentException("Do not set --moe-layer-recompute with full recompute granularity. ");
        }
        if (moeLayerRecompute) {
            g = ActivationRecompute.Granularity.SELECTIVE;
        }
        if (recomputeActivations) {
            if (g == ActivationRecompute.Granularity.FULL) {
                throw new IllegalArgumentException("--recompute-activations means --recompute-granularity selective;"
                        + " it cannot be combined with --recompute-granularity full");
            }
            g = ActivationRecompute.Granularity.SELECTIVE;
        }
        if (recomputeMethod != null && g != ActivationRecompute.Granularity.FULL) {
            throw new IllegalArgumentException("--recompute-method " + recomputeMethod + " needs --recompute-granularity full");
        }
        if (recomputeNumLayers != null && g == ActivationRecompute.Granularity.SELECTIVE) {
            // Megatron's TransformerConfig refuses it rather than ignore it
            throw new IllegalArgumentException("--recompute-num-layers " + recomputeNumLayers
                    + " goes with --recompute-granularity full; selective recompute takes none");
        }
        return switch (g) {
            case NONE -> ActivationRecompute.none();
            case SELECTIVE -> recomputeModules == null ? ActivationRecompute.selective()
                    : ActivationRecompute.selective(recomputeModules);
            case FULL -> {
                if (recomputeMethod == null) {
                    throw new IllegalArgumentException("--recompute-granularity full needs --recompute-method uniform or block");
                }
                if (recomputeNumLayers == null) {   // Megatron has no default either: a silent 1 would change the memory plan
                    throw new IllegalArgumentException("--recompute-granularity full needs --recompute-num-layers N: layers per"
                            + " recompute group (uniform) or recomputed layers per pipeline stage (block), 1 to the layers of a stage");
                }
                yield ActivationRecompute.full(ActivationRecompute.Method.parse(recomputeMethod), recomputeNumLayers);
            }
        };
    }
}
