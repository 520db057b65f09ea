package org.megatronj.parallel.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.megatronj.model.Normalization;
import org.megatronj.model.PositionEmbeddingType;
import org.megatronj.model.TransformerConfig;
import org.megatronj.parallel.optim.ParallelGptHarness.Layout;
import org.megatronj.parallel.optim.ParallelGptHarness.Trace;

/** Losses and gradient norms of parallel layouts against the single-rank run (fp32, 1e-5 relative). */
class ParallelGptEquivalenceTest {
    private static final int ITERATIONS = 4;
    private static final double TOLERANCE = 1e-5;

    @ParameterizedTest(name = "tp={0} pp={1} dp={2} sp={3} distOpt={4} recompute={5}")
    @CsvSource({
            "2,1,1,false,false,false",
            "1,1,2,false,false,false",
            "1,1,2,false,true,false",
            "2,1,2,false,true,true",
            "2,1,1,true,false,false",
            "4,1,1,true,false,true",
            "2,1,2,true,true,false",
    })
    void matchesSingleRank(int tp, int pp, int dp, boolean sp, boolean distOpt, boolean recompute) {
        TransformerConfig c = ParallelGptHarness.config(Normalization.LAYER_NORM, PositionEmbeddingType.LEARNED_ABSOLUTE, false, 4);
        Trace expected = ParallelGptHarness.single(c, ITERATIONS, false);
        Trace actual = ParallelGptHarness.parallel(c, ITERATIONS, new Layout(tp, pp, dp, sp, distOpt, recompute));
        assertMatches(expected, actual);
    }

    @ParameterizedTest(name = "tp={0} pp={1} dp={2} vpLayers={3} sp={4} distOpt={5} recompute={6}")
    @CsvSource({
            "1,2,1,0,false,false,none",
            "1,4,1,0,false,false,uniform:1",
            "2,2,2,0,true,true,block:1",
            "1,2,1,1,false,false,none",
            "2,2,1,1,true,false,uniform:2",
    })
    void pipelineMatchesSingleRank(int tp, int pp, int dp, int vpLayers, boolean sp, boolean distOpt, String recompute) {
        TransformerConfig c = ParallelGptHarness.config(Normalization.LAYER_NORM, PositionEmbeddingType.LEARNED_ABSOLUTE, false, 4);
        Trace expected = ParallelGptHarness.single(c, ITERATIONS, false);
        Trace actual = ParallelGptHarness.parallel(c, ITERATIONS, new Layout(tp, pp, dp, vpLayers, sp, distOpt,
                ParallelGptHarness.recompute(recompute)));
        assertMatches(expected, actual);
    }

    @ParameterizedTest(name = "tp={0} pp={1} dp={2} vpLayers={3} distOpt={4} bucket={5}")
    @CsvSource({
            "1,1,2,0,false,512",
            "1,1,2,0,true,512",
            "2,2,2,0,true,256",
            "1,2,2,1,true,700",
            "1,2,2,0,false,0",
    })
    void overlappedBucketReductionMatchesSingleRank(int tp, int pp, int dp, int vpLayers, boolean distOpt, long bucket) {
        TransformerConfig c = ParallelGptHarness.config(Normalization.LAYER_NORM, PositionEmbeddingType.LEARNED_ABSOLUTE, false, 4);
        Trace expected = ParallelGptHarness.single(c, ITERATIONS, false);
        Trace actual = ParallelGptHarness.parallel(c, ITERATIONS, new Layout(tp, pp, dp, vpLayers, false, distOpt,
                org.megatronj.model.ActivationRecompute.none(), true, bucket));
        assertMatches(expected, actual);
    }

    @ParameterizedTest(name = "{0} {1} swiglu={2} groups={3} tp={4} sp={5}")
    @CsvSource({
            "RMS_NORM,ROPE,true,2,2,false",
            "RMS_NORM,ROPE,true,2,2,true",
            "LAYER_NORM,ROPE,false,4,4,true",
    })
    void matchesSingleRankAcrossArchitectures(Normalization norm, PositionEmbeddingType positions, boolean swiglu,
                                              int groups, int tp, boolean sp) {
        TransformerConfig c = ParallelGptHarness.config(norm, positions, swiglu, groups);
        Trace expected = ParallelGptHarness.single(c, ITERATIONS, false);
        Trace actual = ParallelGptHarness.parallel(c, ITERATIONS, new Layout(tp, 1, 1, sp, false, false));
        assertMatches(expected, actual);
    }

    /** Dropout draws the single-rank masks on every layout (sequence shards shift their counters). */
    @ParameterizedTest(name = "{0} tp={1} pp={2} dp={3} sp={4}")
    @CsvSource({
            "LEARNED_ABSOLUTE,2,1,1,true",
            "ROPE,2,1,1,true",
            "LEARNED_ABSOLUTE,2,2,2,false",
            "ROPE,1,2,2,false",
    })
    void dropoutMatchesSingleRank(PositionEmbeddingType positions, int tp, int pp, int dp, boolean sp) {
        TransformerConfig c = ParallelGptHarness.config(Normalization.LAYER_NORM, positions, false, 4, 0.1f);
        Trace expected = ParallelGptHarness.single(c, ITERATIONS, false);
        Trace actual = ParallelGptHarness.parallel(c, ITERATIONS, new Layout(tp, pp, dp, sp, false, true));
        assertMatches(expected, actual);
    }

    /**
     * Attention dropout (inside the attention op): a TP rank's heads draw the single-rank masks of those
     * heads, also under sequence parallelism, GQA and full recompute.
     */
    @ParameterizedTest(name = "groups={0} tp={1} pp={2} dp={3} sp={4}")
    @CsvSource({
            "4,2,1,1,false",
            "2,2,1,1,true",
            "4,2,2,2,true",
    })
    void attentionDropoutMatchesSingleRank(int groups, int tp, int pp, int dp, boolean sp) {
        TransformerConfig c = ParallelGptHarness.config(Normalization.LAYER_NORM, PositionEmbeddingType.ROPE, false, groups,
                0.1f, 0.2f);
        Trace expected = ParallelGptHarness.single(c, ITERATIONS, false);
        Trace actual = ParallelGptHarness.parallel(c, ITERATIONS, new Layout(tp, pp, dp, sp, false, true));
        assertMatches(expected, actual);
    }

    @ParameterizedTest(name = "tp={0} pp={1} dp={2} vpLayers={3} sp={4}")
    @CsvSource({"2,2,1,1,true", "1,2,2,0,false", "2,1,2,0,true", "1,4,1,0,false"})
    void evaluationMatchesSingleRankOnEveryRank(int tp, int pp, int dp, int vpLayers, boolean sp) {
        TransformerConfig c = ParallelGptHarness.config(Normalization.LAYER_NORM, PositionEmbeddingType.LEARNED_ABSOLUTE, false, 4, 0.1f);
        double expected = ParallelGptHarness.singleEvaluation(c);
        double[] actual = ParallelGptHarness.parallelEvaluation(c, new Layout(tp, pp, dp, vpLayers, sp, false,
                org.megatronj.model.ActivationRecompute.none()));
        for (int r = 0; r < actual.length; r++) {
            assertEquals(expected, actual[r], TOLERANCE * expected, "rank " + r);
        }
    }

    /**
     * Mixture-of-experts layers (every other layer, with gated shared experts; load-balancing and z losses): every tensor rank
     * routes the gathered tokens and holds a slice of every expert, the router's gradient comes from each rank's
     * sequence shard. With a capacity factor only layouts without tensor parallelism: Megatron counts the capacity per
     * sequence shard, so tensor ranks drop other tokens than one rank does.
     */
    @ParameterizedTest(name = "tp={0} pp={1} dp={2} vpLayers={3} sp={4} distOpt={5} capacity={6}")
    @CsvSource({
            "2,1,1,0,true,false,0",
            "2,1,2,0,true,true,0",
            "1,2,2,0,false,true,0",
            "2,2,1,1,true,false,0",
            "1,2,2,0,false,false,0.75",
    })
    void mixtureOfExpertsMatchesSingleRank(int tp, int pp, int dp, int vpLayers, boolean sp, boolean distOpt, float capacity) {
        TransformerConfig dense = ParallelGptHarness.config(Normalization.RMS_NORM, PositionEmbeddingType.ROPE, true, 2);
        org.megatronj.model.MoeConfig moe = org.megatronj.model.MoeConfig.of(4, 32).withLayerFreq("([1]+[0])*2")
                .withLoadBalancing(org.megatronj.model.MoeConfig.LoadBalancing.AUX_LOSS, 0.1f).withZLossCoeff(0.01f)
                .withSharedExperts(32, true)
                .withCapacity(capacity, org.megatronj.model.MoeConfig.TokenDropPolicy.PROBS, false);
        TransformerConfig c = dense.toBuilder().addBiasLinear(false).moe(moe).build();
        Trace expected = ParallelGptHarness.single(c, ITERATIONS, false);
        Trace actual = ParallelGptHarness.parallel(c, ITERATIONS, new Layout(tp, pp, dp, vpLayers, sp, distOpt,
                org.megatronj.model.ActivationRecompute.none()));
        assertMatches(expected, actual);
    }

    /**
     * Multi-Token Prediction (two depths, on the last pipeline stage with the shared embedding's copy there, tied or
     * not): the lm loss, each depth's logged loss and acceptance rates (the vocab-parallel argmax under TP), and the
     * grad norm equal one rank's under TP + SP, PP (also
     * interleaved: the depths on the last model chunk), DP with the distributed optimizer, overlapped bucket reductions,
     * full and selective recompute, and dropout.
     */
    @ParameterizedTest(name = "tp={0} pp={1} dp={2} sp={3} distOpt={4} recompute={5} untied={6} dropout={7} overlap={8} vpLayers={9}")
    @CsvSource({
            "2,1,1,true,false,none,false,0,false,0",
            "2,1,1,false,false,none,true,0,false,0",
            "1,2,1,false,false,none,false,0,false,0",
            "1,2,1,false,false,none,true,0,false,0",
            "1,1,2,false,true,none,false,0,false,0",
            "2,2,1,true,false,uniform:1,false,0,false,0",
            "1,2,2,false,true,selective,true,0,true,0",
            "2,2,2,true,true,none,false,0.1,false,0",
            "1,2,1,false,false,none,true,0,false,1",
            "2,2,1,true,true,none,false,0,false,1",
    })
    void multiTokenPredictionMatchesSingleRank(int tp, int pp, int dp, boolean sp, boolean distOpt, String recompute,
                                               boolean untied, float dropout, boolean overlap, int vpLayers) {
        TransformerConfig c = ParallelGptHarness.config(Normalization.RMS_NORM, PositionEmbeddingType.ROPE, true, 2, dropout)
                .toBuilder().untieEmbeddingsAndOutputWeights(untied).mtp(new org.megatronj.model.MtpConfig(2, 0.3f)).build();
        Trace expected = ParallelGptHarness.single(c, ITERATIONS, false);
        Trace actual = ParallelGptHarness.parallel(c, ITERATIONS, new Layout(tp, pp, dp, vpLayers, sp, distOpt,
                ParallelGptHarness.recompute(recompute), overlap, overlap ? 256 : 0));
        assertEquals(6, expected.mtpLosses()[0].length);
        assertTrue(expected.mtpLosses()[ITERATIONS - 1][4] > 0, "some positions accepted (the cumulative rate of depth 1): "
                + java.util.Arrays.toString(expected.mtpLosses()[ITERATIONS - 1]));
        assertMatches(expected, actual);
    }

    /** MTP depths of a MoE model are MoE layers (the decoder's last layer's kind): their routing and aux losses too. */
    @ParameterizedTest(name = "tp={0} pp={1} dp={2}")
    @CsvSource({"2,2,1", "1,2,2"})
    void multiTokenPredictionWithExpertsMatchesSingleRank(int tp, int pp, int dp) {
        TransformerConfig dense = ParallelGptHarness.config(Normalization.RMS_NORM, PositionEmbeddingType.ROPE, true, 2);
        org.megatronj.model.MoeConfig moe = org.megatronj.model.MoeConfig.of(4, 32).withLayerFreq("([0]+[1])*2")
                .withLoadBalancing(org.megatronj.model.MoeConfig.LoadBalancing.AUX_LOSS, 0.1f);
        TransformerConfig c = dense.toBuilder().addBiasLinear(false).moe(moe).mtp(org.megatronj.model.MtpConfig.of(1)).build();
        Trace expected = ParallelGptHarness.single(c, ITERATIONS, false);
        Trace actual = ParallelGptHarness.parallel(c, ITERATIONS, new Layout(tp, pp, dp, tp > 1, dp > 1, false));
        assertMatches(expected, actual);
    }

    /** MoE layers under overlapped bucket reductions and full recompute (the routing rerun with the same results). */
    @ParameterizedTest(name = "tp={0} pp={1} dp={2} overlap={3} recompute={4}")
    @CsvSource({"1,2,2,true,none", "2,1,2,true,uniform:1", "2,2,1,false,block:1"})
    void mixtureOfExpertsUnderOverlapAndRecomputeMatchesSingleRank(int tp, int pp, int dp, boolean overlap, String recompute) {
        TransformerConfig dense = ParallelGptHarness.config(Normalization.RMS_NORM, PositionEmbeddingType.ROPE, true, 2);
        org.megatronj.model.MoeConfig moe = org.megatronj.model.MoeConfig.of(4, 32).withLayerFreq("2")
                .withLoadBalancing(org.megatronj.model.MoeConfig.LoadBalancing.SEQ_AUX_LOSS, 0.1f).withZLossCoeff(0.01f);
        TransformerConfig c = dense.toBuilder().addBiasLinear(false).moe(moe).build();
        Trace expected = ParallelGptHarness.single(c, ITERATIONS, false);
        Trace actual = ParallelGptHarness.parallel(c, ITERATIONS, new Layout(tp, pp, dp, 0, tp > 1, overlap,
                ParallelGptHarness.recompute(recompute), overlap, overlap ? 256 : 0));
        assertMatches(expected, actual);
    }

    /**
     * DeepSeek-V3's router: sigmoid scores with an expert bias moved each iteration by the tokens over the data-parallel
     * ranks (so later iterations route by it), group-limited top-4 of 8 experts, top-k scaling.
     */
    @ParameterizedTest(name = "tp={0} pp={1} dp={2} sp={3} distOpt={4}")
    @CsvSource({"2,1,2,true,false", "1,2,2,false,true", "2,2,1,true,false"})
    void expertBiasRoutingMatchesSingleRank(int tp, int pp, int dp, boolean sp, boolean distOpt) {
        TransformerConfig dense = ParallelGptHarness.config(Normalization.RMS_NORM, PositionEmbeddingType.ROPE, true, 2);
        org.megatronj.model.MoeConfig moe = org.megatronj.model.MoeConfig.of(8, 16).withRouterTopk(4)
                .withRouting(false, org.megatronj.model.MoeConfig.ScoreFunction.SIGMOID, 2.5f)
                .withGroupLimitedRouting(4, 2).withExpertBias(true, 0.05f).withLayerFreq("[0]+[1]*3");
        TransformerConfig c = dense.toBuilder().addBiasLinear(false).moe(moe).build();
        Trace expected = ParallelGptHarness.single(c, ITERATIONS, false);
        Trace actual = ParallelGptHarness.parallel(c, ITERATIONS, new Layout(tp, pp, dp, 0, sp, distOpt,
                org.megatronj.model.ActivationRecompute.none()));
        assertMatches(expected, actual);
    }

    /**
     * Multi-latent attention (query latent, latent norms, YaRN, values narrower than the query/key heads; a MoE layer where
     * the layout allows):
     * tensor ranks split the heads of the up projections and linear_proj and run the replicated down projections on
     * the whole sequence (summing the shared rotary key's gradient) or, with sequence parallelism, on their positions;
     * pipeline stages, data ranks with the distributed optimizer, full and selective recompute, attention dropout.
     */
    @ParameterizedTest(name = "tp={0} pp={1} dp={2} sp={3} distOpt={4} recompute={5} qLatent={6} dropout={7}")
    @CsvSource({
            "2,1,1,true,false,none,true,0",
            "2,1,2,false,true,none,true,0",
            "2,1,1,false,false,none,false,0.2",
            "1,2,2,false,true,none,true,0",
            "2,2,1,true,false,uniform:1,true,0",
            "2,1,2,true,true,selective,false,0.2",
    })
    void multiLatentAttentionMatchesSingleRank(int tp, int pp, int dp, boolean sp, boolean distOpt, String recompute,
                                               boolean queryLatent, float attentionDropout) {
        TransformerConfig base = ParallelGptHarness.config(Normalization.RMS_NORM, PositionEmbeddingType.ROPE, true, 4, 0f,
                attentionDropout);
        org.megatronj.model.MlaConfig mla = org.megatronj.model.MlaConfig.of(queryLatent ? 12 : 0, 10, 8, 4, 6)
                .withRope(org.megatronj.model.MlaConfig.RopeType.YARN, 4f, 1f, 0.5f);
        TransformerConfig c = base.toBuilder().addBiasLinear(false).qkLayernorm(true).mla(mla)   // MoE + TP needs SP
                .moe(tp > 1 && !sp ? null : org.megatronj.model.MoeConfig.of(4, 16).withLayerFreq("[0]+[1]+[0]*2")).build();
        Trace expected = ParallelGptHarness.single(c, ITERATIONS, false);
        Trace actual = ParallelGptHarness.parallel(c, ITERATIONS, new Layout(tp, pp, dp, 0, sp, distOpt,
                ParallelGptHarness.recompute(recompute)));
        assertMatches(expected, actual);
    }

    static void assertMatches(Trace expected, Trace actual) {
        for (int it = 0; it < expected.losses().length; it++) {
            double l = expected.losses()[it];
            double n = expected.gradNorms()[it];
            assertEquals(l, actual.losses()[it], TOLERANCE * Math.abs(l), "loss of iteration " + (it + 1));
            assertEquals(n, actual.gradNorms()[it], TOLERANCE * Math.abs(n), "grad norm of iteration " + (it + 1));
            assertEquals(expected.mtpLosses()[it].length, actual.mtpLosses()[it].length, "MTP depths");
            for (int k = 0; k < expected.mtpLosses()[it].length; k++) {
                double m = expected.mtpLosses()[it][k];
                assertEquals(m, actual.mtpLosses()[it][k], TOLERANCE * Math.abs(m),   // losses, then acceptance rates
                        "MTP entry " + k + " (mtp_<k> losses, then acceptance rates) of iteration " + (it + 1));
            }
        }
    }
}
