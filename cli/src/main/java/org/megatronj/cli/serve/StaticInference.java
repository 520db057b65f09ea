package org.megatronj.cli.serve;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.megatronj.io.tokenizer.Tokenizer;
import org.megatronj.model.GPTModel;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Megatron's {@code examples/inference/advanced/gpt_static_inference.py}: every prompt is a request that
 * generates up to its {@code num_tokens_to_generate} tokens and ends before the end-of-document token (which
 * is not part of the result, as Megatron's static engine counts it), requests running together in batches of
 * {@code --inference-max-requests}. Each request is its own job in the sampling engine, so its result does
 * not depend on the batch it ran in (for sampling, each request has its own random stream).
 */
public final class StaticInference {

    /**
     * The sampling settings shared by every request, with Megatron's meanings.
     *
     * @param temperature        logits are divided by it (> 0)
     * @param topK               0 = off, 1 = greedy (Megatron's default)
     * @param topP               0 = off
     * @param returnLogProbs     the log-probability of every prompt token after the first and every generated one
     * @param skipPromptLogProbs with {@code returnLogProbs}: only the generated tokens'
     * @param topNLogprobs       each generated token's n most likely alternatives (0 = off)
     * @param maxRequests        requests generated together ({@code --inference-max-requests})
     * @param maxSequenceLength  a prompt plus its tokens to generate may not exceed it ({@code --inference-max-seq-length})
     * @param maxTokensToOom     a batch takes no more requests once requests x longest sequence would exceed it
     *                           ({@code --max-tokens-to-oom}); a request longer than that still runs, alone
     * @param seed               request i samples from the stream {@code seed + i}
     */
    public record Settings(double temperature, int topK, double topP, boolean returnLogProbs,
                           boolean skipPromptLogProbs, int topNLogprobs, int maxRequests, int maxSequenceLength,
                           long maxTokensToOom, long seed) {
        public Settings {
            if (!(temperature > 0 && temperature <= 100)) {
                throw new IllegalArgumentException("--temperature must be in (0, 100], got " + temperature);
            }
            if (topK < 0) {
                throw new IllegalArgumentException("--top_k must be >= 0 (0 = off, 1 = greedy), got " + topK);
            }
            if (!(topP >= 0 && topP <= 1)) {
                throw new IllegalArgumentException("--top_p must be in [0, 1] (0 = off), got " + topP);
            }
            if (topK > 0 && topP > 0) {
                throw new IllegalArgumentException("Cannot have top-p and top-k both greater than zero (--top_k "
                        + topK + ", --top_p " + topP + ")");
            }
            if (topNLogprobs < 0) {
                throw new IllegalArgumentException("--top-n-logprobs must be >= 0, got " + topNLogprobs);
            }
            if (maxRequests < 1 || maxSequenceLength < 1 || maxTokensToOom < 1) {
                throw new IllegalArgumentException("--inference-max-requests, --inference-max-seq-length and"
                        + " --max-tokens-to-oom must be >= 1");
            }
        }
    }

    /** One prompt and how many tokens to generate after it. */
    public record Request(String prompt, int tokensToGenerate) {
        public Request {
            if (tokensToGenerate < 0) {
                throw new IllegalArgumentException("tokens to generate must be >= 0, got " + tokensToGenerate);
            }
        }
    }

    /**
     * One request's result, Megatron's {@code InferenceRequest} fields.
     *
     * @param generatedTokens without the end-of-document token that ended it
     * @param tokenSeconds    Megatron's {@code tpot}: each generated token's seconds, the first with the prefill
     * @param logprobs        the prompt's (unless skipped) then the generated tokens' log-probabilities; null when not asked
     * @param topLogprobs     per generated token, its most likely alternatives' text and log-probability; null when not asked
     */
    public record Result(String prompt, int[] promptTokens, int[] generatedTokens, String generatedText,
                         double[] tokenSeconds, float[] logprobs, List<Map<String, Float>> topLogprobs) {
    }

    private final GPTModel model;
    private final Tokenizer tokenizer;
    private final Settings settings;
    private final GenerationEngine engine;

    public StaticInference(GPTModel model, Tokenizer tokenizer, Settings settings) {
        this.model = model;
        this.tokenizer = tokenizer;
        this.settings = settings;
        this.engine = new GenerationEngine(model, new SpecialTokens(tokenizer.eod(), -1, -1, -1));
    }

    /** Runs every request, {@code maxRequests} at a time, and returns the results in the requests' order. */
    public List<Result> run(List<Request> requests, ProgressListener progress) {
        List<GenerationJob> jobs = new ArrayList<>();
        for (int i = 0; i < requests.size(); i++) {
            jobs.add(job(requests.get(i), i));
        }
        List<Result> results = new ArrayList<>();
        for (int from = 0; from < jobs.size(); ) {
            int to = batchEnd(jobs, from);
            List<GenerationOutput> outputs = engine.generate(jobs.subList(from, to));
            for (int i = from; i < to; i++) {
                results.add(result(requests.get(i), jobs.get(i), outputs.get(i - from)));
            }
            progress.batchDone(to, jobs.size());
            from = to;
        }
        return results;
    }

    /** Told after each batch how many requests are done. */
    @FunctionalInterface
    public interface ProgressListener {
        void batchDone(int done, int total);
    }

    private GenerationJob job(Request request, int index) {
        int[] prompt = JobFactory.tokenize(tokenizer, request.prompt(), index);
        if (prompt.length == 0) {
            throw new IllegalArgumentException("prompt " + index + " tokenizes to no tokens; a request needs at least one");
        }
        int length = prompt.length + request.tokensToGenerate();
        if (length > settings.maxSequenceLength()) {
            throw new IllegalArgumentException("prompt " + index + ": Maximum allowed sequence length was set to "
                    + settings.maxSequenceLength() + " tokens but requested generation of " + length + " tokens"
                    + " (--inference-max-seq-length)");
        }
        int maxPositions = model.config().maxPositionEmbeddings();
        if (length > maxPositions) {
            throw new IllegalArgumentException("prompt " + index + ": " + prompt.length + " prompt tokens + "
                    + request.tokensToGenerate() + " to generate exceed the model's --max-position-embeddings "
                    + maxPositions);
        }
        if (settings.topK() >= model.config().vocabSize()) {
            throw new IllegalArgumentException("--top_k " + settings.topK() + " must be smaller than the vocabulary size "
                    + model.config().vocabSize());
        }
        boolean logprobs = settings.returnLogProbs() || settings.topNLogprobs() > 0;
        GenerationRequest r = new GenerationRequest(List.of(request.prompt()), request.tokensToGenerate(), logprobs,
                settings.temperature(), settings.topK(), settings.topP(), 0.0, 0.0, false, false, false, false,
                settings.seed() + index, true, null, null, 1.0, settings.topNLogprobs());
        return new GenerationJob(r, new int[][] {prompt}, r.randomSeed());
    }

    /** The end (exclusive) of the batch starting at {@code from}: at most maxRequests jobs within the token budget. */
    private int batchEnd(List<GenerationJob> jobs, int from) {
        int to = from + 1;
        int longest = jobs.get(from).sequenceLength();
        while (to < jobs.size() && to - from < settings.maxRequests()) {
            int length = Math.max(longest, jobs.get(to).sequenceLength());
            if ((long) (to + 1 - from) * length > settings.maxTokensToOom()) {
                break;
            }
            longest = length;
            to++;
        }
        return to;
    }

    private Result result(Request request, GenerationJob job, GenerationOutput out) {
        int[] prompt = job.prompts()[0];
        int[] all = out.tokens()[0];
        int generated = all.length - prompt.length;
        if (generated > 0 && all[all.length - 1] == tokenizer.eod()) {
            generated--;                                                 // Megatron's count stops before the eod
        }
        int[] sequence = Arrays.copyOf(all, prompt.length + generated);
        int[] tokens = Arrays.copyOfRange(sequence, prompt.length, sequence.length);
        // Megatron detokenizes the whole sequence and cuts the prompt's characters off the front
        String text = tokenizer.detokenize(sequence);
        String generatedText = text.length() >= request.prompt().length() ? text.substring(request.prompt().length()) : "";
        double[] seconds = Arrays.copyOf(out.tokenSeconds()[0], generated);
        float[] logprobs = null;
        List<Map<String, Float>> top = null;
        if (settings.returnLogProbs()) {
            int from = settings.skipPromptLogProbs() ? prompt.length - 1 : 0;
            logprobs = Arrays.copyOfRange(out.logprobs()[0], from, prompt.length - 1 + generated);
        }
        if (settings.topNLogprobs() > 0) {
            top = new ArrayList<>();
            for (int t = 0; t < generated; t++) {
                top.add(dictionary(out.top()[0][prompt.length - 1 + t]));
            }
        }
        return new Result(request.prompt(), prompt, tokens, generatedText, seconds, logprobs, top);
    }

    /** Megatron's {detokenized token: logprob}; two ids with the same text keep the later (less likely) one, as a dict update. */
    private Map<String, Float> dictionary(TopLogprobs top) {
        Map<String, Float> dict = new LinkedHashMap<>();
        for (int j = 0; j < top.tokens().length; j++) {
            dict.put(tokenizer.detokenize(new int[] {top.tokens()[j]}), top.logprobs()[j]);
        }
        return dict;
    }

    /**
     * The script's {@code --output-path} file: {@code {"<request id>": {input_prompt, generated_text, generated_tokens,
     * tpot, latency, [generated_top_n_logprobs], [logprobs]}}}, written under a temporary name and renamed.
     */
    public static void writeJson(List<Result> results, double latencySeconds, Path path) throws IOException {
        Path parent = path.toAbsolutePath().getParent();
        if (parent != null) {
            Files.createDirectories(parent);
        }
        Path tmp = path.resolveSibling(path.getFileName() + ".tmp");
        ObjectMapper json = new ObjectMapper().disable(JsonGenerator.Feature.AUTO_CLOSE_TARGET);
        Map<String, Object> doc = new LinkedHashMap<>();
        for (int i = 0; i < results.size(); i++) {
            Result r = results.get(i);
            Map<String, Object> entry = new LinkedHashMap<>();
            entry.put("input_prompt", r.prompt());
            entry.put("generated_text", r.generatedText());
            entry.put("generated_tokens", r.generatedTokens());
            entry.put("tpot", r.tokenSeconds());
            entry.put("latency", latencySeconds);
            if (r.topLogprobs() != null) {
                entry.put("generated_top_n_logprobs", r.topLogprobs());
            }
            if (r.logprobs() != null) {
                entry.put("logprobs", r.logprobs());
            }
            doc.put(Integer.toString(i), entry);
        }
        try (OutputStream out = Files.newOutputStream(tmp)) {
            json.writeValue(out, doc);
        }
        Files.move(tmp, path, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }
}
