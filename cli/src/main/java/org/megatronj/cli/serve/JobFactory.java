package org.megatronj.cli.serve;

import org.megatronj.io.tokenizer.Tokenizer;
import org.megatronj.io.tokenizer.TokenizerException;
import org.megatronj.model.TransformerConfig;

import java.util.SplittableRandom;

/**
 * Turns a validated request into a {@link GenerationJob}: tokenises the prompts (eod first with
 * {@code add_BOS}, as Megatron), checks them against the model's context and the server's token
 * budget with Megatron's messages, and picks the seed.
 */
final class JobFactory {
    private final Tokenizer tokenizer;
    private final TransformerConfig model;
    private final ServerConfig server;
    private final SplittableRandom seeds;

    JobFactory(Tokenizer tokenizer, TransformerConfig model, ServerConfig server, long serverSeed) {
        this.tokenizer = tokenizer;
        this.model = model;
        this.server = server;
        this.seeds = new SplittableRandom(serverSeed);
    }

    GenerationJob create(GenerationRequest r) {
        int[][] prompts = new int[r.prompts().size()][];
        for (int i = 0; i < prompts.length; i++) {
            int[] ids = tokenize(tokenizer, r.prompts().get(i), i);
            if (r.addBos()) {
                int[] withBos = new int[ids.length + 1];
                withBos[0] = tokenizer.eod();
                System.arraycopy(ids, 0, withBos, 1, ids.length);
                ids = withBos;
            }
            if (ids.length == 0) {
                throw new BadRequestException("prompt " + i + " tokenizes to no tokens; set add_BOS=true to start it"
                        + " with the end-of-document token");
            }
            prompts[i] = ids;
        }
        return create(r, prompts);
    }

    /** A job whose prompts are already token ids (OpenAI's token-id prompts): they are fed exactly as given. */
    GenerationJob create(GenerationRequest r, int[][] prompts) {
        GenerationJob job = new GenerationJob(r, prompts, r.randomSeed() >= 0 ? r.randomSeed() : nextSeed());
        int maxPositions = model.maxPositionEmbeddings();
        if (r.isBeamSearch()) {
            if (job.maxPromptLength() >= Math.min(job.sequenceLength(), maxPositions)) {
                throw new BadRequestException("context length + tokens_to_generate too large");
            }
            if (r.beamWidth() > server.maxBatchRows()) {
                throw new BadRequestException("beam_width " + r.beamWidth() + " is more than the server's batch limit of "
                        + server.maxBatchRows() + " sequences (--max-batch-size)");
            }
            return job;
        }
        if (r.tokensToGenerate() == 0 && job.maxPromptLength() > maxPositions) {
            throw new BadRequestException("Length of prompt + tokens_to_generate longer than allowed "
                    + job.maxPromptLength() + " > " + maxPositions);
        }
        if (job.sequenceLength() > maxPositions) {
            throw new BadRequestException("Length of prompt + tokens_to_generate longer than allowed");
        }
        if (job.tokenFootprint() > server.maxTokensToOom()) {
            throw new BadRequestException("Too many tokens.  " + job.tokenFootprint() + " is greater than "
                    + server.maxTokensToOom());
        }
        if (job.rows() > server.maxBatchRows()) {
            throw new BadRequestException(job.rows() + " prompts are more than the server's batch limit of "
                    + server.maxBatchRows() + " (--max-batch-size)");
        }
        if (r.topK() >= model.vocabSize()) {
            throw new BadRequestException("top_k " + r.topK() + " must be smaller than the vocabulary size "
                    + model.vocabSize());
        }
        return job;
    }

    /**
     * The ids of prompt {@code index}. Text the tokenizer cannot encode (a lone surrogate has no UTF-8, the null
     * tokenizer reads only integers) is the client's mistake: a {@link BadRequestException}, not a server failure.
     */
    static int[] tokenize(Tokenizer tokenizer, String prompt, int index) {
        try {
            return tokenizer.tokenize(prompt);
        } catch (TokenizerException e) {
            throw new BadRequestException("prompt " + index + " cannot be tokenized: " + e.getMessage());
        }
    }

    private synchronized long nextSeed() {
        return seeds.nextLong() & Long.MAX_VALUE;
    }
}
