package org.megatronj.cli.serve;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Megatron's {@code sample()} for one row of logits: {@code top_k == 1} is greedy argmax (the
 * temperature is then irrelevant); otherwise the logits are divided by the temperature, filtered
 * by top-k (keep every logit at least the k-th largest) or by top-p (keep the most likely tokens
 * until the probability of the ones before reaches p; the first is always kept), renormalised, and
 * one token is drawn. Only the real vocabulary {@code [0, vocabSize)} is eligible: Megatron clamps
 * a padded id to the last real one, we never draw one.
 */
final class TokenSampler {
    private TokenSampler() {
    }

    static int sample(float[] logits, int offset, int vocabSize, int topK, double topP, double temperature,
                      SplittableRandom random) {
        if (topK == 1) {
            return argmax(logits, offset, vocabSize);
        }
        double[] scaled = new double[vocabSize];
        for (int i = 0; i < vocabSize; i++) {
            scaled[i] = logits[offset + i] / temperature;
        }
        if (topK > 1 && topK < vocabSize) {
            double[] sorted = scaled.clone();
            Arrays.sort(sorted);
            double kth = sorted[vocabSize - topK];
            for (int i = 0; i < vocabSize; i++) {
                if (scaled[i] < kth) {
                    scaled[i] = Double.NEGATIVE_INFINITY;
                }
            }
        } else if (topP > 0.0 && topP < 1.0) {
            keepNucleus(scaled, topP);
        }
        double max = Double.NEGATIVE_INFINITY;
        for (double v : scaled) {
            max = Math.max(max, v);
        }
        double sum = 0;
        double[] p = new double[vocabSize];
        for (int i = 0; i < vocabSize; i++) {
            p[i] = Math.exp(scaled[i] - max);
            sum += p[i];
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

    /** Sets to -inf every logit outside Megatron's top-p nucleus (the shift by one keeps the token that crosses p). */
    private static void keepNucleus(double[] scaled, double topP) {
        int n = scaled.length;
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Double.compare(scaled[b], scaled[a]));
        double max = scaled[order[0]];
        double total = 0;
        for (double v : scaled) {
            total += Math.exp(v - max);
        }
        double cumulative = 0;
        boolean[] drop = new boolean[n];
        for (int r = 0; r < n; r++) {
            int id = order[r];
            drop[id] = r > 0 && cumulative > topP;    // the cumulative probability of the tokens ranked before r
            cumulative += Math.exp(scaled[id] - max) / total;
        }
        for (int i = 0; i < n; i++) {
            if (drop[i]) {
                scaled[i] = Double.NEGATIVE_INFINITY;
            }
        }
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

    /** log_softmax over the whole row (padded columns included, as Megatron) at {@code token}. */
    static double logProb(float[] logits, int offset, int width, int token) {
        return logits[offset + token] - logSumExp(logits, offset, width);
    }

    static double logSumExp(float[] logits, int offset, int width) {
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
}
