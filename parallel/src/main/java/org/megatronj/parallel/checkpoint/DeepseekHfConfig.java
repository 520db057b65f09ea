package org.megatronj.parallel.checkpoint;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.megatronj.memory.DType;
import org.megatronj.model.MlaConfig;
import org.megatronj.model.MoeConfig;
import org.megatronj.model.Normalization;
import org.megatronj.model.PositionEmbeddingType;
import org.megatronj.model.TransformerConfig;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The {@code config.json} of a Hugging Face DeepSeek-V3 model ({@code model_type} deepseek_v3, transformers'
 * {@code DeepseekV3ForCausalLM}) as a Megatron {@link TransformerConfig}: multi-latent attention with its latent norms
 * ({@code --multi-latent-attention --qk-layernorm}), rope or YaRN on the rotary channels, dense SwiGLU layers before
 * {@code first_k_dense_replace} and mixture-of-experts layers after, routed by sigmoid scores with the
 * {@code e_score_correction_bias} for the choice ({@code --moe-router-enable-expert-bias}), group-limited
 * ({@code n_group}, {@code topk_group}), renormalised and scaled by {@code routed_scaling_factor}, with
 * {@code n_shared_experts} ungated shared experts.
 *
 * <p>What transformers computes differently from Megatron-J is refused naming the field: Megatron's group score is the
 * sum of each group's best {@code topk / group_topk} scores where transformers sums the best two; Megatron's sigmoid
 * routing always renormalises the chosen scores; transformers' latent norms use eps 1e-6 whatever {@code rms_norm_eps}
 * says; Megatron's MLA YaRN fixes the original context and the betas (4096, 32, 1).
 */
public final class DeepseekHfConfig {
    public static final String MODEL_TYPE = "deepseek_v3";
    public static final String CLASS_NAME = "DeepseekV3ForCausalLM";
    /** The eps transformers builds q_a_layernorm and kv_a_layernorm with (DeepseekV3RMSNorm's default). */
    private static final double LATENT_NORM_EPS = 1e-6;

    private DeepseekHfConfig() {
    }

    /** Whether {@code hfConfig} declares a DeepSeek-V3 model. */
    public static boolean isDeepseek(JsonNode hfConfig) {
        return hfConfig != null && MODEL_TYPE.equals(hfConfig.path("model_type").asText(null));
    }

    /**
     * Refuses DeepSeek-V2 by name: its transformers model routes by softmax with 'greedy' or 'group_limited_greedy' (a
     * group scored by its best expert) and has no score-correction bias, an import path this class has no reference
     * logits for.
     */
    public static void refuseOtherDeepseek(JsonNode c, Path file) {
        String type = c.path("model_type").asText("");
        if (type.equals("deepseek_v2")) {
            throw new HfConfigException(file + ": model_type 'deepseek_v2' is not supported (its softmax routing, group"
                    + " scores and rope code differ from DeepSeek-V3's and are not verified here); 'deepseek_v3' is");
        }
    }

    /** The number of multi-token-prediction depths stored after the decoder layers ({@code num_nextn_predict_layers}). */
    public static int mtpDepths(JsonNode c, Path file) {
        if (!c.hasNonNull("num_nextn_predict_layers") || c.get("num_nextn_predict_layers").asInt(-1) == 0) {
            return 0;
        }
        return Gpt2HfConfig.positiveInt(c, file, "num_nextn_predict_layers", "a non-negative integer");
    }

    /** Maps {@code c} (from {@code file}) to Megatron's configuration; {@code makeVocabSizeDivisibleBy} pads the embedding rows. */
    public static TransformerConfig toTransformerConfig(ObjectNode c, Path file, int makeVocabSizeDivisibleBy) {
        refuseQuantized(c, file);
        String act = Gpt2HfConfig.optionalText(c, file, "hidden_act", "silu");
        if (!act.equals("silu")) {
            throw new HfConfigException(file + ": hidden_act is '" + act + "'; only 'silu' (SwiGLU) is supported");
        }
        Gpt2HfConfig.refuseTrue(c, file, "attention_bias", "biases on q_a_proj, kv_a_proj_with_mqa and o_proj; Megatron's"
                + " multi-latent attention has none");
        Gpt2HfConfig.refuseTrue(c, file, "mlp_bias", "biases on gate_proj, up_proj and down_proj");
        int hidden = Gpt2HfConfig.requiredInt(c, file, "hidden_size");
        int layers = Gpt2HfConfig.requiredInt(c, file, "num_hidden_layers");
        int heads = Gpt2HfConfig.requiredInt(c, file, "num_attention_heads");
        if (c.hasNonNull("num_key_value_heads") && Gpt2HfConfig.requiredInt(c, file, "num_key_value_heads") != heads) {
            // transformers' MLA builds a key per head and would repeat them num_attention_heads / num_key_value_heads times
            throw new HfConfigException(file + ": num_key_value_heads " + c.get("num_key_value_heads") + " differs from"
                    + " num_attention_heads " + heads + "; multi-latent attention has a key and value per head (Megatron:"
                    + " \"Group query attention is mutually exclusive with multi latent attention\")");
        }
        int positions = Gpt2HfConfig.requiredInt(c, file, "max_position_embeddings");
        double eps = Gpt2HfConfig.optionalNumber(c, file, "rms_norm_eps", 1e-6, x -> x > 0, "a positive number");
        if ((float) eps != (float) LATENT_NORM_EPS) {
            throw new HfConfigException(file + ": rms_norm_eps is " + c.get("rms_norm_eps") + "; transformers builds"
                    + " q_a_layernorm and kv_a_layernorm with eps 1e-6 whatever it says, Megatron's latent norms use"
                    + " --norm-epsilon, so only 1e-6 converts exactly");
        }
        if (Gpt2HfConfig.optionalNumber(c, file, "attention_dropout", 0, x -> x >= 0 && x < 1, "a number in [0, 1)") != 0) {
            throw new HfConfigException(file + ": attention_dropout " + c.get("attention_dropout") + " is not supported here"
                    + " (only 0, as every released DeepSeek-V3)");
        }
        MlaConfig mla = mla(c, file, positions);
        TransformerConfig.Builder b = TransformerConfig.builder()
                .numLayers(layers).hiddenSize(hidden).numAttentionHeads(heads).numQueryGroups(heads)
                // MLA does not read --kv-channels: left to pretrain's default (hidden / heads) where that divides
                .kvChannels(hidden % heads == 0 ? 0 : mla.qHeadDim())
                .ffnHiddenSize(Gpt2HfConfig.requiredInt(c, file, "intermediate_size"))
                .seqLength(positions).maxPositionEmbeddings(positions)
                .positionEmbeddingType(PositionEmbeddingType.ROPE)
                .rotaryBase((float) ropeTheta(c, file))
                .normalization(Normalization.RMS_NORM).swiglu(true).addBiasLinear(false).geluTanh(false)
                .qkLayernorm(true).mla(mla)
                .untieEmbeddingsAndOutputWeights(!Gpt2HfConfig.optionalBoolean(c, file, "tie_word_embeddings", false))
                .layernormEpsilon((float) eps)
                .initMethodStd((float) Gpt2HfConfig.optionalNumber(c, file, "initializer_range", 0.02, x -> x > 0,
                        "a positive number"))
                .attentionDropout(0f).hiddenDropout(0f)
                .vocabSize(Gpt2HfConfig.requiredInt(c, file, "vocab_size")).makeVocabSizeDivisibleBy(makeVocabSizeDivisibleBy);
        MoeConfig moe = moe(c, file, layers);
        if (moe != null) {
            b.moe(moe);
        }
        try {
            return b.build();
        } catch (IllegalArgumentException e) {
            throw new HfConfigException(file + ": " + e.getMessage());
        }
    }

    /** The official DeepSeek-V3 release stores FP8 weights with block scales; Megatron-J reads floating-point weights only. */
    private static void refuseQuantized(JsonNode c, Path file) {
        JsonNode q = c.get("quantization_config");
        if (q != null && !q.isNull()) {
            String method = q.path("quant_method").asText("?");
            throw new HfConfigException(file + ": quantization_config (quant_method '" + method + "') declares quantized"
                    + " weights" + (method.equals("fp8") ? " (FP8 with weight_scale_inv block scales, as the official"
                    + " DeepSeek-V3 release)" : "") + "; import-hf reads float32, bfloat16 or float16 weights only:"
                    + " dequantize first (e.g. DeepSeek's inference/fp8_cast_bf16.py) and remove quantization_config");
        }
    }

    /** {@code rope_theta}, or transformers 5's {@code rope_parameters.rope_theta}. */
    private static double ropeTheta(JsonNode c, Path file) {
        JsonNode params = c.get("rope_parameters");
        if (!c.has("rope_theta") && params != null && params.isObject() && params.has("rope_theta")) {
            return Gpt2HfConfig.optionalNumber(params, file, "rope_theta", 10000, x -> x > 0, "a positive number");
        }
        return Gpt2HfConfig.optionalNumber(c, file, "rope_theta", 10000, x -> x > 0, "a positive number");
    }

    private static MlaConfig mla(JsonNode c, Path file, int positions) {
        int qLora = 0;
        if (c.hasNonNull("q_lora_rank")) {
            qLora = Gpt2HfConfig.positiveInt(c, file, "q_lora_rank", "null or a positive integer");
        }
        MlaConfig m = MlaConfig.defaults().withDims(qLora, Gpt2HfConfig.requiredInt(c, file, "kv_lora_rank"),
                Gpt2HfConfig.requiredInt(c, file, "qk_nope_head_dim"), Gpt2HfConfig.requiredInt(c, file, "qk_rope_head_dim"),
                Gpt2HfConfig.requiredInt(c, file, "v_head_dim"));
        // rope_interleave (transformers' default true, the released checkpoints' layout) rotates the pairs (2i, 2i+1), as
        // Megatron's MLA; false rotates (i, i + d/2): DeepseekHfWeights permutes the rotary rows then. Either maps.
        Gpt2HfConfig.optionalBoolean(c, file, "rope_interleave", true);
        return yarn(c, file, positions, m);
    }

    /** Whether the rotary channels of the HF weights are rotated as pairs (2i, 2i+1) ({@code rope_interleave}, default true). */
    public static boolean ropeInterleave(JsonNode c) {
        return c.path("rope_interleave").asBoolean(true);
    }

    /**
     * {@code rope_scaling} (or transformers 5's {@code rope_parameters}): none or "default" is plain rope; "yarn" maps to
     * {@code --rope-type yarn --rotary-scaling-factor --mscale --mscale-all-dim} when its original context and betas are
     * Megatron's fixed ones and transformers' cos/sin factor equals Megatron's.
     */
    private static MlaConfig yarn(JsonNode c, Path file, int positions, MlaConfig m) {
        JsonNode rs = c.get("rope_scaling");
        String where = "rope_scaling";
        if ((rs == null || rs.isNull()) && c.get("rope_parameters") != null && c.get("rope_parameters").isObject()) {
            rs = c.get("rope_parameters");
            where = "rope_parameters";
        }
        if (rs == null || rs.isNull()) {
            return m.withRope(MlaConfig.RopeType.ROPE, 1f, 1f, 0f);
        }
        if (!rs.isObject()) {
            throw Gpt2HfConfig.wrongValue(file, where, rs, "null or an object");
        }
        String key = rs.has("rope_type") ? "rope_type" : "type";
        String type = rs.path(key).asText("default");
        if (type.equals("default")) {
            return m.withRope(MlaConfig.RopeType.ROPE, 1f, 1f, 0f);
        }
        if (!type.equals("yarn")) {
            throw new HfConfigException(file + ": " + where + "." + key + " '" + type + "' is not supported with multi-latent"
                    + " attention (null, 'default' or 'yarn')");
        }
        String p = where + ".";
        double factor = Gpt2HfConfig.optionalNumber(rs, file, "factor", Double.NaN, x -> x > 0, "a positive number");
        if (Double.isNaN(factor)) {
            throw new HfConfigException(file + ": " + p + "factor is missing; expected a positive number");
        }
        int original = rs.hasNonNull("original_max_position_embeddings")
                ? Gpt2HfConfig.positiveInt(rs, file, "original_max_position_embeddings", "a positive integer") : positions;
        if (original != m.originalMaxPositionEmbeddings()) {
            throw new HfConfigException(file + ": " + p + "original_max_position_embeddings is " + original
                    + (rs.has("original_max_position_embeddings") ? "" : " (max_position_embeddings, as it is not given)")
                    + "; Megatron's multi-latent attention YaRN uses " + m.originalMaxPositionEmbeddings() + " only");
        }
        if (rs.has("original_max_position_embeddings") && (double) positions / original != factor) {
            // transformers versions differ on which of the two they use; they agree when they are equal
            throw new HfConfigException(file + ": " + p + "factor " + factor + " differs from max_position_embeddings / "
                    + p + "original_max_position_embeddings = " + positions + " / " + original + "; transformers versions"
                    + " disagree on which one YaRN uses, so the conversion would be ambiguous");
        }
        fixedOrAbsent(rs, file, p, "beta_fast", m.betaFast());
        fixedOrAbsent(rs, file, p, "beta_slow", m.betaSlow());
        if (rs.has("truncate") && !rs.get("truncate").asBoolean(true)) {
            throw new HfConfigException(file + ": " + p + "truncate is false; Megatron's YaRN rounds the correction range");
        }
        double mscale = rs.hasNonNull("mscale") ? Gpt2HfConfig.optionalNumber(rs, file, "mscale", 1, Double::isFinite, "a number") : 1;
        double mscaleAllDim = rs.hasNonNull("mscale_all_dim")
                ? Gpt2HfConfig.optionalNumber(rs, file, "mscale_all_dim", 0, Double::isFinite, "a number") : 0;
        MlaConfig out = m.withRope(MlaConfig.RopeType.YARN, (float) factor, (float) mscale, (float) mscaleAllDim);
        // transformers' factor on cos and sin: mscale / mscale_all_dim's ratio when both are non-zero, else get_mscale(s)
        double hfFactor = rs.hasNonNull("attention_factor")
                ? Gpt2HfConfig.optionalNumber(rs, file, "attention_factor", 1, Double::isFinite, "a number")
                : mscale != 0 && mscaleAllDim != 0 ? MlaConfig.Yarn.concentrationFactor(factor, mscale, mscaleAllDim)
                : MlaConfig.Yarn.getMscale(factor, 1);
        if (Math.abs(hfFactor - out.ropeMscale()) > 1e-7 * Math.abs(hfFactor)) {
            throw new HfConfigException(file + ": " + p + "mscale " + rs.get("mscale") + ", mscale_all_dim "
                    + rs.get("mscale_all_dim") + (rs.hasNonNull("attention_factor") ? ", attention_factor "
                    + rs.get("attention_factor") : "") + " give transformers' cos/sin factor " + hfFactor
                    + " but Megatron's YaRN computes " + out.ropeMscale() + " from them");
        }
        return out;
    }

    private static void fixedOrAbsent(JsonNode rs, Path file, String p, String key, double value) {
        JsonNode v = rs.get(key);
        // transformers reads `get(key) or default`: null and 0 mean the default too
        if (v != null && !v.isNull() && !(v.isNumber() && (v.asDouble() == 0 || v.asDouble() == value))) {
            throw new HfConfigException(file + ": " + p + key + " is " + v + "; Megatron's multi-latent attention YaRN uses "
                    + key + " " + (long) value + " only");
        }
    }

    /** The mixture of experts after {@code first_k_dense_replace} dense layers; null when every layer is dense. */
    private static MoeConfig moe(JsonNode c, Path file, int layers) {
        int experts = c.hasNonNull("n_routed_experts") ? Gpt2HfConfig.positiveInt(c, file, "n_routed_experts", "a positive integer") : 0;
        int firstDense = c.has("first_k_dense_replace") ? c.get("first_k_dense_replace").asInt(-1) : 3;   // transformers' default
        if (firstDense < 0 || !c.path("first_k_dense_replace").isIntegralNumber() && c.has("first_k_dense_replace")) {
            throw Gpt2HfConfig.wrongValue(file, "first_k_dense_replace", c.get("first_k_dense_replace"), "a non-negative integer");
        }
        if (experts == 0 || firstDense >= layers) {
            throw new HfConfigException(file + ": " + (experts == 0 ? "n_routed_experts is missing or null"
                    : "first_k_dense_replace " + firstDense + " leaves no mixture-of-experts layer among " + layers)
                    + "; a DeepSeek-V3 without experts is not supported (import it as a dense model)");
        }
        if (c.has("moe_layer_freq") && c.get("moe_layer_freq").asInt(-1) != 1) {
            throw new HfConfigException(file + ": moe_layer_freq is " + c.get("moe_layer_freq") + "; transformers'"
                    + " DeepSeek-V3 makes every layer from first_k_dense_replace on a mixture of experts (only 1)");
        }
        String method = Gpt2HfConfig.optionalText(c, file, "topk_method", "noaux_tc");
        if (!method.equals("noaux_tc")) {
            throw new HfConfigException(file + ": topk_method is '" + method + "'; transformers' DeepSeek-V3 and Megatron's"
                    + " --moe-router-enable-expert-bias compute 'noaux_tc' only");
        }
        String scoring = Gpt2HfConfig.optionalText(c, file, "scoring_func", "sigmoid");
        if (!scoring.equals("sigmoid")) {
            throw new HfConfigException(file + ": scoring_func is '" + scoring + "'; transformers' DeepSeek-V3 routes by"
                    + " sigmoid scores only");
        }
        int topk = c.hasNonNull("num_experts_per_tok") ? Gpt2HfConfig.positiveInt(c, file, "num_experts_per_tok", "a positive integer") : 8;
        if (topk > 1 && !Gpt2HfConfig.optionalBoolean(c, file, "norm_topk_prob", true)) {
            throw new HfConfigException(file + ": norm_topk_prob is false; Megatron's sigmoid routing always renormalises"
                    + " the chosen experts' scores (with num_experts_per_tok > 1)");
        }
        MoeConfig.Builder m = new MoeConfig.Builder(experts, Gpt2HfConfig.requiredInt(c, file, "moe_intermediate_size"))
                .routerTopk(topk)
                .routing(false, MoeConfig.ScoreFunction.SIGMOID, (float) Gpt2HfConfig.optionalNumber(c, file,
                        "routed_scaling_factor", 2.5, x -> x > 0, "a positive number"))
                .expertBias(true, 1e-3f);
        int groups = c.hasNonNull("n_group") ? Gpt2HfConfig.positiveInt(c, file, "n_group", "a positive integer") : 8;
        int keep = c.hasNonNull("topk_group") ? Gpt2HfConfig.positiveInt(c, file, "topk_group", "a positive integer") : 4;
        if (experts % groups != 0) {
            throw new HfConfigException(file + ": n_routed_experts " + experts + " is not a multiple of n_group " + groups);
        }
        if (keep > groups) {
            throw new HfConfigException(file + ": topk_group " + keep + " exceeds n_group " + groups);
        }
        if (keep < groups) {   // all groups kept: plain top-k
            if (topk % keep != 0 || topk / keep != 2) {
                // transformers scores a group by the sum of its best 2; Megatron by the sum of its best topk / group_topk
                throw new HfConfigException(file + ": num_experts_per_tok " + topk + " / topk_group " + keep + " is not 2;"
                        + " transformers scores each group by its best two experts, Megatron's group-limited routing by its"
                        + " best num_experts_per_tok / topk_group, so only that ratio converts exactly");
            }
            if (experts / groups < 2) {
                throw new HfConfigException(file + ": n_routed_experts / n_group is " + experts / groups
                        + "; transformers scores each group by its best two experts, so a group needs at least two");
            }
            m.groupLimitedRouting(groups, keep);
        }
        if (c.hasNonNull("n_shared_experts") && c.get("n_shared_experts").asInt(-1) != 0) {
            int shared = Gpt2HfConfig.positiveInt(c, file, "n_shared_experts", "null or a non-negative integer");
            m.sharedExperts(shared * Gpt2HfConfig.requiredInt(c, file, "moe_intermediate_size"), false);
        } else if (!c.has("n_shared_experts")) {
            m.sharedExperts(Gpt2HfConfig.requiredInt(c, file, "moe_intermediate_size"), false);   // transformers' default 1
        }
        m.layerFreq(layerPattern(firstDense, layers));
        return m.build();
    }

    /** {@code first_k_dense_replace} dense layers, then mixtures of experts, as {@code --moe-layer-freq}. */
    private static String layerPattern(int firstDense, int layers) {
        if (firstDense == 0) {
            return "1";
        }
        List<String> bits = new ArrayList<>();
        for (int l = 0; l < layers; l++) {
            bits.add(l < firstDense ? "0" : "1");
        }
        return "[" + String.join(",", bits) + "]";
    }

    /**
     * The {@code pretrain gpt} model flags that build {@code c}: the Llama family's (LlamaHfConfig.megatronFlags) with
     * the MLA flags and the DeepSeek routing flags.
     */
    public static String megatronFlags(TransformerConfig c) {
        List<String> f = new ArrayList<>(List.of(LlamaHfConfig.megatronFlags(c).split(" ")));
        MlaConfig m = c.mla();
        f.add("--multi-latent-attention");
        if (m.hasQueryLatent()) {
            f.addAll(List.of("--q-lora-rank", Integer.toString(m.qLoraRank())));
        }
        f.addAll(List.of("--kv-lora-rank", Integer.toString(m.kvLoraRank()), "--qk-head-dim", Integer.toString(m.qkHeadDim()),
                "--qk-pos-emb-head-dim", Integer.toString(m.qkPosEmbHeadDim()), "--v-head-dim", Integer.toString(m.vHeadDim()),
                "--rope-type", m.ropeType().flagValue()));
        if (m.ropeType() == MlaConfig.RopeType.YARN) {
            f.addAll(List.of("--rotary-scaling-factor", num(m.rotaryScalingFactor()), "--mscale", num(m.mscale()),
                    "--mscale-all-dim", num(m.mscaleAllDim())));
        }
        MoeConfig moe = c.moe();
        f.addAll(List.of("--moe-router-score-function", "sigmoid", "--moe-router-topk-scaling-factor",
                num(moe.topkScalingFactor()), "--moe-router-enable-expert-bias"));
        if (moe.routerGroupTopk() > 0) {
            f.addAll(List.of("--moe-router-num-groups", Integer.toString(moe.routerNumGroups()), "--moe-router-group-topk",
                    Integer.toString(moe.routerGroupTopk())));
        }
        return String.join(" ", f);
    }

    /**
     * Refuses what transformers' DeepSeek-V3 cannot express, naming the Megatron flag: export-hf writes a model with
     * multi-latent attention as deepseek_v3 only when every layer computes what transformers computes.
     */
    public static void requireShape(TransformerConfig c) {
        MlaConfig m = c.mla();
        MoeConfig moe = c.moe();
        String why = null;
        if (m == null) {
            why = "no --multi-latent-attention";
        } else if (!c.qkLayernorm()) {
            why = "no --qk-layernorm (transformers always has q_a_layernorm and kv_a_layernorm)";
        } else if (c.normalization() != Normalization.RMS_NORM) {
            why = "--normalization " + c.normalization().flagValue();
        } else if (!c.swiglu()) {
            why = "no --swiglu";
        } else if (c.addBiasLinear() || c.addQkvBias()) {
            why = "linear biases";
        } else if ((float) c.layernormEpsilon() != (float) LATENT_NORM_EPS) {
            why = "--norm-epsilon " + c.layernormEpsilon() + " (transformers' latent norms use 1e-6)";
        } else if (c.useRopeScaling() || c.rotarySeqLenInterpolationFactor() > 0) {
            why = c.useRopeScaling() ? "--use-rope-scaling" : "--rotary-seq-len-interpolation-factor";
        } else if (c.mtp() != null) {
            why = "--mtp-num-layers " + c.mtpNumLayers() + " (export-hf does not write MTP depths)";
        } else if (m.ropeType() == MlaConfig.RopeType.ROPE && m.rotaryScalingFactor() != 1f) {
            why = "--rope-type rope with --rotary-scaling-factor " + m.rotaryScalingFactor();
        } else if (m.ropeType() == MlaConfig.RopeType.YARN && m.rotaryScalingFactor() != 1f
                && (double) c.maxPositionEmbeddings() / m.originalMaxPositionEmbeddings() != m.rotaryScalingFactor()) {
            why = "--rotary-scaling-factor " + m.rotaryScalingFactor() + " with --max-position-embeddings "
                    + c.maxPositionEmbeddings() + " (transformers needs max_position_embeddings = factor x "
                    + m.originalMaxPositionEmbeddings() + ")";
        } else if (m.ropeType() == MlaConfig.RopeType.YARN && m.rotaryScalingFactor() != 1f
                && Math.abs(hfYarnFactor(m.rotaryScalingFactor(), m.mscale(), m.mscaleAllDim()) - m.ropeMscale())
                > 1e-7 * m.ropeMscale()) {
            why = "--mscale " + m.mscale() + " --mscale-all-dim " + m.mscaleAllDim() + " (transformers' YaRN computes"
                    + " another cos/sin factor from them)";
        } else if (moe == null) {
            why = "no --num-experts";
        } else if (moe.scoreFunction() != MoeConfig.ScoreFunction.SIGMOID) {
            why = "--moe-router-score-function " + moe.scoreFunction().flagValue();
        } else if (!moe.routerEnableExpertBias()) {
            why = "no --moe-router-enable-expert-bias";
        } else if (moe.routerPreSoftmax()) {
            why = "--moe-router-pre-softmax";
        } else if (!moe.dropless()) {
            why = "--moe-expert-capacity-factor " + moe.expertCapacityFactor();
        } else if (moe.routerGroupTopk() > 0 && moe.routerTopk() / moe.routerGroupTopk() != 2) {
            why = "--moe-router-topk " + moe.routerTopk() + " with --moe-router-group-topk " + moe.routerGroupTopk()
                    + " (transformers scores a group by its best two experts)";
        } else if (moe.sharedExpertIntermediateSize() == 0 || moe.sharedExpertGate()
                || moe.sharedExpertIntermediateSize() % moe.ffnHiddenSize() != 0) {
            why = moe.sharedExpertIntermediateSize() == 0 ? "no shared experts" : moe.sharedExpertGate()
                    ? "--moe-shared-expert-gate" : "--moe-shared-expert-intermediate-size "
                    + moe.sharedExpertIntermediateSize() + " (not a multiple of --moe-ffn-hidden-size)";
        } else if (firstDenseLayers(c) < 0) {
            why = "--moe-layer-freq " + moe.layerFreq() + " (transformers has dense layers first, then experts only)";
        }
        if (why != null) {
            throw new HfConfigException(String.format(Locale.ROOT, "a model with %s has no Hugging Face %s (%s) equivalent",
                    why, CLASS_NAME, MODEL_TYPE));
        }
    }

    /** transformers' YaRN factor on cos and sin for {@code mscale} and {@code mscale_all_dim}. */
    private static double hfYarnFactor(double factor, double mscale, double mscaleAllDim) {
        return mscale != 0 && mscaleAllDim != 0 ? MlaConfig.Yarn.concentrationFactor(factor, mscale, mscaleAllDim)
                : MlaConfig.Yarn.getMscale(factor, 1);
    }

    /** The number of dense layers before the first MoE layer when all later ones are MoE, else -1. */
    private static int firstDenseLayers(TransformerConfig c) {
        boolean[] sparse = c.moe().moeLayers(c.numLayers());
        int first = 0;
        while (first < sparse.length && !sparse[first]) {
            first++;
        }
        for (int l = first; l < sparse.length; l++) {
            if (!sparse[l]) {
                return -1;
            }
        }
        return first < sparse.length ? first : -1;
    }

    /**
     * The config.json of {@code config} with weights of {@code dtype}: {@code original} (the imported file, when it is a
     * deepseek_v3) with the shape fields overwritten where they differ, so an import followed by an export in the
     * imported dtype gives the same fields back (but {@code num_nextn_predict_layers} 0: no MTP depth is written).
     */
    public static ObjectNode toJson(TransformerConfig config, JsonNode original, DType dtype) {
        requireShape(config);
        MlaConfig m = config.mla();
        MoeConfig moe = config.moe();
        ObjectNode c;
        if (original != null && original.isObject() && isDeepseek(original)) {
            c = ((ObjectNode) original).deepCopy();
        } else {
            c = new ObjectMapper().createObjectNode();
            c.putArray("architectures").add(CLASS_NAME);
            c.put("attention_bias", false);
            c.put("attention_dropout", 0.0);
            c.put("rope_interleave", true);
            c.put("topk_method", "noaux_tc");
            c.put("scoring_func", "sigmoid");
            c.put("use_cache", true);
        }
        c.put("model_type", MODEL_TYPE);
        c.put("hidden_act", "silu");
        c.put("vocab_size", config.vocabSize());
        c.put("hidden_size", config.hiddenSize());
        c.put("intermediate_size", config.ffnHiddenSize());
        c.put("moe_intermediate_size", moe.ffnHiddenSize());
        c.put("num_hidden_layers", config.numLayers());
        c.put("num_attention_heads", config.numAttentionHeads());
        c.put("num_key_value_heads", config.numAttentionHeads());
        c.put("n_shared_experts", moe.sharedExpertIntermediateSize() / moe.ffnHiddenSize());
        c.put("n_routed_experts", moe.numExperts());
        putFloat(c, "routed_scaling_factor", moe.topkScalingFactor() > 0 ? moe.topkScalingFactor() : 1f);
        c.put("kv_lora_rank", m.kvLoraRank());
        if (m.hasQueryLatent()) {
            c.put("q_lora_rank", m.qLoraRank());
        } else {
            c.putNull("q_lora_rank");
        }
        c.put("qk_rope_head_dim", m.qkPosEmbHeadDim());
        c.put("v_head_dim", m.vHeadDim());
        c.put("qk_nope_head_dim", m.qkHeadDim());
        boolean grouped = moe.routerGroupTopk() > 0;
        boolean keptUngrouped = !grouped && c.hasNonNull("n_group") && c.get("n_group").equals(c.get("topk_group"));
        if (!keptUngrouped) {
            c.put("n_group", grouped ? moe.routerNumGroups() : 1);
            c.put("topk_group", grouped ? moe.routerGroupTopk() : 1);
        }
        c.put("num_experts_per_tok", moe.routerTopk());
        c.put("first_k_dense_replace", firstDenseLayers(config));
        c.put("norm_topk_prob", true);
        c.put("max_position_embeddings", config.maxPositionEmbeddings());
        putFloat(c, "rms_norm_eps", config.layernormEpsilon());
        putFloat(c, "rope_theta", config.rotaryBase());
        c.put("tie_word_embeddings", !config.untieEmbeddingsAndOutputWeights());
        c.put("num_nextn_predict_layers", 0);
        if (m.ropeType() == MlaConfig.RopeType.YARN && m.rotaryScalingFactor() != 1f) {
            JsonNode rs = c.get("rope_scaling");
            boolean same = rs != null && rs.isObject() && "yarn".equals(rs.path(rs.has("rope_type") ? "rope_type" : "type").asText())
                    && (float) rs.path("factor").asDouble() == m.rotaryScalingFactor()
                    && (float) rs.path("mscale").asDouble(1) == m.mscale()
                    && (float) rs.path("mscale_all_dim").asDouble(0) == m.mscaleAllDim()
                    && rs.path("original_max_position_embeddings").asInt() == m.originalMaxPositionEmbeddings()
                    && !rs.has("attention_factor");
            if (!same) {
                ObjectNode n = c.putObject("rope_scaling");
                n.put("type", "yarn");
                n.put("factor", Double.parseDouble(Float.toString(m.rotaryScalingFactor())));
                n.put("original_max_position_embeddings", m.originalMaxPositionEmbeddings());
                n.put("beta_fast", (int) m.betaFast());
                n.put("beta_slow", (int) m.betaSlow());
                n.put("mscale", Double.parseDouble(Float.toString(m.mscale())));
                n.put("mscale_all_dim", Double.parseDouble(Float.toString(m.mscaleAllDim())));
            }
        } else if (c.hasNonNull("rope_scaling")) {
            c.putNull("rope_scaling");
        }
        c.remove("quantization_config");
        HfFiles.putDtype(c, dtype);
        return c;
    }

    /** Writes {@code value} unless the field already holds the same float (so 1e-06 stays as written). */
    private static void putFloat(ObjectNode c, String key, float value) {
        if (!c.has(key) || !c.get(key).isNumber() || (float) c.get(key).asDouble() != value) {
            c.put(key, Double.parseDouble(Float.toString(value)));
        }
    }

    private static String num(float v) {
        return v == Math.rint(v) && Math.abs(v) < 1e9 ? Long.toString((long) v) : Float.toString(v);
    }
}
