package org.megatronj.cli.serve;

import org.megatronj.model.generate.Sampler;

import java.util.Arrays;

/**
 * The {@code n} most likely tokens at one position and their log-probabilities, most likely first: OpenAI's
 * {@code top_logprobs} entry. The log-probabilities are normalised over the padded vocabulary, as the
 * {@code token_logprobs} next to them, but only real vocabulary ids are candidates.
 */
record TopLogprobs(int[] tokens, float[] logprobs) {

    /** Selects the top {@code n} of {@code logits[offset, offset + vocabSize)} with one pass (n is small). */
    static TopLogprobs of(float[] logits, int offset, int vocabSize, int paddedVocab, int n) {
        double logSumExp = Sampler.logSumExp(logits, offset, paddedVocab);
        int k = Math.min(n, vocabSize);
        int[] tokens = new int[k];
        float[] values = new float[k];
        Arrays.fill(values, Float.NEGATIVE_INFINITY);
        int filled = 0;
        for (int i = 0; i < vocabSize; i++) {
            float v = logits[offset + i];
            if (filled == k && v <= values[k - 1]) {
                continue;                                   // ties keep the lower id, as argmax does
            }
            int at = Math.min(filled, k - 1);
            while (at > 0 && values[at - 1] < v) {
                values[at] = values[at - 1];
                tokens[at] = tokens[at - 1];
                at--;
            }
            values[at] = v;
            tokens[at] = i;
            filled = Math.min(filled + 1, k);
        }
        for (int j = 0; j < k; j++) {
            values[j] = (float) (values[j] - logSumExp);
        }
        return new TopLogprobs(tokens, values);
    }
}
