package org.megatronj.parallel.checkpoint;

import com.fasterxml.jackson.core.JsonProcessingException;
import org.megatronj.io.JsonErrors;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.megatronj.memory.Backend.Activation;
import org.megatronj.memory.DType;
import org.megatronj.model.Normalization;
import org.megatronj.model.PositionEmbeddingType;
import org.megatronj.model.TransformerConfig;
import org.megatronj.model.layers.Mlp;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import java.util.function.DoublePredicate;

/**
 * The {@code config.json} of a Hugging Face GPT-2 model and its {@link TransformerConfig}
 * equivalent. Values GPT-2 allows but our model does not compute the same way (attention scaled
 * by layer index, cross-attention, an untied head, other activations) are refused by name.
 */
public final class Gpt2HfConfig {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Where config.json names the weights' dtype: torch_dtype, and dtype since transformers 4.56. */
    /** What the {@code activation_function}s of transformers' GPT-2 MLP that we have compute (relu2: Megatron's --squared-relu). */
    private static final Map<String, Activation> ACTIVATIONS = Map.of("gelu_new", Activation.GELU_TANH,
            "gelu_pytorch_tanh", Activation.GELU_TANH, "gelu_fast", Activation.GELU_TANH, "gelu", Activation.GELU_ERF,
            "relu2", Activation.SQUARED_RELU);
    /** The name an export writes for each. */
    private static final Map<Activation, String> ACTIVATION_NAMES = Map.of(Activation.GELU_TANH, "gelu_new",
            Activation.GELU_ERF, "gelu", Activation.SQUARED_RELU, "relu2");

    private Gpt2HfConfig() {
    }

    /** Reads {@code dir/config.json} and maps it; {@code makeVocabSizeDivisibleBy} pads the embedding rows. */
    public static TransformerConfig read(Path dir, int makeVocabSizeDivisibleBy) {
        return toTransformerConfig(readJson(dir), dir.resolve("config.json"), makeVocabSizeDivisibleBy);
    }

    public static ObjectNode readJson(Path dir) {
        Path file = dir.resolve("config.json");
        if (!Files.isRegularFile(file)) {
            throw new HfConfigException(file + " is missing: expected a Hugging Face model folder (config.json + model.safetensors)");
        }
        try {
            JsonNode node = JSON.readTree(file.toFile());
            if (node == null || !node.isObject()) {
                throw new HfConfigException(file + ": expected a JSON object");
            }
            return (ObjectNode) node;
        } catch (JsonProcessingException e) {
            throw new HfConfigException(file + " is not valid JSON: " + JsonErrors.describe(e));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
    }

    static TransformerConfig toTransformerConfig(ObjectNode c, Path file, int makeVocabSizeDivisibleBy) {
        String type = optionalText(c, file, "model_type", "");
        if (!type.equals("gpt2")) {
            throw new HfConfigException(file + ": model_type is '" + type + "'; only 'gpt2' is supported");
        }
        refuseTrue(c, file, "scale_attn_by_inverse_layer_idx", "attention scores divided by the layer index");
        refuseTrue(c, file, "add_cross_attention", "cross-attention layers");
        if (!optionalBoolean(c, file, "scale_attn_weights", true)) {
            throw new HfConfigException(file + ": scale_attn_weights is false; Megatron always scales scores by 1/sqrt(d)");
        }
        if (!optionalBoolean(c, file, "tie_word_embeddings", true)) {
            throw new HfConfigException(file + ": tie_word_embeddings is false; GPT-2 import expects the head tied to wte");
        }
        String act = optionalText(c, file, "activation_function", "gelu_new");
        Activation activation = ACTIVATIONS.get(act);
        if (activation == null) {
            throw new HfConfigException(file + ": activation_function '" + act
                    + "' is not supported (gelu_new, gelu_pytorch_tanh, gelu_fast, gelu or relu2)");
        }
        int hidden = requiredInt(c, file, "n_embd");
        int layers = requiredInt(c, file, "n_layer");
        int heads = requiredInt(c, file, "n_head");
        int positions = requiredInt(c, file, "n_positions");
        int vocab = requiredInt(c, file, "vocab_size");
        // HF writes n_inner: null for the default 4 * n_embd; anything else must be a usable width.
        int inner = c.hasNonNull("n_inner") ? positiveInt(c, file, "n_inner", "null (4 * n_embd) or a positive integer")
                : 4 * hidden;
        if (hidden % heads != 0) {
            throw new HfConfigException(file + ": n_embd " + hidden + " is not a multiple of n_head " + heads);
        }
        return TransformerConfig.builder()
                .numLayers(layers).hiddenSize(hidden).numAttentionHeads(heads).ffnHiddenSize(inner)
                .seqLength(positions).maxPositionEmbeddings(positions)
                .positionEmbeddingType(PositionEmbeddingType.LEARNED_ABSOLUTE).normalization(Normalization.LAYER_NORM)
                .layernormEpsilon((float) optionalNumber(c, file, "layer_norm_epsilon", 1e-5, x -> x > 0, "a positive number"))
                .initMethodStd((float) optionalNumber(c, file, "initializer_range", 0.02, x -> x >= 0, "a non-negative number"))
                .hiddenDropout((float) optionalNumber(c, file, "resid_pdrop", 0.1, x -> x >= 0 && x < 1, "a probability in [0, 1)"))
                // The CPU attention op has no dropout on the probabilities; keep the imported model usable for training.
                .attentionDropout(0f)
                .geluTanh(activation == Activation.GELU_TANH).squaredRelu(activation == Activation.SQUARED_RELU)
                .vocabSize(vocab).makeVocabSizeDivisibleBy(makeVocabSizeDivisibleBy)
                .build();
    }

    /**
     * The dtype a Hugging Face config declares for its weights: {@code torch_dtype} (or {@code dtype},
     * its name since transformers 4.56); F32 when {@code hfConfig} is null or declares none.
     */
    public static DType declaredDtype(JsonNode hfConfig) {
        for (String key : HfFiles.DTYPE_KEYS) {
            JsonNode v = hfConfig == null ? null : hfConfig.get(key);
            if (v != null && !v.isNull()) {
                return switch (v.asText()) {
                    case "float32" -> DType.F32;
                    case "bfloat16" -> DType.BF16;
                    case "float16" -> DType.F16;
                    default -> throw new HfConfigException("the imported config.json's " + key + " is " + v
                            + "; expected \"float32\", \"bfloat16\" or \"float16\" (or choose with --dtype)");
                };
            }
        }
        return DType.F32;
    }

    /**
     * The config.json for {@code config} with weights of {@code dtype}: {@code original} (the
     * imported file, if any) with the shape fields and the dtype overwritten, so an import followed
     * by an export in the imported dtype gives the file back.
     */
    public static ObjectNode toJson(TransformerConfig config, JsonNode original, DType dtype) {
        requireGpt2Shape(config);
        ObjectNode c = original != null && original.isObject() ? ((ObjectNode) original).deepCopy() : defaults(config);
        c.put("model_type", "gpt2");
        c.put("vocab_size", config.vocabSize());
        c.put("n_positions", config.maxPositionEmbeddings());
        c.put("n_embd", config.hiddenSize());
        c.put("n_layer", config.numLayers());
        c.put("n_head", config.numAttentionHeads());
        if (config.ffnHiddenSize() == 4 * config.hiddenSize()) {
            if (!c.has("n_inner")) {
                c.putNull("n_inner");
            }
        } else {
            c.put("n_inner", config.ffnHiddenSize());
        }
        Activation activation = Mlp.activation(config);
        if (ACTIVATIONS.get(c.path("activation_function").asText("")) != activation) {
            c.put("activation_function", ACTIVATION_NAMES.get(activation));
        }
        if (!c.has("layer_norm_epsilon") || (float) c.get("layer_norm_epsilon").asDouble() != config.layernormEpsilon()) {
            c.put("layer_norm_epsilon", Double.parseDouble(Float.toString(config.layernormEpsilon())));   // 1e-05, not 9.99e-06
        }
        HfFiles.putDtype(c, dtype);
        return c;
    }

    private static ObjectNode defaults(TransformerConfig config) {
        double dropout = Double.parseDouble(Float.toString(config.hiddenDropout()));
        ObjectNode c = JSON.createObjectNode();
        c.putArray("architectures").add("GPT2LMHeadModel");
        c.put("attn_pdrop", Double.parseDouble(Float.toString(config.attentionDropout())));
        c.put("embd_pdrop", dropout);
        c.put("resid_pdrop", dropout);
        c.put("initializer_range", Double.parseDouble(Float.toString(config.initMethodStd())));
        c.put("scale_attn_weights", true);
        c.put("tie_word_embeddings", true);
        c.put("use_cache", true);
        return c;
    }

    /** Refuses configurations GPT-2 cannot express, naming the flag. */
    public static void requireGpt2Shape(TransformerConfig c) {
        String why = null;
        if (c.mla() != null) {
            why = "--multi-latent-attention";
        } else if (c.moe() != null) {
            why = "--num-experts " + c.moe().numExperts();
        } else if (c.mtp() != null) {
            why = "--mtp-num-layers " + c.mtpNumLayers();
        } else if (c.positionEmbeddingType() != PositionEmbeddingType.LEARNED_ABSOLUTE) {
            why = "--position-embedding-type " + c.positionEmbeddingType().flagValue();
        } else if (c.normalization() != Normalization.LAYER_NORM) {
            why = "--normalization " + c.normalization().flagValue();
        } else if (c.swiglu()) {
            why = "--swiglu";
        } else if (!c.addBiasLinear()) {
            why = "--disable-bias-linear";
        } else if (c.untieEmbeddingsAndOutputWeights()) {
            why = "--untie-embeddings-and-output-weights";
        } else if (c.qkLayernorm()) {
            why = "--qk-layernorm";
        } else if (c.numQueryGroups() != c.numAttentionHeads()) {
            why = "--num-query-groups " + c.numQueryGroups();
        } else if (c.kvChannels() * c.numAttentionHeads() != c.hiddenSize()) {
            why = "--kv-channels " + c.kvChannels();
        }
        if (why != null) {
            throw new HfConfigException(String.format(Locale.ROOT, "a model with %s has no Hugging Face GPT-2 equivalent", why));
        }
    }

    static void refuseTrue(JsonNode c, Path file, String key, String what) {
        if (optionalBoolean(c, file, key, false)) {
            throw new HfConfigException(file + ": " + key + " is true (" + what + "); not supported");
        }
    }

    // The readers below are strict: Jackson's asInt()/asDouble(default) turn "abc" into 0 or the
    // default, which would import a different model than the file describes without a word.

    static HfConfigException wrongValue(Path file, String key, JsonNode v, String expected) {
        return new HfConfigException(file + ": " + key + " is " + v + "; expected " + expected);
    }

    static int requiredInt(JsonNode c, Path file, String key) {
        if (!c.hasNonNull(key)) {
            throw new HfConfigException(file + ": " + key + " is missing; expected a positive integer");
        }
        return positiveInt(c, file, key, "a positive integer");
    }

    static int positiveInt(JsonNode c, Path file, String key, String expected) {
        JsonNode v = c.get(key);
        if (!v.isIntegralNumber() || !v.canConvertToInt() || v.asInt() <= 0) {
            throw wrongValue(file, key, v, expected);
        }
        return v.asInt();
    }

    /** A finite number that {@code valid} accepts; the default when the key is absent. */
    static double optionalNumber(JsonNode c, Path file, String key, double dflt, DoublePredicate valid, String expected) {
        if (!c.has(key)) {
            return dflt;
        }
        JsonNode v = c.get(key);
        if (!v.isNumber() || !Double.isFinite(v.asDouble()) || !valid.test(v.asDouble())) {
            throw wrongValue(file, key, v, expected);
        }
        return v.asDouble();
    }

    static boolean optionalBoolean(JsonNode c, Path file, String key, boolean dflt) {
        if (!c.has(key)) {
            return dflt;
        }
        JsonNode v = c.get(key);
        if (!v.isBoolean()) {
            throw wrongValue(file, key, v, "true or false");
        }
        return v.asBoolean();
    }

    static String optionalText(JsonNode c, Path file, String key, String dflt) {
        if (!c.has(key)) {
            return dflt;
        }
        JsonNode v = c.get(key);
        if (!v.isTextual()) {
            throw wrongValue(file, key, v, "a string");
        }
        return v.asText();
    }
}
