package org.megatronj.model;

import java.util.ArrayList;
import java.util.List;

/**
 * The name, shape and initialisation of one parameter. {@link #forGpt} lists a GPT's parameters
 * in their fixed order (the checkpoint and optimizer order) before any memory is allocated.
 */
public record ParameterSpec(String name, long[] shape, Init init, boolean weightDecay) {

    /** Megatron's initialisation rules. */
    public enum Init {
        /** normal(0, init_method_std): embeddings, qkv, fc1, the untied output layer. */
        NORMAL,
        /** normal(0, init_method_std / sqrt(2 L)): the layers writing into the residual stream (linear_proj, linear_fc2). */
        SCALED_NORMAL,
        ZEROS,
        ONES
    }

    public long numel() {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }

    /** The parameters of a GPT with this config, in Megatron-core's names. */
    public static List<ParameterSpec> forGpt(TransformerConfig c) {
        List<ParameterSpec> specs = new ArrayList<>();
        long h = c.hiddenSize();
        specs.add(new ParameterSpec("embedding.word_embeddings.weight", new long[] {c.paddedVocabSize(), h}, Init.NORMAL, true));
        if (c.positionEmbeddingType() == PositionEmbeddingType.LEARNED_ABSOLUTE) {
            specs.add(new ParameterSpec("embedding.position_embeddings.weight", new long[] {c.maxPositionEmbeddings(), h},
                    Init.NORMAL, true));
        }
        for (int l = 0; l < c.numLayers(); l++) {
            String p = "decoder.layers." + l + ".";
            addNorm(specs, c, p + "input_layernorm");
            addLinear(specs, c, p + "self_attention.linear_qkv", c.qkvWidth(), h, Init.NORMAL);
            addLinear(specs, c, p + "self_attention.linear_proj", h, c.attentionWidth(), Init.SCALED_NORMAL);
            addNorm(specs, c, p + "pre_mlp_layernorm");
            addLinear(specs, c, p + "mlp.linear_fc1", c.fc1Width(), h, Init.NORMAL);
            addLinear(specs, c, p + "mlp.linear_fc2", h, c.ffnHiddenSize(), Init.SCALED_NORMAL);
        }
        addNorm(specs, c, "decoder.final_layernorm");
        if (c.untieEmbeddingsAndOutputWeights()) {
            specs.add(new ParameterSpec("output_layer.weight", new long[] {c.paddedVocabSize(), h}, Init.NORMAL, true));
        }
        return specs;
    }

    private static void addNorm(List<ParameterSpec> specs, TransformerConfig c, String prefix) {
        specs.add(new ParameterSpec(prefix + ".weight", new long[] {c.hiddenSize()}, Init.ONES, false));
        if (c.normalization() == Normalization.LAYER_NORM) {
            specs.add(new ParameterSpec(prefix + ".bias", new long[] {c.hiddenSize()}, Init.ZEROS, false));
        }
    }

    private static void addLinear(List<ParameterSpec> specs, TransformerConfig c, String prefix, long out, long in, Init init) {
        specs.add(new ParameterSpec(prefix + ".weight", new long[] {out, in}, init, true));
        if (c.addBiasLinear()) {
            specs.add(new ParameterSpec(prefix + ".bias", new long[] {out}, Init.ZEROS, false));
        }
    }
}
