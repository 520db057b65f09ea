package org.megatronj.cli.evaluate;

import org.megatronj.model.GPTModel;
import org.megatronj.model.generate.Sampler;
import org.megatronj.model.LossResult;
import org.megatronj.model.MicroBatch;

import java.util.List;

/**
 * Megatron's zero-shot GPT evaluation ({@code tasks/zeroshot_gpt/evaluate.py}) on a {@link GPTModel}:
 * the summed cross-entropy of a corpus over {@link LmWindows} (WikiText-103), and the cloze
 * accuracy of LAMBADA (a sample counts when the argmax prediction matches every token of its last
 * word). Batches of {@code microBatch} rows; the last batch is filled with masked-out rows so the
 * model keeps one activation plan.
 */
public final class ZeroShotEvaluator {
    /**
     * Megatron's figures: avg loss = summed loss / (tokenized - 1), ppl = exp(min(20, avg loss)), token
     * ratio = (tokenized - 1) / (original - 1), adjusted (word-level) ppl = exp(min(20, avg loss · ratio)).
     */
    public record Perplexity(double lossSum, long tokenizedTokens, long originalTokens) {
        public double averageLoss() {
            return lossSum / (tokenizedTokens - 1);
        }

        public double perplexity() {
            return Math.exp(Math.min(20, averageLoss()));
        }

        public double tokenRatio() {
            return (tokenizedTokens - 1) / (double) (originalTokens - 1);
        }

        public double adjustedPerplexity() {
            return Math.exp(Math.min(20, averageLoss() * tokenRatio()));
        }
    }

    public record Accuracy(long correct, long total, long truncated) {
        public double accuracy() {
            return correct / (double) total;
        }
    }

    private ZeroShotEvaluator() {
    }

    public static Perplexity perplexity(GPTModel model, int[] tokens, long originalTokens, LmWindows windows,
                                        int microBatch, EvaluationProgress progress) {
        if (tokens.length < 2) {
            throw new IllegalArgumentException("the evaluation text has " + tokens.length + " tokens; at least 2 are needed");
        }
        if (originalTokens < 2) {
            throw new IllegalArgumentException("the evaluation text has " + originalTokens + " words; at least 2 are needed");
        }
        int s = windows.seqLength();
        int[] input = new int[microBatch * s];
        int[] target = new int[microBatch * s];
        float[] mask = new float[microBatch * s];
        int[] rowIn = new int[s];
        int[] rowTarget = new int[s];
        float[] rowMask = new float[s];
        double lossSum = 0;
        for (int first = 0; first < windows.size(); first += microBatch) {
            java.util.Arrays.fill(mask, 0f);
            java.util.Arrays.fill(input, 0);
            java.util.Arrays.fill(target, 0);
            int rows = Math.min(microBatch, windows.size() - first);
            for (int r = 0; r < rows; r++) {
                windows.window(first + r, rowIn, rowTarget, rowMask);
                System.arraycopy(rowIn, 0, input, r * s, s);
                System.arraycopy(rowTarget, 0, target, r * s, s);
                System.arraycopy(rowMask, 0, mask, r * s, s);
            }
            LossResult loss = model.forwardLoss(new MicroBatch(microBatch, s, input, target, mask, null));
            lossSum += loss.lossSum();
            progress.update(first + rows);
        }
        return new Perplexity(lossSum, tokens.length, originalTokens);
    }

    public static Accuracy lambada(GPTModel model, List<LambadaSamples.Sample> samples, int seqLength, int pad,
                                   int microBatch, EvaluationProgress progress) {
        int longest = 0;
        for (LambadaSamples.Sample sample : samples) {
            longest = Math.max(longest, sample.context().length + sample.target().length - 1);
        }
        int s = Math.min(seqLength, longest);   // causal: padding after a sample cannot change its predictions
        int vocab = model.config().paddedVocabSize();
        long correct = 0;
        long truncated = 0;
        for (int first = 0; first < samples.size(); first += microBatch) {
            int rows = Math.min(microBatch, samples.size() - first);
            int[] input = new int[microBatch * s];
            java.util.Arrays.fill(input, pad);
            int[][] targets = new int[rows][];
            int[] targetStart = new int[rows];
            for (int r = 0; r < rows; r++) {
                LambadaSamples.Sample sample = samples.get(first + r);
                int[] all = concat(sample.context(), sample.target());
                int drop = Math.max(0, all.length - (s + 1));   // keep the last s + 1 tokens: context cut on the left
                if (drop > 0) {
                    truncated++;
                }
                if (sample.target().length > s) {
                    throw new IllegalArgumentException("sample " + (first + r) + ": its last word has "
                            + sample.target().length + " tokens, more than --seq-length " + seqLength);
                }
                int n = all.length - drop;
                System.arraycopy(all, drop, input, r * s, n - 1);
                targets[r] = sample.target();
                targetStart[r] = n - 1 - sample.target().length;                 // input position predicting target[0]
            }
            float[] logits = model.forwardLogits(input, null, microBatch, s);    // [b, s, V]
            for (int r = 0; r < rows; r++) {
                boolean all = true;
                for (int k = 0; k < targets[r].length && all; k++) {
                    int offset = ((r * s) + targetStart[r] + k) * vocab;
                    all = Sampler.argmax(logits, offset, vocab) == targets[r][k];
                }
                if (all) {
                    correct++;
                }
            }
            progress.update(first + rows);
        }
        return new Accuracy(correct, samples.size(), truncated);
    }

    private static int[] concat(int[] a, int[] b) {
        int[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
