package org.megatronj.model;

/**
 * The part of the decoder one pipeline stage (or one virtual-pipeline model chunk) holds:
 * transformer layers {@code [firstLayer, firstLayer + numLayers)} (global indices, which also name
 * the parameters and select the dropout masks), with the embedding when it is the first chunk of
 * the model ({@code preProcess}) and the final norm, output layer and loss when it is the last
 * ({@code postProcess}), as Megatron-core's {@code pre_process}/{@code post_process}. With tied
 * embeddings the last chunk holds its own copy of the word embedding as the output weight, kept
 * equal to the first chunk's by summing their gradients (Megatron's embedding group).
 */
public record ModelChunk(int firstLayer, int numLayers, boolean preProcess, boolean postProcess) {

    public ModelChunk {
        if (firstLayer < 0 || numLayers < 0) {
            throw new IllegalArgumentException("model chunk layers [" + firstLayer + ", " + (firstLayer + numLayers)
                    + ") are invalid");
        }
        if (numLayers == 0 && !preProcess && !postProcess) {
            throw new IllegalArgumentException("a model chunk needs layers, the embedding or the output layer");
        }
    }

    /** The whole model on one stage. */
    public static ModelChunk whole(TransformerConfig config) {
        return new ModelChunk(0, config.numLayers(), true, true);
    }

    /**
     * Megatron's even partition: model chunk {@code chunk} of pipeline rank {@code stage}, with
     * {@code stages} pipeline ranks and {@code chunksPerStage} virtual chunks each, holds layers
     * {@code [(chunk * stages + stage) * n, ... + n)} with {@code n = L / (stages * chunksPerStage)}.
     */
    public static ModelChunk of(TransformerConfig config, int stage, int stages, int chunk, int chunksPerStage) {
        return PipelineLayout.even(config.numLayers(), stages, chunksPerStage).chunk(stage, chunk);
    }

    public boolean whole() {
        return preProcess && postProcess;
    }
}
