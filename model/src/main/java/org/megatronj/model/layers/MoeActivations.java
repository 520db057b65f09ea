package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.TransformerConfig;

/**
 * What a mixture-of-experts layer keeps from its forward for its backward, for at most {@code n} tokens routed into
 * at most {@code rows} (token, expert) pairs. Rows are the pairs expert-major ({@link TopKRouter.Routing}); each expert
 * computes on its consecutive rows.
 *
 * @param input        {@code [rows, h]} the experts' inputs (the permuted tokens)
 * @param fc1Out       {@code [rows, fc1]} the experts' fc1 outputs (the activation's input)
 * @param actOut       {@code [rows, ffn]} the activation's outputs, before the routing weights scale them
 * @param rowToken     I32 {@code [rows]} the token of each row
 * @param rowProb      F32 {@code [rows]} the routing weight of each row
 * @param tokenRows    I32 {@code [slots * n]}: per slot j, the j-th row of each token (a zero row when it has none)
 * @param sharedFc1Out {@code [n, shared fc1]} the shared experts' fc1 output, or null without shared experts
 * @param sharedActOut {@code [n, shared ffn]} their activation's output, or null
 * @param sharedOut    {@code [s/t or s, b, h]} the shared experts' output before their gate, or null without
 *                     {@code --moe-shared-expert-gate}
 * @param gateScore    F32 {@code [n / t or n]} the gate's sigmoid per token of this rank, or null
 */
public record MoeActivations(Tensor input, Tensor fc1Out, Tensor actOut, Tensor rowToken, Tensor rowProb,
                             Tensor tokenRows, Tensor sharedFc1Out, Tensor sharedActOut, Tensor sharedOut, Tensor gateScore,
                             RoutingHolder routing) {

    /** The routing of the micro-batch whose activations these are (host data, set by each forward). */
    public static final class RoutingHolder {
        TopKRouter.Routing routing;
        float[] gateScores;   // the shared experts' gate per token of this rank
    }

    /**
     * Buffers for {@code s x b} tokens of config {@code c} (a tensor rank's shard) split in {@code segments} shards. Under
     * selective recompute the buffers {@code recompute} leaves out (moe_act: actOut; shared_experts: sharedFc1Out and
     * sharedActOut; moe: all of them) are {@code first}'s, the micro-batch's first layer's (allocated here when {@code first} is null).
     */
    static MoeActivations allocate(Backend backend, TensorArena arena, TransformerConfig c, int s, int b, int segments,
                                   DType dtype, SelectiveRecompute recompute, MoeActivations first) {
        if (recompute.moe() && first != null) {
            return first;   // "moe": the whole set, routing included, is the first layer's and each backward refills it
        }
        long n = (long) s * b;
        long rows = new TopKRouter(c.moe(), dtype).maxRows(n, segments);
        int shared = c.moe().sharedExpertIntermediateSize();
        boolean gate = c.moe().sharedExpertGate();
        int sl = s / segments;
        boolean shareAct = recompute.moeAct() && first != null;
        boolean shareShared = recompute.sharedExperts() && first != null;
        return new MoeActivations(
                backend.allocate(arena, dtype, rows, c.hiddenSize()),
                backend.allocate(arena, dtype, rows, c.expertFc1Width()),
                shareAct ? first.actOut : backend.allocate(arena, dtype, rows, c.moe().ffnHiddenSize()),
                backend.allocate(arena, DType.I32, rows),
                backend.allocate(arena, DType.F32, rows),
                backend.allocate(arena, DType.I32, maxSlots(c) * n),
                shared == 0 ? null : shareShared ? first.sharedFc1Out
                        : backend.allocate(arena, dtype, s, b, c.sharedExpertFc1Width()),
                shared == 0 ? null : shareShared ? first.sharedActOut : backend.allocate(arena, dtype, s, b, shared),
                gate ? backend.allocate(arena, dtype, sl, b, c.hiddenSize()) : null,
                gate ? backend.allocate(arena, DType.F32, (long) sl * b) : null,
                new RoutingHolder());
    }

    /** The most rows one token can have: k, or every expert when padding to capacity fills experts with tokens. */
    static long maxSlots(TransformerConfig c) {
        return c.moe().padExpertInputToCapacity() ? c.moe().numExperts() : c.moe().routerTopk();
    }

    /**
     * The shared experts' MLP buffers for the first {@code s} positions in {@code a}'s place (their {@link Mlp} reads
     * fc1Out and actOut; generation runs fewer positions than planned).
     */
    LayerActivations sharedExpertActivations(LayerActivations a, long s) {
        return a.withMlp(sharedFc1Out.view(0, s), sharedActOut.view(0, s));
    }
}
