package org.megatronj.model.layers;

import java.util.Arrays;

import org.megatronj.memory.DType;
import org.megatronj.memory.FloatFormats;
import org.megatronj.model.MoeConfig;
import org.megatronj.model.MoeConfig.LoadBalancing;
import org.megatronj.model.MoeConfig.ScoreFunction;

/**
 * Megatron-core's {@code TopKRouter} past its gating linear, on the host: from the router logits {@code [n, E]} of a
 * micro-batch's tokens (sequence-first, the tensor ranks' sequence shards in rank order) it picks each token's experts
 * and their weights, drops what exceeds an expert's capacity, and lays the kept (token, expert) pairs out expert-major,
 * tokens ascending within an expert (Megatron's {@code permute}). It also computes the load-balancing and z losses
 * (values for the log, gradients for the backward). All arithmetic is F32 as Megatron's (its score functions run in
 * fp32); the routing weights are rounded to the compute dtype, as its {@code probs.type_as(logits)}.
 *
 * <p>Under sequence parallelism each tensor rank routes only its own shard in Megatron and gathers the decisions; the
 * decisions of a token do not depend on other tokens except through capacity, which Megatron applies per shard, so
 * routing all tokens here with capacity per {@code segment} gives every rank Megatron's gathered result. The losses'
 * gradients go to the rank's own rows only ({@link #backward}), as Megatron's local losses.
 */
public final class TopKRouter {
    private final MoeConfig moe;
    private final DType dtype;

    /** {@code dtype}: the compute dtype the routing weights are rounded to. */
    public TopKRouter(MoeConfig moe, DType dtype) {
        this.moe = moe;
        this.dtype = dtype;
    }

    /**
     * One micro-batch's routing.
     *
     * @param n            tokens (rows of the logits)
     * @param topExperts   {@code [n, k]} each token's chosen experts, ascending
     * @param topProbs     {@code [n, k]} their weights (before dropping; the compute dtype's values)
     * @param scores       {@code [n, E]} what the weights were taken from (see {@link #route}), for the backward
     * @param rowToken     {@code [R]} the token of each kept pair, expert-major
     * @param rowChoice    {@code [R]} the pair's index into topExperts ({@code t k + i}), or -1 for a pair that
     *                     padding to capacity added (weight 0, no gradient)
     * @param rowProb      {@code [R]} the pair's weight
     * @param expertOffset {@code [E + 1]} the first row of each expert
     * @param tokenRows    {@code [slots][n]}: the j-th kept row of each token in expert order, or R (a zero row) when the
     *                     token has fewer than j + 1
     * @param logits       {@code [n, E]} the router logits (for the losses' gradients)
     * @param auxLoss      the load-balancing loss over all tokens divided by its coefficient (Megatron's logged value);
     *                     0 unless training with a coefficient
     * @param zLoss        the mean squared log-sum-exp of the logits (Megatron's logged z_loss); 0 unless training with
     *                     {@code --moe-z-loss-coeff}
     * @param auxGrad      {@code [n, E]} the gradient of coeff x the load-balancing loss with respect to its scores, or
     *                     null
     * @param auxScores    {@code [n, E]} those scores (the score function over all experts), or null
     */
    public record Routing(int n, int[] topExperts, float[] topProbs, float[] scores, int[] rowToken, int[] rowChoice,
                          float[] rowProb, int[] expertOffset, int[][] tokenRows, float[] logits, double auxLoss,
                          double zLoss, float[] auxGrad, float[] auxScores) {
        public int rows() {
            return rowToken.length;
        }
    }

    /** The most pairs {@code n} tokens in {@code segments} capacity shards can route (the rows to plan for). */
    public long maxRows(long n, int segments) {
        long k = moe.routerTopk();
        int e = moe.numExperts();
        if (moe.dropless()) {
            return n * k;
        }
        long local = n / segments;
        long cap = Math.min(moe.capacity(local * k), local);
        return Math.max(n * k, moe.padExpertInputToCapacity() ? cap * e * segments : 0);
    }

    /**
     * Routes {@code n} tokens from their {@code logits} {@code [n, E]} (F32 values of the compute dtype's logits).
     * {@code segments}: the sequence shards capacity is counted in (the tensor-parallel size under sequence
     * parallelism, else 1); {@code batch}: the micro-batch size (rows are sequence-first, {@code n / batch}
     * positions); {@code training}: whether the losses are computed and sinkhorn balances.
     */
    public Routing route(float[] logits, int n, int segments, int batch, boolean training) {
        return route(logits, null, n, segments, batch, training);
    }

    /**
     * As {@link #route(float[], int, int, int, boolean)} with the experts' {@code expertBias} (F32, null: none) added to
     * the sigmoid scores for choosing the experts (not to their weights), as Megatron's {@code expert_bias}; softmax
     * routing ignores it, as Megatron's does.
     */
    public Routing route(float[] logits, float[] expertBias, int n, int segments, int batch, boolean training) {
        int e = moe.numExperts();
        int k = moe.routerTopk();
        int[] top = new int[n * k];
        float[] probs = new float[n * k];
        float[] scores = new float[n * e];
        float[] row = new float[e];
        if (training && moe.loadBalancingType() == LoadBalancing.SINKHORN) {
            prepareSinkhorn(logits, n, segments);
        }
        for (int t = 0; t < n; t++) {
            System.arraycopy(logits, t * e, row, 0, e);
            selectAndWeigh(row, expertBias, training, top, probs, scores, t);
        }
        if (moe.topkScalingFactor() > 0) {
            for (int i = 0; i < probs.length; i++) {
                probs[i] *= moe.topkScalingFactor();
            }
        }
        for (int i = 0; i < probs.length; i++) {
            probs[i] = round(probs[i]);
        }
        boolean[] kept = new boolean[n * e];        // the final routing map
        int[] choice = new int[n * e];              // its entries' index into top, -1 for padding
        Arrays.fill(choice, -1);
        float[] sparse = new float[n * e];          // the routing probabilities [n, E]
        for (int t = 0; t < n; t++) {
            for (int i = 0; i < k; i++) {
                int x = t * e + top[t * k + i];
                kept[x] = true;
                choice[x] = t * k + i;
                sparse[x] = probs[t * k + i];
            }
        }
        if (!moe.dropless()) {
            applyCapacity(kept, sparse, n, segments);
        }
        Routing routing = layOut(n, top, probs, scores, kept, choice, sparse, logits);
        if (!training) {
            return routing;
        }
        return withLosses(routing, logits, n, batch);
    }

    /** Token t's experts and weights, and the scores the backward differentiates. */
    private void selectAndWeigh(float[] logit, float[] bias, boolean training, int[] top, float[] probs, float[] scores,
                                int t) {
        int e = logit.length;
        int k = moe.routerTopk();
        int[] chosen;
        float[] s = new float[e];
        if (moe.loadBalancingType() == LoadBalancing.SINKHORN) {
            // Sinkhorn picks the experts (balanced over the tokens in training); the weights are the activation's
            // values there, not renormalised (Megatron's scores = activation(logits) * map)
            float[] act = k == 1 ? sigmoid(logit) : softmax(logit);
            chosen = topK(training ? sinkhornRow(t) : act, k);
            System.arraycopy(act, 0, s, 0, e);
            for (int i = 0; i < k; i++) {
                probs[t * k + i] = act[chosen[i]];
            }
        } else if (moe.scoreFunction() == ScoreFunction.SIGMOID) {
            float[] sig = sigmoid(logit);
            float[] forRouting = sig;
            if (bias != null) {
                forRouting = new float[e];
                for (int x = 0; x < e; x++) {
                    forRouting[x] = sig[x] + bias[x];
                }
            }
            chosen = choose(forRouting, k);
            float sum = 0;
            for (int c : chosen) {
                sum += sig[c];
            }
            for (int i = 0; i < k; i++) {
                probs[t * k + i] = k > 1 ? sig[chosen[i]] / (sum + 1e-20f) : sig[chosen[i]];
            }
            System.arraycopy(sig, 0, s, 0, e);
        } else if (moe.routerPreSoftmax()) {
            float[] soft = softmax(logit);
            chosen = choose(soft, k);
            for (int i = 0; i < k; i++) {
                probs[t * k + i] = soft[chosen[i]];
            }
            System.arraycopy(soft, 0, s, 0, e);
        } else {
            chosen = choose(logit, k);
            float[] picked = new float[k];
            for (int i = 0; i < k; i++) {
                picked[i] = logit[chosen[i]];
            }
            float[] soft = softmax(picked);
            for (int i = 0; i < k; i++) {
                probs[t * k + i] = soft[i];
                s[chosen[i]] = soft[i];   // the softmax over the chosen logits, in place of their experts
            }
        }
        // keep each token's choices in expert order: the order Megatron's unpermute adds them in
        Integer[] order = new Integer[k];
        for (int i = 0; i < k; i++) {
            order[i] = i;
        }
        int[] c0 = chosen;
        Arrays.sort(order, (a, b) -> Integer.compare(c0[a], c0[b]));
        float[] p0 = Arrays.copyOfRange(probs, t * k, t * k + k);
        for (int i = 0; i < k; i++) {
            top[t * k + i] = chosen[order[i]];
            probs[t * k + i] = p0[order[i]];
        }
        System.arraycopy(s, 0, scores, t * e, e);
    }

    private float[] sinkhornScores;   // the balanced scores of the micro-batch being routed (sinkhorn in training)

    private float[] sinkhornRow(int t) {
        int e = moe.numExperts();
        return Arrays.copyOfRange(sinkhornScores, t * e, t * e + e);
    }

    /** Megatron's {@code apply_router_token_dropping} per capacity segment (each a tensor rank's sequence shard). */
    private void applyCapacity(boolean[] kept, float[] sparse, int n, int segments) {
        int e = moe.numExperts();
        int local = n / segments;
        int cap = moe.capacity((long) local * moe.routerTopk());
        for (int seg = 0; seg < segments; seg++) {
            int from = seg * local;
            boolean[] capacity = new boolean[local * e];
            if (cap > local) {
                Arrays.fill(capacity, true);
            } else {
                for (int x = 0; x < e; x++) {
                    Integer[] tokens = new Integer[local];
                    for (int i = 0; i < local; i++) {
                        tokens[i] = i;
                    }
                    int ex = x;
                    // the capacity's highest weights (probs) or first routed tokens (position); earlier tokens on ties
                    java.util.Comparator<Integer> byPolicy = moe.tokenDropPolicy() == MoeConfig.TokenDropPolicy.PROBS
                            ? (a, b) -> Float.compare(sparse[(from + b) * e + ex], sparse[(from + a) * e + ex])
                            : (a, b) -> Boolean.compare(kept[(from + b) * e + ex], kept[(from + a) * e + ex]);
                    Arrays.sort(tokens, byPolicy.thenComparing(Integer::compare));
                    for (int i = 0; i < cap; i++) {
                        capacity[tokens[i] * e + x] = true;
                    }
                }
            }
            for (int i = 0; i < local * e; i++) {
                int x = from * e + i;
                if (moe.padExpertInputToCapacity()) {
                    kept[x] = capacity[i];
                } else {
                    kept[x] &= capacity[i];
                }
                if (!kept[x]) {
                    sparse[x] = 0f;
                }
            }
        }
    }

    /** The kept pairs expert-major and each token's rows in expert order. */
    private Routing layOut(int n, int[] top, float[] probs, float[] scores, boolean[] kept, int[] choice, float[] sparse,
                           float[] logits) {
        int e = moe.numExperts();
        int[] offset = new int[e + 1];
        int[] perToken = new int[n];
        for (int t = 0; t < n; t++) {
            for (int x = 0; x < e; x++) {
                if (kept[t * e + x]) {
                    offset[x + 1]++;
                    perToken[t]++;
                }
            }
        }
        for (int x = 0; x < e; x++) {
            offset[x + 1] += offset[x];
        }
        int rows = offset[e];
        int slots = 0;
        for (int c : perToken) {
            slots = Math.max(slots, c);
        }
        int[] rowToken = new int[rows];
        int[] rowChoice = new int[rows];
        float[] rowProb = new float[rows];
        int[][] tokenRows = new int[slots][n];
        for (int[] r : tokenRows) {
            Arrays.fill(r, rows);
        }
        int[] next = Arrays.copyOf(offset, e);
        int[] filled = new int[n];
        for (int x = 0; x < e; x++) {
            for (int t = 0; t < n; t++) {
                if (kept[t * e + x]) {
                    int r = next[x]++;
                    rowToken[r] = t;
                    rowChoice[r] = choice[t * e + x];
                    rowProb[r] = sparse[t * e + x];
                }
            }
        }
        // token rows in expert order: walk the experts in order, each token's rows come out ascending by expert
        for (int x = 0; x < e; x++) {
            for (int r = offset[x]; r < offset[x + 1]; r++) {
                int t = rowToken[r];
                tokenRows[filled[t]++][t] = r;
            }
        }
        return new Routing(n, top, probs, scores, rowToken, rowChoice, rowProb, offset, tokenRows, logits, 0, 0, null, null);
    }

    /** The routing with the training losses: their logged values and the load-balancing gradient. */
    private Routing withLosses(Routing r, float[] logits, int n, int batch) {
        int e = moe.numExperts();
        int k = moe.routerTopk();
        double aux = 0;
        float[] auxGrad = null;
        float[] auxScores = null;
        float coeff = moe.effectiveAuxLossCoeff();
        if (coeff > 0) {
            auxScores = new float[n * e];
            boolean[] map = new boolean[n * e];
            float[] row = new float[e];
            for (int t = 0; t < n; t++) {
                System.arraycopy(logits, t * e, row, 0, e);
                float[] s = moe.scoreFunction() == ScoreFunction.SIGMOID ? normalised(sigmoid(row)) : softmax(row);
                System.arraycopy(s, 0, auxScores, t * e, e);
                for (int c : topK(s, k)) {
                    map[t * e + c] = true;
                }
            }
            auxGrad = new float[n * e];
            // aux_loss: one group of all n tokens; seq_aux_loss: each sequence of the micro-batch its own group
            int groups = moe.loadBalancingType() == LoadBalancing.SEQ_AUX_LOSS ? batch : 1;
            int positions = n / batch;
            long total = groups == 1 ? n : positions;
            for (int g = 0; g < groups; g++) {
                double[] tokensPerExpert = new double[e];
                double[] probSum = new double[e];
                for (int t = 0; t < n; t++) {
                    if (groups > 1 && t % batch != g) {
                        continue;
                    }
                    for (int x = 0; x < e; x++) {
                        tokensPerExpert[x] += map[t * e + x] ? 1 : 0;
                        probSum[x] += auxScores[t * e + x];
                    }
                }
                double scale = (double) e / ((double) k * total * total) / groups;
                for (int x = 0; x < e; x++) {
                    aux += probSum[x] * tokensPerExpert[x] * scale;
                }
                for (int t = 0; t < n; t++) {
                    if (groups > 1 && t % batch != g) {
                        continue;
                    }
                    for (int x = 0; x < e; x++) {
                        auxGrad[t * e + x] = (float) (coeff * tokensPerExpert[x] * scale);
                    }
                }
            }
        }
        double z = 0;
        if (moe.zLossCoeff() > 0) {
            for (int t = 0; t < n; t++) {
                double lse = logSumExp(logits, t * e, e);
                z += lse * lse;
            }
            z /= n;
        }
        return new Routing(r.n(), r.topExperts(), r.topProbs(), r.scores(), r.rowToken(), r.rowChoice(), r.rowProb(),
                r.expertOffset(), r.tokenRows(), logits, aux, z, auxGrad, auxScores);
    }

    /**
     * The gradient of the router logits of tokens {@code [from, to)} (this rank's rows; the others get none here):
     * through the routing weights from {@code dRowProb} ({@code [R]}, the gradient of each kept pair's weight summed
     * over the tensor ranks), plus {@code auxScale} times the load-balancing and z losses' gradients (Megatron's
     * {@code MoEAuxLossAutoScaler} scale: the loss scale over the micro-batches).
     */
    public float[] backward(Routing r, float[] dRowProb, float auxScale, int from, int to) {
        int e = moe.numExperts();
        int k = moe.routerTopk();
        int n = r.n();
        float[] dTop = new float[n * k];
        for (int row = 0; row < r.rows(); row++) {
            int c = r.rowChoice()[row];
            if (c >= 0) {
                dTop[c] += dRowProb[row];
            }
        }
        float scaling = moe.topkScalingFactor() > 0 ? moe.topkScalingFactor() : 1f;
        float[] dLogits = new float[(to - from) * e];
        float[] g = new float[e];
        for (int t = from; t < to; t++) {
            int base = (t - from) * e;
            Arrays.fill(g, 0f);
            for (int i = 0; i < k; i++) {
                g[r.topExperts()[t * k + i]] = dTop[t * k + i] * scaling;   // d(weight before scaling)
            }
            scoreBackward(r, t, g, dLogits, base);
            if (r.auxGrad() != null) {   // through the score function over all experts
                float[] s = Arrays.copyOfRange(r.auxScores(), t * e, t * e + e);
                float[] ga = new float[e];
                for (int x = 0; x < e; x++) {
                    ga[x] = r.auxGrad()[t * e + x] * auxScale;
                }
                addScoreFunctionBackward(s, ga, dLogits, base, r.logits(), t * e);
            }
            if (moe.zLossCoeff() > 0) {
                double lse = logSumExp(r.logits(), t * e, e);
                double c = moe.zLossCoeff() * 2 * lse / n * auxScale;
                for (int x = 0; x < e; x++) {
                    dLogits[base + x] += (float) (c * Math.exp(r.logits()[t * e + x] - lse));
                }
            }
        }
        return dLogits;
    }

    /** The weights' gradient {@code g} (per expert, 0 where not chosen) taken back to token t's logits. */
    private void scoreBackward(Routing r, int t, float[] g, float[] dLogits, int base) {
        int e = moe.numExperts();
        int k = moe.routerTopk();
        float[] s = Arrays.copyOfRange(r.scores(), t * e, t * e + e);
        if (moe.loadBalancingType() == LoadBalancing.SINKHORN) {
            addActivationBackward(s, g, dLogits, base, k == 1);
        } else if (moe.scoreFunction() == ScoreFunction.SIGMOID) {
            // p_i = s_i / (sum_j s_j + eps) over the chosen (k > 1), then s = sigmoid(logit)
            float[] ds = new float[e];
            if (k > 1) {
                double sum = 0;
                double dot = 0;
                for (int i = 0; i < k; i++) {
                    int x = r.topExperts()[t * k + i];
                    sum += s[x];
                }
                for (int i = 0; i < k; i++) {
                    int x = r.topExperts()[t * k + i];
                    dot += g[x] * s[x];
                }
                double denom = sum + 1e-20;
                for (int i = 0; i < k; i++) {
                    int x = r.topExperts()[t * k + i];
                    ds[x] = (float) (g[x] / denom - dot / (denom * denom));
                }
            } else {
                System.arraycopy(g, 0, ds, 0, e);
            }
            for (int x = 0; x < e; x++) {
                dLogits[base + x] += ds[x] * s[x] * (1 - s[x]);
            }
        } else if (moe.routerPreSoftmax()) {
            addActivationBackward(s, g, dLogits, base, false);
        } else {
            // softmax over the chosen logits only: s holds it at the chosen experts, 0 elsewhere
            double dot = 0;
            for (int i = 0; i < k; i++) {
                int x = r.topExperts()[t * k + i];
                dot += g[x] * s[x];
            }
            for (int i = 0; i < k; i++) {
                int x = r.topExperts()[t * k + i];
                dLogits[base + x] += (float) (s[x] * (g[x] - dot));
            }
        }
    }

    /** Softmax's (or, with {@code sigmoid}, the elementwise sigmoid's) backward of activations s and gradient g. */
    private static void addActivationBackward(float[] s, float[] g, float[] dLogits, int base, boolean sigmoid) {
        if (sigmoid) {
            for (int x = 0; x < s.length; x++) {
                dLogits[base + x] += g[x] * s[x] * (1 - s[x]);
            }
            return;
        }
        double dot = 0;
        for (int x = 0; x < s.length; x++) {
            dot += g[x] * s[x];
        }
        for (int x = 0; x < s.length; x++) {
            dLogits[base + x] += (float) (s[x] * (g[x] - dot));
        }
    }

    /** The backward of the load-balancing loss's score function (softmax, or sigmoid then normalised). */
    private void addScoreFunctionBackward(float[] s, float[] g, float[] dLogits, int base, float[] logits, int at) {
        if (moe.scoreFunction() != ScoreFunction.SIGMOID) {
            addActivationBackward(s, g, dLogits, base, false);
            return;
        }
        int e = s.length;
        float[] sig = sigmoid(Arrays.copyOfRange(logits, at, at + e));
        double sum = 0;
        double dot = 0;
        for (int x = 0; x < e; x++) {
            sum += sig[x];
            dot += g[x] * sig[x];
        }
        double denom = sum + 1e-20;
        for (int x = 0; x < e; x++) {
            double ds = g[x] / denom - dot / (denom * denom);
            dLogits[base + x] += (float) (ds * sig[x] * (1 - sig[x]));
        }
    }

    /**
     * Megatron's {@code sinkhorn} in F32 over each capacity segment's logits apart (before routing in training): each
     * tensor rank balances its own sequence shard there.
     */
    private void prepareSinkhorn(float[] logits, int n, int segments) {
        int e = moe.numExperts();
        int local = n / segments;
        sinkhornScores = new float[n * e];
        for (int seg = 0; seg < segments; seg++) {
            float[] part = sinkhorn(Arrays.copyOfRange(logits, seg * local * e, (seg + 1) * local * e), local, e);
            System.arraycopy(part, 0, sinkhornScores, seg * local * e, part.length);
        }
    }

    /** Sinkhorn's balanced scores of {@code n x e} logits (tolerance 1e-4, as Megatron's). */
    private static float[] sinkhorn(float[] logits, int n, int e) {
        float[] cost = new float[n * e];
        for (int i = 0; i < cost.length; i++) {
            cost[i] = (float) Math.exp(logits[i]);
        }
        float[] d0 = new float[n];
        float[] d1 = new float[e];
        Arrays.fill(d0, 1f);
        Arrays.fill(d1, 1f);
        float eps = 1e-8f;
        float error = 1e9f;
        float[] d1Old = d1.clone();
        while (error > 1e-4f) {
            for (int t = 0; t < n; t++) {
                float sum = 0;
                for (int x = 0; x < e; x++) {
                    sum += d1[x] * cost[t * e + x];
                }
                d0[t] = (1f / n) * 1f / (sum + eps);
            }
            float[] next = new float[e];
            for (int x = 0; x < e; x++) {
                float sum = 0;
                for (int t = 0; t < n; t++) {
                    sum += d0[t] * cost[t * e + x];
                }
                next[x] = (1f / e) * 1f / (sum + eps);
            }
            float diff = 0;
            for (int x = 0; x < e; x++) {
                diff += Math.abs(d1Old[x] - next[x]);
            }
            error = diff / e;
            d1 = next;
            d1Old = next;
        }
        float[] out = new float[n * e];
        for (int t = 0; t < n; t++) {
            for (int x = 0; x < e; x++) {
                out[t * e + x] = d1[x] * cost[t * e + x] * d0[t];
            }
        }
        return out;
    }

    /** v rounded to the compute dtype. */
    float round(float v) {
        return switch (dtype) {
            case BF16 -> FloatFormats.bf16ToFloat(FloatFormats.floatToBf16(v));
            case F16 -> FloatFormats.f16ToFloat(FloatFormats.floatToF16(v));
            default -> v;
        };
    }

    /**
     * The routing's top-k: plain, or group-limited (Megatron's {@code group_limited_topk}: the experts in
     * {@code --moe-router-num-groups} groups, each scored by the sum of its best {@code topk / group_topk} values, the
     * best {@code --moe-router-group-topk} groups kept and the top-k taken among their experts).
     */
    private int[] choose(float[] v, int k) {
        int groupTopk = moe.routerGroupTopk();
        if (groupTopk <= 0) {
            return topK(v, k);
        }
        int groups = moe.routerNumGroups();
        int per = v.length / groups;
        float[] groupScores = new float[groups];
        for (int g = 0; g < groups; g++) {
            float[] part = Arrays.copyOfRange(v, g * per, (g + 1) * per);
            float sum = 0;
            for (int i : topK(part, k / groupTopk)) {   // the values in descending order, summed as torch's sum does
                sum += part[i];
            }
            groupScores[g] = sum;
        }
        float[] masked = new float[v.length];
        Arrays.fill(masked, Float.NEGATIVE_INFINITY);
        for (int g : topK(groupScores, groupTopk)) {
            System.arraycopy(v, g * per, masked, g * per, per);
        }
        return topK(masked, k);
    }

    /** The indices of the k largest values, the lower index first on ties (torch.topk's order on the CPU). */
    static int[] topK(float[] v, int k) {
        int[] out = new int[k];
        boolean[] used = new boolean[v.length];
        for (int i = 0; i < k; i++) {
            int best = -1;
            for (int x = 0; x < v.length; x++) {
                if (!used[x] && (best < 0 || v[x] > v[best])) {
                    best = x;
                }
            }
            used[best] = true;
            out[i] = best;
        }
        return out;
    }

    static float[] softmax(float[] x) {
        float max = Float.NEGATIVE_INFINITY;
        for (float v : x) {
            max = Math.max(max, v);
        }
        float[] out = new float[x.length];
        float sum = 0;
        for (int i = 0; i < x.length; i++) {
            out[i] = (float) Math.exp(x[i] - max);
            sum += out[i];
        }
        for (int i = 0; i < x.length; i++) {
            out[i] /= sum;
        }
        return out;
    }

    static float[] sigmoid(float[] x) {
        float[] out = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = (float) (1 / (1 + Math.exp(-x[i])));
        }
        return out;
    }

    private static float[] normalised(float[] s) {
        float sum = 0;
        for (float v : s) {
            sum += v;
        }
        float[] out = new float[s.length];
        for (int i = 0; i < s.length; i++) {
            out[i] = s[i] / (sum + 1e-20f);
        }
        return out;
    }

    private static double logSumExp(float[] v, int from, int n) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, v[from + i]);
        }
        double sum = 0;
        for (int i = 0; i < n; i++) {
            sum += Math.exp(v[from + i] - max);
        }
        return max + Math.log(sum);
    }
}
