package org.megatronj.cli;

import java.util.List;

import org.megatronj.model.MoeConfig;
import org.megatronj.model.MoeConfig.LoadBalancing;
import org.megatronj.model.MoeConfig.ScoreFunction;
import org.megatronj.model.MoeConfig.TokenDropPolicy;
import org.megatronj.model.TransformerConfig;
import picocli.CommandLine.Option;

/**
 * Megatron's mixture-of-experts flags ({@code --num-experts}, {@code --moe-*}, the expert parallel sizes), part of the
 * model flags. Flags that choose how Megatron computes the same numbers (grouped GEMMs, fusions, the token
 * dispatcher's collectives) are accepted; those Megatron-J cannot compute are refused by name.
 */
public final class MoeOptions {
    @Option(names = "--num-experts", paramLabel = "E", description = "Experts per MoE layer (none: a dense model).")
    Integer numExperts;

    @Option(names = "--moe-router-topk", paramLabel = "K", defaultValue = "2", description = "Experts per token (default"
            + " ${DEFAULT-VALUE}).")
    int routerTopk;

    @Option(names = "--moe-ffn-hidden-size", paramLabel = "F", description = "Each expert's MLP width (default"
            + " --ffn-hidden-size).")
    Integer ffnHiddenSize;

    @Option(names = "--moe-layer-freq", paramLabel = "N|LIST", defaultValue = "1", description = "Every N-th layer is MoE"
            + " (from layer 0), or a Python list expression of 0/1 per layer, e.g. \"([0]+[1]*23)\" (default ${DEFAULT-VALUE}).")
    String layerFreq;

    @Option(names = "--moe-router-load-balancing-type", preprocessor = LastOccurrenceWins.class,
            paramLabel = "TYPE", arity = "1..*", defaultValue = "aux_loss",
            description = "aux_loss, seq_aux_loss, sinkhorn or none (default ${DEFAULT-VALUE}).")
    List<String> loadBalancingType;

    @Option(names = "--moe-aux-loss-coeff", preprocessor = LastOccurrenceWins.class,
            paramLabel = "C", arity = "1..*", defaultValue = "0.0",
            description = "Coefficient of the load-balancing loss (default ${DEFAULT-VALUE}; 1e-2 is Megatron's suggestion).")
    List<Float> auxLossCoeff;

    @Option(names = "--moe-z-loss-coeff", paramLabel = "C", description = "Coefficient of the router z-loss (none by default).")
    Float zLossCoeff;

    @Option(names = "--moe-router-pre-softmax", description = "Softmax over all experts before the top-k (needed for"
            + " top-1).")
    boolean routerPreSoftmax;

    @Option(names = "--moe-router-score-function", paramLabel = "F", defaultValue = "softmax", description = "softmax or"
            + " sigmoid (default ${DEFAULT-VALUE}).")
    String scoreFunction;

    @Option(names = "--moe-router-topk-scaling-factor", paramLabel = "F", description = "Multiplies the chosen experts'"
            + " weights.")
    Float topkScalingFactor;

    @Option(names = "--moe-expert-capacity-factor", paramLabel = "F", description = "Each expert takes at most"
            + " ceil(tokens x topk / experts x F) tokens of a sequence shard; the rest are dropped (default: dropless).")
    Float expertCapacityFactor;

    @Option(names = "--moe-token-drop-policy", paramLabel = "P", defaultValue = "probs", description = "probs (keep the"
            + " highest weights) or position (keep the first tokens) (default ${DEFAULT-VALUE}).")
    String tokenDropPolicy;

    @Option(names = "--moe-pad-expert-input-to-capacity", description = "Fill every expert to its capacity (with weight-0"
            + " tokens).")
    boolean padExpertInputToCapacity;

    @Option(names = "--moe-shared-expert-intermediate-size", paramLabel = "F", description = "Width of the shared experts'"
            + " MLP, which every token goes through (none by default).")
    Integer sharedExpertIntermediateSize;

    @Option(names = "--moe-shared-expert-gate", description = "A sigmoid gate (one weight per hidden unit) on the shared"
            + " experts' output (Qwen2-MoE).")
    boolean sharedExpertGate;

    @Option(names = "--moe-router-num-groups", paramLabel = "G", description = "Group-limited routing: the experts in G"
            + " equal groups (DeepSeek's device- or node-limited routing).")
    Integer routerNumGroups;

    @Option(names = "--moe-router-group-topk", paramLabel = "N", description = "The N groups (by the sum of their best"
            + " topk/N scores) a token's experts are chosen from.")
    Integer routerGroupTopk;

    @Option(names = "--moe-router-enable-expert-bias", description = "DeepSeek-V3's auxiliary-loss-free balancing: a"
            + " per-expert bias on the sigmoid scores for choosing experts, moved each iteration towards balanced loads.")
    boolean routerEnableExpertBias;

    @Option(names = "--moe-router-bias-update-rate", paramLabel = "R", defaultValue = "1e-3", description = "How far the"
            + " expert bias moves per iteration (default ${DEFAULT-VALUE}).")
    float routerBiasUpdateRate;

    @Option(names = "--moe-token-dispatcher-type", paramLabel = "T", defaultValue = "allgather", description = "allgather or"
            + " alltoall: the same results here, where the experts are not split over ranks (default ${DEFAULT-VALUE}).")
    String tokenDispatcherType;

    @Option(names = "--expert-model-parallel-size", paramLabel = "N", defaultValue = "1", description = "Megatron's expert"
            + " parallelism splits the experts over N data-parallel ranks; its numbers are those of N = 1, which is how"
            + " Megatron-J computes: every rank holds every expert (checked as Megatron checks N; default ${DEFAULT-VALUE}).")
    int expertModelParallelSize;

    @Option(names = "--expert-tensor-parallel-size", paramLabel = "N", description = "Must equal"
            + " --tensor-model-parallel-size (the default, as Megatron's).")
    Integer expertTensorParallelSize;

    @Option(names = "--moe-router-dtype", paramLabel = "D", description = "fp32: with --bf16/--fp16 the router's GEMM"
            + " returns F32 logits and its weights stay F32 (Megatron's router_gating_linear); fp64 is not supported.")
    String routerDtype;

    @Option(names = {"--moe-permute-fusion", "--moe-router-fusion"}, description = "How Megatron computes the same"
            + " numbers (fused permutes and routers): accepted; Megatron-J runs its experts one after another.")
    boolean implementationChoice;

    @Option(names = "--moe-layer-recompute", description = "Megatron's deprecated form of --recompute-granularity"
            + " selective --recompute-modules moe: adds moe to the recomputed modules (refused with full recompute).")
    boolean layerRecompute;

    @Option(names = "--moe-grouped-gemm", description = "Megatron's grouped GEMM of the experts: accepted (the same"
            + " numbers; the experts run one after another here). Megatron's moe_act recompute requires it.")
    boolean groupedGemm;

    @Option(names = "--moe-shared-expert-overlap", description = "Megatron's overlap of the shared experts with the"
            + " token dispatch: accepted (the same numbers). Megatron refuses it with shared_experts recompute.")
    boolean sharedExpertOverlap;

    boolean enabled() {
        return numExperts != null && numExperts != 0;   // Megatron reads --num-experts 0 as none
    }

    /**
     * The MoE configuration for the dense {@code base} (its derived MLP width is the experts' default), or null without
     * {@code --num-experts}; checks the flags Megatron-J cannot honour.
     */
    MoeConfig toConfig(TransformerConfig base, int tensorParallelSize, int dataTimesContextParallelSize) {
        if (!enabled()) {
            if (ffnHiddenSize != null || sharedExpertIntermediateSize != null || expertModelParallelSize != 1) {
                throw new IllegalArgumentException("--moe-ffn-hidden-size, --moe-shared-expert-intermediate-size and"
                        + " --expert-model-parallel-size need --num-experts");
            }
            return null;
        }
        if (expertModelParallelSize < 1 || numExperts % expertModelParallelSize != 0) {   // Megatron's validate_args
            throw new IllegalArgumentException("Number of experts should be a multiple of expert model parallel_size"
                    + " (--num-experts " + numExperts + ", --expert-model-parallel-size " + expertModelParallelSize + ").");
        }
        if (dataTimesContextParallelSize % expertModelParallelSize != 0) {   // Megatron's expert rank grid
            throw new IllegalArgumentException("--expert-model-parallel-size " + expertModelParallelSize + " must divide the"
                    + " data-parallel x context-parallel size " + dataTimesContextParallelSize + " (the expert-parallel groups"
                    + " are made of data-parallel ranks)");
        }
        if (expertTensorParallelSize != null && expertTensorParallelSize != tensorParallelSize) {
            throw new IllegalArgumentException("--expert-tensor-parallel-size " + expertTensorParallelSize
                    + " must equal --tensor-model-parallel-size " + tensorParallelSize + " in Megatron-J");
        }
        if (!tokenDispatcherType.equals("allgather") && !tokenDispatcherType.equals("alltoall")) {
            throw new IllegalArgumentException("--moe-token-dispatcher-type " + tokenDispatcherType + " is not supported by"
                    + " Megatron-J; use allgather or alltoall");
        }
        if (routerDtype != null && !routerDtype.equals("fp32")) {
            throw new IllegalArgumentException("--moe-router-dtype " + routerDtype + " is not supported by Megatron-J (fp32"
                    + " only)");
        }
        if (loadBalancingType.size() != 1 || auxLossCoeff.size() != 1) {
            throw new IllegalArgumentException("--moe-router-load-balancing-type and --moe-aux-loss-coeff take one value each"
                    + " in Megatron-J (several load-balancing losses at once are not supported)");
        }
        float capacity = expertCapacityFactor == null || expertCapacityFactor < 0 ? 0f : expertCapacityFactor;   // Megatron: < 0 is none
        int shared = sharedExpertIntermediateSize == null ? 0 : sharedExpertIntermediateSize;
        return new MoeConfig(numExperts, routerTopk, ffnHiddenSize == null ? base.ffnHiddenSize() : ffnHiddenSize, layerFreq,
                LoadBalancing.parse(loadBalancingType.getFirst()), auxLossCoeff.getFirst(),
                zLossCoeff == null ? 0f : zLossCoeff, routerPreSoftmax, ScoreFunction.parse(scoreFunction),
                topkScalingFactor == null ? 0f : topkScalingFactor, capacity, TokenDropPolicy.parse(tokenDropPolicy),
                padExpertInputToCapacity, shared, sharedExpertGate, routerNumGroups == null ? 0 : routerNumGroups,
                routerGroupTopk == null ? 0 : routerGroupTopk, routerEnableExpertBias, routerBiasUpdateRate,
                "fp32".equals(routerDtype));
    }

    /** {@code --use-checkpoint-args}: the checkpoint's experts and routing, logged as Megatron logs what it takes. */
    void takeFromCheckpoint(MoeConfig saved, java.util.function.BiConsumer<String, Object> took) {
        if (saved == null) {
            numExperts = null;
            return;
        }
        numExperts = saved.numExperts();
        took.accept("num_experts", numExperts);
        routerTopk = saved.routerTopk();
        took.accept("moe_router_topk", routerTopk);
        ffnHiddenSize = saved.ffnHiddenSize();
        took.accept("moe_ffn_hidden_size", ffnHiddenSize);
        layerFreq = saved.layerFreq();
        took.accept("moe_layer_freq", layerFreq);
        routerPreSoftmax = saved.routerPreSoftmax();
        took.accept("moe_router_pre_softmax", routerPreSoftmax ? "True" : "False");
        scoreFunction = saved.scoreFunction().flagValue();
        took.accept("moe_router_score_function", scoreFunction);
        topkScalingFactor = saved.topkScalingFactor() > 0 ? saved.topkScalingFactor() : null;
        took.accept("moe_router_topk_scaling_factor", topkScalingFactor == null ? "None" : topkScalingFactor);
        sharedExpertIntermediateSize = saved.sharedExpertIntermediateSize() > 0 ? saved.sharedExpertIntermediateSize() : null;
        took.accept("moe_shared_expert_intermediate_size", sharedExpertIntermediateSize == null ? "None"
                : sharedExpertIntermediateSize);
        sharedExpertGate = saved.sharedExpertGate();
        took.accept("moe_shared_expert_gate", sharedExpertGate ? "True" : "False");
        routerNumGroups = saved.routerNumGroups() > 0 ? saved.routerNumGroups() : null;
        took.accept("moe_router_num_groups", routerNumGroups == null ? "None" : routerNumGroups);
        routerGroupTopk = saved.routerGroupTopk() > 0 ? saved.routerGroupTopk() : null;
        took.accept("moe_router_group_topk", routerGroupTopk == null ? "None" : routerGroupTopk);
        routerEnableExpertBias = saved.routerEnableExpertBias();
        took.accept("moe_router_enable_expert_bias", routerEnableExpertBias ? "True" : "False");
        routerDtype = saved.routerDtypeFp32() ? "fp32" : null;
        took.accept("moe_router_dtype", routerDtype == null ? "None" : routerDtype);
    }
}
