package org.megatronj.cli.serve;

/**
 * A validated request turned into tokens, waiting in the {@link GenerationService} queue.
 *
 * @param request the request's settings
 * @param prompts the prompts' token ids (eod first when {@code add_BOS})
 * @param seed    the seed of this request's sampling (its {@code random_seed}, or drawn by the server)
 */
public record GenerationJob(GenerationRequest request, int[][] prompts, long seed) {

    int rows() {
        return request.isBeamSearch() ? request.beamWidth() : prompts.length;
    }

    int maxPromptLength() {
        int max = 0;
        for (int[] p : prompts) {
            max = Math.max(max, p.length);
        }
        return max;
    }

    int minPromptLength() {
        int min = Integer.MAX_VALUE;
        for (int[] p : prompts) {
            min = Math.min(min, p.length);
        }
        return min;
    }

    /** Megatron's padded sequence length: the longest prompt plus tokens_to_generate. */
    int sequenceLength() {
        return maxPromptLength() + request.tokensToGenerate();
    }

    /** Tokens the KV cache and logits hold for this job (Megatron's --max-tokens-to-oom measure). */
    long tokenFootprint() {
        return (long) rows() * sequenceLength();
    }
}
