package org.megatronj.model;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The mixture-of-experts knobs of Megatron-core's {@code TransformerConfig} ({@code --num-experts} and the
 * {@code --moe-*} flags). A layer that {@link #layerFreq} marks replaces its MLP by Megatron's {@code MoELayer}: a
 * router picks {@link #routerTopk} of {@link #numExperts} expert MLPs per token, their outputs are summed with the
 * routing probabilities as weights, and a load-balancing loss keeps the experts busy alike.
 *
 * @param numExperts                  {@code --num-experts} (E)
 * @param routerTopk                  {@code --moe-router-topk} (k, default 2)
 * @param ffnHiddenSize               {@code --moe-ffn-hidden-size}: each expert's MLP width (default {@code --ffn-hidden-size})
 * @param layerFreq                   {@code --moe-layer-freq}: N (every N-th layer from layer 0 is MoE) or a Python list
 *                                    expression of 0/1 per layer such as {@code ([0]+[1]*23)}
 * @param loadBalancingType           {@code --moe-router-load-balancing-type}
 * @param auxLossCoeff                {@code --moe-aux-loss-coeff} (0: no load-balancing loss)
 * @param zLossCoeff                  {@code --moe-z-loss-coeff} (0: none)
 * @param routerPreSoftmax            {@code --moe-router-pre-softmax}: the score function before the top-k (then the
 *                                    chosen probabilities are not renormalised)
 * @param scoreFunction               {@code --moe-router-score-function softmax|sigmoid}
 * @param topkScalingFactor           {@code --moe-router-topk-scaling-factor} (0: none)
 * @param expertCapacityFactor        {@code --moe-expert-capacity-factor} (0: dropless)
 * @param tokenDropPolicy             {@code --moe-token-drop-policy probs|position}
 * @param padExpertInputToCapacity    {@code --moe-pad-expert-input-to-capacity}
 * @param sharedExpertIntermediateSize {@code --moe-shared-expert-intermediate-size} (0: no shared experts)
 * @param sharedExpertGate            {@code --moe-shared-expert-gate}: a sigmoid gate on the shared experts' output
 * @param routerNumGroups             {@code --moe-router-num-groups}: experts in this many groups for group-limited routing
 *                                    (0: none)
 * @param routerGroupTopk             {@code --moe-router-group-topk}: the groups a token's experts come from (0: none)
 * @param routerEnableExpertBias      {@code --moe-router-enable-expert-bias}: a per-expert bias (a buffer, not trained)
 *                                    added to the sigmoid scores for choosing the experts, moved each iteration towards
 *                                    balanced loads (DeepSeek-V3's auxiliary-loss-free balancing)
 * @param routerBiasUpdateRate        {@code --moe-router-bias-update-rate} (1e-3)
 * @param routerDtypeFp32             {@code --moe-router-dtype fp32}: with 16-bit compute, the router's logits and weights
 *                                    in F32 (its GEMMs on the 16-bit values, accumulated and returned in F32)
 */
public record MoeConfig(int numExperts, int routerTopk, int ffnHiddenSize, String layerFreq,
                        LoadBalancing loadBalancingType, float auxLossCoeff, float zLossCoeff, boolean routerPreSoftmax,
                        ScoreFunction scoreFunction, float topkScalingFactor, float expertCapacityFactor,
                        TokenDropPolicy tokenDropPolicy, boolean padExpertInputToCapacity,
                        int sharedExpertIntermediateSize, boolean sharedExpertGate, int routerNumGroups,
                        int routerGroupTopk, boolean routerEnableExpertBias, float routerBiasUpdateRate,
                        boolean routerDtypeFp32) {

    /** {@code --moe-router-load-balancing-type} values Megatron-J computes. */
    public enum LoadBalancing {
        AUX_LOSS, SEQ_AUX_LOSS, SINKHORN, NONE;

        public String flagValue() {
            return name().toLowerCase(Locale.ROOT);
        }

        public static LoadBalancing parse(String value) {
            for (LoadBalancing t : values()) {
                if (t.flagValue().equals(value)) {
                    return t;
                }
            }
            if (value.equals("global_aux_loss") || value.equals("quantile_balancing")) {
                throw new IllegalArgumentException("--moe-router-load-balancing-type " + value
                        + " is not supported by Megatron-J; use aux_loss, seq_aux_loss, sinkhorn or none");
            }
            throw new IllegalArgumentException("--moe-router-load-balancing-type: '" + value
                    + "' is not one of aux_loss, seq_aux_loss, sinkhorn, none");
        }
    }

    /** {@code --moe-router-score-function}. */
    public enum ScoreFunction {
        SOFTMAX, SIGMOID;

        public String flagValue() {
            return name().toLowerCase(Locale.ROOT);
        }

        public static ScoreFunction parse(String value) {
            for (ScoreFunction f : values()) {
                if (f.flagValue().equals(value)) {
                    return f;
                }
            }
            throw new IllegalArgumentException("--moe-router-score-function: '" + value + "' is not one of softmax, sigmoid"
                    + (value.equals("sqrtsoftplus") ? " (sqrtsoftplus is not supported by Megatron-J)" : ""));
        }
    }

    /** {@code --moe-token-drop-policy}: which tokens an expert over capacity keeps. */
    public enum TokenDropPolicy {
        /** The tokens with the highest routing probabilities. */
        PROBS,
        /** The first tokens in sequence order. */
        POSITION;

        public String flagValue() {
            return name().toLowerCase(Locale.ROOT);
        }

        public static TokenDropPolicy parse(String value) {
            for (TokenDropPolicy p : values()) {
                if (p.flagValue().equals(value)) {
                    return p;
                }
            }
            throw new IllegalArgumentException("--moe-token-drop-policy: '" + value + "' is not one of probs, position");
        }
    }

    /** E experts with Megatron's defaults otherwise (top-2 softmax routing, aux_loss type with coefficient 0, dropless). */
    public static MoeConfig of(int numExperts, int ffnHiddenSize) {
        return new Builder(numExperts, ffnHiddenSize).build();
    }

    public MoeConfig withRouterTopk(int k) {
        return toBuilder().routerTopk(k).build();
    }

    public MoeConfig withLoadBalancing(LoadBalancing type, float coeff) {
        return toBuilder().loadBalancing(type, coeff).build();
    }

    public MoeConfig withZLossCoeff(float coeff) {
        return toBuilder().zLossCoeff(coeff).build();
    }

    public MoeConfig withRouting(boolean preSoftmax, ScoreFunction function, float scalingFactor) {
        return toBuilder().routing(preSoftmax, function, scalingFactor).build();
    }

    public MoeConfig withCapacity(float factor, TokenDropPolicy policy, boolean padToCapacity) {
        return toBuilder().capacity(factor, policy, padToCapacity).build();
    }

    public MoeConfig withLayerFreq(String freq) {
        return toBuilder().layerFreq(freq).build();
    }

    public MoeConfig withSharedExperts(int intermediateSize, boolean gate) {
        return toBuilder().sharedExperts(intermediateSize, gate).build();
    }

    public MoeConfig withGroupLimitedRouting(int numGroups, int groupTopk) {
        return toBuilder().groupLimitedRouting(numGroups, groupTopk).build();
    }

    public MoeConfig withExpertBias(boolean enable, float updateRate) {
        return toBuilder().expertBias(enable, updateRate).build();
    }

    public MoeConfig withRouterDtypeFp32(boolean fp32) {
        Builder b = toBuilder();
        b.routerDtypeFp32 = fp32;
        return b.build();
    }

    /** The expert MLP width one of {@code t} tensor ranks holds (expert tensor parallelism equals the tensor size). */
    public MoeConfig tensorParallelShard(int t) {
        Builder b = toBuilder();
        b.ffnHiddenSize = ffnHiddenSize / t;
        b.sharedExpertIntermediateSize = sharedExpertIntermediateSize / t;
        return b.build();
    }

    private Builder toBuilder() {
        Builder b = new Builder(numExperts, ffnHiddenSize);
        b.routerTopk = routerTopk;
        b.layerFreq = layerFreq;
        b.loadBalancingType = loadBalancingType;
        b.auxLossCoeff = auxLossCoeff;
        b.zLossCoeff = zLossCoeff;
        b.routerPreSoftmax = routerPreSoftmax;
        b.scoreFunction = scoreFunction;
        b.topkScalingFactor = topkScalingFactor;
        b.expertCapacityFactor = expertCapacityFactor;
        b.tokenDropPolicy = tokenDropPolicy;
        b.padExpertInputToCapacity = padExpertInputToCapacity;
        b.sharedExpertIntermediateSize = sharedExpertIntermediateSize;
        b.sharedExpertGate = sharedExpertGate;
        b.routerNumGroups = routerNumGroups;
        b.routerGroupTopk = routerGroupTopk;
        b.routerEnableExpertBias = routerEnableExpertBias;
        b.routerBiasUpdateRate = routerBiasUpdateRate;
        b.routerDtypeFp32 = routerDtypeFp32;
        return b;
    }

    /** Megatron's defaults for every knob but the expert count and width. */
    public static final class Builder {
        private final int numExperts;
        private int ffnHiddenSize;
        private int routerTopk = 2;
        private String layerFreq = "1";
        private LoadBalancing loadBalancingType = LoadBalancing.AUX_LOSS;
        private float auxLossCoeff;
        private float zLossCoeff;
        private boolean routerPreSoftmax;
        private ScoreFunction scoreFunction = ScoreFunction.SOFTMAX;
        private float topkScalingFactor;
        private float expertCapacityFactor;
        private TokenDropPolicy tokenDropPolicy = TokenDropPolicy.PROBS;
        private boolean padExpertInputToCapacity;
        private int sharedExpertIntermediateSize;
        private boolean sharedExpertGate;
        private int routerNumGroups;
        private int routerGroupTopk;
        private boolean routerEnableExpertBias;
        private float routerBiasUpdateRate = 1e-3f;
        private boolean routerDtypeFp32;

        public Builder(int numExperts, int ffnHiddenSize) {
            this.numExperts = numExperts;
            this.ffnHiddenSize = ffnHiddenSize;
        }

        public Builder routerTopk(int v) { routerTopk = v; return this; }
        public Builder layerFreq(String v) { layerFreq = v; return this; }
        public Builder loadBalancing(LoadBalancing type, float coeff) { loadBalancingType = type; auxLossCoeff = coeff; return this; }
        public Builder zLossCoeff(float v) { zLossCoeff = v; return this; }

        public Builder routing(boolean preSoftmax, ScoreFunction function, float scalingFactor) {
            routerPreSoftmax = preSoftmax;
            scoreFunction = function;
            topkScalingFactor = scalingFactor;
            return this;
        }

        public Builder capacity(float factor, TokenDropPolicy policy, boolean padToCapacity) {
            expertCapacityFactor = factor;
            tokenDropPolicy = policy;
            padExpertInputToCapacity = padToCapacity;
            return this;
        }

        public Builder sharedExperts(int intermediateSize, boolean gate) {
            sharedExpertIntermediateSize = intermediateSize;
            sharedExpertGate = gate;
            return this;
        }

        public Builder groupLimitedRouting(int numGroups, int groupTopk) {
            routerNumGroups = numGroups;
            routerGroupTopk = groupTopk;
            return this;
        }

        public Builder expertBias(boolean enable, float updateRate) {
            routerEnableExpertBias = enable;
            routerBiasUpdateRate = updateRate;
            return this;
        }

        public MoeConfig build() {
            return new MoeConfig(numExperts, routerTopk, ffnHiddenSize, layerFreq, loadBalancingType, auxLossCoeff, zLossCoeff,
                    routerPreSoftmax, scoreFunction, topkScalingFactor, expertCapacityFactor, tokenDropPolicy,
                    padExpertInputToCapacity, sharedExpertIntermediateSize, sharedExpertGate, routerNumGroups, routerGroupTopk,
                    routerEnableExpertBias, routerBiasUpdateRate, routerDtypeFp32);
        }
    }

    /** The load-balancing loss's coefficient when its type adds one to the gradient, else 0. */
    public float effectiveAuxLossCoeff() {
        return loadBalancingType == LoadBalancing.AUX_LOSS || loadBalancingType == LoadBalancing.SEQ_AUX_LOSS
                ? auxLossCoeff : 0f;
    }

    /** The name Megatron logs the load-balancing loss under ({@code load_balancing_loss}, {@code seq_load_balancing_loss}). */
    public String auxLossName() {
        return loadBalancingType == LoadBalancing.SEQ_AUX_LOSS ? "seq_load_balancing_loss" : "load_balancing_loss";
    }

    /** Whether the layers are dropless (no capacity factor). */
    public boolean dropless() {
        return expertCapacityFactor <= 0;
    }

    /** Megatron's {@code get_capacity}: {@code ceil(tokens / E * factor)} slots per expert for {@code tokens} routed rows. */
    public int capacity(long routedRows) {
        return (int) Math.ceil(routedRows / (double) numExperts * expertCapacityFactor);
    }

    /** Which of {@code numLayers} layers are MoE layers, as Megatron reads {@code --moe-layer-freq}. */
    public boolean[] moeLayers(int numLayers) {
        String f = layerFreq.strip();
        boolean[] moe = new boolean[numLayers];
        if (f.chars().allMatch(Character::isDigit) && !f.isEmpty()) {
            int n = Integer.parseInt(f);
            if (n < 1) {
                throw new IllegalArgumentException("--moe-layer-freq must be a positive integer or a list expression, got " + f);
            }
            for (int l = 0; l < numLayers; l++) {
                moe[l] = l % n == 0;
            }
            return moe;
        }
        List<Integer> pattern = new PatternParser(f).parse();
        if (pattern.size() != numLayers) {
            throw new IllegalArgumentException("--moe-layer-freq " + f + " gives " + pattern.size()
                    + " layers; it must give one 0 or 1 per layer of --num-layers " + numLayers);
        }
        for (int l = 0; l < numLayers; l++) {
            int v = pattern.get(l);
            if (v != 0 && v != 1) {
                throw new IllegalArgumentException("--moe-layer-freq " + f + ": layer " + l + " is " + v + "; expected 0 or 1");
            }
            moe[l] = v == 1;
        }
        return moe;
    }

    /** Checks the knobs against each other and the model, with Megatron's rules and words; returns this. */
    public MoeConfig validate(int numLayers) {
        if (numExperts < 1) {
            throw new IllegalArgumentException("--num-experts must be positive, got " + numExperts);
        }
        if (routerTopk < 1 || routerTopk > numExperts) {
            throw new IllegalArgumentException("--moe-router-topk (" + routerTopk + ") must be in [1, --num-experts "
                    + numExperts + "]");
        }
        if (ffnHiddenSize < 1) {
            throw new IllegalArgumentException("--moe-ffn-hidden-size must be positive, got " + ffnHiddenSize);
        }
        if (routerTopk == 1 && scoreFunction == ScoreFunction.SOFTMAX && !routerPreSoftmax
                && loadBalancingType != LoadBalancing.SINKHORN) {
            // softmax over one chosen logit is 1 whatever the logit: the router would get no gradient
            throw new IllegalArgumentException("Please use --moe-router-pre-softmax when topk is 1.");
        }
        if (loadBalancingType == LoadBalancing.SINKHORN && auxLossCoeff != 0) {
            throw new IllegalArgumentException("Sinkhorn routing does not support aux loss (--moe-aux-loss-coeff must be 0).");
        }
        if (loadBalancingType == LoadBalancing.SINKHORN && scoreFunction != ScoreFunction.SOFTMAX) {
            throw new IllegalArgumentException("sinkhorn routing uses its own activation; --moe-router-score-function must be"
                    + " softmax");
        }
        if (!(auxLossCoeff >= 0) || !(zLossCoeff >= 0) || !(topkScalingFactor >= 0)) {
            throw new IllegalArgumentException("--moe-aux-loss-coeff, --moe-z-loss-coeff and --moe-router-topk-scaling-factor"
                    + " must not be negative");
        }
        if (padExpertInputToCapacity && dropless()) {
            throw new IllegalArgumentException("moe_expert_capacity_factor must be set to use moe_pad_expert_input_to_capacity"
                    + " (--moe-expert-capacity-factor)");
        }
        if (sharedExpertIntermediateSize < 0) {
            throw new IllegalArgumentException("--moe-shared-expert-intermediate-size must be positive, got "
                    + sharedExpertIntermediateSize);
        }
        if (sharedExpertGate && sharedExpertIntermediateSize == 0) {
            throw new IllegalArgumentException("--moe-shared-expert-gate needs --moe-shared-expert-intermediate-size");
        }
        if (routerGroupTopk > 0) {   // Megatron's TransformerConfig checks
            if (routerNumGroups <= 0) {
                throw new IllegalArgumentException("When using group limited routing, moe_router_num_groups must be specified"
                        + " (--moe-router-num-groups).");
            }
            if (numExperts % routerNumGroups != 0) {
                throw new IllegalArgumentException("num_moe_experts (" + numExperts + ") should be divisible by"
                        + " moe_router_num_groups (" + routerNumGroups + ").");
            }
            if (routerGroupTopk > routerNumGroups) {
                throw new IllegalArgumentException("moe_router_group_topk (" + routerGroupTopk + ") should be smaller than"
                        + " moe_router_num_groups (" + routerNumGroups + ").");
            }
            if (routerTopk % routerGroupTopk != 0 || routerTopk / routerGroupTopk > numExperts / routerNumGroups) {
                throw new IllegalArgumentException("--moe-router-topk (" + routerTopk + ") must be a multiple of"
                        + " --moe-router-group-topk (" + routerGroupTopk + ") of at most the experts of a group per group");
            }
        }
        moeLayers(numLayers);
        return this;
    }

    /**
     * The Python list expressions {@code --moe-layer-freq} takes (Megatron evaluates them): integers, lists
     * {@code [a, b]}, {@code +} (concatenation), {@code *} (repetition by an integer) and parentheses.
     */
    private static final class PatternParser {
        private final String text;
        private int pos;

        PatternParser(String text) {
            this.text = text;
        }

        List<Integer> parse() {
            Object value = sum();
            skipSpaces();
            if (pos != text.length()) {
                throw error("unexpected '" + text.charAt(pos) + "'");
            }
            if (!(value instanceof List<?> list)) {
                throw error("expected a list");
            }
            List<Integer> out = new ArrayList<>();
            for (Object o : list) {
                if (!(o instanceof Integer i)) {
                    throw error("a list of integers was expected");
                }
                out.add(i);
            }
            return out;
        }

        private Object sum() {
            Object left = product();
            while (peek('+')) {
                pos++;
                Object right = product();
                if (left instanceof List<?> a && right instanceof List<?> b) {
                    List<Object> joined = new ArrayList<>(a);
                    joined.addAll(b);
                    left = joined;
                } else if (left instanceof Integer a && right instanceof Integer b) {
                    left = a + b;
                } else {
                    throw error("'+' joins two lists or two integers");
                }
            }
            return left;
        }

        private Object product() {
            Object left = atom();
            while (peek('*')) {
                pos++;
                Object right = atom();
                if (left instanceof List<?> list && right instanceof Integer n) {
                    left = repeat(list, n);
                } else if (left instanceof Integer n && right instanceof List<?> list) {
                    left = repeat(list, n);
                } else if (left instanceof Integer a && right instanceof Integer b) {
                    left = a * b;
                } else {
                    throw error("'*' repeats a list by an integer");
                }
            }
            return left;
        }

        private static List<Object> repeat(List<?> list, int n) {
            List<Object> out = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                out.addAll(list);
            }
            return out;
        }

        private Object atom() {
            skipSpaces();
            if (pos >= text.length()) {
                throw error("unexpected end");
            }
            char c = text.charAt(pos);
            if (c == '(') {
                pos++;
                Object v = sum();
                expect(')');
                return v;
            }
            if (c == '[') {
                pos++;
                List<Object> items = new ArrayList<>();
                if (!peek(']')) {
                    do {
                        if (peek(',')) {
                            pos++;
                        }
                        items.add(sum());
                    } while (peek(','));
                }
                expect(']');
                return items;
            }
            int start = pos;
            while (pos < text.length() && Character.isDigit(text.charAt(pos))) {
                pos++;
            }
            if (start == pos) {
                throw error("unexpected '" + c + "'");
            }
            return Integer.parseInt(text.substring(start, pos));
        }

        private boolean peek(char c) {
            skipSpaces();
            return pos < text.length() && text.charAt(pos) == c;
        }

        private void expect(char c) {
            if (!peek(c)) {
                throw error("expected '" + c + "'");
            }
            pos++;
        }

        private void skipSpaces() {
            while (pos < text.length() && Character.isWhitespace(text.charAt(pos))) {
                pos++;
            }
        }

        private IllegalArgumentException error(String what) {
            return new IllegalArgumentException("--moe-layer-freq '" + text + "': " + what + " at character " + pos);
        }
    }
}
