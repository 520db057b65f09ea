package org.megatronj.model;

import java.util.ArrayList;
import java.util.List;

/**
 * The name, shape and initialisation of one parameter. {@link #forGpt} lists a GPT's parameters
 * in their fixed order (the checkpoint and optimizer order) before any memory is allocated.
 * With tensor parallelism the shape is this rank's shard and {@code split} says how the full
 * tensor was cut ({@link TensorSplit}).
 */
public record ParameterSpec(String name, long[] shape, Init init, boolean weightDecay, TensorSplit split) {

    /** A parameter that is not split across tensor-parallel ranks. */
    public ParameterSpec(String name, long[] shape, Init init, boolean weightDecay) {
        this(name, shape, init, weightDecay, TensorSplit.REPLICATED);
    }

    /**
     * How a parameter is divided among t tensor-parallel ranks (Megatron-core's
     * {@code partition_dim} and its swiglu special case).
     */
    public enum TensorSplit {
        /** Every rank holds the whole tensor (norms, row-parallel biases, position embeddings). */
        REPLICATED,
        /** Rank r holds rows {@code [r n/t, (r+1) n/t)}: column-parallel weights and biases, the vocab-parallel tables. */
        ROWS,
        /** Rank r holds columns {@code [r n/t, (r+1) n/t)} of every row: row-parallel weights. */
        COLUMNS,
        /** swiglu's fc1 {@code [gate; up]}: rank r holds its rows of the gate, then its rows of the up half. */
        GATED_ROWS
    }

    /**
     * True when, under sequence parallelism, each rank computes only part of this replicated
     * parameter's gradient (from its sequence shard), so the TP ranks must all-reduce it: the
     * norms and the row-parallel biases, as Megatron's {@code sequence_parallel} attribute.
     */
    public boolean sequenceParallelGrad() {
        return split == TensorSplit.REPLICATED && !name.startsWith("embedding.");
    }

    /**
     * True for a buffer kept with the parameters (checkpointed under its name) that no gradient trains: the MoE router's
     * {@code expert_bias}, which {@code --moe-router-enable-expert-bias} moves by token counts. Its gradient stays zero, so
     * the optimizers leave it as it is; parameter counts and norms leave it out, as Megatron's count only parameters.
     */
    public boolean buffer() {
        return isBuffer(name);
    }

    /** Whether the tensor named {@code name} is a buffer ({@link #buffer()}). */
    public static boolean isBuffer(String name) {
        return name.endsWith(".router.expert_bias");
    }

    /**
     * True when each tensor-parallel rank computes only part of this replicated parameter's gradient whatever the
     * sequence layout: the q/k layernorms, which see only the rank's heads (Megatron's finalize_model_grads sums them
     * over the tensor ranks with {@code --qk-layernorm}).
     */
    public boolean headPartialGrad() {
        return name.contains("self_attention.q_layernorm.") || name.contains("self_attention.k_layernorm.");
    }

    /** The shape of the whole (unsplit) tensor when each of {@code t} ranks holds {@link #shape()}. */
    public long[] fullShape(int t) {
        long[] full = shape.clone();
        switch (split) {
            case REPLICATED -> { }
            case ROWS, GATED_ROWS -> full[0] *= t;
            case COLUMNS -> full[1] *= t;
        }
        return full;
    }

    /**
     * The parameter-name prefix of MTP depth {@code k} (0-based), as Megatron-core's checkpoints name it
     * ({@code mtp.layers.<k>.}; its inner layer is saved as {@code transformer_layer}).
     */
    public static String mtpPrefix(int k) {
        return "mtp.layers." + k + ".";
    }

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
        return forGpt(c, 1);
    }

    /**
     * The parameters one of {@code t} tensor-parallel ranks holds, in Megatron-core's names and
     * order, with their shard shapes (the vocabulary padded for t ranks, as Megatron).
     */
    public static List<ParameterSpec> forGpt(TransformerConfig c, int t) {
        return forGpt(c, t, ModelChunk.whole(c));
    }

    /**
     * The parameters of one model chunk (pipeline stage) of one of {@code t} tensor-parallel
     * ranks. A last chunk without the embedding holds a copy of the tied word embedding (same name), and of the word
     * embedding with Multi-Token Prediction, whose depths embed the rolled input ids there (Megatron builds the
     * embedding on its MTP stage whether or not the output layer is tied).
     */
    public static List<ParameterSpec> forGpt(TransformerConfig c, int t, ModelChunk chunk) {
        c.checkTensorParallelSize(t);
        List<ParameterSpec> specs = new ArrayList<>();
        long h = c.hiddenSize();
        long vocab = c.paddedVocabSize(t) / t;
        boolean tiedCopy = chunk.postProcess() && (!c.untieEmbeddingsAndOutputWeights() || c.mtp() != null);
        if (chunk.preProcess() || tiedCopy) {
            specs.add(new ParameterSpec("embedding.word_embeddings.weight", new long[] {vocab, h}, Init.NORMAL, true,
                    TensorSplit.ROWS));
        }
        if (chunk.preProcess() && c.positionEmbeddingType() == PositionEmbeddingType.LEARNED_ABSOLUTE) {
            specs.add(new ParameterSpec("embedding.position_embeddings.weight", new long[] {c.maxPositionEmbeddings(), h},
                    Init.NORMAL, true));
        }
        for (int l = chunk.firstLayer(); l < chunk.firstLayer() + chunk.numLayers(); l++) {
            String p = "decoder.layers." + l + ".";
            addNorm(specs, c, p + "input_layernorm");
            if (c.mla() != null) {
                addMla(specs, c, t, p + "self_attention.");
            } else {
                addLinear(specs, c, p + "self_attention.linear_qkv", c.qkvWidth() / t, h, Init.NORMAL, TensorSplit.ROWS);
            }
            if (c.qkLayernorm() && c.mla() == null) {   // over one head's d values: the same weights on every tensor rank
                addNorm(specs, c, p + "self_attention.q_layernorm", c.kvChannels());
                addNorm(specs, c, p + "self_attention.k_layernorm", c.kvChannels());
            }
            addLinear(specs, c, p + "self_attention.linear_proj", h, c.attentionWidth() / t, Init.SCALED_NORMAL,
                    TensorSplit.COLUMNS);
            addNorm(specs, c, p + "pre_mlp_layernorm");
            if (c.isMoeLayer(l)) {
                addMoe(specs, c, t, p + "mlp.");
            } else {
                addMlp(specs, c, p + "mlp", c.fc1Width() / t, c.ffnHiddenSize() / t);
            }
        }
        if (!chunk.postProcess()) {
            return specs;
        }
        addNorm(specs, c, "decoder.final_layernorm");
        for (int k = 0; k < c.mtpNumLayers(); k++) {   // Megatron's MultiTokenPredictionLayer in its attribute order
            String p = mtpPrefix(k);
            addNorm(specs, c, p + "enorm");
            addNorm(specs, c, p + "hnorm");
            // eh_proj: a column-parallel linear of [e; h] (2h) to h, no bias whatever --disable-bias-linear says
            specs.add(new ParameterSpec(p + "eh_proj.weight", new long[] {h / t, 2 * h}, Init.NORMAL, true, TensorSplit.ROWS));
            // the decoder's last layer's parameters (dense or MoE, as get_gpt_mtp_block_spec builds the depth's layer)
            String last = "decoder.layers." + (c.numLayers() - 1) + ".";
            for (ParameterSpec spec : forGpt(c, t, new ModelChunk(c.numLayers() - 1, 1, false, false))) {
                specs.add(new ParameterSpec(p + "transformer_layer." + spec.name().substring(last.length()), spec.shape(),
                        spec.init(), spec.weightDecay(), spec.split()));
            }
            addNorm(specs, c, p + "final_layernorm");
        }
        if (c.untieEmbeddingsAndOutputWeights()) {
            specs.add(new ParameterSpec("output_layer.weight", new long[] {vocab, h}, Init.NORMAL, true, TensorSplit.ROWS));
        }
        return specs;
    }

    /**
     * Megatron-core's MLASelfAttention (local spec names): the query's down projection, latent norm and per-head up
     * projection (or one linear_q_proj without --q-lora-rank), the keys' and values' down projection (latent then the
     * shared rotary key), latent norm and per-head up projection. The down projections and norms are replicated over
     * the tensor ranks, the up projections split by heads; the norms exist with --qk-layernorm.
     */
    private static void addMla(List<ParameterSpec> specs, TransformerConfig c, int t, String prefix) {
        MlaConfig m = c.mla();
        long h = c.hiddenSize();
        long qRows = (long) c.numAttentionHeads() * m.qHeadDim() / t;
        if (m.hasQueryLatent()) {
            addLinear(specs, c, prefix + "linear_q_down_proj", m.qLoraRank(), h, Init.NORMAL, TensorSplit.REPLICATED);
            if (c.qkLayernorm()) {
                addNorm(specs, c, prefix + "q_layernorm", m.qLoraRank());
            }
            addLinear(specs, c, prefix + "linear_q_up_proj", qRows, m.qLoraRank(), Init.NORMAL, TensorSplit.ROWS);
        } else {
            addLinear(specs, c, prefix + "linear_q_proj", qRows, h, Init.NORMAL, TensorSplit.ROWS);
        }
        addLinear(specs, c, prefix + "linear_kv_down_proj", m.kvLoraRank() + m.qkPosEmbHeadDim(), h, Init.NORMAL,
                TensorSplit.REPLICATED);
        if (c.qkLayernorm()) {
            addNorm(specs, c, prefix + "kv_layernorm", m.kvLoraRank());
        }
        addLinear(specs, c, prefix + "linear_kv_up_proj",
                (long) c.numAttentionHeads() * (m.qkHeadDim() + m.vHeadDim()) / t, m.kvLoraRank(), Init.NORMAL,
                TensorSplit.ROWS);
    }

    private static void addMlp(List<ParameterSpec> specs, TransformerConfig c, String prefix, long fc1Rows, long ffn) {
        addLinear(specs, c, prefix + ".linear_fc1", fc1Rows, c.hiddenSize(), Init.NORMAL,
                c.swiglu() ? TensorSplit.GATED_ROWS : TensorSplit.ROWS);
        addLinear(specs, c, prefix + ".linear_fc2", c.hiddenSize(), ffn, Init.SCALED_NORMAL, TensorSplit.COLUMNS);
    }

    /**
     * Megatron-core's MoELayer in its order: the router (replicated), the experts (SequentialMLP's {@code local_experts.e}, each split over the
     * tensor ranks like the dense MLP), then the shared experts.
     */
    private static void addMoe(List<ParameterSpec> specs, TransformerConfig c, int t, String prefix) {
        MoeConfig moe = c.moe();
        long h = c.hiddenSize();
        specs.add(new ParameterSpec(prefix + "router.weight", new long[] {moe.numExperts(), h}, Init.NORMAL, true));
        if (moe.routerEnableExpertBias()) {   // Megatron's persistent buffer, after the router's weight in its state dict
            specs.add(new ParameterSpec(prefix + "router.expert_bias", new long[] {moe.numExperts()}, Init.ZEROS, false));
        }
        for (int e = 0; e < moe.numExperts(); e++) {
            addMlp(specs, c, prefix + "experts.local_experts." + e, c.expertFc1Width() / t, moe.ffnHiddenSize() / t);
        }
        if (moe.sharedExpertIntermediateSize() > 0) {
            addMlp(specs, c, prefix + "shared_experts", c.sharedExpertFc1Width() / t, moe.sharedExpertIntermediateSize() / t);
            if (moe.sharedExpertGate()) {
                specs.add(new ParameterSpec(prefix + "shared_experts.gate_weight", new long[] {1, h}, Init.NORMAL, true));
            }
        }
    }

    private static void addNorm(List<ParameterSpec> specs, TransformerConfig c, String prefix) {
        addNorm(specs, c, prefix, c.hiddenSize());
    }

    private static void addNorm(List<ParameterSpec> specs, TransformerConfig c, String prefix, long width) {
        // --apply-layernorm-1p stores gamma - 1 (Megatron zero-initialises the weight then)
        specs.add(new ParameterSpec(prefix + ".weight", new long[] {width}, c.applyLayernorm1p() ? Init.ZEROS : Init.ONES,
                false));
        if (c.normalization() == Normalization.LAYER_NORM) {
            specs.add(new ParameterSpec(prefix + ".bias", new long[] {width}, Init.ZEROS, false));
        }
    }

    private static void addLinear(List<ParameterSpec> specs, TransformerConfig c, String prefix, long out, long in, Init init,
                                  TensorSplit split) {
        specs.add(new ParameterSpec(prefix + ".weight", new long[] {out, in}, init, true, split));
        if (c.hasBias(prefix)) {
            // A row-parallel layer adds its whole bias after the reduction; a column-parallel one holds its rows.
            specs.add(new ParameterSpec(prefix + ".bias", new long[] {out}, Init.ZEROS, false,
                    split == TensorSplit.COLUMNS ? TensorSplit.REPLICATED : split));
        }
    }
}
