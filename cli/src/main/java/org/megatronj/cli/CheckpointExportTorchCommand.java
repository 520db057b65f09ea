package org.megatronj.cli;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

import com.fasterxml.jackson.databind.JsonNode;
import org.megatronj.io.checkpoint.Checkpoint;
import org.megatronj.io.checkpoint.CheckpointLayout;
import org.megatronj.io.checkpoint.CheckpointWriter;
import org.megatronj.io.checkpoint.ShardLayout;
import org.megatronj.io.torch.Pickler;
import org.megatronj.io.torch.TorchWriter;
import org.megatronj.io.torch.Unpickler;
import org.megatronj.model.MoeConfig;
import org.megatronj.model.ParameterSpec;
import org.megatronj.model.TransformerConfig;
import org.megatronj.parallel.train.TrainingCheckpointer;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code megatron checkpoint export-torch}: a Megatron-J checkpoint as a Megatron-LM {@code --ckpt-format torch} release. */
@Command(name = "export-torch", mixinStandardHelpOptions = true,
        description = {"Write a Megatron-J checkpoint (one tensor- and pipeline-parallel rank: reshard others first) as the",
                "release checkpoint Megatron-LM loads with --ckpt-format torch: release/mp_rank_00/model_optim_rng.pt",
                "with the model's state dict (Megatron-core names, TransformerEngine's or the local layer spec's; MoE experts",
                "as SequentialMLP's local_experts.<e>), 'args'",
                "(the model's and tokenizer's arguments, for --use-checkpoint-args and Megatron's checks) and",
                "checkpoint_version 3.0. Megatron loads a release as weights only, at iteration 0."})
final class CheckpointExportTorchCommand implements Callable<Integer> {
    private static final List<String> TE_MODULES = List.of("self_attention.linear_qkv", "self_attention.linear_proj",
            "self_attention.core_attention", "mlp.linear_fc1", "mlp.linear_fc2");

    @Option(names = "--load", required = true, paramLabel = "DIR", description = "Megatron-J checkpoint folder.")
    Path load;

    @Option(names = "--save", required = true, paramLabel = "DIR", description = "Folder for Megatron-LM's checkpoint.")
    Path save;

    @Option(names = "--transformer-impl", paramLabel = "IMPL", defaultValue = "transformer_engine", description = "The layer"
            + " spec Megatron-LM will load it into: transformer_engine (default, Megatron's: layer norms fused into"
            + " linear_qkv and linear_fc1, _extra_state entries) or local.")
    String transformerImpl;

    @Option(names = "--dtype", paramLabel = "DTYPE", defaultValue = "fp32", description = "fp32 (default), bf16 or fp16.")
    String dtype;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        boolean te = switch (transformerImpl) {
            case "transformer_engine" -> true;
            case "local" -> false;
            default -> throw new IllegalArgumentException("--transformer-impl " + transformerImpl + ": expected"
                    + " transformer_engine or local");
        };
        String torchDtype = switch (dtype) {
            case "fp32" -> "torch.float32";
            case "bf16" -> "torch.bfloat16";
            case "fp16" -> "torch.float16";
            default -> throw new IllegalArgumentException("--dtype " + dtype + ": expected fp32, bf16 or fp16");
        };
        if (Files.exists(CheckpointLayout.trackerFile(save))) {
            throw new IllegalArgumentException("--save " + save + " already holds a checkpoint ("
                    + CheckpointLayout.trackerFile(save).getFileName() + "); choose an empty folder");
        }
        try (Checkpoint ckpt = Checkpoint.openLatest(load, TrainingCheckpointer.RANK_DIR)) {
            if (ShardLayout.fromMetadata(ckpt.metadata()).sharded()) {
                throw new IllegalArgumentException(ckpt.rankDir() + " is one shard of a tensor- or pipeline-parallel checkpoint:"
                        + " merge it first with 'megatron checkpoint reshard --load " + load + " --save <folder>"
                        + " --target-tensor-parallel-size 1 --target-pipeline-parallel-size 1'");
            }
            TransformerConfig c = CheckpointModel.savedConfig(ckpt);
            Map<String, Object> model = new LinkedHashMap<>();
            for (ParameterSpec p : ParameterSpec.forGpt(c)) {
                float[] values = ckpt.model().tensor(p.name()).toFloatArray();
                model.put(torchName(te ? teName(p.name(), c) : p.name()), new TorchWriter.TensorData(torchDtype, p.shape(),
                        values));
            }
            if (te) {
                for (int l = 0; l < c.numLayers(); l++) {
                    for (String module : teModules(c, l)) {
                        model.put("decoder.layers." + l + "." + module + "._extra_state", null);
                    }
                }
                for (int k = 0; k < c.mtpNumLayers(); k++) {   // eh_proj is a TE linear; the depth's layer as the decoder's last
                    String p = ParameterSpec.mtpPrefix(k);
                    model.put(p + "eh_proj._extra_state", null);
                    for (String module : teModules(c, c.numLayers() - 1)) {
                        model.put(p + MTP_LAYER + module + "._extra_state", null);
                    }
                }
            }
            Map<String, Object> state = new LinkedHashMap<>();
            state.put("args", new Pickler.NewObject(new Unpickler.Global("argparse", "Namespace"),
                    megatronArgs(c, ckpt.metadata().path("args"), transformerImpl, torchDtype)));
            state.put("checkpoint_version", 3.0);
            state.put("iteration", 0L);
            state.put("model", new Pickler.OrderedDict(model));
            Path file = save.resolve("release").resolve("mp_rank_00").resolve("model_optim_rng.pt");
            Files.createDirectories(file.getParent());
            long bytes = TorchWriter.write(file, state);
            CheckpointWriter.writeDurably(CheckpointLayout.trackerFile(save), CheckpointLayout.RELEASE.getBytes(StandardCharsets.UTF_8));
            spec.commandLine().getOut().printf("exported %s (%d tensors, %s, %s spec): %.1f MiB -> %s%n", ckpt.rankDir(),
                    ParameterSpec.forGpt(c).size(), dtype, transformerImpl, bytes / 1048576.0, file);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + save + ": " + e.getMessage(), e);
        }
        return 0;
    }

    /**
     * TransformerEngine's fused layer norms, where Megatron's TE spec keeps them: the input norm in linear_qkv, the
     * pre-MLP norm in a dense layer's linear_fc1; a MoE layer keeps its pre_mlp_layernorm (a TENorm of its own:
     * megatron/core/models/gpt/gpt_layer_specs.py builds {@code pre_mlp_layernorm=backend.layer_norm(...) if num_experts}).
     */
    static String teName(String name, TransformerConfig c) {
        String fused = c.mla() != null   // MLA's TE spec: a TENorm input norm, the latent norms fused into the up projections
                ? name.replace(".self_attention.q_layernorm.", ".self_attention.linear_q_up_proj.layer_norm_")
                        .replace(".self_attention.kv_layernorm.", ".self_attention.linear_kv_up_proj.layer_norm_")
                : name.replace(".input_layernorm.", ".self_attention.linear_qkv.layer_norm_");
        String prefix = "decoder.layers.";
        if (name.startsWith(prefix) && c.isMoeLayer(Integer.parseInt(name.substring(prefix.length(), name.indexOf('.', prefix.length()))))) {
            return fused;
        }
        if (name.startsWith("mtp.") && c.mtpLayersAreMoe()) {   // an MTP depth's layer is the decoder's last layer's kind
            return fused;
        }
        return fused.replace(".pre_mlp_layernorm.", ".mlp.linear_fc1.layer_norm_");
    }

    /**
     * The TransformerEngine modules of layer {@code l}, whose {@code _extra_state} Megatron's TE spec saves: a MoE
     * layer's experts are SequentialMLP's TE linears without {@code --moe-grouped-gemm}, its shared experts TE linears.
     */
    /** The MTP depth's inner layer in today's Megatron-core modules, which a {@code torch}-format state dict names. */
    private static final String MTP_LAYER = "mtp_model_layer.";

    /** Our name in a {@code torch}-format state dict: an MTP depth's {@code transformer_layer.} is its module's name there. */
    static String torchName(String name) {
        return name.replaceFirst("^(mtp\\.layers\\.\\d+\\.)transformer_layer\\.", "$1" + MTP_LAYER);
    }

    static List<String> teModules(TransformerConfig c, int l) {
        List<String> attention = TE_MODULES.subList(0, 3);
        if (c.mla() != null) {
            attention = new java.util.ArrayList<>(c.mla().hasQueryLatent()
                    ? List.of("self_attention.linear_q_down_proj", "self_attention.linear_q_up_proj")
                    : List.of("self_attention.linear_q_proj"));
            attention.addAll(List.of("self_attention.linear_kv_down_proj", "self_attention.linear_kv_up_proj",
                    "self_attention.linear_proj", "self_attention.core_attention"));
        }
        if (!c.isMoeLayer(l)) {
            List<String> modules = new java.util.ArrayList<>(attention);
            modules.addAll(TE_MODULES.subList(3, 5));
            return modules;
        }
        List<String> modules = new java.util.ArrayList<>(attention);
        for (int e = 0; e < c.moe().numExperts(); e++) {
            modules.add("mlp.experts.local_experts." + e + ".linear_fc1");
            modules.add("mlp.experts.local_experts." + e + ".linear_fc2");
        }
        if (c.moe().sharedExpertIntermediateSize() > 0) {
            modules.add("mlp.shared_experts.linear_fc1");
            modules.add("mlp.shared_experts.linear_fc2");
        }
        return modules;
    }

    /**
     * The arguments Megatron-LM reads from a checkpoint: its architecture checks ({@code check_checkpoint_args}) and
     * {@code --use-checkpoint-args}' list, under Megatron's names, from the model and the saved tokenizer flags.
     */
    static Map<String, Object> megatronArgs(TransformerConfig c, JsonNode savedArgs, String transformerImpl, String dtype) {
        Map<String, Object> a = new LinkedHashMap<>();
        a.put("num_layers", (long) c.numLayers());
        a.put("hidden_size", (long) c.hiddenSize());
        a.put("ffn_hidden_size", (long) c.ffnHiddenSize());
        a.put("num_attention_heads", (long) c.numAttentionHeads());
        a.put("kv_channels", (long) c.kvChannels());
        a.put("group_query_attention", c.numQueryGroups() != c.numAttentionHeads());
        a.put("num_query_groups", (long) c.numQueryGroups());
        a.put("seq_length", (long) c.seqLength());
        a.put("max_position_embeddings", (long) c.maxPositionEmbeddings());
        a.put("position_embedding_type", c.positionEmbeddingType().flagValue());
        a.put("add_position_embedding", c.positionEmbeddingType() == org.megatronj.model.PositionEmbeddingType.LEARNED_ABSOLUTE);
        a.put("use_rotary_position_embeddings", c.positionEmbeddingType() == org.megatronj.model.PositionEmbeddingType.ROPE);
        a.put("rotary_percent", decimal(c.rotaryPercent()));
        a.put("rotary_base", (long) c.rotaryBase());
        a.put("rotary_interleaved", c.rotaryInterleaved());
        float factor = c.rotarySeqLenInterpolationFactor();   // Megatron's int, None when not given
        a.put("rotary_seq_len_interpolation_factor", factor == 0f || factor == 1f ? null : (Object) (long) factor);
        a.put("use_rope_scaling", c.useRopeScaling());
        a.put("rope_scaling_factor", decimal(c.ropeScalingFactor()));
        a.put("normalization", c.normalization().flagValue());
        a.put("norm_epsilon", decimal(c.layernormEpsilon()));
        a.put("apply_layernorm_1p", c.applyLayernorm1p());
        a.put("swiglu", c.swiglu());
        a.put("squared_relu", c.squaredRelu());
        a.put("add_bias_linear", c.addBiasLinear());
        a.put("add_qkv_bias", c.addQkvBias());
        a.put("qk_layernorm", c.qkLayernorm());
        a.put("bias_gelu_fusion", c.geluTanh() && c.addBiasLinear());
        a.put("openai_gelu", c.geluTanh() && !c.addBiasLinear());
        a.put("untie_embeddings_and_output_weights", c.untieEmbeddingsAndOutputWeights());
        a.put("apply_query_key_layer_scaling", c.applyQueryKeyLayerScaling());
        a.put("attention_dropout", decimal(c.attentionDropout()));
        a.put("hidden_dropout", decimal(c.hiddenDropout()));
        a.put("init_method_std", decimal(c.initMethodStd()));
        a.put("padded_vocab_size", (long) c.paddedVocabSize());
        a.put("make_vocab_size_divisible_by", (long) c.makeVocabSizeDivisibleBy());
        a.put("tensor_model_parallel_size", 1L);
        a.put("pipeline_model_parallel_size", 1L);
        a.put("tokenizer_type", text(savedArgs, "tokenizer-type"));
        a.put("vocab_file", text(savedArgs, "vocab-file"));
        a.put("merge_file", text(savedArgs, "merge-file"));
        a.put("tokenizer_model", text(savedArgs, "tokenizer-model"));
        a.put("vocab_size", savedArgs.hasNonNull("vocab-size") ? (Object) savedArgs.get("vocab-size").asLong() : null);
        a.put("tiktoken_pattern", text(savedArgs, "tiktoken-pattern"));
        a.put("tiktoken_num_special_tokens", savedArgs.path("tiktoken-num-special-tokens").asLong(1000));
        List<Object> special = new java.util.ArrayList<>();
        savedArgs.path("tokenizer-special-tokens").forEach(t -> special.add(t.asText()));
        a.put("special_tokens", special.isEmpty() ? null : special);
        a.put("params_dtype", new Unpickler.Global("torch", dtype.substring("torch.".length())));
        a.put("ckpt_format", "torch");
        a.put("transformer_impl", transformerImpl);
        if (c.mtp() != null) {   // Megatron's --use-checkpoint-args forces mtp_num_layers
            a.put("mtp_num_layers", (long) c.mtpNumLayers());
            a.put("mtp_loss_scaling_factor", decimal(c.mtp().lossScalingFactor()));
        }
        if (c.moe() != null) {
            moeArgs(a, c);
        }
        a.put("multi_latent_attention", c.mla() != null);
        if (c.mla() != null) {
            mlaArgs(a, c.mla());
        }
        return a;
    }

    /**
     * The mixture-of-experts arguments, under Megatron's names and types ({@code --use-checkpoint-args} takes
     * num_experts, moe_layer_freq, moe_ffn_hidden_size, moe_router_topk, moe_router_pre_softmax, moe_grouped_gemm,
     * moe_shared_expert_intermediate_size, moe_router_score_function, moe_router_enable_expert_bias and
     * moe_router_topk_scaling_factor): SequentialMLP experts (no grouped GEMM), one rank (no expert parallelism).
     */
    private static void moeArgs(Map<String, Object> a, TransformerConfig c) {
        MoeConfig m = c.moe();
        a.put("num_experts", (long) m.numExperts());
        a.put("moe_router_topk", (long) m.routerTopk());
        a.put("moe_ffn_hidden_size", (long) m.ffnHiddenSize());
        String freq = m.layerFreq().strip();
        if (!freq.isEmpty() && freq.chars().allMatch(Character::isDigit)) {
            a.put("moe_layer_freq", Long.parseLong(freq));
        } else {   // argparse's moe_freq_type evaluates a pattern to the list
            List<Object> pattern = new java.util.ArrayList<>();
            for (boolean moe : m.moeLayers(c.numLayers())) {
                pattern.add(moe ? 1L : 0L);
            }
            a.put("moe_layer_freq", pattern);
        }
        a.put("moe_router_load_balancing_type", m.loadBalancingType().flagValue());
        a.put("moe_aux_loss_coeff", decimal(m.auxLossCoeff()));
        a.put("moe_z_loss_coeff", m.zLossCoeff() == 0 ? null : (Object) decimal(m.zLossCoeff()));
        a.put("moe_router_pre_softmax", m.routerPreSoftmax());
        a.put("moe_router_score_function", m.scoreFunction().flagValue());
        a.put("moe_router_topk_scaling_factor", m.topkScalingFactor() == 0 ? null : (Object) decimal(m.topkScalingFactor()));
        a.put("moe_router_enable_expert_bias", m.routerEnableExpertBias());
        a.put("moe_router_bias_update_rate", decimal(m.routerBiasUpdateRate()));
        a.put("moe_expert_capacity_factor", m.dropless() ? null : (Object) decimal(m.expertCapacityFactor()));
        a.put("moe_token_drop_policy", m.tokenDropPolicy().flagValue());
        a.put("moe_pad_expert_input_to_capacity", m.padExpertInputToCapacity());
        a.put("moe_shared_expert_intermediate_size", m.sharedExpertIntermediateSize() == 0 ? null
                : (Object) (long) m.sharedExpertIntermediateSize());
        a.put("moe_shared_expert_gate", m.sharedExpertGate());
        a.put("moe_router_num_groups", m.routerNumGroups() == 0 ? null : (Object) (long) m.routerNumGroups());
        a.put("moe_router_group_topk", m.routerGroupTopk() == 0 ? null : (Object) (long) m.routerGroupTopk());
        a.put("moe_router_dtype", m.routerDtypeFp32() ? "fp32" : null);
        a.put("moe_grouped_gemm", false);
        a.put("moe_single_grouped_weight", false);
        a.put("moe_single_grouped_bias", false);
        a.put("moe_latent_size", null);
        a.put("expert_model_parallel_size", 1L);
        a.put("expert_tensor_parallel_size", 1L);
    }

    /** Megatron's "mla" argument group and --rope-type, as its argparse namespace holds them. */
    private static void mlaArgs(Map<String, Object> a, org.megatronj.model.MlaConfig m) {
        a.put("q_lora_rank", m.hasQueryLatent() ? (Object) (long) m.qLoraRank() : null);
        a.put("kv_lora_rank", (long) m.kvLoraRank());
        a.put("qk_head_dim", (long) m.qkHeadDim());
        a.put("qk_pos_emb_head_dim", (long) m.qkPosEmbHeadDim());
        a.put("v_head_dim", (long) m.vHeadDim());
        a.put("rope_type", m.ropeType().flagValue());
        a.put("rotary_scaling_factor", decimal(m.rotaryScalingFactor()));
        a.put("mscale", decimal(m.mscale()));
        a.put("mscale_all_dim", decimal(m.mscaleAllDim()));
        a.put("cache_mla_latents", false);
        a.put("mla_down_proj_fusion", false);
    }

    /** A float config value as the double its decimal reads as (0.1, not 0.10000000149011612), as Megatron's args hold it. */
    private static double decimal(float v) {
        return Double.parseDouble(Float.toString(v));
    }

    private static String text(JsonNode args, String flag) {
        return args.hasNonNull(flag) ? args.get(flag).asText() : null;
    }
}
