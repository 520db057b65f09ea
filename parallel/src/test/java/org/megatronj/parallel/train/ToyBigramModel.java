package org.megatronj.parallel.train;

import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.LossResult;
import org.megatronj.model.MicroBatch;
import org.megatronj.model.Parameter;

import java.util.List;
import java.util.SplittableRandom;

/**
 * A bigram language model (logits of the next token = row of a [V, V] table) with dropout on the
 * logits, small enough to train in milliseconds: exercises the trainer's accumulation, clipping,
 * checkpoints and RNG offsets without the GPT model.
 */
final class ToyBigramModel implements TrainableModel {
    static final float DROPOUT = 0.1f;
    final int vocab;
    private final Parameter table;
    private final Parameter bias;

    ToyBigramModel(TensorArena arena, int vocab, long seed) {
        this.vocab = vocab;
        Tensor w = arena.allocate(DType.F32, vocab, vocab);
        SplittableRandom rnd = new SplittableRandom(seed);
        for (int i = 0; i < w.numel(); i++) {
            w.setFloat(i, (float) (rnd.nextGaussian() * 0.02));
        }
        table = new Parameter("embedding.word_embeddings.weight", w, arena.allocate(DType.F32, vocab, vocab), true);
        bias = new Parameter("output_layer.bias", arena.allocate(DType.F32, vocab), arena.allocate(DType.F32, vocab), false);
    }

    @Override
    public List<Parameter> parameters() {
        return List.of(table, bias);
    }

    @Override
    public LossResult forwardBackward(MicroBatch batch, float gradScale, long rngOffset) {
        return run(batch, gradScale, rngOffset, true);
    }

    @Override
    public LossResult forwardLoss(MicroBatch batch) {
        return run(batch, 0f, 0, false);
    }

    private LossResult run(MicroBatch batch, float gradScale, long rngOffset, boolean train) {
        int n = batch.batchSize() * batch.seqLength();
        double lossSum = 0;
        long tokens = 0;
        for (int i = 0; i < n; i++) {
            if (batch.lossMask()[i] != 0) {
                tokens++;
            }
        }
        float[] logits = new float[vocab];
        float[] mask = new float[vocab];
        for (int i = 0; i < n; i++) {
            int t = batch.tokens()[i];
            SplittableRandom rnd = new SplittableRandom(rngOffset * 1_000_003L + i);
            float max = Float.NEGATIVE_INFINITY;
            for (int v = 0; v < vocab; v++) {
                mask[v] = !train ? 1f : rnd.nextDouble() < DROPOUT ? 0f : 1f / (1f - DROPOUT);
                logits[v] = (table.data().getFloat((long) t * vocab + v) + bias.data().getFloat(v)) * mask[v];
                max = Math.max(max, logits[v]);
            }
            double sum = 0;
            for (int v = 0; v < vocab; v++) {
                sum += Math.exp(logits[v] - max);
            }
            int label = batch.labels()[i];
            double loss = Math.log(sum) + max - logits[label];
            if (batch.lossMask()[i] == 0) {
                continue;
            }
            lossSum += loss;
            if (train) {
                float scale = gradScale / tokens;
                for (int v = 0; v < vocab; v++) {
                    double p = Math.exp(logits[v] - max) / sum - (v == label ? 1 : 0);
                    float g = (float) (p * scale * mask[v]);
                    long idx = (long) t * vocab + v;
                    table.grad().setFloat(idx, table.grad().getFloat(idx) + g);
                    bias.grad().setFloat(v, bias.grad().getFloat(v) + g);
                }
            }
        }
        return new LossResult(lossSum, tokens);
    }
}
