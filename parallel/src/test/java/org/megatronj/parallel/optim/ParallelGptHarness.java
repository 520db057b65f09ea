package org.megatronj.parallel.optim;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.megatronj.memory.Backend;
import org.megatronj.model.ActivationRecompute;
import org.megatronj.model.GPTModel;
import org.megatronj.model.LossResult;
import org.megatronj.model.MicroBatch;
import org.megatronj.model.Normalization;
import org.megatronj.model.PositionEmbeddingType;
import org.megatronj.model.TransformerConfig;
import org.megatronj.model.optim.AdamW;
import org.megatronj.model.optim.GradClipping;
import org.megatronj.parallel.ParallelConfig;
import org.megatronj.parallel.TestBackends;
import org.megatronj.parallel.comm.LocalWorld;
import org.megatronj.parallel.pipeline.ParallelGptRank;

/**
 * Trains a tiny GPT for a few iterations on one rank and on a parallel layout from the same seed
 * and data, recording each iteration's loss (mean over the global batch) and gradient norm.
 */
final class ParallelGptHarness {
    static final long SEED = 1234;
    static final int MICRO_BATCH = 2;
    static final int GLOBAL_BATCH = 8;     // 4 micro-batches of 2 on one rank
    static final float LR = 1e-3f;
    static final double CLIP = 1.0;

    /**
     * Per iteration: the lm loss, the grad norm and, with MTP, each depth's logged loss ({@code mtp_<k> loss}) then its
     * acceptance rates (the iteration's, the cumulative).
     */
    record Trace(double[] losses, double[] gradNorms, double[][] mtpLosses) {
        Trace(double[] losses, double[] gradNorms) {
            this(losses, gradNorms, new double[losses.length][0]);
        }
    }

    /**
     * The layout under test: TP, PP, DP (from the world size), layers per virtual pipeline stage
     * (0 = not interleaved), SP, distributed optimizer, recompute.
     */
    record Layout(int tp, int pp, int dp, int layersPerVirtualStage, boolean sequenceParallel, boolean distributedOptimizer,
                  ActivationRecompute recompute, boolean overlapGradReduce, long bucketSize) {
        Layout(int tp, int pp, int dp, boolean sequenceParallel, boolean distributedOptimizer, boolean recompute) {
            this(tp, pp, dp, 0, sequenceParallel, distributedOptimizer,
                    recompute ? ActivationRecompute.full(ActivationRecompute.Method.UNIFORM, 1) : ActivationRecompute.none());
        }

        Layout(int tp, int pp, int dp, int layersPerVirtualStage, boolean sequenceParallel, boolean distributedOptimizer,
               ActivationRecompute recompute) {
            this(tp, pp, dp, layersPerVirtualStage, sequenceParallel, distributedOptimizer, recompute, false, 0);
        }

        int worldSize() {
            return tp * pp * dp;
        }

        ParallelConfig parallelConfig() {
            return new ParallelConfig(tp, pp, layersPerVirtualStage, sequenceParallel);
        }
    }

    static TransformerConfig config(Normalization norm, PositionEmbeddingType positions, boolean swiglu, int groups) {
        return config(norm, positions, swiglu, groups, 0f);
    }

    static TransformerConfig config(Normalization norm, PositionEmbeddingType positions, boolean swiglu, int groups,
                                    float hiddenDropout) {
        return config(norm, positions, swiglu, groups, hiddenDropout, 0f);
    }

    static TransformerConfig config(Normalization norm, PositionEmbeddingType positions, boolean swiglu, int groups,
                                    float hiddenDropout, float attentionDropout) {
        return TransformerConfig.builder().numLayers(4).hiddenSize(32).numAttentionHeads(4).numQueryGroups(groups)
                .seqLength(8).maxPositionEmbeddings(8).positionEmbeddingType(positions).normalization(norm).swiglu(swiglu)
                .ffnHiddenSize(swiglu ? 64 : 0).attentionDropout(attentionDropout).hiddenDropout(hiddenDropout)
                .vocabSize(64).makeVocabSizeDivisibleBy(16).build();
    }

    /**
     * The global batch of iteration {@code it} as micro-batches, the same for every layout. The odd
     * micro-batches hold two documents per sample ({@code --reset-attention-mask}'s key starts, split at
     * a random position), so every layout runs both attention masks.
     */
    static List<MicroBatch> globalBatch(TransformerConfig c, int it) {
        SplittableRandom random = new SplittableRandom(SEED * 31 + it);
        List<MicroBatch> out = new ArrayList<>();
        int s = c.seqLength();
        for (int m = 0; m < GLOBAL_BATCH / MICRO_BATCH; m++) {
            int[] tokens = new int[MICRO_BATCH * s];
            int[] labels = new int[MICRO_BATCH * s];
            float[] mask = new float[MICRO_BATCH * s];
            for (int i = 0; i < tokens.length; i++) {
                tokens[i] = random.nextInt(c.vocabSize());
                labels[i] = random.nextInt(c.vocabSize());
                mask[i] = random.nextInt(8) == 0 ? 0f : 1f;
            }
            int[] keyStarts = m % 2 == 1 ? new int[MICRO_BATCH * s] : null;
            for (int r = 0; keyStarts != null && r < MICRO_BATCH; r++) {
                int second = 1 + random.nextInt(s - 1);
                for (int t = second; t < s; t++) {
                    keyStarts[r * s + t] = second;
                }
            }
            out.add(new MicroBatch(MICRO_BATCH, s, tokens, labels, mask, null, keyStarts));
        }
        return out;
    }

    /** "none", "selective", "selective:m1+m2" (--recompute-modules m1 m2), "uniform:N" or "block:N". */
    static ActivationRecompute recompute(String setting) {
        return switch (setting) {
            case "none" -> ActivationRecompute.none();
            case "selective" -> ActivationRecompute.selective();
            default -> {
                if (setting.startsWith("selective:")) {
                    yield ActivationRecompute.selective(List.of(setting.substring("selective:".length()).split("\\+")));
                }
                String[] parts = setting.split(":");
                yield ActivationRecompute.full(ActivationRecompute.Method.parse(parts[0]), Integer.parseInt(parts[1]));
            }
        };
    }

    static Trace single(TransformerConfig c, int iterations, boolean recompute) {
        double[] losses = new double[iterations];
        double[] norms = new double[iterations];
        double[][] mtp = new double[iterations][];
        var acceptance = new org.megatronj.model.MtpMetrics.Acceptance();
        try (Backend backend = TestBackends.cpu(); GPTModel model = new GPTModel(c, backend, SEED);
             AdamW adam = new AdamW(model.parameters(), backend, 0.9f, 0.95f, 1e-8f, 0.1f)) {
            model.setRecomputeActivations(recompute);
            for (int it = 0; it < iterations; it++) {
                List<MicroBatch> batch = globalBatch(c, it);
                model.zeroGrad();
                LossResult loss = new LossResult(0, 0);
                for (int m = 0; m < batch.size(); m++) {
                    loss = loss.plus(model.forwardBackward(batch.get(m), 1f / batch.size(), it * 1000L + m));
                }
                model.updateMoeExpertBias();   // the trainer's finalize step (MoE routers with an expert bias)
                losses[it] = loss.meanLoss();   // token-weighted over the global batch, as the trainer logs it
                mtp[it] = mtpLosses(acceptance.addTo(org.megatronj.model.MtpMetrics.withLosses(
                        org.megatronj.model.MoeMetrics.Report.NONE, org.megatronj.model.MtpMetrics.take(List.of(model)),
                        batch.size()), org.megatronj.model.MtpMetrics.takeAcceptanceCounts(List.of(model))), c);
                norms[it] = GradClipping.clip(model.parameters(), backend, CLIP);
                adam.step(LR);
            }
        }
        return new Trace(losses, norms, mtp);
    }

    /** The token-weighted mean loss of iteration 0's global batch on one rank, without dropout. */
    static double singleEvaluation(TransformerConfig c) {
        try (Backend backend = TestBackends.cpu(); GPTModel model = new GPTModel(c, backend, SEED)) {
            double sum = 0;
            long tokens = 0;
            for (MicroBatch mb : globalBatch(c, 0)) {
                LossResult r = model.forwardLoss(mb);
                sum += r.lossSum();
                tokens += r.tokens();
            }
            return sum / tokens;
        }
    }

    /** The same on a parallel layout: every rank's answer, by global rank. */
    static double[] parallelEvaluation(TransformerConfig c, Layout layout) {
        double[] out = new double[layout.worldSize()];
        LocalWorld.run(layout.parallelConfig(), layout.worldSize(), ctx -> {
            var options = new ParallelGptRank.Options(layout.recompute(), false, 0, null);
            try (Backend backend = TestBackends.cpu();
                 ParallelGptRank rank = new ParallelGptRank(c, backend, SEED, ctx, options,
                         params -> new AdamW(params, backend, 0.9f, 0.95f, 1e-8f, 0.1f))) {
                out[ctx.rank()] = rank.evaluate(globalBatch(c, 0)).meanLoss();
            }
        });
        return out;
    }

    static Trace parallel(TransformerConfig c, int iterations, Layout layout) {
        double[] losses = new double[iterations];
        double[] norms = new double[iterations];
        double[][] mtp = new double[iterations][0];
        LocalWorld.run(layout.parallelConfig(), layout.worldSize(), ctx -> {
            var adam = layout.distributedOptimizer() ? new ParallelGptRank.AdamSettings(0.9f, 0.95f, 1e-8f, 0.1f) : null;
            var options = new ParallelGptRank.Options(layout.recompute(), layout.overlapGradReduce(), layout.bucketSize(), adam);
            try (Backend backend = TestBackends.cpu();
                 ParallelGptRank rank = new ParallelGptRank(c, backend, SEED, ctx, options,
                         params -> new AdamW(params, backend, 0.9f, 0.95f, 1e-8f, 0.1f))) {
                for (int it = 0; it < iterations; it++) {
                    List<MicroBatch> batch = globalBatch(c, it);
                    long[] offsets = new long[batch.size()];
                    for (int m = 0; m < offsets.length; m++) {
                        offsets[m] = it * 1000L + m;
                    }
                    ParallelGptRank.StepResult r = rank.trainStep(batch, offsets, LR, CLIP);
                    // the trainer's log step: a collective on every rank (only with MTP, so the others run as before)
                    double[] depths = c.mtp() == null ? new double[0] : mtpLosses(rank.moeMetrics(batch.size()), c);
                    if (ctx.rank() == 0) {
                        losses[it] = r.loss();
                        norms[it] = r.gradNorm();
                        mtp[it] = depths;
                    }
                }
            }
        });
        return new Trace(losses, norms, mtp);
    }

    /**
     * The {@code mtp_<k> loss} entries of an iteration's report by depth, then its acceptance rates (of the iteration and
     * cumulative) by depth.
     */
    private static double[] mtpLosses(org.megatronj.model.MoeMetrics.Report report, TransformerConfig c) {
        int n = c.mtpNumLayers();
        double[] out = new double[3 * n];
        for (int k = 0; k < n; k++) {
            out[k] = report.averaged().get(org.megatronj.model.MtpMetrics.lossName(k + 1));
            out[n + k] = report.tensorboardOnly().get("mtp_" + (k + 1) + "_acceptance_rate");
            out[2 * n + k] = report.tensorboardOnly().get("mtp_" + (k + 1) + "_cumulative_acceptance_rate");
        }
        return out;
    }

    private ParallelGptHarness() {
    }
}
