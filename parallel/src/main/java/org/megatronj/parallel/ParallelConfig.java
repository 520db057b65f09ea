package org.megatronj.parallel;

/**
 * How a run splits its model and data over ranks, with Megatron's flags:
 * {@code --tensor-model-parallel-size}, {@code --pipeline-model-parallel-size},
 * {@code --num-layers-per-virtual-pipeline-stage} and {@code --sequence-parallel}. The data-parallel
 * size is not a flag: it is what is left of the world size, {@code world / (tp * pp)}.
 *
 * <p>Checks that need model dimensions take them as plain ints ({@link #validateForModel}), so this
 * record does not depend on the model module's config.
 *
 * @param tensorModelParallelSize        ranks that split each layer's weights (TP); 1 = off
 * @param pipelineModelParallelSize      ranks that split the layer stack into stages (PP); 1 = off
 * @param numLayersPerVirtualPipelineStage layers per model chunk of the interleaved schedule; 0 = not interleaved
 * @param sequenceParallel               split the non-tensor-parallel regions (norms, dropout) along the
 *                                       sequence over the TP group; has an effect only when TP &gt; 1
 */
public record ParallelConfig(int tensorModelParallelSize, int pipelineModelParallelSize,
                             int numLayersPerVirtualPipelineStage, boolean sequenceParallel) {

    /** One rank does everything: TP = PP = 1, no interleaving, no sequence parallelism. */
    public static ParallelConfig single() {
        return new ParallelConfig(1, 1, 0, false);
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
        if (numLayersPerVirtualPipelineStage < 0) {
            throw new IllegalArgumentException("--num-layers-per-virtual-pipeline-stage must be >= 1 when given, got "
                    + numLayersPerVirtualPipelineStage);
        }
        if (numLayersPerVirtualPipelineStage > 0 && pipelineModelParallelSize < 2) {
            // Megatron asks for PP > 2 unless p2p overlap is on, because NCCL batches the sends and
            // receives between two ranks; our communicators queue point-to-point messages, so 2 works.
            throw new IllegalArgumentException("--num-layers-per-virtual-pipeline-stage (interleaved schedule) needs "
                    + "--pipeline-model-parallel-size >= 2, got " + pipelineModelParallelSize);
        }
    }

    /** The tensor- times pipeline-parallel size: ranks that hold one full copy of the model. */
    public int modelParallelSize() {
        return tensorModelParallelSize * pipelineModelParallelSize;
    }

    /** Data-parallel size for {@code worldSize} ranks, after checking that the sizes divide the world. */
    public int dataParallelSize(int worldSize) {
        validateWorldSize(worldSize);
        return worldSize / modelParallelSize();
    }

    /** Refuses a world size that is not a multiple of TP x PP. */
    public ParallelConfig validateWorldSize(int worldSize) {
        if (worldSize < 1) {
            throw new IllegalArgumentException("world size must be >= 1, got " + worldSize);
        }
        if (worldSize % modelParallelSize() != 0) {
            throw new IllegalArgumentException("world size " + worldSize + " is not divisible by tensor-model-parallel size "
                    + tensorModelParallelSize + " x pipeline-model-parallel size " + pipelineModelParallelSize
                    + " = " + modelParallelSize());
        }
        return this;
    }

    /** True when activations outside the tensor-parallel regions are split along the sequence (needs TP &gt; 1, as in Megatron). */
    public boolean sequenceParallelActive() {
        return sequenceParallel && tensorModelParallelSize > 1;
    }

    /** True for the interleaved (virtual pipeline) schedule. */
    public boolean interleaved() {
        return numLayersPerVirtualPipelineStage > 0;
    }

    /** Transformer layers held by one pipeline stage (all its model chunks together). */
    public int layersPerPipelineStage(int numLayers) {
        requireLayersDivisible(numLayers);
        return numLayers / pipelineModelParallelSize;
    }

    /** Model chunks per pipeline stage: {@code numLayers / (pp * layersPerVirtualStage)}, or 1 without interleaving. */
    public int virtualPipelineModelParallelSize(int numLayers) {
        requireLayersDivisible(numLayers);
        return interleaved() ? numLayers / (pipelineModelParallelSize * numLayersPerVirtualPipelineStage) : 1;
    }

    /**
     * Checks the model dimensions that the parallel layout must divide: attention heads, query
     * groups and the MLP's hidden size by TP (each TP rank holds whole heads and a column block
     * of fc1), layers by PP (and by PP x layers per virtual stage when interleaving), and the
     * sequence by TP under sequence parallelism.
     *
     * @param numQueryGroups GQA groups (pass {@code numAttentionHeads} for plain multi-head attention)
     * @param ffnHiddenSize  the MLP's hidden size ({@code --ffn-hidden-size})
     * @param seqLength      the training sequence length, checked only with sequence parallelism
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
        requireLayersDivisible(numLayers);
        if (sequenceParallelActive() && seqLength % tensorModelParallelSize != 0) {
            throw new IllegalArgumentException("--sequence-parallel: --seq-length " + seqLength
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
