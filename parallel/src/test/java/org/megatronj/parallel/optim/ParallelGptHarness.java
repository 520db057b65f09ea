package org.megatronj.parallel.optim;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.megatronj.memory.Backend;
import org.megatronj.model.GPTModel;
import org.megatronj.model.LossResult;
import org.megatronj.model.MicroBatch;
import org.megatronj.model.Normalization;
import org.megatronj.model.PositionEmbeddingType;
import org.megatronj.model.TransformerConfig;
import org.megatronj.model.optim.AdamW;
import org.megatronj.model.optim.GradClipping;
import org.megatronj.model.optim.Optimizer;
import org.megatronj.model.parallel.TensorParallelism;
import org.megatronj.parallel.ParallelConfig;
import org.megatronj.parallel.TestBackends;
import org.megatronj.parallel.comm.LocalWorld;
import org.megatronj.parallel.comm.ProcessGroups;
import org.megatronj.parallel.tensor.CommunicatorTensorParallelGroup;

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

    record Trace(double[] losses, double[] gradNorms) {
    }

    /** The layout under test: TP, PP, DP (from the world size), SP, distributed optimizer, recompute. */
    record Layout(int tp, int pp, int dp, boolean sequenceParallel, boolean distributedOptimizer, boolean recompute) {
        int worldSize() {
            return tp * pp * dp;
        }

        ParallelConfig parallelConfig() {
            return new ParallelConfig(tp, pp, 0, sequenceParallel);
        }
    }

    static TransformerConfig config(Normalization norm, PositionEmbeddingType positions, boolean swiglu, int groups) {
        return TransformerConfig.builder().numLayers(2).hiddenSize(32).numAttentionHeads(4).numQueryGroups(groups)
                .seqLength(8).maxPositionEmbeddings(8).positionEmbeddingType(positions).normalization(norm).swiglu(swiglu)
                .ffnHiddenSize(swiglu ? 64 : 0).attentionDropout(0f).hiddenDropout(0f)
                .vocabSize(64).makeVocabSizeDivisibleBy(16).build();
    }

    /** The global batch of iteration {@code it} as micro-batches, the same for every layout. */
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
            out.add(new MicroBatch(MICRO_BATCH, s, tokens, labels, mask, null));
        }
        return out;
    }

    static Trace single(TransformerConfig c, int iterations, boolean recompute) {
        double[] losses = new double[iterations];
        double[] norms = new double[iterations];
        try (Backend backend = TestBackends.cpu(); GPTModel model = new GPTModel(c, backend, SEED);
             AdamW adam = new AdamW(model.parameters(), backend, 0.9f, 0.95f, 1e-8f, 0.1f)) {
            model.setRecomputeActivations(recompute);
            for (int it = 0; it < iterations; it++) {
                List<MicroBatch> batch = globalBatch(c, it);
                model.zeroGrad();
                double loss = 0;
                for (int m = 0; m < batch.size(); m++) {
                    LossResult r = model.forwardBackward(batch.get(m), 1f / batch.size(), it * 1000L + m);
                    loss += r.meanLoss() / batch.size();
                }
                losses[it] = loss;
                norms[it] = GradClipping.clip(model.parameters(), backend, CLIP);
                adam.step(LR);
            }
        }
        return new Trace(losses, norms);
    }

    static Trace parallel(TransformerConfig c, int iterations, Layout layout) {
        double[] losses = new double[iterations];
        double[] norms = new double[iterations];
        LocalWorld.run(layout.parallelConfig(), layout.worldSize(), ctx -> {
            ProcessGroups groups = ctx.groups();
            int dp = groups.data().size();
            int dpRank = groups.data().rank();
            var tp = new TensorParallelism(CommunicatorTensorParallelGroup.of(groups.tensor()), layout.sequenceParallel());
            try (Backend backend = TestBackends.cpu(); GPTModel model = new GPTModel(c, backend, SEED, tp, dp)) {
                model.setRecomputeActivations(layout.recompute());
                FlatShard shard = layout.distributedOptimizer() ? FlatShard.of(model.parameterStore(), dpRank, dp) : null;
                ParallelGradients gradients = new ParallelGradients(model, groups, shard, false);
                Optimizer adam = shard != null
                        ? new DistributedAdam(shard, model.parameterStore().flatData(), groups.data(), backend, 0.9f, 0.95f, 1e-8f, 0.1f)
                        : new AdamW(model.parameters(), backend, 0.9f, 0.95f, 1e-8f, 0.1f);
                try {
                    for (int it = 0; it < iterations; it++) {
                        List<MicroBatch> batch = globalBatch(c, it);
                        int perRank = batch.size() / dp;
                        model.zeroGrad();
                        double loss = 0;
                        for (int j = 0; j < perRank; j++) {
                            int m = dpRank * perRank + j;
                            LossResult r = model.forwardBackward(batch.get(m), 1f / perRank, it * 1000L + m);
                            loss += r.meanLoss() / perRank;
                        }
                        gradients.synchronize();
                        double norm = gradients.clip(CLIP);
                        adam.step(LR);
                        double globalLoss = ParallelGradients.allReduceSum(groups.data(), loss) / dp;
                        if (ctx.rank() == 0) {
                            losses[it] = globalLoss;
                            norms[it] = norm;
                        }
                    }
                } finally {
                    ((AutoCloseable) adam).close();
                }
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
        return new Trace(losses, norms);
    }

    private ParallelGptHarness() {
    }
}
