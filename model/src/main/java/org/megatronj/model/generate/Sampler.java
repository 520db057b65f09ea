package org.megatronj.model.generate;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Picks the next token from one row of logits, as Megatron's {@code sample}: greedy argmax at
 * temperature 0; otherwise divide by the temperature, keep the top k, keep the top-p nucleus
 * (the most likely tokens until their probability reaches p, at least one), renormalise, draw.
 * Only the real vocabulary {@code [0, vocabSize)} is eligible; the padded columns never are.
 */
final class Sampler {
    private final GenerationParams params;
    private final int vocabSize;
    private final int paddedVocabSize;

    Sampler(GenerationParams params, int vocabSize, int paddedVocabSize) {
        this.params = params;
        this.vocabSize = vocabSize;
        this.paddedVocabSize = paddedVocabSize;
    }

    /** The chosen token. */
    int next(float[] logits, int offset, SplittableRandom random) {
        if (params.temperature() == 0f || params.topK() == 1) {
            return argmax(logits, offset, vocabSize);
        }
        double[] p = new double[vocabSize];
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < vocabSize; i++) {
            p[i] = logits[offset + i] / (double) params.temperature();
            max = Math.max(max, p[i]);
        }
        int[] order = null;
        boolean[] keep = new boolean[vocabSize];
        Arrays.fill(keep, true);
        if (params.topK() > 0 && params.topK() < vocabSize || params.topP() < 1f) {
            order = descendingOrder(p);
        }
        if (params.topK() > 0 && params.topK() < vocabSize) {
            for (int r = params.topK(); r < vocabSize; r++) {
                keep[order[r]] = false;
            }
        }
        double sum = 0;
        for (int i = 0; i < vocabSize; i++) {
            p[i] = keep[i] ? Math.exp(p[i] - max) : 0;
            sum += p[i];
        }
        if (params.topP() < 1f) {
            // Remove tokens once the cumulative probability of the more likely ones exceeds p (the first always stays).
            double threshold = params.topP() * sum;
            double cumulative = 0;
            for (int r = 0; r < vocabSize; r++) {
                int id = order[r];
                if (!keep[id]) {
                    continue;
                }
                if (cumulative > threshold) {
                    keep[id] = false;
                    sum -= p[id];
                    p[id] = 0;
                } else {
                    cumulative += p[id];
                }
            }
        }
        double u = random.nextDouble() * sum;
        int last = -1;
        for (int i = 0; i < vocabSize; i++) {
            if (p[i] > 0) {
                last = i;
                u -= p[i];
                if (u < 0) {
                    return i;
                }
            }
        }
        return last;   // rounding left u a hair above 0: the last eligible token
    }

    /** Natural-log softmax probability of {@code token} over the whole logits row, padded columns included (as Megatron). */
    double logProb(float[] logits, int offset, int token) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < paddedVocabSize; i++) {
            max = Math.max(max, logits[offset + i]);
        }
        double sum = 0;
        for (int i = 0; i < paddedVocabSize; i++) {
            sum += Math.exp(logits[offset + i] - max);
        }
        return logits[offset + token] - max - Math.log(sum);
    }

    /** Indices by decreasing value (ties: lower index first), via one primitive sort of (value, index) keys. */
    static int[] descendingOrder(double[] values) {
        long[] keys = new long[values.length];
        for (int i = 0; i < values.length; i++) {
            int bits = Float.floatToIntBits((float) -values[i]);
            int sortable = bits ^ ((bits >> 31) & 0x7fffffff);          // orders like the float, as a signed int
            keys[i] = ((long) sortable << 32) | i;
        }
        Arrays.sort(keys);
        int[] order = new int[values.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = (int) keys[i];
        }
        return order;
    }

    static int argmax(float[] logits, int offset, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) {
            if (logits[offset + i] > logits[offset + best]) {
                best = i;
            }
        }
        return best;
    }
}
