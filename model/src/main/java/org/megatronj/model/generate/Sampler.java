package org.megatronj.model.generate;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Picks the next token from one row of logits, as Megatron's {@code sample}: greedy argmax at
 * temperature 0 or top-k 1; otherwise divide by the temperature, keep every token at least as
 * likely as the k-th most likely (top-k, ties kept as Megatron's filter does), keep the top-p
 * nucleus (the most likely tokens until the probability of the ones before reaches p; the first
 * always stays), renormalise, draw. Megatron refuses top-k and top-p together (the server does
 * too); here both may be set and top-p then applies to the tokens top-k kept. Only the real
 * vocabulary {@code [0, vocabSize)} is eligible; the padded columns never are (Megatron clamps a
 * drawn padded id to the last real one). The text generator and the server share it.
 */
public final class Sampler {
    private final GenerationParams params;
    private final int vocabSize;
    private final int paddedVocabSize;

    Sampler(GenerationParams params, int vocabSize, int paddedVocabSize) {
        this.params = params;
        this.vocabSize = vocabSize;
        this.paddedVocabSize = paddedVocabSize;
    }

    /** The chosen token under this sampler's {@link GenerationParams}. */
    int next(float[] logits, int offset, SplittableRandom random) {
        return sample(logits, offset, vocabSize, params.temperature(), params.topK(), params.topP(), random);
    }

    /** Natural-log softmax probability of {@code token} over the whole padded row (as Megatron). */
    double logProb(float[] logits, int offset, int token) {
        return logProb(logits, offset, paddedVocabSize, token);
    }

    /**
     * One draw from {@code logits[offset, offset + vocabSize)}.
     *
     * @param temperature 0 = greedy
     * @param topK        0 = off, 1 = greedy
     * @param topP        outside (0, 1) = off
     */
    public static int sample(float[] logits, int offset, int vocabSize, double temperature, int topK, double topP,
                             SplittableRandom random) {
        if (temperature == 0 || topK == 1) {
            return argmax(logits, offset, vocabSize);
        }
        double[] p = new double[vocabSize];
        for (int i = 0; i < vocabSize; i++) {
            p[i] = logits[offset + i] / temperature;
        }
        boolean topKOn = topK > 1 && topK < vocabSize;
        boolean topPOn = topP > 0 && topP < 1;
        double kth = Double.NEGATIVE_INFINITY;
        if (topKOn) {
            double[] sorted = p.clone();
            Arrays.sort(sorted);
            kth = sorted[vocabSize - topK];
        }
        double max = Arrays.stream(p).max().orElseThrow();
        double sum = 0;
        for (int i = 0; i < vocabSize; i++) {
            p[i] = p[i] >= kth ? Math.exp(p[i] - max) : 0;
            sum += p[i];
        }
        if (topPOn) {
            // Remove tokens once the cumulative probability of the more likely ones exceeds p (the first always stays).
            double threshold = topP * sum;
            double cumulative = 0;
            for (int id : descendingOrder(p)) {
                if (p[id] == 0) {
                    continue;
                }
                if (cumulative > threshold) {
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

    /** Natural-log softmax probability of {@code token} over {@code logits[offset, offset + width)}. */
    public static double logProb(float[] logits, int offset, int width, int token) {
        return logits[offset + token] - logSumExp(logits, offset, width);
    }

    /** {@code log(sum(exp(logits[offset, offset + width))))}, stable. */
    public static double logSumExp(float[] logits, int offset, int width) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < width; i++) {
            max = Math.max(max, logits[offset + i]);
        }
        double sum = 0;
        for (int i = 0; i < width; i++) {
            sum += Math.exp(logits[offset + i] - max);
        }
        return max + Math.log(sum);
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

    /** The index of the largest of {@code logits[offset, offset + n)} (the first on ties). */
    public static int argmax(float[] logits, int offset, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) {
            if (logits[offset + i] > logits[offset + best]) {
                best = i;
            }
        }
        return best;
    }
}
