package org.megatronj.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.megatronj.cli.serve.StaticInference;
import org.megatronj.io.tokenizer.Tokenizer;
import org.megatronj.memory.MemoryStats;
import org.megatronj.model.generate.GenerationParams;
import org.megatronj.model.generate.GenerationResult;
import org.megatronj.model.generate.TextGenerator;
import picocli.CommandLine;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code megatron generate}: continue prompts with a checkpoint's GPT model (KV cache, sampling). One
 * {@code --prompt} prints its continuation; {@code --prompts} or {@code --prompt-file} run as Megatron's
 * {@code examples/inference/advanced/gpt_static_inference.py} (its flags, defaults, listing and
 * {@code --output-path} JSON).
 */
@Command(name = "generate", mixinStandardHelpOptions = true, sortOptions = false, abbreviateSynopsis = true,
        description = {"Continue prompts with the model of a checkpoint (the latest iteration under --load).",
                "--prompt prints one continuation; --prompts and --prompt-file run as Megatron's static inference"
                        + " script (gpt_static_inference.py): greedy by default (--top_k 1), --num-tokens-to-generate"
                        + " 30, --return-log-probs, --top-n-logprobs, --output-path JSON.",
                "The tokenizer flags default to those the checkpoint was trained with."})
final class GenerateCommand implements Callable<Integer> {
    @Option(names = "--load", required = true, paramLabel = "DIR", description = "Checkpoint folder (pretrain --save, or import-hf --save).")
    Path load;

    @ArgGroup(exclusive = true, multiplicity = "1")
    PromptSource source;

    static final class PromptSource {
        @Option(names = "--prompt", required = true, paramLabel = "TEXT", description = "One text to continue; prints the whole text.")
        String prompt;

        @Option(names = "--prompts", required = true, arity = "1..*", paramLabel = "TEXT",
                description = "Texts to continue, one request each (Megatron's static inference).")
        List<String> prompts;

        @Option(names = "--prompt-file", required = true, paramLabel = "FILE",
                description = "JSONL, one request per line, the prompt in its \"text\" field (Megatron's static inference).")
        Path promptFile;
    }

    @Option(names = {"--tokens-to-generate", "--num-tokens-to-generate"}, paramLabel = "N",
            description = "Tokens to generate at most (default 64 with --prompt, 30 with --prompts/--prompt-file, as Megatron).")
    Integer tokensToGenerate;

    @Option(names = "--temperature", paramLabel = "T", defaultValue = "1.0",
            description = "Sampling temperature (default ${DEFAULT-VALUE}); with --prompt 0 = greedy.")
    float temperature;

    @Option(names = {"--top-k", "--top_k"}, paramLabel = "K",
            description = "Sample among the K most likely tokens; 0 = all, 1 = greedy (default 0 with --prompt, 1 otherwise, as Megatron).")
    Integer topK;

    @Option(names = {"--top-p", "--top_p"}, paramLabel = "P",
            description = "Nucleus sampling mass (default off: 1 with --prompt; 0 otherwise, as Megatron, which refuses it with --top_k > 0).")
    Float topP;

    @Option(names = "--seed", paramLabel = "S", defaultValue = "1234", description = "Sampling seed (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--stop-on-eod", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "--prompt: stop at the end-of-document token (default on; the static inference always does).")
    boolean stopOnEod;

    @Mixin
    StaticOptions staticOptions = new StaticOptions();

    /** Megatron's static inference flags; they apply with --prompts or --prompt-file. */
    static final class StaticOptions {
        @Option(names = "--return-log-probs", description = "Add \"logprobs\" to the output: every prompt token's after the first, then the generated ones'.")
        boolean returnLogProbs;

        @Option(names = "--skip-prompt-log-probs", description = "\"logprobs\" holds only the generated tokens'.")
        boolean skipPromptLogProbs;

        @Option(names = "--top-n-logprobs", paramLabel = "N", defaultValue = "0",
                description = "Add each generated token's N most likely tokens and their log-probabilities (default ${DEFAULT-VALUE}).")
        int topNLogprobs;

        @Option(names = "--output-path", paramLabel = "FILE", description = "Write the results as the script's JSON.")
        Path outputPath;

        @Option(names = {"--inference-max-requests", "--max-batch-size"}, paramLabel = "N", defaultValue = "8",
                description = "Requests generated together (default ${DEFAULT-VALUE}; --max-batch-size is Megatron's deprecated name).")
        int maxRequests;

        @Option(names = "--inference-max-seq-length", paramLabel = "N", defaultValue = "2560",
                description = "A prompt plus its tokens to generate may not be longer (default ${DEFAULT-VALUE}).")
        int maxSequenceLength;

        @Option(names = "--max-tokens-to-oom", paramLabel = "N", defaultValue = "12000",
                description = "A batch takes no more requests once requests x sequence length would pass this (default ${DEFAULT-VALUE}).")
        long maxTokensToOom;

        @Option(names = "--prompt-file-num-truncate", paramLabel = "N",
                description = "Read only the first N requests of --prompt-file.")
        Integer promptFileNumTruncate;

        @Option(names = "--num-tokens-from-file",
                description = "Each --prompt-file request generates its \"chatgpt_output_token_length\" tokens.")
        boolean numTokensFromFile;
    }

    @Mixin
    DeviceOptions deviceOptions;

    @Mixin
    TokenizerOptions tokenizer;

    @Mixin
    InferencePrecisionOptions precision = new InferencePrecisionOptions();

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        if (source.prompt == null) {
            return staticInference();
        }
        CommandLine.ParseResult parsed = spec.commandLine().getParseResult();
        for (CommandLine.Model.OptionSpec o : spec.mixins().get("staticOptions").options()) {
            if (parsed.hasMatchedOption(o)) {
                throw new CommandLine.ParameterException(spec.commandLine(), o.longestName() + " is a flag of Megatron's"
                        + " static inference: it needs the prompts as --prompts or --prompt-file; --prompt prints one continuation");
            }
        }
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        try (CheckpointModel loaded = CheckpointModel.load(load, tokenizer, deviceOptions.device(), precision.precision())) {
            Tokenizer tok = loaded.tokenizer();
            int[] ids = tok.tokenize(source.prompt);
            if (ids.length == 0) {
                throw new IllegalArgumentException("--prompt tokenizes to nothing");
            }
            int[] stop = stopOnEod ? new int[] {tok.eod()} : new int[0];
            GenerationParams params = new GenerationParams(tokensToGenerate == null ? 64 : tokensToGenerate, temperature,
                    topK == null ? 0 : topK, topP == null ? 1f : topP, seed, stop);
            long t0 = System.nanoTime();
            GenerationResult r = new TextGenerator(loaded.model()).generate(ids, params);
            double seconds = (System.nanoTime() - t0) / 1e9;
            int[] generated = r.tokens();
            if (generated.length > 0 && stopOnEod && generated[generated.length - 1] == tok.eod()) {
                generated = Arrays.copyOf(generated, generated.length - 1);
            }
            // the whole sequence, as Megatron prints it: tokenizers that join ids with spaces need the one between
            int[] sequence = Arrays.copyOf(ids, ids.length + generated.length);
            System.arraycopy(generated, 0, sequence, ids.length, generated.length);
            out.println(tok.detokenize(sequence));
            out.flush();
            err.printf(Locale.ROOT, "generated %d tokens in %.2f s (%.1f tokens/s, prompt %d tokens, stop: %s)%n",
                    r.tokens().length, seconds, r.tokens().length / Math.max(seconds, 1e-9), ids.length,
                    r.reason().name().toLowerCase(Locale.ROOT));
            err.flush();
        }
        return 0;
    }

    /** Megatron's gpt_static_inference.py: the requests, their listing, the summary line and --output-path. */
    private int staticInference() throws IOException {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        StaticOptions o = staticOptions;
        if (!stopOnEod) {
            throw new CommandLine.ParameterException(spec.commandLine(),
                    "--no-stop-on-eod applies to --prompt only; Megatron's static inference always ends at the end-of-document token");
        }
        StaticInference.Settings settings = new StaticInference.Settings(temperature, topK == null ? 1 : topK,
                topP == null ? 0 : topP, o.returnLogProbs, o.skipPromptLogProbs, o.topNLogprobs, o.maxRequests,
                o.maxSequenceLength, o.maxTokensToOom, seed);
        int n = tokensToGenerate == null ? 30 : tokensToGenerate;
        List<StaticInference.Request> requests = source.prompts != null
                ? source.prompts.stream().map(p -> new StaticInference.Request(p, n)).toList()
                : readPromptFile(source.promptFile, n, o);
        if (requests.isEmpty()) {
            throw new IllegalArgumentException(source.promptFile + " holds no requests");
        }
        try (CheckpointModel loaded = CheckpointModel.load(load, tokenizer, deviceOptions.device(), precision.precision())) {
            StaticInference inference = new StaticInference(loaded.model(), loaded.tokenizer(), settings);
            long t0 = System.nanoTime();
            List<StaticInference.Result> results = inference.run(requests, (done, total) -> {
                if (done < total) {
                    double elapsed = (System.nanoTime() - t0) / 1e9;
                    err.printf(Locale.ROOT, "generated %d/%d requests (%.2f requests/s, ETA %s)%n", done, total,
                            done / elapsed, PreprocessCommand.ProgressLine.duration(elapsed * (total - done) / done));
                    err.flush();
                }
            });
            double latency = (System.nanoTime() - t0) / 1e9;
            if (o.outputPath != null) {
                StaticInference.writeJson(results, latency, o.outputPath);
            }
            printListing(out, results);
            MemoryStats mem = loaded.backend().memoryStats();
            out.printf(Locale.ROOT, "static | cg 0 | %s | reqs %d [ batch %d ] ... mem %.1f/%.1f ... time %.3f.%n",
                    source.prompts != null ? "<user prompts>" : "<prompt file>", results.size(), o.maxRequests,
                    mem.maxAllocatedBytes() / (double) (1L << 30), mem.maxReservedBytes() / (double) (1L << 30), latency);
            out.flush();
        }
        return 0;
    }

    /** The script's "Unique prompts + outputs" listing: each distinct prompt once, with how many requests had it. */
    private static void printListing(PrintWriter out, List<StaticInference.Result> results) {
        Map<String, List<Integer>> byPrompt = new LinkedHashMap<>();
        for (int i = 0; i < results.size(); i++) {
            byPrompt.computeIfAbsent(results.get(i).prompt(), k -> new ArrayList<>()).add(i);
        }
        out.println("~~~~ Unique prompts + outputs. ~~~~");
        int unique = 0;
        for (Map.Entry<String, List<Integer>> e : byPrompt.entrySet()) {
            StaticInference.Result first = results.get(e.getValue().getFirst());
            out.printf("%d/%d [%d]. %s ... %s%n", unique++, byPrompt.size(), e.getValue().size(), e.getKey(),
                    first.generatedText().replace("\n", "\\n"));
        }
    }

    /** Megatron's get_requests_from_file: a JSON object per line, the prompt in "text". */
    static List<StaticInference.Request> readPromptFile(Path file, int tokensToGenerate, StaticOptions o) throws IOException {
        ObjectMapper json = new ObjectMapper();
        List<StaticInference.Request> requests = new ArrayList<>();
        List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        for (int i = 0; i < lines.size(); i++) {
            if (o.promptFileNumTruncate != null && requests.size() == o.promptFileNumTruncate) {
                break;
            }
            String where = file + " line " + (i + 1);
            JsonNode line;
            try {
                line = json.readTree(lines.get(i));
            } catch (JsonProcessingException e) {
                throw new IllegalArgumentException(where + ": not a JSON object (" + e.getOriginalMessage() + ")");
            }
            if (line == null || !line.isObject() || !line.path("text").isTextual()) {
                throw new IllegalArgumentException(where + ": expected a JSON object with the prompt as a string in \"text\"");
            }
            int n = tokensToGenerate;
            if (o.numTokensFromFile) {
                JsonNode length = line.get("chatgpt_output_token_length");
                if (length == null || !length.canConvertToInt() || !length.isIntegralNumber() || length.intValue() < 0) {
                    throw new IllegalArgumentException(where + ": --num-tokens-from-file needs a whole number >= 0 in"
                            + " \"chatgpt_output_token_length\"");
                }
                n = length.intValue();
            }
            requests.add(new StaticInference.Request(line.get("text").asText(), n));
        }
        return requests;
    }
}
