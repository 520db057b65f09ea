package org.megatronj.model.generate;

import org.megatronj.model.GPTModel;
import org.megatronj.model.TransformerConfig;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Autoregressive generation with a KV cache, as Megatron's text generation: a batch of prompts
 * of any lengths runs together; the shortest prompt is encoded in one chunk, then every step
 * feeds one position of every sequence, taking the prompt's own token while a longer prompt is
 * still being read and the sampled token afterwards. A sequence ends at a stop token, after
 * {@code maxNewTokens}, or at {@code --max-position-embeddings}.
 */
public final class TextGenerator {
    private final GPTModel model;
    private final TransformerConfig config;

    public TextGenerator(GPTModel model) {
        this.model = model;
        this.config = model.config();
    }

    /** Continues one prompt. */
    public GenerationResult generate(int[] prompt, GenerationParams params) {
        return generate(new int[][] {prompt}, params)[0];
    }

    /** Continues each prompt; results in the same order. */
    public GenerationResult[] generate(int[][] prompts, GenerationParams params) {
        int b = prompts.length;
        int maxPositions = config.maxPositionEmbeddings();
        int minLength = Integer.MAX_VALUE;
        int maxLength = 0;
        for (int i = 0; i < b; i++) {
            int[] prompt = prompts[i];
            if (prompt == null || prompt.length == 0) {
                throw new IllegalArgumentException("prompt " + i + " is empty; generation needs at least one token");
            }
            if (prompt.length >= maxPositions) {
                throw new IllegalArgumentException("prompt " + i + " has " + prompt.length + " tokens; at most "
                        + (maxPositions - 1) + " leave room to generate within --max-position-embeddings " + maxPositions);
            }
            for (int t = 0; t < prompt.length; t++) {
                if (prompt[t] < 0 || prompt[t] >= config.vocabSize()) {
                    throw new IllegalArgumentException("prompt " + i + ", position " + t + ": token id " + prompt[t]
                            + " is outside the vocabulary [0, " + config.vocabSize() + ")");
                }
            }
            minLength = Math.min(minLength, prompt.length);
            maxLength = Math.max(maxLength, prompt.length);
        }
        List<List<Integer>> tokens = new ArrayList<>();
        List<List<Float>> logProbs = new ArrayList<>();
        GenerationResult.StopReason[] reasons = new GenerationResult.StopReason[b];
        SplittableRandom[] randoms = new SplittableRandom[b];
        for (int i = 0; i < b; i++) {
            tokens.add(new ArrayList<>());
            logProbs.add(new ArrayList<>());
            randoms[i] = new SplittableRandom(params.seed() * 0x9E3779B97F4A7C15L + i);
            if (params.maxNewTokens() == 0) {
                reasons[i] = GenerationResult.StopReason.MAX_TOKENS;
            }
        }
        if (params.maxNewTokens() > 0) {
            int cacheLength = Math.min(maxPositions, maxLength + params.maxNewTokens());
            try (KvCache cache = new KvCache(model.backend(), config, cacheLength, b, model.precision().computeDtype());
                 IncrementalDecoder decoder = new IncrementalDecoder(model, cache, minLength)) {
                run(prompts, params, minLength, decoder, tokens, logProbs, reasons, randoms);
            }
        }
        GenerationResult[] results = new GenerationResult[b];
        for (int i = 0; i < b; i++) {
            int[] out = tokens.get(i).stream().mapToInt(Integer::intValue).toArray();
            float[] lp = new float[out.length];
            for (int k = 0; k < lp.length; k++) {
                lp[k] = logProbs.get(i).get(k);
            }
            results[i] = new GenerationResult(out, lp, reasons[i]);
        }
        return results;
    }

    private void run(int[][] prompts, GenerationParams params, int minLength, IncrementalDecoder decoder,
                     List<List<Integer>> tokens, List<List<Float>> logProbs,
                     GenerationResult.StopReason[] reasons, SplittableRandom[] randoms) {
        int b = prompts.length;
        int vocab = config.paddedVocabSize();
        Sampler sampler = new Sampler(params, config.vocabSize(), vocab);
        int[] chunk = new int[minLength * b];                                  // [minLength, b]
        for (int t = 0; t < minLength; t++) {
            for (int i = 0; i < b; i++) {
                chunk[t * b + i] = prompts[i][t];
            }
        }
        float[] logits = decoder.forward(chunk, minLength, 0);                 // predicts position minLength
        for (int pos = minLength; ; pos++) {
            int[] step = new int[b];
            boolean anyRunning = false;
            for (int i = 0; i < b; i++) {
                if (reasons[i] != null) {
                    continue;                                                   // finished: feeds token 0, ignored
                }
                if (pos < prompts[i].length) {
                    step[i] = prompts[i][pos];                                  // still reading a longer prompt
                    anyRunning = true;
                    continue;
                }
                int next = sampler.next(logits, i * vocab, randoms[i]);
                tokens.get(i).add(next);
                logProbs.get(i).add((float) sampler.logProb(logits, i * vocab, next));
                step[i] = next;
                if (params.isStop(next)) {
                    reasons[i] = GenerationResult.StopReason.STOP_TOKEN;
                } else if (tokens.get(i).size() == params.maxNewTokens()) {
                    reasons[i] = GenerationResult.StopReason.MAX_TOKENS;
                } else if (pos + 1 >= config.maxPositionEmbeddings()) {
                    reasons[i] = GenerationResult.StopReason.MAX_SEQUENCE_LENGTH;
                } else {
                    anyRunning = true;
                }
            }
            if (!anyRunning) {
                return;
            }
            logits = decoder.forward(step, 1, pos);                             // predicts position pos + 1
        }
    }
}
