package org.megatronj.parallel.checkpoint;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.megatronj.memory.DType;
import org.megatronj.model.MoeConfig;
import org.megatronj.model.Normalization;
import org.megatronj.model.PositionEmbeddingType;
import org.megatronj.model.TransformerConfig;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The {@code config.json} of a Hugging Face Llama-family model ({@link Arch}) and its {@link TransformerConfig}, as
 * Megatron-LM's converters map them: RMSNorm ({@code rms_norm_eps}), rope ({@code rope_theta}, rotate-half, Llama 3.x's
 * {@code rope_scaling} or linear interpolation), SwiGLU without biases, grouped-query attention
 * ({@code num_key_value_heads}), {@code head_dim} as {@code --kv-channels}, Qwen2's qkv bias, Qwen3's q/k norms,
 * Mixtral's and Qwen's mixture-of-experts layers. What these architectures allow but Megatron-J does not compute the
 * same way (a sliding window shorter than the context, other rope scalings, o_proj or MLP biases, router jitter) is
 * refused naming the config.json field.
 */
public final class LlamaHfConfig {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** The supported {@code model_type}s and the {@code architectures} entry transformers writes for each. */
    public enum Arch {
        LLAMA("llama", "LlamaForCausalLM", 10000),
        MISTRAL("mistral", "MistralForCausalLM", 10000),
        QWEN2("qwen2", "Qwen2ForCausalLM", 10000),
        QWEN3("qwen3", "Qwen3ForCausalLM", 10000),
        MIXTRAL("mixtral", "MixtralForCausalLM", 1e6),
        QWEN2_MOE("qwen2_moe", "Qwen2MoeForCausalLM", 10000),
        QWEN3_MOE("qwen3_moe", "Qwen3MoeForCausalLM", 10000);

        final String modelType;
        final String className;
        /** transformers' default {@code rope_theta} for the config class. */
        final double defaultTheta;

        Arch(String modelType, String className, double defaultTheta) {
            this.modelType = modelType;
            this.className = className;
            this.defaultTheta = defaultTheta;
        }

        public String modelType() {
            return modelType;
        }

        public boolean moe() {
            return this == MIXTRAL || this == QWEN2_MOE || this == QWEN3_MOE;
        }

        /** Qwen2's q/k/v projections carry biases (o_proj does not): Megatron's {@code --add-qkv-bias}. */
        boolean qkvBias() {
            return this == QWEN2 || this == QWEN2_MOE;
        }

        /** Qwen3's RMSNorm over each query and key head: Megatron's {@code --qk-layernorm}. */
        boolean qkNorm() {
            return this == QWEN3 || this == QWEN3_MOE;
        }

        /** Whether the config class reads {@code head_dim} (Qwen2's always uses hidden_size / num_attention_heads). */
        boolean hasHeadDim() {
            return !qkvBias();
        }

        /** Qwen's configs switch the window with {@code use_sliding_window}; Mistral's and Mixtral's by its value. */
        boolean slidingWindowSwitch() {
            return this != MISTRAL && this != MIXTRAL && this != LLAMA;
        }

        public static Arch of(String modelType) {
            for (Arch a : values()) {
                if (a.modelType.equals(modelType)) {
                    return a;
                }
            }
            return null;
        }

        static String names() {
            StringBuilder b = new StringBuilder();
            for (Arch a : values()) {
                b.append(b.isEmpty() ? "" : ", ").append('\'').append(a.modelType).append('\'');
            }
            return b.toString();
        }
    }

    private LlamaHfConfig() {
    }

    /** The architecture that {@code model_type} names; null for one this class does not read (gpt2 included). */
    public static Arch archOf(JsonNode hfConfig) {
        JsonNode t = hfConfig == null ? null : hfConfig.get("model_type");
        return t == null || !t.isTextual() ? null : Arch.of(t.asText());
    }

    /** Every model_type import-hf reads, for messages. */
    public static String supportedModelTypes() {
        return "'gpt2', " + Arch.names() + ", '" + DeepseekHfConfig.MODEL_TYPE + "'";
    }

    /** Maps {@code c} (from {@code file}) to Megatron's configuration; {@code makeVocabSizeDivisibleBy} pads the embedding rows. */
    public static TransformerConfig toTransformerConfig(ObjectNode c, Path file, int makeVocabSizeDivisibleBy) {
        String type = Gpt2HfConfig.optionalText(c, file, "model_type", "");
        Arch arch = Arch.of(type);
        if (arch == null) {
            throw new HfConfigException(file + ": model_type is '" + type + "'; supported: " + supportedModelTypes());
        }
        String act = Gpt2HfConfig.optionalText(c, file, "hidden_act", "silu");
        if (!act.equals("silu")) {
            throw new HfConfigException(file + ": hidden_act is '" + act + "'; only 'silu' (SwiGLU) is supported");
        }
        int hidden = Gpt2HfConfig.requiredInt(c, file, "hidden_size");
        int layers = Gpt2HfConfig.requiredInt(c, file, "num_hidden_layers");
        int heads = Gpt2HfConfig.requiredInt(c, file, "num_attention_heads");
        int groups = c.hasNonNull("num_key_value_heads") ? Gpt2HfConfig.requiredInt(c, file, "num_key_value_heads") : heads;
        int positions = Gpt2HfConfig.requiredInt(c, file, "max_position_embeddings");
        int vocab = Gpt2HfConfig.requiredInt(c, file, "vocab_size");
        int ffn = Gpt2HfConfig.requiredInt(c, file, "intermediate_size");
        if (heads % groups != 0) {
            throw new HfConfigException(file + ": num_attention_heads " + heads + " is not a multiple of num_key_value_heads " + groups);
        }
        int headDim;
        if (arch.hasHeadDim() && c.hasNonNull("head_dim")) {
            headDim = Gpt2HfConfig.requiredInt(c, file, "head_dim");
        } else if (hidden % heads != 0) {
            throw new HfConfigException(file + ": hidden_size " + hidden + " is not a multiple of num_attention_heads " + heads
                    + (arch.hasHeadDim() ? " and head_dim is not given" : ""));
        } else {
            headDim = hidden / heads;
        }
        if (arch == Arch.LLAMA || arch.qkNorm() || arch == Arch.MISTRAL || arch == Arch.MIXTRAL) {
            Gpt2HfConfig.refuseTrue(c, file, "attention_bias", "biases on q_proj, k_proj, v_proj and o_proj; Megatron's"
                    + " --add-qkv-bias has none on the output projection");
        }
        Gpt2HfConfig.refuseTrue(c, file, "mlp_bias", "biases on gate_proj, up_proj and down_proj");
        if (c.hasNonNull("partial_rotary_factor")
                && Gpt2HfConfig.optionalNumber(c, file, "partial_rotary_factor", 1, x -> x > 0 && x <= 1, "a number in (0, 1]") != 1) {
            throw new HfConfigException(file + ": partial_rotary_factor " + c.get("partial_rotary_factor")
                    + " is not supported (only 1: rope over the whole head)");
        }
        refuseSlidingWindow(c, file, arch, positions);
        TransformerConfig.Builder b = TransformerConfig.builder()
                .numLayers(layers).hiddenSize(hidden).numAttentionHeads(heads).numQueryGroups(groups).kvChannels(headDim)
                .ffnHiddenSize(ffn).seqLength(positions).maxPositionEmbeddings(positions)
                .positionEmbeddingType(PositionEmbeddingType.ROPE)
                .rotaryBase((float) Gpt2HfConfig.optionalNumber(c, file, "rope_theta", arch.defaultTheta, x -> x > 0,
                        "a positive number"))
                // geluTanh false: what Megatron's --disable-bias-linear sets (no fused bias-gelu); swiglu does not use it
                .normalization(Normalization.RMS_NORM).swiglu(true).addBiasLinear(false).geluTanh(false)
                .addQkvBias(arch.qkvBias()).qkLayernorm(arch.qkNorm())
                .untieEmbeddingsAndOutputWeights(!Gpt2HfConfig.optionalBoolean(c, file, "tie_word_embeddings", false))
                .layernormEpsilon((float) Gpt2HfConfig.optionalNumber(c, file, "rms_norm_eps", 1e-6, x -> x > 0, "a positive number"))
                .initMethodStd((float) Gpt2HfConfig.optionalNumber(c, file, "initializer_range", 0.02, x -> x > 0,
                        "a positive number"))
                // transformers' Llama family has no hidden dropout; attention dropout is 0 in every released model.
                .attentionDropout(0f).hiddenDropout(0f)
                .vocabSize(vocab).makeVocabSizeDivisibleBy(makeVocabSizeDivisibleBy);
        ropeScaling(c, file, b);
        if (arch.moe()) {
            b.moe(moe(c, file, arch, layers));
        }
        try {
            return b.build();
        } catch (IllegalArgumentException e) {
            throw new HfConfigException(file + ": " + e.getMessage());
        }
    }

    private static void refuseSlidingWindow(JsonNode c, Path file, Arch arch, int positions) {
        if (arch.slidingWindowSwitch() && !Gpt2HfConfig.optionalBoolean(c, file, "use_sliding_window", false)) {
            return;
        }
        if (c.hasNonNull("sliding_window")) {
            int window = Gpt2HfConfig.positiveInt(c, file, "sliding_window", "null or a positive integer");
            if (window < positions) {
                throw new HfConfigException(file + ": sliding_window " + window + " is smaller than max_position_embeddings "
                        + positions + (arch.slidingWindowSwitch() ? " with use_sliding_window true" : "")
                        + "; sliding-window attention is not supported (only full causal attention)");
            }
        }
    }

    /** {@code rope_scaling}: null, "default", Llama 3.x's "llama3" (with Megatron's fixed constants) or "linear". */
    private static void ropeScaling(JsonNode c, Path file, TransformerConfig.Builder b) {
        JsonNode rs = c.get("rope_scaling");
        if (rs == null || rs.isNull()) {
            return;
        }
        if (!rs.isObject()) {
            throw Gpt2HfConfig.wrongValue(file, "rope_scaling", rs, "null or an object");
        }
        String key = rs.has("rope_type") ? "rope_type" : "type";
        JsonNode t = rs.get(key);
        if (t != null && !t.isTextual()) {
            throw Gpt2HfConfig.wrongValue(file, "rope_scaling." + key, t, "a string");
        }
        String type = t == null ? "default" : t.asText();
        switch (type) {
            case "default" -> { }
            case "llama3" -> {
                double factor = factor(rs, file);
                // Megatron's --use-rope-scaling (and Megatron-J's RotaryEmbedding) fixes the other three constants.
                fixed(rs, file, "low_freq_factor", 1);
                fixed(rs, file, "high_freq_factor", 4);
                fixed(rs, file, "original_max_position_embeddings", 8192);
                b.useRopeScaling(true).ropeScalingFactor((float) factor);
            }
            case "linear" -> b.rotarySeqLenInterpolationFactor((float) factor(rs, file));
            default -> throw new HfConfigException(file + ": rope_scaling." + key + " '" + type + "' is not supported"
                    + " (null, 'default', 'llama3' or 'linear')");
        }
    }

    private static double factor(JsonNode rs, Path file) {
        JsonNode v = rs.get("factor");
        if (v == null || !v.isNumber() || !(v.asDouble() > 0) || Double.isInfinite(v.asDouble())) {
            throw new HfConfigException(file + ": rope_scaling.factor is " + v + "; expected a positive number");
        }
        return v.asDouble();
    }

    private static void fixed(JsonNode rs, Path file, String key, double value) {
        JsonNode v = rs.get(key);
        if (v == null || !v.isNumber() || v.asDouble() != value) {
            throw new HfConfigException(file + ": rope_scaling." + key + " is " + v + "; Megatron's --use-rope-scaling"
                    + " computes Llama 3.x's scaling with " + key + " " + fmt(value) + " only");
        }
    }

    private static String fmt(double v) {
        return v == Math.rint(v) ? Long.toString((long) v) : Double.toString(v);
    }

    private static MoeConfig moe(JsonNode c, Path file, Arch arch, int layers) {
        MoeConfig.Builder m;
        if (arch == Arch.MIXTRAL) {
            int experts = Gpt2HfConfig.requiredInt(c, file, "num_local_experts");
            m = new MoeConfig.Builder(experts, Gpt2HfConfig.requiredInt(c, file, "intermediate_size"));
            if (Gpt2HfConfig.optionalNumber(c, file, "router_jitter_noise", 0, x -> x >= 0, "a non-negative number") != 0) {
                throw new HfConfigException(file + ": router_jitter_noise " + c.get("router_jitter_noise")
                        + " is not supported (only 0: no multiplicative noise on the router input)");
            }
            // softmax over all experts, top-k, renormalised over the chosen = Megatron's default softmax over the top-k logits
        } else {
            int experts = Gpt2HfConfig.requiredInt(c, file, "num_experts");
            m = new MoeConfig.Builder(experts, Gpt2HfConfig.requiredInt(c, file, "moe_intermediate_size"));
            // norm_topk_prob false: softmax over all experts, top-k, not renormalised = Megatron's --moe-router-pre-softmax
            boolean norm = Gpt2HfConfig.optionalBoolean(c, file, "norm_topk_prob", false);
            m.routing(!norm, MoeConfig.ScoreFunction.SOFTMAX, 0f);
            if (arch == Arch.QWEN2_MOE && c.hasNonNull("shared_expert_intermediate_size")
                    && c.get("shared_expert_intermediate_size").asInt() != 0) {
                m.sharedExperts(Gpt2HfConfig.requiredInt(c, file, "shared_expert_intermediate_size"), true);
            }
            m.layerFreq(layerPattern(c, file, layers));
        }
        m.routerTopk(Gpt2HfConfig.requiredInt(c, file, "num_experts_per_tok"));
        if (Gpt2HfConfig.optionalBoolean(c, file, "output_router_logits", false)) {   // transformers adds the loss only then
            m.loadBalancing(MoeConfig.LoadBalancing.AUX_LOSS, (float) Gpt2HfConfig.optionalNumber(c, file,
                    "router_aux_loss_coef", 0.001, x -> x >= 0, "a non-negative number"));
        }
        return m.build();
    }

    /** Qwen-MoE's sparse layers: not in mlp_only_layers and (index + 1) a multiple of decoder_sparse_step, as --moe-layer-freq. */
    private static String layerPattern(JsonNode c, Path file, int layers) {
        int step = c.has("decoder_sparse_step") ? Gpt2HfConfig.positiveInt(c, file, "decoder_sparse_step", "a positive integer") : 1;
        boolean[] dense = new boolean[layers];
        JsonNode only = c.get("mlp_only_layers");
        if (only != null && !only.isNull()) {
            if (!only.isArray()) {
                throw Gpt2HfConfig.wrongValue(file, "mlp_only_layers", only, "a list of layer indices");
            }
            for (JsonNode v : only) {
                if (!v.isIntegralNumber() || v.asInt() < 0 || v.asInt() >= layers) {
                    throw Gpt2HfConfig.wrongValue(file, "mlp_only_layers", only, "a list of layer indices below num_hidden_layers");
                }
                dense[v.asInt()] = true;
            }
        }
        List<String> bits = new ArrayList<>();
        boolean any = false;
        for (int l = 0; l < layers; l++) {
            boolean sparse = !dense[l] && (l + 1) % step == 0;
            any |= sparse;
            bits.add(sparse ? "1" : "0");
        }
        if (!any) {
            throw new HfConfigException(file + ": decoder_sparse_step and mlp_only_layers leave no mixture-of-experts layer;"
                    + " import it as a dense model");
        }
        return bits.stream().allMatch("1"::equals) ? "1" : "[" + String.join(",", bits) + "]";
    }

    /**
     * The {@code pretrain gpt} model flags that build {@code c} (so a fine-tuning run can name them; Megatron's
     * {@code --use-checkpoint-args} takes most but not {@code --norm-epsilon}, {@code --use-rope-scaling},
     * {@code --rope-scaling-factor}, {@code --rotary-seq-len-interpolation-factor} or {@code --qk-layernorm}).
     */
    public static String megatronFlags(TransformerConfig c) {
        List<String> f = new ArrayList<>();
        add(f, "--num-layers", c.numLayers(), "--hidden-size", c.hiddenSize(), "--ffn-hidden-size", c.ffnHiddenSize(),
                "--num-attention-heads", c.numAttentionHeads());
        if (c.numQueryGroups() != c.numAttentionHeads()) {
            f.add("--group-query-attention");
            add(f, "--num-query-groups", c.numQueryGroups());
        }
        if (c.kvChannels() * c.numAttentionHeads() != c.hiddenSize()) {
            add(f, "--kv-channels", c.kvChannels());
        }
        add(f, "--max-position-embeddings", c.maxPositionEmbeddings(), "--position-embedding-type", "rope",
                "--rotary-base", num(c.rotaryBase()));
        if (c.useRopeScaling()) {
            f.add("--use-rope-scaling");
            add(f, "--rope-scaling-factor", num(c.ropeScalingFactor()));
        }
        if (c.rotarySeqLenInterpolationFactor() > 0) {
            add(f, "--rotary-seq-len-interpolation-factor", num(c.rotarySeqLenInterpolationFactor()));
        }
        add(f, "--normalization", "RMSNorm", "--norm-epsilon", num(c.layernormEpsilon()));
        f.add("--swiglu");
        f.add("--disable-bias-linear");
        if (c.addQkvBias()) {
            f.add("--add-qkv-bias");
        }
        if (c.qkLayernorm()) {
            f.add("--qk-layernorm");
        }
        if (c.untieEmbeddingsAndOutputWeights()) {
            f.add("--untie-embeddings-and-output-weights");
        }
        add(f, "--attention-dropout", "0", "--hidden-dropout", "0", "--init-method-std", num(c.initMethodStd()),
                "--make-vocab-size-divisible-by", c.makeVocabSizeDivisibleBy());
        MoeConfig m = c.moe();
        if (m != null) {
            add(f, "--num-experts", m.numExperts(), "--moe-router-topk", m.routerTopk(), "--moe-ffn-hidden-size", m.ffnHiddenSize());
            if (!m.layerFreq().equals("1")) {
                add(f, "--moe-layer-freq", m.layerFreq());
            }
            if (m.routerPreSoftmax()) {
                f.add("--moe-router-pre-softmax");
            }
            if (m.sharedExpertIntermediateSize() > 0) {
                add(f, "--moe-shared-expert-intermediate-size", m.sharedExpertIntermediateSize());
                if (m.sharedExpertGate()) {
                    f.add("--moe-shared-expert-gate");
                }
            }
            if (m.auxLossCoeff() > 0) {
                add(f, "--moe-aux-loss-coeff", num(m.auxLossCoeff()));
            }
        }
        return String.join(" ", f);
    }

    private static void add(List<String> f, Object... flagValues) {
        for (Object o : flagValues) {
            f.add(String.valueOf(o));
        }
    }

    private static String num(float v) {
        return v == Math.rint(v) && Math.abs(v) < 1e9 ? Long.toString((long) v) : Float.toString(v);
    }

    /**
     * The architecture an export writes for {@code config}: that of {@code original} (the imported config.json) when the
     * model still has its shape, else the one the shape implies (MoE: Qwen3-MoE with q/k norms, Qwen2-MoE with qkv bias,
     * shared experts or pre-softmax routing, else Mixtral; dense: Qwen3, Qwen2, else Llama).
     */
    public static Arch exportArch(TransformerConfig config, JsonNode original) {
        Arch from = archOf(original);
        if (from != null) {
            return from;
        }
        if (config.moe() != null) {
            MoeConfig m = config.moe();
            if (config.qkLayernorm()) {
                return Arch.QWEN3_MOE;
            }
            return config.addQkvBias() || m.sharedExpertIntermediateSize() > 0 || m.routerPreSoftmax() ? Arch.QWEN2_MOE : Arch.MIXTRAL;
        }
        return config.qkLayernorm() ? Arch.QWEN3 : config.addQkvBias() ? Arch.QWEN2 : Arch.LLAMA;
    }

    /** Whether export-hf writes {@code config} in this family rather than as GPT-2: a Llama-family import, or RMSNorm + SwiGLU + rope. */
    public static boolean isLlamaFamily(TransformerConfig config, JsonNode original) {
        if (original != null && original.has("model_type")) {
            return archOf(original) != null;
        }
        return config.normalization() == Normalization.RMS_NORM && config.swiglu()
                && config.positionEmbeddingType() == PositionEmbeddingType.ROPE;
    }

    /** Refuses what {@code arch} cannot express, naming the Megatron flag. */
    public static void requireShape(Arch arch, TransformerConfig c) {
        String why = null;
        MoeConfig m = c.moe();
        if (c.mla() != null) {   // DeepSeek's Hugging Face model types are not among those carried
            why = "--multi-latent-attention";
        } else if (c.positionEmbeddingType() != PositionEmbeddingType.ROPE) {
            why = "--position-embedding-type " + c.positionEmbeddingType().flagValue();
        } else if (c.normalization() != Normalization.RMS_NORM) {
            why = "--normalization " + c.normalization().flagValue();
        } else if (!c.swiglu()) {
            why = "no --swiglu";
        } else if (c.addBiasLinear()) {
            why = "linear biases (no --disable-bias-linear)";
        } else if (c.rotaryInterleaved()) {
            why = "--rotary-interleaved";
        } else if (c.rotaryPercent() != 1f) {
            why = "--rotary-percent " + c.rotaryPercent();
        } else if (c.useRopeScaling() && c.rotarySeqLenInterpolationFactor() > 0) {
            why = "--use-rope-scaling with --rotary-seq-len-interpolation-factor";
        } else if (c.addQkvBias() != arch.qkvBias()) {
            why = c.addQkvBias() ? "--add-qkv-bias" : "no --add-qkv-bias";
        } else if (c.qkLayernorm() != arch.qkNorm()) {
            why = c.qkLayernorm() ? "--qk-layernorm" : "no --qk-layernorm";
        } else if (!arch.hasHeadDim() && c.kvChannels() * c.numAttentionHeads() != c.hiddenSize()) {
            why = "--kv-channels " + c.kvChannels();
        } else if (c.mtp() != null) {   // transformers' Llama family has no multi-token prediction heads to carry them
            why = "--mtp-num-layers " + c.mtpNumLayers();
        } else if (arch.moe() != (m != null)) {
            why = m == null ? "no --num-experts" : "--num-experts " + m.numExperts();
        } else if (m != null) {
            boolean[] layers = m.moeLayers(c.numLayers());
            boolean allMoe = true;
            for (boolean l : layers) {
                allMoe &= l;
            }
            boolean preSoftmaxOk = arch != Arch.MIXTRAL || !m.routerPreSoftmax();
            if (m.scoreFunction() != MoeConfig.ScoreFunction.SOFTMAX) {
                why = "--moe-router-score-function " + m.scoreFunction().flagValue();
            } else if (!preSoftmaxOk) {
                why = "--moe-router-pre-softmax";
            } else if (m.topkScalingFactor() != 0) {
                why = "--moe-router-topk-scaling-factor " + m.topkScalingFactor();
            } else if (m.routerGroupTopk() > 0) {
                why = "--moe-router-group-topk " + m.routerGroupTopk();
            } else if (m.routerEnableExpertBias()) {
                why = "--moe-router-enable-expert-bias";
            } else if (!m.dropless()) {
                why = "--moe-expert-capacity-factor " + m.expertCapacityFactor();
            } else if (arch == Arch.MIXTRAL && !allMoe) {
                why = "--moe-layer-freq " + m.layerFreq();
            } else if (arch == Arch.QWEN2_MOE && m.sharedExpertIntermediateSize() > 0 && !m.sharedExpertGate()) {
                why = "shared experts without --moe-shared-expert-gate";
            } else if (arch != Arch.QWEN2_MOE && m.sharedExpertIntermediateSize() > 0) {
                why = "--moe-shared-expert-intermediate-size " + m.sharedExpertIntermediateSize();
            }
        }
        if (why != null) {
            throw new HfConfigException(String.format(Locale.ROOT, "a model with %s has no Hugging Face %s (%s) equivalent", why,
                    arch.className, arch.modelType));
        }
    }

    /**
     * The config.json of {@code config} as {@code arch} with weights of {@code dtype}: {@code original} (the imported file,
     * when it is of this architecture) with the shape fields and the dtype overwritten where they differ, so an import
     * followed by an export in the imported dtype gives the same fields back.
     */
    public static ObjectNode toJson(Arch arch, TransformerConfig config, JsonNode original, DType dtype) {
        requireShape(arch, config);
        ObjectNode c = original != null && original.isObject() && archOf(original) == arch
                ? ((ObjectNode) original).deepCopy() : defaults(arch);
        c.put("model_type", arch.modelType);
        c.put("vocab_size", config.vocabSize());
        c.put("hidden_size", config.hiddenSize());
        c.put("intermediate_size", config.moe() != null && arch == Arch.MIXTRAL ? config.moe().ffnHiddenSize() : config.ffnHiddenSize());
        c.put("num_hidden_layers", config.numLayers());
        c.put("num_attention_heads", config.numAttentionHeads());
        c.put("num_key_value_heads", config.numQueryGroups());
        c.put("max_position_embeddings", config.maxPositionEmbeddings());
        if (arch.hasHeadDim() && (c.hasNonNull("head_dim") || config.kvChannels() * config.numAttentionHeads() != config.hiddenSize()
                || arch.qkNorm())) {
            c.put("head_dim", config.kvChannels());
        }
        c.put("hidden_act", "silu");
        putFloat(c, "rms_norm_eps", config.layernormEpsilon());
        putFloat(c, "rope_theta", config.rotaryBase());
        c.put("tie_word_embeddings", !config.untieEmbeddingsAndOutputWeights());
        if (config.useRopeScaling()) {
            JsonNode rs = c.get("rope_scaling");
            if (rs == null || !rs.isObject() || !"llama3".equals(rs.path(rs.has("rope_type") ? "rope_type" : "type").asText())
                    || (float) rs.path("factor").asDouble() != config.ropeScalingFactor()) {
                ObjectNode n = c.putObject("rope_scaling");
                n.put("factor", Double.parseDouble(Float.toString(config.ropeScalingFactor())));
                n.put("low_freq_factor", 1.0);
                n.put("high_freq_factor", 4.0);
                n.put("original_max_position_embeddings", 8192);
                n.put("rope_type", "llama3");
            }
        } else if (config.rotarySeqLenInterpolationFactor() > 0) {
            JsonNode rs = c.get("rope_scaling");
            if (rs == null || !rs.isObject() || !"linear".equals(rs.path(rs.has("rope_type") ? "rope_type" : "type").asText())
                    || (float) rs.path("factor").asDouble() != config.rotarySeqLenInterpolationFactor()) {
                ObjectNode n = c.putObject("rope_scaling");
                n.put("factor", Double.parseDouble(Float.toString(config.rotarySeqLenInterpolationFactor())));
                n.put("rope_type", "linear");
            }
        } else if (c.has("rope_scaling") && !c.get("rope_scaling").isNull()
                && !"default".equals(c.get("rope_scaling").path("rope_type").asText(c.get("rope_scaling").path("type").asText()))) {
            c.putNull("rope_scaling");
        }
        if (c.hasNonNull("sliding_window") && config.maxPositionEmbeddings() > c.get("sliding_window").asInt(Integer.MAX_VALUE)
                && !(arch.slidingWindowSwitch() && !c.path("use_sliding_window").asBoolean(false))) {
            c.putNull("sliding_window");
        }
        MoeConfig m = config.moe();
        if (m != null) {
            c.put("num_experts_per_tok", m.routerTopk());
            if (arch == Arch.MIXTRAL) {
                c.put("num_local_experts", m.numExperts());
            } else {
                c.put("num_experts", m.numExperts());
                c.put("moe_intermediate_size", m.ffnHiddenSize());
                c.put("norm_topk_prob", !m.routerPreSoftmax());
                boolean[] sparse = m.moeLayers(config.numLayers());
                int step = c.path("decoder_sparse_step").asInt(1);
                ArrayNode only = JSON.createArrayNode();
                boolean stepFits = step >= 1;
                for (int l = 0; l < sparse.length && stepFits; l++) {
                    stepFits = sparse[l] ? (l + 1) % step == 0 : true;
                }
                if (!stepFits) {
                    step = 1;
                    c.put("decoder_sparse_step", 1);
                }
                for (int l = 0; l < sparse.length; l++) {
                    if (!sparse[l] && (l + 1) % step == 0) {
                        only.add(l);
                    }
                }
                if (!only.equals(c.get("mlp_only_layers"))) {
                    c.set("mlp_only_layers", only);
                }
                if (arch == Arch.QWEN2_MOE) {
                    c.put("shared_expert_intermediate_size", m.sharedExpertIntermediateSize());
                }
            }
            if (m.effectiveAuxLossCoeff() > 0) {
                c.put("output_router_logits", true);
                putFloat(c, "router_aux_loss_coef", m.auxLossCoeff());
            }
        }
        HfFiles.putDtype(c, dtype);
        return c;
    }

    /** Writes {@code value} unless the field already holds the same float (so 1e-06 stays as written). */
    private static void putFloat(ObjectNode c, String key, float value) {
        if (!c.has(key) || !c.get(key).isNumber() || (float) c.get(key).asDouble() != value) {
            c.put(key, Double.parseDouble(Float.toString(value)));
        }
    }

    private static ObjectNode defaults(Arch arch) {
        ObjectNode c = JSON.createObjectNode();
        c.putArray("architectures").add(arch.className);
        c.put("attention_dropout", 0.0);
        c.put("initializer_range", 0.02);
        c.putNull("rope_scaling");
        c.put("use_cache", true);
        if (arch != Arch.LLAMA) {
            c.putNull("sliding_window");
        }
        if (arch.slidingWindowSwitch()) {
            c.put("use_sliding_window", false);
        }
        return c;
    }
}
