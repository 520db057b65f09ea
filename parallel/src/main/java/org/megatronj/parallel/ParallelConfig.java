package org.megatronj.parallel;

import org.megatronj.model.PipelineLayout;

/**
 * How a run splits its model and data over ranks, with Megatron's flags:
 * {@code --tensor-model-parallel-size}, {@code --pipeline-model-parallel-size},
 * {@code --num-layers-per-virtual-pipeline-stage}, {@code --sequence-parallel} and
 * {@code --context-parallel-size}. The data-parallel size is not a flag: it is what is left of the
 * world size, {@code world / (tp * cp * pp)}.
 *
 * <p>Checks that need model dimensions take them as plain ints ({@link #validateForModel}), so this
 * record does not depend on the model module's config.
 *
 * @param tensorModelParallelSize        ranks that split each layer's weights (TP); 1 = off
 * @param pipelineModelParallelSize      ranks that split the layer stack into stages (PP); 1 = off
 * @param numLayersPerVirtualPipelineStage layers per model chunk of the interleaved schedule; 0 = not interleaved
 * @param sequenceParallel               split the non-tensor-parallel regions (norms, dropout) along the
 *                                       sequence over the TP group; has an effect only when TP &gt; 1
 * @param contextParallelSize            ranks that split every sequence (CP, {@code --context-parallel-size});
 *                                       they hold replicas of the weights, like data-parallel ranks; 1 = off
 * @param tpPpDpMapping                  {@code --use-tp-pp-dp-mapping}: ranks laid out "tp-cp-pp-dp" (pipeline stages
 *                                       nearer than data-parallel replicas) instead of Megatron's default "tp-cp-dp-pp"
 * @param pipelineSplit                  an uneven split of the layers over the stages, or the virtual stages given as
 *                                       {@code --num-virtual-stages-per-pipeline-rank} ({@link PipelineSplit#EVEN}: neither)
 */
public record ParallelConfig(int tensorModelParallelSize, int pipelineModelParallelSize,
                             int numLayersPerVirtualPipelineStage, boolean sequenceParallel, int contextParallelSize,
                             boolean tpPpDpMapping, PipelineSplit pipelineSplit) {

    /** One rank does everything: TP = PP = CP = 1, no interleaving, no sequence parallelism. */
    public static ParallelConfig single() {
        return new ParallelConfig(1, 1, 0, false);
    }

    /** Without context parallelism (CP = 1). */
    public ParallelConfig(int tensorModelParallelSize, int pipelineModelParallelSize, int numLayersPerVirtualPipelineStage,
                          boolean sequenceParallel) {
        this(tensorModelParallelSize, pipelineModelParallelSize, numLayersPerVirtualPipelineStage, sequenceParallel, 1);
    }

    /** With {@code --context-parallel-size}, in Megatron's default rank order. */
    public ParallelConfig(int tensorModelParallelSize, int pipelineModelParallelSize, int numLayersPerVirtualPipelineStage,
                          boolean sequenceParallel, int contextParallelSize) {
        this(tensorModelParallelSize, pipelineModelParallelSize, numLayersPerVirtualPipelineStage, sequenceParallel,
                contextParallelSize, false);
    }

    /** With {@code --use-tp-pp-dp-mapping} on or off and the even pipeline split. */
    public ParallelConfig(int tensorModelParallelSize, int pipelineModelParallelSize, int numLayersPerVirtualPipelineStage,
                          boolean sequenceParallel, int contextParallelSize, boolean tpPpDpMapping) {
        this(tensorModelParallelSize, pipelineModelParallelSize, numLayersPerVirtualPipelineStage, sequenceParallel,
                contextParallelSize, tpPpDpMapping, PipelineSplit.EVEN);
    }

    /** This layout with {@code --context-parallel-size size}. */
    public ParallelConfig withContextParallelSize(int size) {
        return new ParallelConfig(tensorModelParallelSize, pipelineModelParallelSize, numLayersPerVirtualPipelineStage,
                sequenceParallel, size, tpPpDpMapping, pipelineSplit);
    }

    /** This layout with {@code --use-tp-pp-dp-mapping} on or off. */
    public ParallelConfig withTpPpDpMapping(boolean on) {
        return new ParallelConfig(tensorModelParallelSize, pipelineModelParallelSize, numLayersPerVirtualPipelineStage,
                sequenceParallel, contextParallelSize, on, pipelineSplit);
    }

    /** This layout with the layers split over the stages as {@code split} says. */
    public ParallelConfig withPipelineSplit(PipelineSplit split) {
        return new ParallelConfig(tensorModelParallelSize, pipelineModelParallelSize, numLayersPerVirtualPipelineStage,
                sequenceParallel, contextParallelSize, tpPpDpMapping, split);
    }

    public static ParallelConfig of(int tensorModelParallelSize, int pipelineModelParallelSize) {
        return new ParallelConfig(tensorModelParallelSize, pipelineModelParallelSize, 0, false);
    }

    public ParallelConfig {
        if (tensorModelParallelSize < 1) {
            throw new IllegalArgumentException("--tensor-model-parallel-size must be >= 1, got " + tensorModelParallelSize);
        }
        if (pipelineModelParallelSize < 1) {
            throw new IllegalArgumentException("--pipeline-model-parallel-size must be >= 1, got " + pipelineModelParallelSize);
        }
        if (contextParallelSize < 1) {
            throw new IllegalArgumentException("--context-parallel-size must be >= 1, got " + contextParallelSize);
        }
        if (numLayersPerVirtualPipelineStage < 0) {
            throw new IllegalArgumentException("--num-layers-per-virtual-pipeline-stage must be >= 1 when given, got "
                    + numLayersPerVirtualPipelineStage);
        }
        if (pipelineSplit == null) {
            pipelineSplit = PipelineSplit.EVEN;
        }
        if ((numLayersPerVirtualPipelineStage > 0 ? 1 : 0) + (pipelineSplit.virtualStagesPerRank() != null ? 1 : 0)
                + (pipelineSplit.layout() != null ? 1 : 0) > 1) {
            throw new IllegalArgumentException("No more than one of the following arguments can be set at the same time:"
                    + " --num-layers-per-virtual-pipeline-stage, --num-virtual-stages-per-pipeline-rank,"
                    + " --pipeline-model-parallel-layout");
        }
        if (numLayersPerVirtualPipelineStage > 0
                && (pipelineSplit.firstStageLayers() != null || pipelineSplit.lastStageLayers() != null)) {
            throw new IllegalArgumentException("please use --num-virtual-stages-per-pipeline-rank to specify virtual pipeline"
                    + " parallel degree when enable uneven pipeline parallelism");
        }
        if (interleavedFlags(numLayersPerVirtualPipelineStage, pipelineSplit, pipelineModelParallelSize)
                && pipelineModelParallelSize < 2) {
            // Megatron asks for PP > 2 unless p2p overlap is on, because NCCL batches the sends and
            // receives between two ranks; our communicators queue point-to-point messages, so 2 works.
            throw new IllegalArgumentException("--num-layers-per-virtual-pipeline-stage (interleaved schedule) needs "
                    + "--pipeline-model-parallel-size >= 2, got " + pipelineModelParallelSize);
        }
    }

    private static boolean interleavedFlags(int layersPerVirtualStage, PipelineSplit split, int stages) {
        return layersPerVirtualStage > 0 || split.chunksPerStage(stages) > 1;
    }

    /** The tensor- times pipeline-parallel size: ranks that hold one full copy of the model. */
    public int modelParallelSize() {
        return tensorModelParallelSize * pipelineModelParallelSize;
    }

    /** TP x PP x CP: the ranks that share one data-parallel index (what the world size must be a multiple of). */
    public int ranksPerDataParallelIndex() {
        return modelParallelSize() * contextParallelSize;
    }

    /** True when sequences are split over more than one rank ({@code --context-parallel-size} &gt; 1). */
    public boolean contextParallel() {
        return contextParallelSize > 1;
    }

    /** Data-parallel size for {@code worldSize} ranks, after checking that the sizes divide the world. */
    public int dataParallelSize(int worldSize) {
        validateWorldSize(worldSize);
        return worldSize / ranksPerDataParallelIndex();
    }

    /** Refuses a world size that is not a multiple of TP x PP x CP. */
    public ParallelConfig validateWorldSize(int worldSize) {
        if (worldSize < 1) {
            throw new IllegalArgumentException("world size must be >= 1, got " + worldSize);
        }
        if (worldSize % ranksPerDataParallelIndex() != 0) {
            String cp = contextParallelSize == 1 ? "" : " x context-parallel size " + contextParallelSize;
            throw new IllegalArgumentException("world size " + worldSize + " is not divisible by tensor-model-parallel size "
                    + tensorModelParallelSize + " x pipeline-model-parallel size " + pipelineModelParallelSize + cp
                    + " = " + ranksPerDataParallelIndex());
        }
        return this;
    }

    /** True when activations outside the tensor-parallel regions are split along the sequence (needs TP &gt; 1, as in Megatron). */
    public boolean sequenceParallelActive() {
        return sequenceParallel && tensorModelParallelSize > 1;
    }

    /** True for the interleaved (virtual pipeline) schedule. */
    public boolean interleaved() {
        return interleavedFlags(numLayersPerVirtualPipelineStage, pipelineSplit, pipelineModelParallelSize);
    }

    /** Model chunks per pipeline stage: {@code numLayers / (pp * layersPerVirtualStage)}, or 1 without interleaving. */
    public int virtualPipelineModelParallelSize(int numLayers) {
        return pipelineLayout(numLayers).chunksPerStage();
    }

    /**
     * Which layers each model chunk of each stage holds: Megatron's even split, or as {@link #pipelineSplit} says
     * (uneven first/last stages, the embedding or loss counted as a layer, an explicit layout).
     */
    public PipelineLayout pipelineLayout(int numLayers) {
        if (pipelineSplit.isEven()) {
            requireLayersDivisible(numLayers);
        } else if (numLayers < 1) {
            throw new IllegalArgumentException("--num-layers must be >= 1, got " + numLayers);
        }
        int stages = pipelineModelParallelSize;
        int chunks = 1;
        if (numLayersPerVirtualPipelineStage > 0) {
            int counted = numLayers + (pipelineSplit.accountForEmbedding() ? 1 : 0) + (pipelineSplit.accountForLoss() ? 1 : 0);
            if (counted % stages != 0 || counted / stages % numLayersPerVirtualPipelineStage != 0) {
                throw new IllegalArgumentException("number of layers per pipeline stage must be divisible number of layers"
                        + " per virtual pipeline stage (" + counted + " layers with the embedding/loss counted, "
                        + stages + " stages, --num-layers-per-virtual-pipeline-stage " + numLayersPerVirtualPipelineStage + ")");
            }
            chunks = counted / stages / numLayersPerVirtualPipelineStage;
        } else if (pipelineSplit.chunksPerStage(stages) > 0) {
            chunks = pipelineSplit.chunksPerStage(stages);
        }
        return pipelineSplit.layout(numLayers, stages, chunks);
    }

    /**
     * Checks the model dimensions that the parallel layout must divide: attention heads, query
     * groups and the MLP's hidden size by TP (each TP rank holds whole heads and a column block
     * of fc1), layers by PP (and by PP x layers per virtual stage when interleaving), and the
     * sequence by TP under sequence parallelism, and by 2 x CP under context parallelism (each CP rank holds
     * two of the 2 x CP equal chunks of every sequence, Megatron's check in {@code get_batch_on_this_cp_rank}),
     * then the local length by TP under sequence parallelism.
     *
     * @param numQueryGroups GQA groups (pass {@code numAttentionHeads} for plain multi-head attention)
     * @param ffnHiddenSize  the MLP's hidden size ({@code --ffn-hidden-size})
     * @param seqLength      the training sequence length, checked only with sequence or context parallelism
     */
    public ParallelConfig validateForModel(int numLayers, int numAttentionHeads, int numQueryGroups, int ffnHiddenSize,
                                           int seqLength) {
        if (numAttentionHeads % tensorModelParallelSize != 0) {
            throw new IllegalArgumentException("--num-attention-heads " + numAttentionHeads
                    + " is not divisible by --tensor-model-parallel-size " + tensorModelParallelSize);
        }
        if (numQueryGroups % tensorModelParallelSize != 0) {
            throw new IllegalArgumentException("--num-query-groups " + numQueryGroups
                    + " is not divisible by --tensor-model-parallel-size " + tensorModelParallelSize);
        }
        if (ffnHiddenSize % tensorModelParallelSize != 0) {
            throw new IllegalArgumentException("--ffn-hidden-size " + ffnHiddenSize
                    + " is not divisible by --tensor-model-parallel-size " + tensorModelParallelSize);
        }
        pipelineLayout(numLayers);
        if (contextParallel() && seqLength % (2 * contextParallelSize) != 0) {
            throw new IllegalArgumentException("--context-parallel-size " + contextParallelSize + ": --seq-length " + seqLength
                    + " is not divisible by 2 x context-parallel size = " + 2 * contextParallelSize);
        }
        int localLength = seqLength / contextParallelSize;
        if (sequenceParallelActive() && localLength % tensorModelParallelSize != 0) {
            throw new IllegalArgumentException("--sequence-parallel: --seq-length " + seqLength
                    + (contextParallel() ? " / context-parallel size " + contextParallelSize + " = " + localLength : "")
                    + " is not divisible by --tensor-model-parallel-size " + tensorModelParallelSize);
        }
        return this;
    }

    private void requireLayersDivisible(int numLayers) {
        if (numLayers < 1) {
            throw new IllegalArgumentException("--num-layers must be >= 1, got " + numLayers);
        }
        if (numLayers % pipelineModelParallelSize != 0) {
            throw new IllegalArgumentException("--num-layers " + numLayers
                    + " is not divisible by --pipeline-model-parallel-size " + pipelineModelParallelSize);
        }
        if (interleaved() && numLayers % (pipelineModelParallelSize * numLayersPerVirtualPipelineStage) != 0) {
            throw new IllegalArgumentException("--num-layers " + numLayers + " is not divisible by --pipeline-model-parallel-size "
                    + pipelineModelParallelSize + " x --num-layers-per-virtual-pipeline-stage " + numLayersPerVirtualPipelineStage
                    + " = " + pipelineModelParallelSize * numLayersPerVirtualPipelineStage);
        }
    }
}
