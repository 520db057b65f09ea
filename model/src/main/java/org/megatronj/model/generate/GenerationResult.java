package org.megatronj.model.generate;

/**
 * The continuation of one prompt.
 *
 * @param tokens   the generated tokens (the prompt excluded; a final stop token included)
 * @param logProbs natural-log probability the model gave each generated token: log_softmax of the raw logits over
 *                 the padded vocabulary, before temperature and filters (Megatron's output log-probs)
 * @param reason   why generation ended
 */
public record GenerationResult(int[] tokens, float[] logProbs, StopReason reason) {

    public enum StopReason {
        /** A stop token was generated. */
        STOP_TOKEN,
        /** {@code maxNewTokens} were generated. */
        MAX_TOKENS,
        /** The sequence reached {@code --max-position-embeddings}. */
        MAX_SEQUENCE_LENGTH
    }
}
