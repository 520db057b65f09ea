package org.megatronj.cli.serve;

import java.util.List;

/**
 * One {@code PUT /api} request after validation, with Megatron's field names and defaults
 * ({@code tools/run_text_generation_server.py}).
 *
 * @param prompts                  the texts to continue (at most the server's prompt limit)
 * @param tokensToGenerate         tokens to add after the longest prompt (default 64); 0 = only score the prompts
 * @param logprobs                 return the log-probability of every token after the first
 * @param temperature              in (0, 100]; logits are divided by it before filtering
 * @param topK                     0 = off, 1 = greedy, else sample among the k most likely
 * @param topP                     0 = off, else nucleus sampling with mass p
 * @param topPDecay                each step multiplies top_p by this (0 = off)
 * @param topPBound                top_p never decays below this (0 = off)
 * @param addBos                   prepend the end-of-document token to every prompt
 * @param stopOnEol                a sequence ends at its first generated newline
 * @param stopOnDoubleEol          a sequence ends at its first generated blank line
 * @param preventNewlineAfterColon a newline can never follow a colon
 * @param randomSeed               -1 = continue the server's random stream, else a fixed seed for this request
 * @param noLog                    do not log the request on the server's stderr
 * @param beamWidth                null = sampling; else beam search with this many beams (one prompt only)
 * @param stopToken                beam search: the token that ends a hypothesis (null = the tokenizer's eod)
 * @param lengthPenalty            beam search: a hypothesis scores sum(logprob) / length^penalty
 * @param topLogprobs              with {@code logprobs}: also this many most likely tokens at each position (0 = off)
 */
public record GenerationRequest(List<String> prompts, int tokensToGenerate, boolean logprobs, double temperature,
                                int topK, double topP, double topPDecay, double topPBound, boolean addBos,
                                boolean stopOnEol, boolean stopOnDoubleEol, boolean preventNewlineAfterColon,
                                long randomSeed, boolean noLog, Integer beamWidth, Integer stopToken,
                                double lengthPenalty, int topLogprobs) {

    public GenerationRequest {
        prompts = List.copyOf(prompts);
    }

    /** Without top log-probabilities (what {@code PUT /api} asks for). */
    public GenerationRequest(List<String> prompts, int tokensToGenerate, boolean logprobs, double temperature, int topK,
                             double topP, double topPDecay, double topPBound, boolean addBos, boolean stopOnEol,
                             boolean stopOnDoubleEol, boolean preventNewlineAfterColon, long randomSeed, boolean noLog,
                             Integer beamWidth, Integer stopToken, double lengthPenalty) {
        this(prompts, tokensToGenerate, logprobs, temperature, topK, topP, topPDecay, topPBound, addBos, stopOnEol,
                stopOnDoubleEol, preventNewlineAfterColon, randomSeed, noLog, beamWidth, stopToken, lengthPenalty, 0);
    }

    /** Megatron's defaults for everything but the prompts. */
    public static GenerationRequest of(List<String> prompts, int tokensToGenerate) {
        return new GenerationRequest(prompts, tokensToGenerate, false, 1.0, 0, 0.0, 0.0, 0.0, false, false, false,
                false, -1, false, null, null, 1.0);
    }

    public boolean isBeamSearch() {
        return beamWidth != null;
    }
}
