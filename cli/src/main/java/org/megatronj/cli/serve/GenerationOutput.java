package org.megatronj.cli.serve;

/**
 * What the engine returns for one job, before detokenisation.
 *
 * @param tokens   per sequence: prompt and generated tokens, cut at Megatron's length (a final stop token included)
 * @param logprobs per sequence, when requested: log-probability of tokens[1..] (length tokens.length - 1); else null
 * @param scores   beam search only: each hypothesis's score (sum of log-probs / length^penalty); else null
 * @param top      per sequence, when top log-probabilities were requested: the alternatives at tokens[1..]; else null
 * @param tokenSeconds per sequence, the sampling engine only: each generated token's seconds (Megatron's {@code tpot});
 *                 else null
 */
public record GenerationOutput(int[][] tokens, float[][] logprobs, double[] scores, TopLogprobs[][] top,
                               double[][] tokenSeconds) {

    public GenerationOutput(int[][] tokens, float[][] logprobs, double[] scores) {
        this(tokens, logprobs, scores, null, null);
    }
}
