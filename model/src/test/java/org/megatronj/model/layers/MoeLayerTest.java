package org.megatronj.model.layers;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.megatronj.memory.Backend;
import org.megatronj.memory.Backends;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.GPTModel;
import org.megatronj.model.MoeConfig;
import org.megatronj.model.MoeConfig.LoadBalancing;
import org.megatronj.model.MoeConfig.ScoreFunction;
import org.megatronj.model.MoeConfig.TokenDropPolicy;
import org.megatronj.model.Normalization;
import org.megatronj.model.Parameter;
import org.megatronj.model.PositionEmbeddingType;
import org.megatronj.model.TransformerConfig;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The mixture-of-experts layer against finite differences of {@code sum(out * w) + scale (aux coeff x aux + z coeff x
 * z)} (the objective whose gradient its backward computes, the auxiliary losses included), and against a dense MLP.
 */
class MoeLayerTest {
    private static final int S = 6;
    private static final int B = 2;
    private static final float AUX_SCALE = 0.5f;
    private static Backend backend;

    @BeforeAll
    static void start() {
        backend = Backends.create("cpu");
    }

    @AfterAll
    static void stop() {
        backend.close();
    }

    private static TransformerConfig config(boolean swiglu, MoeConfig moe) {
        return TransformerConfig.builder().numLayers(1).hiddenSize(16).numAttentionHeads(2).ffnHiddenSize(24)
                .seqLength(S).positionEmbeddingType(PositionEmbeddingType.ROPE).normalization(Normalization.RMS_NORM)
                .swiglu(swiglu).geluTanh(false).addBiasLinear(false).vocabSize(20).makeVocabSizeDivisibleBy(8).moe(moe).build();
    }

    @Test
    void gradientsOfTopKSoftmaxWithAuxAndZLosses() {
        check(config(true, MoeConfig.of(4, 12).withLoadBalancing(LoadBalancing.AUX_LOSS, 0.3f).withZLossCoeff(0.05f)));
    }

    /** The outputs weighted 0: the router's gradient is the auxiliary losses' alone (small beside the experts'). */
    @Test
    void gradientsOfTheAuxiliaryLossesAlone() {
        check(config(true, MoeConfig.of(4, 12).withLoadBalancing(LoadBalancing.AUX_LOSS, 0.3f).withZLossCoeff(0.05f)), true);
        check(config(false, MoeConfig.of(4, 12).withRouterTopk(1).withRouting(true, ScoreFunction.SOFTMAX, 0)
                .withLoadBalancing(LoadBalancing.SEQ_AUX_LOSS, 0.2f)), true);
        check(config(false, MoeConfig.of(5, 8).withRouterTopk(2).withRouting(false, ScoreFunction.SIGMOID, 0)
                .withLoadBalancing(LoadBalancing.AUX_LOSS, 0.2f).withZLossCoeff(0.01f)), true);
    }

    @Test
    void gradientsOfPreSoftmaxTop1WithSequenceAuxLoss() {
        check(config(false, MoeConfig.of(4, 12).withRouterTopk(1).withRouting(true, ScoreFunction.SOFTMAX, 0)
                .withLoadBalancing(LoadBalancing.SEQ_AUX_LOSS, 0.2f)));
    }

    @Test
    void gradientsOfSigmoidScoresWithScalingAndSharedExperts() {
        check(config(true, MoeConfig.of(5, 8).withRouterTopk(3).withRouting(false, ScoreFunction.SIGMOID, 2.5f)
                .withLoadBalancing(LoadBalancing.AUX_LOSS, 0.1f).withSharedExperts(16, false)));
    }

    @Test
    void gradientsOfGatedSharedExpertsAndGroupLimitedRouting() {
        check(config(true, MoeConfig.of(8, 8).withRouterTopk(4).withGroupLimitedRouting(4, 2)
                .withLoadBalancing(LoadBalancing.AUX_LOSS, 0.1f).withSharedExperts(16, true)));
    }

    @Test
    void gradientsWithTokensDroppedAtCapacity() {
        MoeConfig moe = MoeConfig.of(4, 12).withCapacity(0.5f, TokenDropPolicy.PROBS, false);
        check(config(false, moe));
        check(config(false, moe.withCapacity(0.75f, TokenDropPolicy.POSITION, true)));
    }

    /** One expert chosen with weight 1 (pre-softmax over one expert) is the dense MLP with the expert's weights. */
    @Test
    void oneExpertIsTheDenseMlp() {
        TransformerConfig moeConfig = config(true, MoeConfig.of(1, 24).withRouterTopk(1).withRouting(true, ScoreFunction.SOFTMAX, 0));
        TransformerConfig dense = config(true, null);
        try (GPTModel moeModel = new GPTModel(moeConfig, backend, 3); GPTModel denseModel = new GPTModel(dense, backend, 3);
             TensorArena arena = TensorArena.named("test")) {
            copy(moeModel.parameter("decoder.layers.0.mlp.experts.local_experts.0.linear_fc1.weight"),
                    denseModel.parameter("decoder.layers.0.mlp.linear_fc1.weight"));
            copy(moeModel.parameter("decoder.layers.0.mlp.experts.local_experts.0.linear_fc2.weight"),
                    denseModel.parameter("decoder.layers.0.mlp.linear_fc2.weight"));
            Tensor x = random(arena, 1, S, B, 16);
            float[] moeOut = run(moeModel, moeConfig, x, arena);
            float[] denseOut = run(denseModel, dense, x, arena);
            assertArrayEquals(denseOut, moeOut, 0f);
        }
    }

    /** The router's choices, weights and losses against their formulas on hand-made logits. */
    @Test
    void routerFollowsMegatronsFormulas() {
        MoeConfig moe = MoeConfig.of(3, 8).withLoadBalancing(LoadBalancing.AUX_LOSS, 0.01f).withZLossCoeff(0.001f);
        TopKRouter router = new TopKRouter(moe, DType.F32);
        float[] logits = {2f, 0f, 1f, /* */ -1f, 3f, 0.5f};
        TopKRouter.Routing r = router.route(logits, 2, 1, 1, true);
        assertArrayEquals(new int[] {0, 2, 1, 2}, r.topExperts());
        double p0 = 1 / (1 + Math.exp(-1));                  // softmax over the chosen logits {2, 1}
        double p1 = Math.exp(3) / (Math.exp(3) + Math.exp(0.5));
        assertArrayEquals(new float[] {(float) p0, (float) (1 - p0), (float) p1, (float) (1 - p1)}, r.topProbs(), 1e-6f);
        // rows expert-major: expert 0 has token 0, expert 1 token 1, expert 2 tokens 0 and 1
        assertArrayEquals(new int[] {0, 1, 0, 1}, r.rowToken());
        assertArrayEquals(new int[] {0, 1, 2, 4}, r.expertOffset());
        // aux = E / (k T^2) sum_e (sum_t softmax_e) * tokens_e; tokens per expert (1, 1, 2)
        double[] s0 = softmax(2, 0, 1);
        double[] s1 = softmax(-1, 3, 0.5);
        double aux = 3.0 / (2 * 4) * ((s0[0] + s1[0]) * 1 + (s0[1] + s1[1]) * 1 + (s0[2] + s1[2]) * 2);
        assertEquals(aux, r.auxLoss(), 1e-6);
        double lse0 = Math.log(Math.exp(2) + 1 + Math.exp(1));
        double lse1 = Math.log(Math.exp(-1) + Math.exp(3) + Math.exp(0.5));
        assertEquals((lse0 * lse0 + lse1 * lse1) / 2, r.zLoss(), 1e-5);
    }

    /**
     * bf16 compute: the router's logits are bf16 and its weights rounded to bf16, unless {@code --moe-router-dtype fp32},
     * where the GEMM on the bf16 values returns F32 logits (Megatron's router_gating_linear) and the weights stay F32;
     * the backward runs either way.
     */
    @Test
    void routerDtypeFp32KeepsF32LogitsAndWeightsUnderBf16() {
        for (boolean fp32 : new boolean[] {false, true}) {
            TransformerConfig c = config(true, MoeConfig.of(4, 12).withRouterDtypeFp32(fp32));
            try (GPTModel model = new GPTModel(c, backend, 1, org.megatronj.model.Precision.BF16);
                 TensorArena arena = TensorArena.named("test")) {
                randomize(model);
                MoeLayer moe = (MoeLayer) model.layers().getFirst().mlp();
                LayerActivations a = LayerActivations.allocate(backend, arena, c, S, B, S, DType.BF16);
                Workspace ws = Workspace.allocate(backend, arena, c, S, B, S, DType.BF16);
                Tensor x = arena.allocate(DType.BF16, S, B, 16);
                x.copyFrom(random(arena, 3, S, B, 16).toFloatArray());
                Tensor out = arena.allocate(DType.BF16, S, B, 16);
                moe.forward(x, null, out, a, ws, true);
                TopKRouter.Routing r = a.moe().routing().routing;
                float[] xs = x.toFloatArray();
                float[] w = model.parameter("decoder.layers.0.mlp.router.weight").compute().toFloatArray();
                for (int t = 0; t < S * B; t++) {
                    float[] logits = new float[4];
                    for (int e = 0; e < 4; e++) {
                        double dot = 0;
                        for (int i = 0; i < 16; i++) {
                            dot += (double) xs[t * 16 + i] * w[e * 16 + i];
                        }
                        logits[e] = fp32 ? (float) dot : org.megatronj.memory.FloatFormats.bf16ToFloat(
                                org.megatronj.memory.FloatFormats.floatToBf16((float) dot));
                    }
                    assertArrayEquals(logits, java.util.Arrays.copyOfRange(r.logits(), t * 4, t * 4 + 4), fp32 ? 2e-6f : 1e-2f);
                    for (int i = 0; i < 2; i++) {
                        float p = r.topProbs()[t * 2 + i];
                        boolean bf16Value = org.megatronj.memory.FloatFormats.bf16ToFloat(
                                org.megatronj.memory.FloatFormats.floatToBf16(p)) == p;
                        assertTrue(fp32 || bf16Value, "bf16 weights without --moe-router-dtype fp32: " + p);
                    }
                }
                Tensor dx = arena.allocate(DType.BF16, S, B, 16);
                Tensor dOut = arena.allocate(DType.BF16, S, B, 16);
                dOut.copyFrom(random(arena, 4, S, B, 16).toFloatArray());
                moe.backward(dOut, x, dx, a, ws);
                for (float v : dx.toFloatArray()) {
                    assertTrue(Float.isFinite(v));
                }
                for (float v : model.parameter("decoder.layers.0.mlp.router.weight").grad().toFloatArray()) {
                    assertTrue(Float.isFinite(v));
                }
            }
        }
    }

    /** Megatron's get_updated_expert_bias: up by the rate below the average load, down above it, unchanged at it. */
    @Test
    void expertBiasMovesTowardsBalance() {
        TransformerConfig c = config(true, MoeConfig.of(4, 12).withRouting(false, ScoreFunction.SIGMOID, 0)
                .withExpertBias(true, 0.25f));
        try (GPTModel model = new GPTModel(c, backend, 1)) {
            MoeLayer moe = (MoeLayer) model.layers().getFirst().mlp();
            moe.updateExpertBias(new double[] {3, 1, 2, 2});
            moe.updateExpertBias(new double[] {0, 5, 1, 2});
            assertArrayEquals(new float[] {0f, 0f, 0.25f, 0f},
                    model.parameter("decoder.layers.0.mlp.router.expert_bias").data().toFloatArray());
            assertEquals(model.parameterCount(), model.parameters().stream().mapToLong(Parameter::numel).sum() - 4,
                    "the buffer is no parameter");
        }
    }

    /** Over capacity, "position" keeps the first tokens (the policy's documented meaning), "probs" the highest weights. */
    @Test
    void dropPoliciesKeepFirstTokensOrHighestWeights() {
        float[] logits = {3, 0, 2, 0, 5, 0, 1, 0};   // all four tokens prefer expert 0; capacity ceil(4 / 2 * 0.5) = 1
        MoeConfig moe = MoeConfig.of(2, 8).withRouterTopk(1).withRouting(true, ScoreFunction.SOFTMAX, 0);
        TopKRouter.Routing byPosition = new TopKRouter(moe.withCapacity(0.5f, TokenDropPolicy.POSITION, false), DType.F32)
                .route(logits, 4, 1, 1, false);
        assertArrayEquals(new int[] {0}, byPosition.rowToken());
        TopKRouter.Routing byProbs = new TopKRouter(moe.withCapacity(0.5f, TokenDropPolicy.PROBS, false), DType.F32)
                .route(logits, 4, 1, 1, false);
        assertArrayEquals(new int[] {2}, byProbs.rowToken());
        // two capacity segments (tensor ranks' sequence shards) count separately: one token each
        TopKRouter.Routing sharded = new TopKRouter(moe.withCapacity(1f, TokenDropPolicy.POSITION, false), DType.F32)
                .route(logits, 4, 2, 1, false);
        assertArrayEquals(new int[] {0, 2}, sharded.rowToken());
    }

    private static double[] softmax(double... x) {
        double sum = 0;
        for (double v : x) {
            sum += Math.exp(v);
        }
        double[] out = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = Math.exp(x[i]) / sum;
        }
        return out;
    }

    private static float[] run(GPTModel model, TransformerConfig c, Tensor x, TensorArena arena) {
        LayerActivations a = LayerActivations.allocate(backend, arena, c, S, B);
        Workspace ws = Workspace.allocate(backend, arena, c, S, B);
        Tensor out = arena.allocate(DType.F32, S, B, 16);
        model.layers().getFirst().mlp().forward(x, null, out, a, ws, true);
        return out.toFloatArray();
    }

    private static void copy(Parameter from, Parameter to) {
        to.data().copyFrom(from.data().toFloatArray());
        to.compute().copyFrom(from.data().toFloatArray());
    }

    private void check(TransformerConfig c) {
        check(c, false);
    }

    private void check(TransformerConfig c, boolean lossesOnly) {
        try (GPTModel model = new GPTModel(c, backend, 1); TensorArena arena = TensorArena.named("test")) {
            randomize(model);
            MoeLayer moe = (MoeLayer) model.layers().getFirst().mlp();
            moe.setAuxLossScale(AUX_SCALE);
            LayerActivations a = LayerActivations.allocate(backend, arena, c, S, B);
            Workspace ws = Workspace.allocate(backend, arena, c, S, B);
            Tensor x = random(arena, 3, S, B, 16);
            Tensor out = arena.allocate(DType.F32, S, B, 16);
            Tensor dOut = arena.allocate(DType.F32, S, B, 16);
            Tensor dx = arena.allocate(DType.F32, S, B, 16);
            float[] w = lossesOnly ? new float[S * B * 16] : random(arena, 4, S, B, 16).toFloatArray();
            MoeConfig m = c.moe();
            java.util.function.DoubleSupplier objective = () -> {
                moe.forward(x, null, out, a, ws, true);
                TopKRouter.Routing r = a.moe().routing().routing;
                double sum = AUX_SCALE * (m.effectiveAuxLossCoeff() * r.auxLoss() + m.zLossCoeff() * r.zLoss());
                for (int i = 0; i < w.length; i++) {
                    sum += (double) out.getFloat(i) * w[i];
                }
                return sum;
            };
            objective.getAsDouble();
            model.zeroGrad();
            dOut.copyFrom(w);
            moe.backward(dOut, x, dx, a, ws);
            List<Tensor[]> wrts = new ArrayList<>();
            wrts.add(new Tensor[] {x, dx});
            for (Parameter p : model.parameters()) {
                if (p.name().contains(lossesOnly ? ".mlp.router." : ".mlp.")) {
                    wrts.add(new Tensor[] {p.data(), p.grad()});
                }
            }
            double worst = 0;
            Random r = new Random(7);
            for (Tensor[] wrt : wrts) {
                float[] analytic = wrt[1].toFloatArray();
                double scale = 1e-6;
                for (float g : analytic) {
                    scale = Math.max(scale, Math.abs(g));
                }
                for (int k = 0; k < 12; k++) {
                    int i = r.nextInt((int) wrt[0].numel());
                    float original = wrt[0].getFloat(i);
                    float step = 1e-3f;
                    set(model, wrt[0], i, original + step);
                    double plus = objective.getAsDouble();
                    set(model, wrt[0], i, original - step);
                    double minus = objective.getAsDouble();
                    set(model, wrt[0], i, original);
                    double numeric = (plus - minus) / (2.0 * step);
                    worst = Math.max(worst, Math.abs(numeric - analytic[i]) / scale);
                }
            }
            assertTrue(worst < 5e-3, "worst relative gradient error " + worst + " for " + m);
        }
    }

    /** Sets a value; weights are read through their compute copy, refreshed here (F32: the same values). */
    private static void set(GPTModel model, Tensor t, int i, float v) {
        t.setFloat(i, v);
        model.refreshComputeWeights();
    }

    private static void randomize(GPTModel model) {
        Random r = new Random(5);
        for (Parameter p : model.parameters()) {
            Tensor t = p.data();
            double std = t.rank() == 2 ? 1.0 / Math.sqrt(t.dim(1)) : 0.2;
            for (long i = 0; i < t.numel(); i++) {
                t.setFloat(i, (float) ((p.name().endsWith("layernorm.weight") ? 1 : 0) + std * r.nextGaussian()));
            }
        }
        model.refreshComputeWeights();
    }

    private static Tensor random(TensorArena arena, long seed, long... shape) {
        Tensor t = arena.allocate(DType.F32, shape);
        Random r = new Random(seed);
        for (long i = 0; i < t.numel(); i++) {
            t.setFloat(i, (float) r.nextGaussian());
        }
        return t;
    }
}
