package org.megatronj.cli.serve;

import org.megatronj.model.GPTModel;
import org.megatronj.model.TransformerConfig;
import org.megatronj.model.generate.IncrementalDecoder;
import org.megatronj.model.generate.KvCache;
import org.megatronj.model.generate.Sampler;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Megatron's {@code generate_tokens_probs_and_return_on_first_stage} (and, for
 * {@code tokens_to_generate == 0}, {@code score_and_return_on_first_stage}) over a KV cache, for
 * several jobs at once. Every sequence of a job is padded to the job's longest prompt plus
 * {@code tokens_to_generate}; the batch is encoded up to its shortest prompt, then advances one
 * position per step, feeding a longer prompt's own tokens until it starts generating. A sequence ends
 * at its stop token (its length then includes it) or at its job's padded length. Each row keeps
 * its own job's settings, random stream ({@code seed}, row) and {@code top_p} decay clock, so a
 * job gets the same tokens whether it runs alone or batched with others.
 */
public final class GenerationEngine {
    /** Prompt positions encoded per forward call: bounds the activation buffers of long prompts. */
    static final int PREFILL_CHUNK = 64;
    /** Floats of prompt logits held at once when log-probabilities are asked for (128 MiB). */
    static final long LOGITS_BUDGET = 32L << 20;

    private final GPTModel model;
    private final TransformerConfig config;
    private final SpecialTokens special;

    public GenerationEngine(GPTModel model, SpecialTokens special) {
        this.model = model;
        this.config = model.config();
        this.special = special;
    }

    /** One sequence being generated. */
    private static final class Row {
        final JobState job;
        final int[] tokens;          // [sequenceLength]: prompt, then generated tokens
        final int promptLength;
        final int target;            // the length at which it stops without a stop token
        final float[] logprobs;      // [target - 1] or null
        final TopLogprobs[] top;     // [target - 1], when the job asks for top log-probabilities; else null
        final SplittableRandom random;
        final long[] fixedAt;        // [sequenceLength]: System.nanoTime() when the step that fixed each position ended
        int length = -1;             // final length, once finished

        Row(JobState job, int[] prompt, int target, int row) {
            this.job = job;
            this.tokens = new int[Math.max(target, prompt.length)];
            System.arraycopy(prompt, 0, tokens, 0, prompt.length);
            this.promptLength = prompt.length;
            this.target = target;
            this.logprobs = job.job.request().logprobs() ? new float[Math.max(target - 1, 0)] : null;
            this.top = logprobs != null && job.job.request().topLogprobs() > 0 ? new TopLogprobs[logprobs.length] : null;
            this.random = new SplittableRandom(job.job.seed() * 0x9E3779B97F4A7C15L + row);
            this.fixedAt = new long[tokens.length];
        }

        /**
         * Seconds each generated token took, Megatron's {@code tpot}: from the previous generated token, the first from
         * {@code start} (so it holds the prefill and the steps that read the rest of a longer prompt).
         */
        double[] tokenSeconds(long start) {
            double[] seconds = new double[Math.max(length - promptLength, 0)];
            long previous = start;
            for (int i = 0; i < seconds.length; i++) {
                long at = fixedAt[promptLength + i];
                seconds[i] = (at - previous) / 1e9;
                previous = at;
            }
            return seconds;
        }

        boolean finished() {
            return length >= 0;
        }

        /** The log-probability of tokens[pos + 1] (and the top alternatives, if asked) from the logits of pos. */
        void record(int pos, float[] logits, int offset, int vocabSize, int paddedVocab) {
            logprobs[pos] = (float) Sampler.logProb(logits, offset, paddedVocab, tokens[pos + 1]);
            if (top != null) {
                top[pos] = TopLogprobs.of(logits, offset, vocabSize, paddedVocab, job.job.request().topLogprobs());
            }
        }
    }

    /** A job's mutable state: its top_p, which decays once per step from its own shortest prompt on. */
    private static final class JobState {
        final GenerationJob job;
        final int minPrompt;
        double topP;

        JobState(GenerationJob job) {
            this.job = job;
            this.minPrompt = job.minPromptLength();
            this.topP = job.request().topP();
        }

        void decay(int step) {
            GenerationRequest r = job.request();
            if (step >= minPrompt && topP > 0.0 && r.topPDecay() > 0.0) {
                topP *= r.topPDecay();
                if (r.topPBound() > 0.0) {
                    topP = Math.max(topP, r.topPBound());
                }
            }
        }
    }

    public List<GenerationOutput> generate(List<GenerationJob> jobs) {
        List<JobState> states = new ArrayList<>();
        List<Row> rows = new ArrayList<>();
        for (GenerationJob job : jobs) {
            if (job.request().isBeamSearch()) {
                throw new IllegalArgumentException("beam search jobs run in BeamSearch, not in the sampling engine");
            }
            JobState state = new JobState(job);
            states.add(state);
            int target = job.request().tokensToGenerate() == 0 ? -1 : job.sequenceLength();
            for (int i = 0; i < job.prompts().length; i++) {
                int[] prompt = job.prompts()[i];
                rows.add(new Row(state, prompt, target < 0 ? prompt.length : target, i));   // scoring: the prompt only
            }
        }
        long start = System.nanoTime();
        run(rows, states);
        List<GenerationOutput> outputs = new ArrayList<>();
        int next = 0;
        for (GenerationJob job : jobs) {
            int n = job.prompts().length;
            int[][] tokens = new int[n][];
            float[][] logprobs = job.request().logprobs() ? new float[n][] : null;
            TopLogprobs[][] top = logprobs != null && job.request().topLogprobs() > 0 ? new TopLogprobs[n][] : null;
            double[][] seconds = new double[n][];
            for (int i = 0; i < n; i++) {
                Row row = rows.get(next++);
                tokens[i] = java.util.Arrays.copyOf(row.tokens, row.length);
                seconds[i] = row.tokenSeconds(start);
                if (logprobs != null) {
                    logprobs[i] = java.util.Arrays.copyOf(row.logprobs, Math.max(row.length - 1, 0));
                }
                if (top != null) {
                    top[i] = java.util.Arrays.copyOf(row.top, Math.max(row.length - 1, 0));
                }
            }
            outputs.add(new GenerationOutput(tokens, logprobs, null, top, seconds));
        }
        return outputs;
    }

    private void run(List<Row> rows, List<JobState> states) {
        int b = rows.size();
        int vocab = config.paddedVocabSize();
        int minPrompt = Integer.MAX_VALUE;
        int maxLength = 0;
        boolean anyLogprobs = false;
        for (Row r : rows) {
            minPrompt = Math.min(minPrompt, r.promptLength);
            maxLength = Math.max(maxLength, r.tokens.length);
            anyLogprobs |= r.logprobs != null;
        }
        for (Row r : rows) {
            if (r.target <= minPrompt) {
                r.length = r.target;   // scoring a prompt no longer than the prefill: done once it is encoded
            }
        }
        int chunk = Math.min(minPrompt, PREFILL_CHUNK);
        if (anyLogprobs) {
            chunk = (int) Math.max(1, Math.min(chunk, LOGITS_BUDGET / ((long) b * vocab)));
        }
        try (KvCache cache = new KvCache(model.backend(), config, maxLength, b, model.precision().computeDtype());
             IncrementalDecoder decoder = new IncrementalDecoder(model, cache, chunk, anyLogprobs)) {
            float[] last = prefill(decoder, rows, minPrompt, anyLogprobs);   // [b, V] logits of position minPrompt - 1
            for (int c = minPrompt; ; c++) {
                boolean running = false;
                for (int i = 0; i < b; i++) {
                    Row row = rows.get(i);
                    if (!row.finished()) {
                        step(row, c, last, i * vocab, vocab);
                        running |= !row.finished();
                    }
                }
                long now = System.nanoTime();
                for (Row row : rows) {
                    if (c < row.fixedAt.length) {
                        row.fixedAt[c] = now;
                    }
                }
                for (JobState s : states) {
                    s.decay(c);
                }
                if (!running) {
                    return;
                }
                int[] feed = new int[b];
                for (int i = 0; i < b; i++) {
                    Row row = rows.get(i);
                    feed[i] = row.finished() ? Math.max(special.eod(), 0) : row.tokens[c];
                }
                last = decoder.forward(feed, 1, c, false);
            }
        }
    }

    /** Encodes positions [0, minPrompt) in chunks; records the prompt log-probs inside it; returns the last logits. */
    private float[] prefill(IncrementalDecoder decoder, List<Row> rows, int minPrompt, boolean anyLogprobs) {
        int b = rows.size();
        int vocab = config.paddedVocabSize();
        float[] last = null;
        for (int start = 0; start < minPrompt; start += decoder.maxChunk()) {
            int t = Math.min(decoder.maxChunk(), minPrompt - start);
            int[] chunk = new int[t * b];                                          // [t, b]
            for (int p = 0; p < t; p++) {
                for (int i = 0; i < b; i++) {
                    chunk[p * b + i] = rows.get(i).tokens[start + p];
                }
            }
            float[] logits = decoder.forward(chunk, t, start, anyLogprobs);        // [t, b, V] or [b, V]
            if (!anyLogprobs) {
                last = logits;
                continue;
            }
            for (int p = 0; p < t; p++) {
                int pos = start + p;
                if (pos + 1 >= minPrompt) {
                    continue;                                                      // the step loop handles the last one
                }
                for (int i = 0; i < b; i++) {
                    Row row = rows.get(i);
                    if (row.logprobs != null && pos < row.logprobs.length) {
                        row.record(pos, logits, (p * b + i) * vocab, config.vocabSize(), vocab);
                    }
                }
            }
            last = java.util.Arrays.copyOfRange(logits, (t - 1) * b * vocab, t * b * vocab);
        }
        return last;
    }

    /** Position c of one row from the logits of position c - 1: the prompt's token or a sampled one, then stop rules. */
    private void step(Row row, int c, float[] logits, int offset, int vocab) {
        GenerationRequest r = row.job.job.request();
        if (r.preventNewlineAfterColon() && r.tokensToGenerate() > 0 && special.colon() >= 0 && special.newline() >= 0
                && row.tokens[c - 1] == special.colon()) {
            logits[offset + special.newline()] = -1e10f;                       // Megatron: no "\n" right after ":"
        }
        boolean started = c >= row.promptLength;
        if (started) {
            row.tokens[c] = Sampler.sample(logits, offset, config.vocabSize(), r.temperature(), r.topK(),
                    row.job.topP, row.random);
        }
        if (row.logprobs != null) {
            row.record(c - 1, logits, offset, config.vocabSize(), vocab);
        }
        if (started && isStop(r, row.tokens[c], row.tokens[c - 1])) {
            row.length = c + 1;
        } else if (c + 1 >= row.target) {
            row.length = row.target;
        }
    }

    private boolean isStop(GenerationRequest r, int token, int previous) {
        if (r.stopOnDoubleEol()) {
            return token == special.doubleNewline() && token >= 0
                    || token == special.newline() && token >= 0 && previous == special.newline();
        }
        if (r.stopOnEol()) {
            return token >= 0 && (token == special.doubleNewline() || token == special.newline());
        }
        return token == special.eod();
    }
}
