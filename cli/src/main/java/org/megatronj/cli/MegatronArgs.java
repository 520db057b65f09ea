package org.megatronj.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * A Megatron-LM run's {@code args} (the argparse namespace its checkpoints keep) as Megatron-J's command-line flags:
 * the model's, by Megatron's destination names, and the tokenizer's. Model features Megatron-J does not build are
 * refused by name rather than dropped.
 */
final class MegatronArgs {
    /** Valued model arguments and their flags. */
    private static final List<String> VALUED = List.of("num_layers", "hidden_size", "ffn_hidden_size", "num_attention_heads",
            "kv_channels", "max_position_embeddings", "position_embedding_type", "rotary_percent", "rotary_base",
            "rotary_seq_len_interpolation_factor", "rope_scaling_factor", "normalization", "attention_dropout",
            "hidden_dropout", "init_method_std", "make_vocab_size_divisible_by");
    /** Valued arguments Megatron types as int that a checkpoint may hold as a float. */
    private static final java.util.Set<String> INTEGERS = java.util.Set.of("rotary_base", "rotary_seq_len_interpolation_factor");
    /** Switches that are flags when true. */
    private static final List<String> SWITCHES = List.of("swiglu", "squared_relu", "add_qkv_bias", "qk_layernorm",
            "openai_gelu", "untie_embeddings_and_output_weights", "apply_layernorm_1p", "apply_query_key_layer_scaling",
            "use_rope_scaling", "rotary_interleaved");
    /** Arguments whose non-default values make a model Megatron-J does not build, and what they are. */
    private static final Map<String, String> UNSUPPORTED = Map.of("num_experts", "mixture of experts",
            "multi_latent_attention", "multi-latent attention", "mtp_num_layers", "multi-token prediction",
            "heterogeneous_layers_config_path", "heterogeneous layers", "hybrid_override_pattern", "hybrid (Mamba) layers");

    private MegatronArgs() {
    }

    /** The model flags the arguments amount to. */
    static List<String> modelFlags(Map<?, ?> args, Path file) {
        UNSUPPORTED.forEach((name, what) -> {
            Object v = args.get(name);
            if (v != null && !Boolean.FALSE.equals(v) && !(v instanceof Number n && n.doubleValue() == 0)) {
                throw new IllegalArgumentException(file + ": the run used " + what + " (" + name + " = " + v + "), which"
                        + " Megatron-J does not build");
            }
        });
        List<String> flags = new ArrayList<>();
        for (String name : VALUED) {
            Object v = args.get(name);
            if (v != null) {
                flags.add(flag(name));
                flags.add(v instanceof Double d && d == Math.rint(d) && INTEGERS.contains(name) ? Long.toString(d.longValue())
                        : String.valueOf(v));
            }
        }
        for (String name : SWITCHES) {
            if (Boolean.TRUE.equals(args.get(name))) {
                flags.add(flag(name));
            }
        }
        if (Boolean.TRUE.equals(args.get("group_query_attention"))) {
            flags.addAll(List.of("--group-query-attention", "--num-query-groups", String.valueOf(args.get("num_query_groups"))));
        }
        if (Boolean.FALSE.equals(args.get("add_bias_linear"))) {
            flags.add("--disable-bias-linear");
        }
        if (Boolean.FALSE.equals(args.get("bias_gelu_fusion"))) {
            flags.add("--no-bias-gelu-fusion");
        }
        Object eps = args.containsKey("norm_epsilon") ? args.get("norm_epsilon") : args.get("layernorm_epsilon");
        if (eps != null) {
            flags.addAll(List.of("--norm-epsilon", String.valueOf(eps)));
        }
        return flags;
    }

    /** The tokenizer flags of the run, as a Megatron-J checkpoint keeps them in its arguments. */
    static ObjectNode tokenizerArgs(Map<?, ?> args) {
        ObjectNode out = new ObjectMapper().createObjectNode();
        for (String name : List.of("tokenizer_type", "vocab_file", "merge_file", "tokenizer_model", "vocab_size",
                "vocab_extra_ids", "tiktoken_pattern", "tiktoken_num_special_tokens")) {
            Object v = args.get(name);
            if (v != null && !(name.equals("vocab_extra_ids") && v instanceof Number n && n.longValue() == 0)) {
                out.put(name.replace('_', '-'), String.valueOf(v));
            }
        }
        for (String name : List.of("special_tokens", "tokenizer_special_tokens", "tiktoken_special_tokens")) {   // by version
            if (args.get(name) instanceof List<?> tokens) {
                tokens.forEach(t -> out.withArray("tokenizer-special-tokens").add(String.valueOf(t)));
                break;
            }
        }
        if (Boolean.TRUE.equals(args.get("legacy_tokenizer"))) {
            out.put("legacy-tokenizer", "true");
        }
        return out;
    }

    /**
     * The run's parallel sizes against the rank folders found, and the pipeline splits Megatron-J's layout shares:
     * as many layers on every stage, no virtual pipeline.
     */
    static void checkLayout(Map<?, ?> args, int tp, int pp, Path file) {
        for (var size : Map.of("tensor_model_parallel_size", tp, "pipeline_model_parallel_size", pp).entrySet()) {
            if (args.get(size.getKey()) instanceof Number n && n.intValue() != size.getValue()) {
                throw new IllegalArgumentException(file + ": the run's " + size.getKey() + " is " + n + " but its folder holds "
                        + size.getValue() + " such ranks");
            }
        }
        for (String name : List.of("virtual_pipeline_model_parallel_size", "num_layers_per_virtual_pipeline_stage",
                "decoder_first_pipeline_num_layers", "decoder_last_pipeline_num_layers", "pipeline_model_parallel_layout")) {
            if (args.get(name) != null) {
                throw new IllegalArgumentException(file + ": the run split its pipeline with " + name + " = " + args.get(name)
                        + "; merge it to one rank first (Megatron-LM's tools/checkpoint/convert.py)");
            }
        }
        for (String name : List.of("account_for_embedding_in_pipeline_split", "account_for_loss_in_pipeline_split")) {
            if (Boolean.TRUE.equals(args.get(name))) {
                throw new IllegalArgumentException(file + ": the run split its pipeline with --" + name.replace('_', '-')
                        + "; merge it to one rank first (Megatron-LM's tools/checkpoint/convert.py)");
            }
        }
        int layers = integer(args, "num_layers", file);
        if (layers % pp != 0) {
            throw new IllegalArgumentException(file + ": " + layers + " layers over " + pp + " pipeline stages is not an even split");
        }
    }

    /** A required integer argument. */
    static int integer(Map<?, ?> args, String name, Path file) {
        if (args.get(name) instanceof Number n) {
            return Math.toIntExact(n.longValue());
        }
        throw new IllegalArgumentException(file + ": the run's args have no integer " + name + " (found " + args.get(name) + ")");
    }

    private static String flag(String dest) {
        return "--" + dest.replace('_', '-').toLowerCase(Locale.ROOT);
    }
}
