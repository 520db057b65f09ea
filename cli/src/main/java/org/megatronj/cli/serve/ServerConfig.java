package org.megatronj.cli.serve;

/**
 * How the server listens and batches.
 *
 * @param host           address to bind (0.0.0.0 = every interface, as Megatron's Flask server)
 * @param port           TCP port; 0 = any free port (tests)
 * @param maxPrompts     the most prompts one request may carry (Megatron: 128)
 * @param maxBatchRows   the most sequences generated together when requests are batched
 * @param maxTokensToOom a request (and a batch) may hold at most this many sequences x tokens
 *                       (Megatron's {@code --max-tokens-to-oom}, default 12000)
 * @param modelName      the name /v1/completions and /health report
 */
public record ServerConfig(String host, int port, int maxPrompts, int maxBatchRows, long maxTokensToOom,
                           String modelName) {
    public ServerConfig {
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("--port must be in [0, 65535], got " + port);
        }
        if (maxPrompts < 1 || maxBatchRows < 1 || maxTokensToOom < 1) {
            throw new IllegalArgumentException("--max-prompts, --max-batch-size and --max-tokens-to-oom must be >= 1");
        }
    }
}
