package org.megatronj.model;

/**
 * Every architecture knob of a GPT-style decoder, with Megatron's meaning and flag names.
 * Build one with {@link #builder()} (Megatron's defaults, derived sizes filled in by
 * {@link Builder#build()}) or a preset such as {@link #gpt2Small(int)}.
 *
 * @param numLayers                      {@code --num-layers}
 * @param hiddenSize                     {@code --hidden-size} (h)
 * @param ffnHiddenSize                  {@code --ffn-hidden-size}; default 4h (swiglu: 4h·2/3 rounded down to a multiple of 64, as Megatron)
 * @param numAttentionHeads              {@code --num-attention-heads} (np)
 * @param kvChannels                     {@code --kv-channels}: the head dimension d; default h / np
 * @param numQueryGroups                 {@code --num-query-groups} (ng) with {@code --group-query-attention}; else np. ng = 1 is MQA
 * @param seqLength                      {@code --seq-length}: training sequence length
 * @param maxPositionEmbeddings          {@code --max-position-embeddings}: rows of the learned position table, and the longest generation
 * @param positionEmbeddingType          {@code --position-embedding-type learned_absolute|rope}
 * @param rotaryPercent                  {@code --rotary-percent}: fraction of the head dim that rope rotates
 * @param rotaryBase                     {@code --rotary-base}: theta of rope (10000)
 * @param rotarySeqLenInterpolationFactor {@code --rotary-seq-len-interpolation-factor}: rope's positions divided by it; 0 none
 * @param useRopeScaling                 {@code --use-rope-scaling}: Llama 3.x's rope frequency scaling
 * @param ropeScalingFactor              {@code --rope-scaling-factor} (8) of that scaling
 * @param rotaryInterleaved              {@code --rotary-interleaved}: rope rotates neighbouring channel pairs (2i, 2i+1)
 *                                       instead of (i, i + r/2) (RoFormer's layout)
 * @param normalization                  {@code --normalization LayerNorm|RMSNorm}
 * @param swiglu                         {@code --swiglu}: gated SiLU MLP (fc1 produces 2·ffn columns, gate first)
 * @param squaredRelu                    {@code --squared-relu}: the MLP's activation is relu(x)^2 instead of gelu (Nemotron)
 * @param addBiasLinear                  false with {@code --disable-bias-linear}: no biases in qkv, proj, fc1, fc2
 * @param addQkvBias                     {@code --add-qkv-bias}: a bias in the qkv projection even without the others (Qwen2)
 * @param qkLayernorm                    {@code --qk-layernorm}: the config's norm over each query and key head (its d values,
 *                                       one weight per attention block shared by the heads) before rope (Qwen3, OLMo 2)
 * @param untieEmbeddingsAndOutputWeights {@code --untie-embeddings-and-output-weights}: a separate output_layer.weight
 * @param attentionDropout               {@code --attention-dropout} (Megatron default 0.1)
 * @param hiddenDropout                  {@code --hidden-dropout}: after the embeddings and each residual branch (0.1)
 * @param initMethodStd                  {@code --init-method-std}: std of the normal init (0.02)
 * @param layernormEpsilon               {@code --layernorm-epsilon} / {@code --norm-epsilon} (1e-5)
 * @param applyLayernorm1p               {@code --apply-layernorm-1p} (Megatron-core's {@code layernorm_zero_centered_gamma}):
 *                                       norm weights are stored as gamma - 1, initialised to 0; the norms scale by 1 + weight
 * @param applyQueryKeyLayerScaling      {@code --apply-query-key-layer-scaling}: an fp16 overflow guard; exact no-op in fp32
 * @param geluTanh                       gelu's tanh approximation (GPT-2 and Megatron's fused bias-gelu) instead of erf;
 *                                       Megatron's {@code --no-bias-gelu-fusion} means false
 * @param vocabSize                      the tokenizer's vocabulary size (before padding)
 * @param makeVocabSizeDivisibleBy       {@code --make-vocab-size-divisible-by} (128): the embedding rows are padded to a multiple
 * @param moe                            {@code --num-experts} and the {@code --moe-*} flags: mixture-of-experts layers; null
 *                                       for a dense model
 * @param mla                            {@code --multi-latent-attention} and its flags: every layer's attention is
 *                                       Megatron's MLASelfAttention; null for standard attention
 * @param mtp                            {@code --mtp-num-layers} and {@code --mtp-loss-scaling-factor}: Multi-Token Prediction
 *                                       depths after the decoder ({@link MtpConfig}); null without
 */
public record TransformerConfig(
        int numLayers, int hiddenSize, int ffnHiddenSize, int numAttentionHeads, int kvChannels,
        int numQueryGroups,
        int seqLength, int maxPositionEmbeddings,
        PositionEmbeddingType positionEmbeddingType,
        float rotaryPercent, float rotaryBase, float rotarySeqLenInterpolationFactor, boolean useRopeScaling,
        float ropeScalingFactor, boolean rotaryInterleaved,
        Normalization normalization,
        boolean swiglu, boolean squaredRelu, boolean addBiasLinear, boolean addQkvBias, boolean qkLayernorm,
        boolean untieEmbeddingsAndOutputWeights,
        float attentionDropout, float hiddenDropout, float initMethodStd, float layernormEpsilon, boolean applyLayernorm1p,
        boolean applyQueryKeyLayerScaling, boolean geluTanh,
        int vocabSize, int makeVocabSizeDivisibleBy, MoeConfig moe, MlaConfig mla, MtpConfig mtp) {

    /** Megatron pads the vocabulary to a multiple of {@code makeVocabSizeDivisibleBy × tensorParallelSize}. */
    public int paddedVocabSize(int tensorParallelSize) {
        int multiple = makeVocabSizeDivisibleBy * tensorParallelSize;
        return (vocabSize + multiple - 1) / multiple * multiple;
    }

    /** The padded vocabulary without tensor parallelism: the rows of the word embedding and the logits' columns. */
    public int paddedVocabSize() {
        return paddedVocabSize(1);
    }

    /**
     * Refuses a tensor-parallel size that does not divide the heads, query groups and MLP width,
     * as Megatron's argument checks, naming the numbers.
     */
    public void checkTensorParallelSize(int t) {
        if (t < 1) {
            throw new IllegalArgumentException("--tensor-model-parallel-size must be positive, got " + t);
        }
        divisible("--num-attention-heads", numAttentionHeads, t);
        divisible("--num-query-groups", numQueryGroups, t);
        divisible("--ffn-hidden-size", ffnHiddenSize, t);
        if (moe != null) {   // expert tensor parallelism is the tensor-parallel size
            divisible("--moe-ffn-hidden-size", moe.ffnHiddenSize(), t);
            divisible("--moe-shared-expert-intermediate-size", moe.sharedExpertIntermediateSize(), t);
        }
        if (mtp != null) {   // each MTP depth's eh_proj is column-parallel over the hidden size
            divisible("--hidden-size (with --mtp-num-layers)", hiddenSize, t);
        }
    }

    private static void divisible(String flag, int value, int t) {
        if (value % t != 0) {
            throw new IllegalArgumentException(flag + " (" + value + ") must be divisible by --tensor-model-parallel-size ("
                    + t + ")");
        }
    }

    /**
     * What one of {@code t} tensor-parallel ranks computes: np/t heads, ng/t query groups and an
     * ffn/t-wide MLP; everything else as this config (the layers size their buffers from it).
     */
    public TransformerConfig tensorParallelShard(int t) {
        checkTensorParallelSize(t);
        if (t == 1) {
            return this;
        }
        return new TransformerConfig(numLayers, hiddenSize, ffnHiddenSize / t, numAttentionHeads / t, kvChannels,
                numQueryGroups / t, seqLength, maxPositionEmbeddings, positionEmbeddingType, rotaryPercent, rotaryBase,
                rotarySeqLenInterpolationFactor, useRopeScaling, ropeScalingFactor, rotaryInterleaved,
                normalization, swiglu, squaredRelu, addBiasLinear, addQkvBias, qkLayernorm, untieEmbeddingsAndOutputWeights,
                attentionDropout, hiddenDropout, initMethodStd, layernormEpsilon, applyLayernorm1p, applyQueryKeyLayerScaling,
                geluTanh, vocabSize, makeVocabSizeDivisibleBy, moe == null ? null : moe.tensorParallelShard(t), mla, mtp);
    }

    /** This config with {@code --apply-layernorm-1p} set as given (the same model once 1 is added to its norm weights). */
    public TransformerConfig withLayernorm1p(boolean on) {
        return toBuilder().applyLayernorm1p(on).build();
    }

    /** A builder holding every value of this config (the derived sizes included), to change some of them. */
    public Builder toBuilder() {
        return builder().numLayers(numLayers).hiddenSize(hiddenSize).ffnHiddenSize(ffnHiddenSize)
                .numAttentionHeads(numAttentionHeads).kvChannels(kvChannels).numQueryGroups(numQueryGroups).seqLength(seqLength)
                .maxPositionEmbeddings(maxPositionEmbeddings).positionEmbeddingType(positionEmbeddingType)
                .rotaryPercent(rotaryPercent).rotaryBase(rotaryBase)
                .rotarySeqLenInterpolationFactor(rotarySeqLenInterpolationFactor).useRopeScaling(useRopeScaling)
                .ropeScalingFactor(ropeScalingFactor).rotaryInterleaved(rotaryInterleaved).normalization(normalization)
                .swiglu(swiglu).squaredRelu(squaredRelu)
                .addBiasLinear(addBiasLinear).addQkvBias(addQkvBias).qkLayernorm(qkLayernorm)
                .untieEmbeddingsAndOutputWeights(untieEmbeddingsAndOutputWeights)
                .attentionDropout(attentionDropout).hiddenDropout(hiddenDropout).initMethodStd(initMethodStd)
                .layernormEpsilon(layernormEpsilon).applyLayernorm1p(applyLayernorm1p)
                .applyQueryKeyLayerScaling(applyQueryKeyLayerScaling).geluTanh(geluTanh).vocabSize(vocabSize)
                .makeVocabSizeDivisibleBy(makeVocabSizeDivisibleBy).moe(moe).mla(mla).mtp(mtp);
    }

    /** Whether layer {@code layer} (0-based) is a mixture-of-experts layer ({@link MoeConfig#layerFreq}). */
    public boolean isMoeLayer(int layer) {
        return moe != null && moe.moeLayers(numLayers)[layer];
    }

    /** Whether the linear layer {@code name} ({@code self_attention.linear_qkv}, {@code mlp.linear_fc1}, ...) has a bias. */
    public boolean hasBias(String name) {
        if (isMlaProjection(name)) {   // Megatron builds MLA's q and kv projections with bias=False
            return false;
        }
        return addBiasLinear || addQkvBias && name.endsWith("linear_qkv");
    }

    private static boolean isMlaProjection(String name) {
        return name.endsWith("linear_q_proj") || name.endsWith("linear_q_down_proj") || name.endsWith("linear_q_up_proj")
                || name.endsWith("linear_kv_down_proj") || name.endsWith("linear_kv_up_proj");
    }

    /** Query heads per key/value group. */
    public int headsPerGroup() {
        return numAttentionHeads / numQueryGroups;
    }

    /** Output width of the fused QKV projection: {@code (np + 2 ng) d}. */
    public int qkvWidth() {
        return (numAttentionHeads + 2 * numQueryGroups) * kvChannels;
    }

    /** Width of the attention output entering linear_proj: {@code np d} ({@code np v_head_dim} with MLA). */
    public int attentionWidth() {
        return numAttentionHeads * (mla == null ? kvChannels : mla.vHeadDim());
    }

    /**
     * The query/key head dimension of the core attention: d, or MLA's {@code qk_head_dim + qk_pos_emb_head_dim} (its
     * values are padded to it: see {@code MultiLatentAttention}).
     */
    public int attentionHeadDim() {
        return mla == null ? kvChannels : mla.qHeadDim();
    }

    /** Key/value heads of the core attention: ng, or np with MLA (each head has its own key and value). */
    public int attentionKeyValueHeads() {
        return mla == null ? numQueryGroups : numAttentionHeads;
    }

    /** Output width of fc1: ffn, or 2·ffn with swiglu. */
    public int fc1Width() {
        return swiglu ? 2 * ffnHiddenSize : ffnHiddenSize;
    }

    /** Output width of an expert's fc1 ({@code --moe-ffn-hidden-size}, doubled with swiglu); 0 for a dense model. */
    public int expertFc1Width() {
        return moe == null ? 0 : swiglu ? 2 * moe.ffnHiddenSize() : moe.ffnHiddenSize();
    }

    /** Output width of the shared experts' fc1 ({@code --moe-shared-expert-intermediate-size}, doubled with swiglu). */
    public int sharedExpertFc1Width() {
        return moe == null ? 0 : swiglu ? 2 * moe.sharedExpertIntermediateSize() : moe.sharedExpertIntermediateSize();
    }

    /** Channels of each head that rope rotates (even). */
    public int rotaryDim() {
        return Math.round(kvChannels * rotaryPercent) / 2 * 2;
    }

    /** Std of the init of the layers that write into the residual stream (linear_proj, linear_fc2): {@code std / sqrt(2 L)}. */
    public float outputLayerInitStd() {
        return (float) (initMethodStd / Math.sqrt(2.0 * numLayers));
    }

    /** Checks every knob and the relations between them; returns this. Throws with a sentence naming the flag. */
    public TransformerConfig validate() {
        if (squaredRelu && swiglu) {   // Megatron asserts it (core_transformer_config_from_args) before sizes matter
            throw new IllegalArgumentException("--squared-relu and --swiglu cannot be combined: each sets the MLP's activation");
        }
        positive("--num-layers", numLayers);
        positive("--hidden-size", hiddenSize);
        positive("--ffn-hidden-size", ffnHiddenSize);
        positive("--num-attention-heads", numAttentionHeads);
        positive("--kv-channels", kvChannels);
        positive("--num-query-groups", numQueryGroups);
        positive("--seq-length", seqLength);
        positive("--max-position-embeddings", maxPositionEmbeddings);
        positive("vocabulary size", vocabSize);
        positive("--make-vocab-size-divisible-by", makeVocabSizeDivisibleBy);
        if (positionEmbeddingType == null || normalization == null) {
            throw new IllegalArgumentException("--position-embedding-type and --normalization must be set");
        }
        if (numAttentionHeads % numQueryGroups != 0) {
            throw new IllegalArgumentException("--num-attention-heads (" + numAttentionHeads
                    + ") must be a multiple of --num-query-groups (" + numQueryGroups + ")");
        }
        if (seqLength > maxPositionEmbeddings) {
            throw new IllegalArgumentException("--seq-length (" + seqLength + ") must not exceed --max-position-embeddings ("
                    + maxPositionEmbeddings + ")");
        }
        if (positionEmbeddingType == PositionEmbeddingType.ROPE) {
            if (!(rotaryPercent > 0 && rotaryPercent <= 1)) {
                throw new IllegalArgumentException("--rotary-percent must be in (0, 1], got " + rotaryPercent);
            }
            if (rotaryDim() < 2) {
                throw new IllegalArgumentException("--rotary-percent " + rotaryPercent + " of --kv-channels " + kvChannels
                        + " leaves fewer than 2 rotary channels");
            }
            if (!(rotarySeqLenInterpolationFactor >= 0)) {
                throw new IllegalArgumentException("--rotary-seq-len-interpolation-factor must be positive, got "
                        + rotarySeqLenInterpolationFactor);
            }
            if (useRopeScaling && !(ropeScalingFactor > 0)) {
                throw new IllegalArgumentException("--rope-scaling-factor must be positive, got " + ropeScalingFactor);
            }
            if (!(rotaryBase > 0)) {
                throw new IllegalArgumentException("--rotary-base must be positive, got " + rotaryBase);
            }
        }
        probability("--attention-dropout", attentionDropout);
        probability("--hidden-dropout", hiddenDropout);
        if (!(initMethodStd > 0) || Float.isInfinite(initMethodStd)) {
            throw new IllegalArgumentException("--init-method-std must be a positive number, got " + initMethodStd);
        }
        if (!(layernormEpsilon > 0) || Float.isInfinite(layernormEpsilon)) {
            throw new IllegalArgumentException("--layernorm-epsilon must be a positive number, got " + layernormEpsilon);
        }
        if (mla != null) {
            mla.validate();
            if (numQueryGroups != numAttentionHeads) {   // Megatron's validate_args, in its words
                throw new IllegalArgumentException("Group query attention is mutually exclusive with multi latent attention.");
            }
            if (rotaryPercent != 1f) {
                throw new IllegalArgumentException("--rotary-percent " + rotaryPercent + " is not supported with "
                        + "--multi-latent-attention in Megatron-J: MLA rotates all --qk-pos-emb-head-dim channels");
            }
            if (rotaryInterleaved) {
                throw new IllegalArgumentException("--rotary-interleaved is not supported with --multi-latent-attention"
                        + " (Megatron's YaRN rope asserts it off; MLA already rotates neighbouring pairs)");
            }
            if (maxPositionEmbeddings < 1) {
                throw new IllegalArgumentException("--max-position-embeddings must be positive");
            }
        }
        if (moe != null) {
            moe.validate(numLayers);
            if (addBiasLinear) {   // Megatron adds expert biases scaled by the routing weights; Megatron-J does not
                throw new IllegalArgumentException("--num-experts needs --disable-bias-linear in Megatron-J (the experts and"
                        + " the router have no biases here)");
            }
        }
        if (mtp != null) {
            mtp.validate(positionEmbeddingType);
        }
        return this;
    }

    /** The MTP depths ({@code --mtp-num-layers}); 0 without Multi-Token Prediction. */
    public int mtpNumLayers() {
        return mtp == null ? 0 : mtp.numLayers();
    }

    /** Whether the MTP depths' transformer layers are MoE layers: Megatron builds them from the decoder's last layer's spec. */
    public boolean mtpLayersAreMoe() {
        return mtp != null && isMoeLayer(numLayers - 1);
    }

    private static void positive(String flag, int value) {
        if (value <= 0) {
            throw new IllegalArgumentException(flag + " must be positive, got " + value);
        }
    }

    private static void probability(String flag, float p) {
        if (!(p >= 0 && p < 1)) {
            throw new IllegalArgumentException(flag + " must be in [0, 1), got " + p);
        }
    }

    /** A builder holding Megatron's defaults; sizes left at 0 are derived in {@link Builder#build()}. */
    public static Builder builder() {
        return new Builder();
    }

    /** GPT-2 small (124M): 12 layers, h 768, 12 heads, 1024 positions, learned positions, LayerNorm, tanh gelu, tied output. */
    public static TransformerConfig gpt2Small(int vocabSize) {
        return builder().numLayers(12).hiddenSize(768).numAttentionHeads(12).seqLength(1024).maxPositionEmbeddings(1024)
                .vocabSize(vocabSize).build();
    }

    /** GPT-2 medium (350M): 24 layers, h 1024, 16 heads. */
    public static TransformerConfig gpt2Medium(int vocabSize) {
        return builder().numLayers(24).hiddenSize(1024).numAttentionHeads(16).seqLength(1024).maxPositionEmbeddings(1024)
                .vocabSize(vocabSize).build();
    }

    /** Mutable companion of the record; every setter is named after its flag. */
    public static final class Builder {
        private int numLayers;
        private int hiddenSize;
        private int ffnHiddenSize;
        private int numAttentionHeads;
        private int kvChannels;
        private int numQueryGroups;
        private int seqLength;
        private int maxPositionEmbeddings;
        private PositionEmbeddingType positionEmbeddingType = PositionEmbeddingType.LEARNED_ABSOLUTE;
        private float rotaryPercent = 1.0f;
        private float rotaryBase = 10000f;
        private float rotarySeqLenInterpolationFactor;
        private boolean useRopeScaling;
        private float ropeScalingFactor = 8f;
        private boolean rotaryInterleaved;
        private Normalization normalization = Normalization.LAYER_NORM;
        private boolean swiglu;
        private boolean squaredRelu;
        private boolean addBiasLinear = true;
        private boolean addQkvBias;
        private boolean qkLayernorm;
        private boolean untieEmbeddingsAndOutputWeights;
        private float attentionDropout = 0.1f;
        private float hiddenDropout = 0.1f;
        private float initMethodStd = 0.02f;
        private float layernormEpsilon = 1e-5f;
        private boolean applyLayernorm1p;
        private boolean applyQueryKeyLayerScaling;
        private boolean geluTanh = true;
        private int vocabSize;
        private int makeVocabSizeDivisibleBy = 128;
        private MoeConfig moe;
        private MlaConfig mla;
        private MtpConfig mtp;

        private Builder() {
        }

        public Builder numLayers(int v) { numLayers = v; return this; }
        public Builder hiddenSize(int v) { hiddenSize = v; return this; }
        /** 0 derives Megatron's default (4h, or the swiglu size). */
        public Builder ffnHiddenSize(int v) { ffnHiddenSize = v; return this; }
        public Builder numAttentionHeads(int v) { numAttentionHeads = v; return this; }
        /** 0 derives h / np. */
        public Builder kvChannels(int v) { kvChannels = v; return this; }
        /** 0 means no GQA: one group per head. */
        public Builder numQueryGroups(int v) { numQueryGroups = v; return this; }
        public Builder seqLength(int v) { seqLength = v; return this; }
        /** 0 derives seqLength. */
        public Builder maxPositionEmbeddings(int v) { maxPositionEmbeddings = v; return this; }
        public Builder positionEmbeddingType(PositionEmbeddingType v) { positionEmbeddingType = v; return this; }
        public Builder rotaryPercent(float v) { rotaryPercent = v; return this; }
        public Builder rotaryBase(float v) { rotaryBase = v; return this; }
        /** 0: none. */
        public Builder rotarySeqLenInterpolationFactor(float v) { rotarySeqLenInterpolationFactor = v; return this; }
        public Builder useRopeScaling(boolean v) { useRopeScaling = v; return this; }
        public Builder ropeScalingFactor(float v) { ropeScalingFactor = v; return this; }
        public Builder rotaryInterleaved(boolean v) { rotaryInterleaved = v; return this; }
        public Builder normalization(Normalization v) { normalization = v; return this; }
        public Builder swiglu(boolean v) { swiglu = v; return this; }
        public Builder squaredRelu(boolean v) { squaredRelu = v; return this; }
        public Builder addBiasLinear(boolean v) { addBiasLinear = v; return this; }
        public Builder addQkvBias(boolean v) { addQkvBias = v; return this; }
        public Builder qkLayernorm(boolean v) { qkLayernorm = v; return this; }
        public Builder untieEmbeddingsAndOutputWeights(boolean v) { untieEmbeddingsAndOutputWeights = v; return this; }
        public Builder attentionDropout(float v) { attentionDropout = v; return this; }
        public Builder hiddenDropout(float v) { hiddenDropout = v; return this; }
        public Builder initMethodStd(float v) { initMethodStd = v; return this; }
        public Builder layernormEpsilon(float v) { layernormEpsilon = v; return this; }
        public Builder applyLayernorm1p(boolean v) { applyLayernorm1p = v; return this; }
        public Builder applyQueryKeyLayerScaling(boolean v) { applyQueryKeyLayerScaling = v; return this; }
        public Builder geluTanh(boolean v) { geluTanh = v; return this; }
        public Builder vocabSize(int v) { vocabSize = v; return this; }
        public Builder makeVocabSizeDivisibleBy(int v) { makeVocabSizeDivisibleBy = v; return this; }
        /** null: a dense model. */
        public Builder moe(MoeConfig v) { moe = v; return this; }
        /** null: standard attention. */
        public Builder mla(MlaConfig v) { mla = v; return this; }
        /** null: no Multi-Token Prediction. */
        public Builder mtp(MtpConfig v) { mtp = v; return this; }

        /** Fills the derived sizes as Megatron's argument parsing does, then validates. */
        public TransformerConfig build() {
            if (hiddenSize <= 0 || numAttentionHeads <= 0) {
                throw new IllegalArgumentException("--hidden-size and --num-attention-heads must be positive, got "
                        + hiddenSize + " and " + numAttentionHeads);
            }
            int kv = kvChannels;
            if (kv == 0) {
                if (hiddenSize % numAttentionHeads != 0) {
                    throw new IllegalArgumentException("--hidden-size (" + hiddenSize + ") must be a multiple of "
                            + "--num-attention-heads (" + numAttentionHeads + ") unless --kv-channels is given");
                }
                kv = hiddenSize / numAttentionHeads;
            }
            int ffn = ffnHiddenSize;
            if (ffn == 0) {
                // Megatron: swiglu keeps the parameter count of a 4h MLP, rounded down to a multiple of 64.
                ffn = swiglu ? (int) ((4L * hiddenSize * 2 / 3) / 64 * 64) : 4 * hiddenSize;
            }
            int groups = numQueryGroups == 0 ? numAttentionHeads : numQueryGroups;
            int maxPositions = maxPositionEmbeddings == 0 ? seqLength : maxPositionEmbeddings;
            return new TransformerConfig(numLayers, hiddenSize, ffn, numAttentionHeads, kv, groups, seqLength, maxPositions,
                    positionEmbeddingType, rotaryPercent, rotaryBase, rotarySeqLenInterpolationFactor, useRopeScaling,
                    ropeScalingFactor, rotaryInterleaved, normalization, swiglu, squaredRelu, addBiasLinear, addQkvBias,
                    qkLayernorm, untieEmbeddingsAndOutputWeights, attentionDropout, hiddenDropout, initMethodStd, layernormEpsilon,
                    applyLayernorm1p, applyQueryKeyLayerScaling, geluTanh, vocabSize, makeVocabSizeDivisibleBy, moe, mla, mtp).validate();
        }
    }
}
