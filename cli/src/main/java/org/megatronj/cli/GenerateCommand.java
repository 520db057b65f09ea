package org.megatronj.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.megatronj.io.checkpoint.Checkpoint;
import org.megatronj.io.tokenizer.Tokenizer;
import org.megatronj.io.tokenizer.TokenizerType;
import org.megatronj.memory.Backend;
import org.megatronj.memory.Backends;
import org.megatronj.model.GPTModel;
import org.megatronj.model.TransformerConfig;
import org.megatronj.model.generate.GenerationParams;
import org.megatronj.model.generate.GenerationResult;
import org.megatronj.model.generate.TextGenerator;
import org.megatronj.parallel.train.TrainingCheckpointer;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.Arrays;

/** {@code megatron generate}: continue a prompt with a checkpoint's GPT model (KV cache, sampling). */
@Command(name = "generate", mixinStandardHelpOptions = true, sortOptions = false, abbreviateSynopsis = true,
        description = {"Continue a prompt with the model of a checkpoint (the latest iteration under --load).",
                "The tokenizer flags default to those the checkpoint was trained with."})
final class GenerateCommand implements Callable<Integer> {
    @Option(names = "--load", required = true, paramLabel = "DIR", description = "Checkpoint folder (pretrain --save, or import-hf --save).")
    Path load;

    @Option(names = "--prompt", required = true, paramLabel = "TEXT", description = "Text to continue.")
    String prompt;

    @Option(names = "--tokens-to-generate", paramLabel = "N", defaultValue = "64", description = "Tokens to generate at most (default ${DEFAULT-VALUE}).")
    int tokensToGenerate;

    @Option(names = "--temperature", paramLabel = "T", defaultValue = "1.0", description = "Sampling temperature; 0 = greedy (default ${DEFAULT-VALUE}).")
    float temperature;

    @Option(names = "--top-k", paramLabel = "K", defaultValue = "0", description = "Sample among the K most likely tokens; 0 = all (default ${DEFAULT-VALUE}).")
    int topK;

    @Option(names = "--top-p", paramLabel = "P", defaultValue = "1.0", description = "Nucleus sampling mass; 1 = off (default ${DEFAULT-VALUE}).")
    float topP;

    @Option(names = "--seed", paramLabel = "S", defaultValue = "1234", description = "Sampling seed (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--stop-on-eod", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "Stop at the end-of-document token (default on).")
    boolean stopOnEod;

    @Option(names = "--device", paramLabel = "DEV", defaultValue = "cpu", description = "cpu or cuda (default ${DEFAULT-VALUE}).")
    String device;

    @Mixin
    TokenizerOptions tokenizer;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        try (Checkpoint ckpt = Checkpoint.openLatest(load, TrainingCheckpointer.RANK_DIR)) {
            JsonNode meta = ckpt.metadata();
            if (!meta.has("model")) {
                throw new IllegalArgumentException(ckpt.rankDir() + "/metadata.json has no 'model' config");
            }
            TransformerConfig config = new ObjectMapper().treeToValue(meta.get("model"), TransformerConfig.class);
            Tokenizer tok = tokenizer.isSet() ? tokenizer.build() : tokenizerOf(meta.path("args"), ckpt);
            if (tok.vocabSize() > config.paddedVocabSize()) {
                throw new IllegalArgumentException("the tokenizer has " + tok.vocabSize() + " tokens but the model only "
                        + config.paddedVocabSize() + " embedding rows: wrong --vocab-file?");
            }
            int[] ids = tok.tokenize(prompt);
            if (ids.length == 0) {
                throw new IllegalArgumentException("--prompt tokenizes to nothing");
            }
            try (Backend backend = Backends.create(device); GPTModel model = new GPTModel(config, backend, seed)) {
                TrainingCheckpointer.loadWeights(ckpt, model.parameters());
                int[] stop = stopOnEod ? new int[] {tok.eod()} : new int[0];
                GenerationParams params = new GenerationParams(tokensToGenerate, temperature, topK, topP, seed, stop);
                long t0 = System.nanoTime();
                GenerationResult r = new TextGenerator(model).generate(ids, params);
                double seconds = (System.nanoTime() - t0) / 1e9;
                int[] generated = r.tokens();
                if (generated.length > 0 && stopOnEod && generated[generated.length - 1] == tok.eod()) {
                    generated = Arrays.copyOf(generated, generated.length - 1);
                }
                out.println(prompt + tok.detokenize(generated));
                out.flush();
                err.printf(Locale.ROOT, "generated %d tokens in %.2f s (%.1f tokens/s, prompt %d tokens, stop: %s)%n",
                        r.tokens().length, seconds, r.tokens().length / Math.max(seconds, 1e-9), ids.length,
                        r.reason().name().toLowerCase(Locale.ROOT));
                err.flush();
            }
        }
        return 0;
    }

    /** The tokenizer the checkpoint was trained with, from its saved command-line arguments. */
    private static Tokenizer tokenizerOf(JsonNode args, Checkpoint ckpt) {
        String type = args.path("tokenizer-type").asText("");
        if (type.isEmpty()) {
            throw new IllegalArgumentException(ckpt.rankDir() + " does not record its tokenizer: give --tokenizer-type"
                    + " (and --vocab-file/--merge-file)");
        }
        Path vocab = args.hasNonNull("vocab-file") ? Path.of(args.get("vocab-file").asText()) : null;
        Path merges = args.hasNonNull("merge-file") ? Path.of(args.get("merge-file").asText()) : null;
        Integer size = args.hasNonNull("vocab-size") ? args.get("vocab-size").asInt() : null;
        return TokenizerType.valueOf(type).create(vocab, merges, size, 0);
    }
}
