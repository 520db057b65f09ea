package org.megatronj.model.generate;

/**
 * How to continue a prompt ({@code megatron generate} / the server's request fields).
 *
 * @param maxNewTokens tokens to generate at most (Megatron's {@code tokens_to_generate})
 * @param temperature  0 = greedy (argmax); otherwise logits are divided by it before sampling
 * @param topK         keep the k most likely tokens (0 = all)
 * @param topP         keep the smallest set of most likely tokens whose probability reaches p (1 = all)
 * @param seed         seeds the sampler; a sequence's draws depend only on (seed, its index in the batch)
 * @param stopTokens   generation of a sequence ends after it emits one of these (e.g. the tokenizer's eod)
 */
public record GenerationParams(int maxNewTokens, float temperature, int topK, float topP, long seed, int[] stopTokens) {

    public GenerationParams {
        if (maxNewTokens < 0) {
            throw new IllegalArgumentException("tokens to generate must be >= 0, got " + maxNewTokens);
        }
        if (!(temperature >= 0) || Float.isInfinite(temperature)) {
            throw new IllegalArgumentException("temperature must be >= 0 (0 = greedy), got " + temperature);
        }
        if (topK < 0) {
            throw new IllegalArgumentException("top-k must be >= 0 (0 = off), got " + topK);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("top-p must be in (0, 1] (1 = off), got " + topP);
        }
        stopTokens = stopTokens == null ? new int[0] : stopTokens.clone();
    }

    /** Greedy decoding of up to {@code maxNewTokens} tokens, stopping at any of {@code stopTokens}. */
    public static GenerationParams greedy(int maxNewTokens, int... stopTokens) {
        return new GenerationParams(maxNewTokens, 0f, 0, 1f, 0, stopTokens);
    }

    /** Sampling at a temperature with top-k and top-p filters. */
    public static GenerationParams sampling(int maxNewTokens, float temperature, int topK, float topP, long seed,
                                            int... stopTokens) {
        return new GenerationParams(maxNewTokens, temperature, topK, topP, seed, stopTokens);
    }

    boolean isStop(int token) {
        for (int t : stopTokens) {
            if (t == token) {
                return true;
            }
        }
        return false;
    }
}
