package org.megatronj.cli;

import org.megatronj.model.Normalization;
import org.megatronj.model.PositionEmbeddingType;
import org.megatronj.model.TransformerConfig;
import picocli.CommandLine.Option;

/**
 * The GPT architecture flags of Megatron ({@code TransformerConfig}). {@code --seq-length} comes
 * from the data options, the vocabulary size from the tokenizer.
 */
public final class ModelOptions {
    @Option(names = "--num-layers", paramLabel = "N", description = "Transformer layers (required unless"
            + " --use-checkpoint-args takes it from the checkpoint).")
    Integer numLayers;

    @Option(names = "--hidden-size", paramLabel = "H", description = "Hidden size h (required unless --use-checkpoint-args).")
    Integer hiddenSize;

    @Option(names = "--ffn-hidden-size", paramLabel = "F", description = "MLP width (default 4h; with --swiglu 8h/3 rounded down to 64).")
    Integer ffnHiddenSize;

    @Option(names = "--num-attention-heads", paramLabel = "A", description = "Attention heads (required unless"
            + " --use-checkpoint-args).")
    Integer numAttentionHeads;

    @Option(names = "--kv-channels", paramLabel = "D", description = "Head dimension (default h / heads).")
    Integer kvChannels;

    @Option(names = "--group-query-attention", description = "Grouped-query attention: --num-query-groups key/value heads.")
    boolean groupQueryAttention;

    @Option(names = "--num-query-groups", paramLabel = "G", description = "Key/value heads with --group-query-attention (1 = MQA).")
    int numQueryGroups;

    @Option(names = "--max-position-embeddings", paramLabel = "P", description = "Rows of the position table and the longest"
            + " sequence (default --seq-length).")
    Integer maxPositionEmbeddings;

    @Option(names = "--position-embedding-type", paramLabel = "TYPE", defaultValue = "learned_absolute",
            description = "learned_absolute, rope or none (default ${DEFAULT-VALUE}).")
    String positionEmbeddingType;

    @Option(names = "--use-rotary-position-embeddings", description = "Megatron's older spelling of"
            + " --position-embedding-type rope.")
    boolean useRotaryPositionEmbeddings;

    @Option(names = "--no-position-embedding", description = "Deprecated in Megatron: accepted with rope (which has no"
            + " position table); otherwise give --position-embedding-type none.")
    boolean noPositionEmbedding;

    @Option(names = "--rotary-percent", paramLabel = "F", defaultValue = "1.0", description = "Fraction of each head rope rotates.")
    float rotaryPercent;

    @Option(names = "--rotary-base", paramLabel = "B", defaultValue = "10000", description = "Rope theta (default ${DEFAULT-VALUE}).")
    float rotaryBase;

    @Option(names = "--rotary-seq-len-interpolation-factor", paramLabel = "N", description = "Divide rope's positions by"
            + " N (position interpolation for longer sequences).")
    Integer rotarySeqLenInterpolationFactor;

    @Option(names = "--rotary-interleaved", description = "Rope rotates neighbouring channel pairs (2i, 2i+1) instead of"
            + " the two halves of the head (RoFormer's layout).")
    boolean rotaryInterleaved;

    @Option(names = "--use-rope-scaling", description = "Llama 3.x's rope frequency scaling (8192 original positions).")
    boolean useRopeScaling;

    @Option(names = "--rope-scaling-factor", paramLabel = "F", defaultValue = "8.0", description = "Its factor (default"
            + " ${DEFAULT-VALUE}).")
    float ropeScalingFactor;

    @Option(names = "--normalization", paramLabel = "NORM", defaultValue = "LayerNorm", description = "LayerNorm or RMSNorm.")
    String normalization;

    @Option(names = "--swiglu", description = "Gated SiLU MLP (Llama) instead of GeLU.")
    boolean swiglu;

    @Option(names = "--squared-relu", description = "relu(x)^2 as the MLP's activation instead of GeLU (Nemotron); with"
            + " biases Megatron needs --no-bias-gelu-fusion.")
    boolean squaredRelu;

    @Option(names = "--disable-bias-linear", description = "No biases in the linear layers.")
    boolean disableBiasLinear;

    @Option(names = "--add-qkv-bias", description = "A bias in the qkv projection even with --disable-bias-linear (Qwen2).")
    boolean addQkvBias;

    @Option(names = "--qk-layernorm", description = "Normalise each query and key head (the --normalization over its d"
            + " values) before rope (Qwen3, OLMo 2).")
    boolean qkLayernorm;

    @Option(names = "--no-bias-gelu-fusion", description = "Unfused bias and GeLU, which Megatron computes with the exact"
            + " (erf) GeLU; the fused kernel, the default, uses the tanh approximation.")
    boolean noBiasGeluFusion;

    @Option(names = "--openai-gelu", description = "GeLU's tanh approximation (OpenAI's) whatever the fusion.")
    boolean openaiGelu;

    @Option(names = "--untie-embeddings-and-output-weights", description = "A separate output layer instead of the tied embedding.")
    boolean untieEmbeddingsAndOutputWeights;

    @Option(names = "--attention-dropout", paramLabel = "P", defaultValue = "0.1",
            description = "Dropout on the attention probabilities, inside the attention op (default ${DEFAULT-VALUE}, as"
                    + " Megatron; --device cuda draws it in the FlashAttention kernels with --bf16/--fp16 at head dim 64 or 128,"
                    + " and needs 0 otherwise).")
    float attentionDropout;

    @Option(names = "--hidden-dropout", paramLabel = "P", defaultValue = "0.1", description = "Dropout on residual branches (default ${DEFAULT-VALUE}).")
    float hiddenDropout;

    @Option(names = "--init-method-std", paramLabel = "S", defaultValue = "0.02", description = "Std of the normal init (default ${DEFAULT-VALUE}).")
    float initMethodStd;

    @Option(names = {"--layernorm-epsilon", "--norm-epsilon"}, paramLabel = "E", defaultValue = "1e-5",
            description = "Norm epsilon (default ${DEFAULT-VALUE}); --norm-epsilon is today's Megatron name.")
    float layernormEpsilon;

    @Option(names = "--apply-layernorm-1p", description = "Zero-centred norm weights: stored as gamma - 1 (initialised to 0),"
            + " the norms scale by 1 + weight (Megatron-core's layernorm_zero_centered_gamma).")
    boolean applyLayernorm1p;

    @Option(names = "--apply-query-key-layer-scaling", description = "Scale attention scores by 1/layer (an fp16 guard; no effect in fp32).")
    boolean applyQueryKeyLayerScaling;

    @picocli.CommandLine.Mixin
    MtpOptions mtp = new MtpOptions();

    @picocli.CommandLine.Mixin
    MoeOptions moe = new MoeOptions();

    @picocli.CommandLine.Mixin
    MlaOptions mla = new MlaOptions();

    @Option(names = "--make-vocab-size-divisible-by", paramLabel = "N", defaultValue = "128",
            description = "Pad the vocabulary to a multiple of N (default ${DEFAULT-VALUE}).")
    int makeVocabSizeDivisibleBy;

    /**
     * Which GeLU Megatron computes: its fused bias-GeLU kernel is the tanh approximation, the unfused
     * path {@code F.gelu} the exact one, and Megatron turns the fusion off when the linear layers have
     * no bias ({@code --disable-bias-linear}).
     */
    private boolean geluTanh() {
        return openaiGelu || geluFusion();
    }

    /** Megatron's {@code bias_gelu_fusion}: on unless {@code --no-bias-gelu-fusion}, and off without biases. */
    private boolean geluFusion() {
        return !noBiasGeluFusion && !disableBiasLinear;
    }

    /**
     * Megatron's {@code --use-checkpoint-args} ({@code load_args_from_checkpoint}): the sizes (layers, hidden, MLP,
     * heads, head dimension, positions, vocabulary padding) come from the checkpoint where the command line does not give
     * them; the architecture's switches (query groups, position embeddings and rope with its layout, biases, squared
     * ReLU, SwiGLU, untied output, norm and its 1p form, query-key scaling, dropouts) always do. Each value taken is
     * logged as Megatron logs it.
     */
    void takeFromCheckpoint(TransformerConfig saved, java.util.function.Predicate<String> given,
                            java.util.function.Consumer<String> log) {
        java.util.function.BiConsumer<String, Object> took = (name, value) -> log.accept("Setting " + name + " to " + value
                + " from checkpoint");
        if (!given.test("--num-layers")) { numLayers = saved.numLayers(); took.accept("num_layers", numLayers); }
        if (!given.test("--hidden-size")) { hiddenSize = saved.hiddenSize(); took.accept("hidden_size", hiddenSize); }
        if (!given.test("--ffn-hidden-size")) { ffnHiddenSize = saved.ffnHiddenSize(); took.accept("ffn_hidden_size", ffnHiddenSize); }
        if (!given.test("--num-attention-heads")) {
            numAttentionHeads = saved.numAttentionHeads();
            took.accept("num_attention_heads", numAttentionHeads);
        }
        if (!given.test("--kv-channels")) { kvChannels = saved.kvChannels(); took.accept("kv_channels", kvChannels); }
        if (!given.test("--max-position-embeddings")) {
            maxPositionEmbeddings = saved.maxPositionEmbeddings();
            took.accept("max_position_embeddings", maxPositionEmbeddings);
        }
        if (!given.test("--make-vocab-size-divisible-by")) {   // Megatron takes padded_vocab_size itself
            makeVocabSizeDivisibleBy = saved.makeVocabSizeDivisibleBy();
            took.accept("make_vocab_size_divisible_by", makeVocabSizeDivisibleBy);
        }
        groupQueryAttention = saved.numQueryGroups() != saved.numAttentionHeads();
        numQueryGroups = groupQueryAttention ? saved.numQueryGroups() : 0;
        took.accept("num_query_groups", saved.numQueryGroups());
        took.accept("group_query_attention", groupQueryAttention ? "True" : "False");
        positionEmbeddingType = saved.positionEmbeddingType().flagValue();
        took.accept("position_embedding_type", positionEmbeddingType);
        rotaryBase = saved.rotaryBase();
        took.accept("rotary_base", rotaryBase);
        rotaryPercent = saved.rotaryPercent();
        took.accept("rotary_percent", rotaryPercent);
        rotaryInterleaved = saved.rotaryInterleaved();
        took.accept("rotary_interleaved", rotaryInterleaved ? "True" : "False");
        disableBiasLinear = !saved.addBiasLinear();
        took.accept("add_bias_linear", saved.addBiasLinear() ? "True" : "False");
        addQkvBias = saved.addQkvBias();
        took.accept("add_qkv_bias", addQkvBias ? "True" : "False");
        squaredRelu = saved.squaredRelu();
        took.accept("squared_relu", squaredRelu ? "True" : "False");
        swiglu = saved.swiglu();
        took.accept("swiglu", swiglu ? "True" : "False");
        untieEmbeddingsAndOutputWeights = saved.untieEmbeddingsAndOutputWeights();
        took.accept("untie_embeddings_and_output_weights", untieEmbeddingsAndOutputWeights ? "True" : "False");
        applyLayernorm1p = saved.applyLayernorm1p();
        took.accept("apply_layernorm_1p", applyLayernorm1p ? "True" : "False");
        normalization = saved.normalization().flagValue();
        took.accept("normalization", normalization);
        applyQueryKeyLayerScaling = saved.applyQueryKeyLayerScaling();
        took.accept("apply_query_key_layer_scaling", applyQueryKeyLayerScaling ? "True" : "False");
        attentionDropout = saved.attentionDropout();
        took.accept("attention_dropout", attentionDropout);
        hiddenDropout = saved.hiddenDropout();
        took.accept("hidden_dropout", hiddenDropout);
        mtp.takeFromCheckpoint(saved.mtp(), took);
        moe.takeFromCheckpoint(saved.moe(), took);
        mla.takeFromCheckpoint(saved.mla(), took);
        qkLayernorm = saved.qkLayernorm();
        took.accept("qk_layernorm", qkLayernorm ? "True" : "False");
    }

    private static void required(String flag, Integer value) {
        if (value == null) {
            throw new IllegalArgumentException(flag + " is required (or --use-checkpoint-args with --load, which takes the"
                    + " model's shape from the checkpoint)");
        }
    }

    /** A size flag's value, 0 when not given (the config then derives it); a given value must be positive. */
    private static int given(String flag, Integer value) {
        if (value == null) {
            return 0;
        }
        if (value < 1) {
            throw new IllegalArgumentException(flag + " must be >= 1, got " + value);
        }
        return value;
    }

    /** The model for {@code vocabSize} tokens and sequences of {@code seqLength}; throws naming a bad or contradicting flag. */
    public TransformerConfig toConfig(int vocabSize, int seqLength) {
        return toConfig(vocabSize, seqLength, 1, 1);
    }

    /**
     * As {@link #toConfig(int, int)} for a run with {@code tensorParallelSize} tensor ranks and
     * {@code dataTimesContextParallelSize} data x context-parallel ranks (what the mixture-of-experts flags are checked
     * against).
     */
    public TransformerConfig toConfig(int vocabSize, int seqLength, int tensorParallelSize, int dataTimesContextParallelSize) {
        TransformerConfig dense = denseConfig(vocabSize, seqLength);
        org.megatronj.model.MlaConfig latent = mla == null ? null : mla.toConfig();
        if (latent != null) {
            dense = dense.toBuilder().mla(latent).build();
        }
        org.megatronj.model.MoeConfig experts = moe == null ? null
                : moe.toConfig(dense, tensorParallelSize, dataTimesContextParallelSize);
        org.megatronj.model.MtpConfig depths = mtp == null ? null : mtp.toConfig();
        return experts == null && depths == null ? dense : dense.toBuilder().moe(experts).mtp(depths).build();
    }

    private TransformerConfig denseConfig(int vocabSize, int seqLength) {
        required("--num-layers", numLayers);
        required("--hidden-size", hiddenSize);
        required("--num-attention-heads", numAttentionHeads);
        if (numQueryGroups > 0 && !groupQueryAttention) {
            throw new IllegalArgumentException("--num-query-groups needs --group-query-attention");
        }
        if (groupQueryAttention && numQueryGroups <= 0) {
            throw new IllegalArgumentException("--group-query-attention needs --num-query-groups G");
        }
        if (useRotaryPositionEmbeddings) {   // Megatron's validate_args
            positionEmbeddingType = PositionEmbeddingType.ROPE.flagValue();
        }
        if (positionEmbeddingType.trim().equalsIgnoreCase("yarn")) {
            throw new IllegalArgumentException("--position-embedding-type yarn (YaRN for standard attention) is not supported"
                    + " by Megatron-J; YaRN is available with --multi-latent-attention --rope-type yarn");
        }
        if (noPositionEmbedding && PositionEmbeddingType.parse(positionEmbeddingType) != PositionEmbeddingType.ROPE) {
            throw new IllegalArgumentException("--no-position-embedding is deprecated, use --position-embedding-type (none"
                    + " for no position information, rope for rotary embeddings)");
        }
        if (squaredRelu && !swiglu && geluFusion()) {   // Megatron's TransformerConfig check (--swiglu's assert comes first)
            throw new IllegalArgumentException("When bias_activation_fusion is True, activation function should be either"
                    + " gelu, swiglu, or quick_geglu (--squared-relu with biases needs --no-bias-gelu-fusion)");
        }
        int maxPositions = given("--max-position-embeddings", maxPositionEmbeddings);
        if (maxPositions > 0 && seqLength > maxPositions) {
            throw new IllegalArgumentException("--seq-length (" + seqLength + ") is larger than --max-position-embeddings ("
                    + maxPositions + ")");
        }
        return TransformerConfig.builder()
                .numLayers(numLayers).hiddenSize(hiddenSize).ffnHiddenSize(given("--ffn-hidden-size", ffnHiddenSize))
                .numAttentionHeads(numAttentionHeads).kvChannels(given("--kv-channels", kvChannels))
                .numQueryGroups(groupQueryAttention ? numQueryGroups : 0)
                .seqLength(seqLength).maxPositionEmbeddings(maxPositions)
                .positionEmbeddingType(PositionEmbeddingType.parse(positionEmbeddingType))
                .rotaryPercent(rotaryPercent).rotaryBase(rotaryBase)
                .rotarySeqLenInterpolationFactor(given("--rotary-seq-len-interpolation-factor", rotarySeqLenInterpolationFactor))
                .useRopeScaling(useRopeScaling).ropeScalingFactor(ropeScalingFactor).rotaryInterleaved(rotaryInterleaved)
                .normalization(Normalization.parse(normalization))
                .swiglu(swiglu).squaredRelu(squaredRelu).geluTanh(geluTanh())
                .addBiasLinear(!disableBiasLinear).addQkvBias(addQkvBias).qkLayernorm(qkLayernorm)
                .untieEmbeddingsAndOutputWeights(untieEmbeddingsAndOutputWeights)
                .attentionDropout(attentionDropout).hiddenDropout(hiddenDropout)
                .initMethodStd(initMethodStd).layernormEpsilon(layernormEpsilon).applyLayernorm1p(applyLayernorm1p)
                .applyQueryKeyLayerScaling(applyQueryKeyLayerScaling)
                .vocabSize(vocabSize).makeVocabSizeDivisibleBy(makeVocabSizeDivisibleBy)
                .build();
    }
}
