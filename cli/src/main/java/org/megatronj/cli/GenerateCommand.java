package org.megatronj.cli;

import org.megatronj.io.tokenizer.Tokenizer;
import org.megatronj.model.generate.GenerationParams;
import org.megatronj.model.generate.GenerationResult;
import org.megatronj.model.generate.TextGenerator;
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
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        try (CheckpointModel loaded = CheckpointModel.load(load, tokenizer, deviceOptions.device(), precision.precision())) {
            Tokenizer tok = loaded.tokenizer();
            int[] ids = tok.tokenize(prompt);
            if (ids.length == 0) {
                throw new IllegalArgumentException("--prompt tokenizes to nothing");
            }
            int[] stop = stopOnEod ? new int[] {tok.eod()} : new int[0];
            GenerationParams params = new GenerationParams(tokensToGenerate, temperature, topK, topP, seed, stop);
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
}
