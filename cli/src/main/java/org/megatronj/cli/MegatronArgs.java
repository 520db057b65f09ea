package org.megatronj.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.megatronj.model.PipelineLayout;

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
    private static final Map<String, String> UNSUPPORTED = Map.of(
            "heterogeneous_layers_config_path", "heterogeneous layers", "hybrid_override_pattern", "hybrid (Mamba) layers",
            "mtp_use_repeated_layer", "one multi-token prediction layer repeated over the depths",
            "mtp_hsm", "multi-token prediction hidden state mixing",
            "mtp_detach_heads", "multi-token prediction heads detached from the decoder");
    /**
     * Mixture-of-experts arguments (Megatron-core's TransformerConfig fields) whose non-default values (not None, False
     * or 0) make MoE layers Megatron-J does not build or routes differently, and what they are.
     */
    private static final Map<String, String> UNSUPPORTED_MOE = Map.ofEntries(
            Map.entry("moe_router_force_load_balancing", "forced load balancing (random routing)"),
            Map.entry("moe_router_force_biased", "forced biased routing"),
            Map.entry("moe_apply_probs_on_input", "routing probabilities applied to the experts' input"),
            Map.entry("moe_latent_size", "MoE latent projections"),
            Map.entry("moe_mlp_glu_interleave_size", "interleaved GLU expert weights"),
            Map.entry("moe_shared_expert_glu_interleave_size", "interleaved GLU shared-expert weights"),
            Map.entry("moe_expert_rank_capacity_factor", "a per-rank expert capacity"));

    private MegatronArgs() {
    }

    /** The model flags the arguments amount to. */
    static List<String> modelFlags(Map<?, ?> args, Path file) {
        refuseSet(args, UNSUPPORTED, file);
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
        if (Boolean.TRUE.equals(args.get("multi_latent_attention"))) {
            flags.addAll(mlaFlags(args));
        }
        if (moe(args)) {
            flags.addAll(moeFlags(args, file));
        }
        if (args.get("mtp_num_layers") instanceof Number depths && depths.longValue() != 0) {   // None: no MTP
            flags.addAll(List.of("--mtp-num-layers", Long.toString(depths.longValue())));
            if (args.get("mtp_loss_scaling_factor") instanceof Number factor) {
                flags.addAll(List.of("--mtp-loss-scaling-factor", String.valueOf(factor.doubleValue())));
            }
        }
        return flags;
    }

    /**
     * The multi-latent attention flags of the run (Megatron's "mla" group and {@code --rope-type}); how Megatron computed
     * them ({@code mla_down_proj_fusion}, {@code cache_mla_latents} for inference) is not carried.
     */
    private static List<String> mlaFlags(Map<?, ?> args) {
        List<String> flags = new ArrayList<>(List.of("--multi-latent-attention"));
        for (String name : List.of("q_lora_rank", "kv_lora_rank", "qk_head_dim", "qk_pos_emb_head_dim", "v_head_dim",
                "rope_type", "rotary_scaling_factor", "mscale", "mscale_all_dim")) {
            valued(flags, args, name);
        }
        return flags;
    }

    /** Whether the run built mixture-of-experts layers ({@code --num-experts}; Megatron reads 0 as none). */
    static boolean moe(Map<?, ?> args) {
        return args.get("num_experts") instanceof Number n && n.longValue() != 0;
    }

    /** The run's expert-parallel size (1 without MoE). */
    static int expertParallelSize(Map<?, ?> args) {
        return moe(args) && args.get("expert_model_parallel_size") instanceof Number n ? n.intValue() : 1;
    }

    /**
     * The MoE flags of the run: the experts and their width, which layers are MoE, the router's choice and losses, the
     * capacity and the shared experts. How Megatron computed them (grouped GEMMs, the token dispatcher, fusions, the
     * expert-parallel layout) is not a property of the model and is not carried, nor is the training-only router input
     * jitter ({@code moe_input_jitter_eps}); what Megatron-J does not compute is refused by name.
     */
    private static List<String> moeFlags(Map<?, ?> args, Path file) {
        refuseSet(args, UNSUPPORTED_MOE, file);
        Object function = args.get("moe_router_score_function");
        if (function != null && !function.equals("softmax") && !function.equals("sigmoid")) {
            throw new IllegalArgumentException(file + ": the run routed with the score function " + function
                    + " (moe_router_score_function), which Megatron-J does not build (softmax and sigmoid only)");
        }
        Object routerDtype = args.get("moe_router_dtype");
        if (routerDtype != null && !routerDtype.equals("fp32")) {
            throw new IllegalArgumentException(file + ": the run's router computed in " + routerDtype
                    + " (moe_router_dtype), which Megatron-J does not (fp32 at most)");
        }
        List<?> types = args.get("moe_router_load_balancing_type") instanceof List<?> l ? l
                : args.get("moe_router_load_balancing_type") == null ? List.of() : List.of(args.get("moe_router_load_balancing_type"));
        List<?> coeffs = args.get("moe_aux_loss_coeff") instanceof List<?> l ? l
                : args.get("moe_aux_loss_coeff") == null ? List.of() : List.of(args.get("moe_aux_loss_coeff"));
        if (types.size() > 1 || coeffs.size() > 1) {
            throw new IllegalArgumentException(file + ": the run combined several load-balancing losses"
                    + " (moe_router_load_balancing_type = " + types + ", moe_aux_loss_coeff = " + coeffs + "), which"
                    + " Megatron-J does not build (one type and one coefficient)");
        }
        if (!types.isEmpty() && !List.of("aux_loss", "seq_aux_loss", "sinkhorn", "none").contains(types.getFirst())) {
            throw new IllegalArgumentException(file + ": the run balanced its experts with " + types.getFirst()
                    + " (moe_router_load_balancing_type), which Megatron-J does not build (aux_loss, seq_aux_loss, sinkhorn"
                    + " or none)");
        }
        List<String> flags = new ArrayList<>(List.of("--num-experts", String.valueOf(args.get("num_experts"))));
        valued(flags, args, "moe_router_topk");
        valued(flags, args, "moe_ffn_hidden_size");
        if ("fp32".equals(routerDtype)) {
            flags.addAll(List.of("--moe-router-dtype", "fp32"));
        }
        Object freq = args.get("moe_layer_freq");
        if (freq instanceof List<?> pattern) {                       // argparse evaluated a pattern such as "([1]+[0])*2"
            flags.addAll(List.of("--moe-layer-freq", "[" + String.join(",", pattern.stream().map(String::valueOf).toList()) + "]"));
        } else if (freq != null) {
            flags.addAll(List.of("--moe-layer-freq", String.valueOf(freq)));
        }
        if (!types.isEmpty()) {
            flags.addAll(List.of("--moe-router-load-balancing-type", String.valueOf(types.getFirst())));
        }
        if (!coeffs.isEmpty()) {
            flags.addAll(List.of("--moe-aux-loss-coeff", String.valueOf(coeffs.getFirst())));
        }
        valued(flags, args, "moe_z_loss_coeff");
        if (Boolean.TRUE.equals(args.get("moe_router_pre_softmax"))) {
            flags.add("--moe-router-pre-softmax");
        }
        valued(flags, args, "moe_router_score_function");
        valued(flags, args, "moe_router_topk_scaling_factor");
        if (args.get("moe_expert_capacity_factor") instanceof Number capacity && capacity.doubleValue() > 0) {
            flags.addAll(List.of("--moe-expert-capacity-factor", String.valueOf(capacity)));   // None or < 0: dropless
            valued(flags, args, "moe_token_drop_policy");
            if (Boolean.TRUE.equals(args.get("moe_pad_expert_input_to_capacity"))) {
                flags.add("--moe-pad-expert-input-to-capacity");
            }
        }
        valued(flags, args, "moe_shared_expert_intermediate_size");
        if (Boolean.TRUE.equals(args.get("moe_shared_expert_gate"))) {
            flags.add("--moe-shared-expert-gate");
        }
        if (Boolean.TRUE.equals(args.get("moe_router_enable_expert_bias"))) {
            flags.add("--moe-router-enable-expert-bias");
            valued(flags, args, "moe_router_bias_update_rate");
        }
        if (args.get("moe_router_group_topk") != null) {
            valued(flags, args, "moe_router_num_groups");
            valued(flags, args, "moe_router_group_topk");
        } else if (args.get("moe_router_topk_limited_devices") instanceof Number devices && devices.longValue() != 0) {
            // Megatron's deprecated device-limited routing: its TransformerConfig makes it groups of the expert-parallel ranks
            flags.addAll(List.of("--moe-router-num-groups", String.valueOf(expertParallelSize(args)),
                    "--moe-router-group-topk", String.valueOf(devices)));
        }
        return flags;
    }

    /** {@code --name value} when the argument is set. */
    private static void valued(List<String> flags, Map<?, ?> args, String name) {
        if (args.get(name) != null) {
            flags.addAll(List.of(flag(name), String.valueOf(args.get(name))));
        }
    }

    /** Refuses the first of {@code unsupported}'s arguments that the run set (not None, False or 0), by name. */
    private static void refuseSet(Map<?, ?> args, Map<String, String> unsupported, Path file) {
        unsupported.entrySet().stream().sorted(Map.Entry.comparingByKey()).forEach(e -> {
            Object v = args.get(e.getKey());
            if (v != null && !Boolean.FALSE.equals(v) && !(v instanceof Number n && n.doubleValue() == 0)) {
                throw new IllegalArgumentException(file + ": the run used " + e.getValue() + " (" + e.getKey() + " = " + v
                        + "), which Megatron-J does not build");
            }
        });
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
     * The run's parallel sizes against the rank folders found, and its pipeline split (no virtual pipeline).
     */
    static void checkLayout(Map<?, ?> args, int tp, int pp, int ep, Path file) {
        for (var size : Map.of("tensor_model_parallel_size", tp, "pipeline_model_parallel_size", pp,
                "expert_model_parallel_size", ep).entrySet()) {
            int runs = size.getKey().startsWith("expert") ? expertParallelSize(args)
                    : args.get(size.getKey()) instanceof Number n ? n.intValue() : size.getValue();
            if (runs != size.getValue()) {
                throw new IllegalArgumentException(file + ": the run's " + size.getKey() + " is " + runs + " but its folder holds "
                        + size.getValue() + " such ranks");
            }
        }
        checkExpertTensorParallel(args, tp, file);
        pipelineLayout(args, pp, file);
    }

    /**
     * How the run split its layers over its {@code pp} stages: Megatron's even split, or its uneven one
     * ({@code decoder_first/last_pipeline_num_layers}, {@code account_for_embedding/loss_in_pipeline_split}, a
     * {@code pipeline_model_parallel_layout} of one chunk per stage). Virtual pipelines (model0, model1...) are refused.
     */
    static PipelineLayout pipelineLayout(Map<?, ?> args, int pp, Path file) {
        for (String name : List.of("virtual_pipeline_model_parallel_size", "num_layers_per_virtual_pipeline_stage",
                "num_virtual_stages_per_pipeline_rank")) {
            if (args.get(name) instanceof Number n && n.intValue() > 1 || name.startsWith("num_layers") && args.get(name) != null) {
                throw new IllegalArgumentException(file + ": the run split its pipeline into virtual stages (" + name + " = "
                        + args.get(name) + "); merge it to one rank first (Megatron-LM's tools/checkpoint/convert.py)");
            }
        }
        int layers = integer(args, "num_layers", file);
        try {
            Object layout = args.get("pipeline_model_parallel_layout");
            if (layout != null) {
                if (!(layout instanceof String s)) {
                    throw new IllegalArgumentException("pipeline_model_parallel_layout is " + layout + ", not a layout string");
                }
                return PipelineLayout.parse(s, pp, layers);
            }
            return PipelineLayout.megatron(layers, pp, 1, optionalInteger(args, "decoder_first_pipeline_num_layers", file),
                    optionalInteger(args, "decoder_last_pipeline_num_layers", file),
                    Boolean.TRUE.equals(args.get("account_for_embedding_in_pipeline_split")),
                    Boolean.TRUE.equals(args.get("account_for_loss_in_pipeline_split")));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file + ": the run's pipeline split over " + pp + " stages: " + e.getMessage(), e);
        }
    }

    private static Integer optionalInteger(Map<?, ?> args, String name, Path file) {
        Object v = args.get(name);
        if (v == null) {
            return null;
        }
        if (!(v instanceof Number n)) {
            throw new IllegalArgumentException(file + ": the run's " + name + " is " + v + ", not a number");
        }
        return n.intValue();
    }

    /**
     * Megatron-J splits the experts over the tensor ranks as the dense layers: a run whose experts had another tensor
     * parallel size ({@code --expert-tensor-parallel-size}) is refused.
     */
    static void checkExpertTensorParallel(Map<?, ?> args, int tp, Path file) {
        if (moe(args) && args.get("expert_tensor_parallel_size") instanceof Number etp && etp.intValue() != tp) {
            throw new IllegalArgumentException(file + ": the run split its experts over expert_tensor_parallel_size = " + etp
                    + " ranks, not its " + tp + " tensor ranks; Megatron-J reads experts split as the dense layers are (merge"
                    + " it with Megatron-LM's tools/checkpoint/convert.py first)");
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
