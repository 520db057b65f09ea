package org.megatronj.cli.serve;

import org.megatronj.memory.Backend;
import org.megatronj.memory.cpu.CpuBackend;
import org.megatronj.model.GPTModel;
import org.megatronj.model.TransformerConfig;
import org.megatronj.model.generate.Sampler;

/** A tiny randomly initialised GPT for serving and evaluation tests, plus full-forward references. */
public final class TinyGpt implements AutoCloseable {
    public final Backend backend = new CpuBackend();
    public final GPTModel model;

    public TinyGpt(int vocabSize, int maxPositions, long seed) {
        TransformerConfig c = TransformerConfig.builder().numLayers(2).hiddenSize(32).numAttentionHeads(4)
                .seqLength(maxPositions).maxPositionEmbeddings(maxPositions).vocabSize(vocabSize)
                .makeVocabSizeDivisibleBy(16).initMethodStd(0.3f).build();
        model = new GPTModel(c, backend, seed);
    }

    /** Logits of every position of one sequence by a full forward (no cache): [len, paddedVocab]. */
    public float[] fullLogits(int[] tokens) {
        return model.forwardLogits(tokens, null, 1, tokens.length);
    }

    /** log sum exp of the (padded) logits of position {@code row}: the log-softmax is {@code logits - logSumExp}, in float64. */
    public double logSumExp(float[] logits, int row) {
        int v = model.config().paddedVocabSize();
        return Sampler.logSumExp(logits, row * v, v);
    }

    /** The greedy continuation by repeated full forwards: argmax over the real vocabulary at the last position. */
    public int[] greedyReference(int[] prompt, int length, int stopToken) {
        int v = model.config().paddedVocabSize();
        int[] seq = java.util.Arrays.copyOf(prompt, prompt.length);
        while (seq.length < length) {
            float[] logits = fullLogits(seq);
            int best = Sampler.argmax(logits, (seq.length - 1) * v, model.config().vocabSize());
            seq = java.util.Arrays.copyOf(seq, seq.length + 1);
            seq[seq.length - 1] = best;
            if (best == stopToken) {
                break;
            }
        }
        return seq;
    }

    /** log_softmax(full forward)[j][tokens[j + 1]] for every j. */
    public double[] logprobReference(int[] tokens) {
        int v = model.config().paddedVocabSize();
        float[] logits = fullLogits(tokens);
        double[] out = new double[tokens.length - 1];
        for (int j = 0; j + 1 < tokens.length; j++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int i = 0; i < v; i++) {
                max = Math.max(max, logits[j * v + i]);
            }
            double sum = 0;
            for (int i = 0; i < v; i++) {
                sum += Math.exp(logits[j * v + i] - max);
            }
            out[j] = logits[j * v + tokens[j + 1]] - max - Math.log(sum);
        }
        return out;
    }

    @Override
    public void close() {
        model.close();
        backend.close();
    }
}
