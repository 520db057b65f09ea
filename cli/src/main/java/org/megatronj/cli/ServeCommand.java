package org.megatronj.cli;

import org.megatronj.cli.serve.ServerConfig;
import org.megatronj.cli.serve.TextGenerationServer;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

/** {@code megatron serve}: Megatron's {@code tools/run_text_generation_server.py}. */
@Command(name = "serve", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Serve a checkpoint's GPT model over HTTP (Megatron's text generation server).",
                "PUT /api takes Megatron's JSON ({\"prompts\": [...], \"tokens_to_generate\": N, ...}); POST /v1/completions"
                        + " is OpenAI-style, POST /completions Megatron's OpenAI-like variant; GET /health reports status. The model shape comes from the checkpoint"
                        + " (as --use-checkpoint-args); the tokenizer flags default to the checkpoint's. Stop with Ctrl-C."})
final class ServeCommand implements Callable<Integer> {
    @Option(names = "--load", required = true, paramLabel = "DIR", description = "Checkpoint folder (pretrain --save, or checkpoint import-hf --save).")
    Path load;

    @Option(names = "--port", paramLabel = "PORT", defaultValue = "5000", description = "TCP port (default ${DEFAULT-VALUE}; 0 = any free port).")
    int port;

    @Option(names = "--host", paramLabel = "ADDR", defaultValue = "0.0.0.0", description = "Address to listen on (default ${DEFAULT-VALUE}, every interface, as Megatron).")
    String host;

    @Option(names = "--max-prompts", paramLabel = "N", defaultValue = "128", description = "Most prompts per request (default ${DEFAULT-VALUE}, Megatron's limit).")
    int maxPrompts;

    @Option(names = "--max-batch-size", paramLabel = "N", defaultValue = "128", description = "Most sequences generated together when queued requests are batched (default ${DEFAULT-VALUE}).")
    int maxBatchSize;

    @Option(names = "--max-tokens-to-oom", paramLabel = "N", defaultValue = "12000", description = "Most sequences x tokens per request and per batch (default ${DEFAULT-VALUE}, as Megatron).")
    long maxTokensToOom;

    @Option(names = "--seed", paramLabel = "S", defaultValue = "1234", description = "Seed of the random stream used by requests without random_seed (default ${DEFAULT-VALUE}).")
    long seed;

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
        PrintWriter err = spec.commandLine().getErr();
        try (CheckpointModel loaded = CheckpointModel.load(load, tokenizer, deviceOptions.device(), precision.precision())) {
            ServerConfig config = new ServerConfig(host, port, maxPrompts, maxBatchSize, maxTokensToOom,
                    load.toAbsolutePath().normalize().getFileName().toString());
            CountDownLatch stopped = new CountDownLatch(1);
            try (TextGenerationServer server = new TextGenerationServer(loaded.model(), loaded.tokenizer(), config, seed, err)) {
                Thread hook = new Thread(() -> {
                    server.close();
                    stopped.countDown();
                }, "serve-shutdown");
                Runtime.getRuntime().addShutdownHook(hook);
                server.start();
                err.printf("serving %s (iteration %d, %,d parameters, %s tokenizer) on http://%s:%d  (PUT /api, POST /completions, POST /v1/completions, GET /health)%n",
                        load, loaded.iteration(), loaded.model().parameterCount(), loaded.tokenizer().typeName(), host, server.port());
                err.flush();
                stopped.await();
            }
        }
        return 0;
    }
}
