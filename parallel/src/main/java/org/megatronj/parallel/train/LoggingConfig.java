package org.megatronj.parallel.train;

import java.nio.file.Path;

/**
 * {@code --log-interval}, {@code --eval-interval} and {@code --eval-iters} (0 disables evaluation),
 * {@code --log-loss-to} (CSV of every iteration's loss, null for none) and
 * {@code --timing-log-level 0|1|2}: timers up to this level are measured and printed after each
 * log line (0: iteration and checkpoint/eval times; 1: adds forward-backward and optimizer; 2: adds
 * batch-generator and the optimizer's parts); {@code logThroughput}: {@code --log-throughput} (the trainer needs the
 * model's FLOPs, {@link Trainer#setModelFlops}); {@code logParamsNorm}: {@code --log-params-norm}; {@code logNumZerosInGrad}:
 * {@code --log-num-zeros-in-grad}; {@code tensorboard}:
 * {@code --tensorboard-dir} and its flags, or null; {@code evalMicroBatchSize}, {@code evalGlobalBatchSize}:
 * {@code --eval-micro-batch-size}, {@code --eval-global-batch-size} (0: as training); {@code skipTrain}:
 * {@code --skip-train}, evaluation of the loaded model only; {@code timingLogOption}: {@code --timing-log-option}.
 */
public record LoggingConfig(int logInterval, int evalInterval, int evalIters, Path logLossTo, int timingLogLevel,
                            boolean logThroughput, boolean logParamsNorm, boolean logNumZerosInGrad,
                            TensorBoardLog.Config tensorboard,
                            int evalMicroBatchSize, int evalGlobalBatchSize, boolean skipTrain, Timers.LogOption timingLogOption) {

    /** Without throughput, parameter norms and TensorBoard; evaluation batches as training's. */
    public LoggingConfig(int logInterval, int evalInterval, int evalIters, Path logLossTo, int timingLogLevel) {
        this(logInterval, evalInterval, evalIters, logLossTo, timingLogLevel, false, false, false, null, 0, 0, false,
                Timers.LogOption.MINMAX);
    }

    /** The same settings without the files ({@code --log-loss-to}, {@code --tensorboard-dir}), for ranks that do not write them. */
    public LoggingConfig withoutFiles() {
        return new LoggingConfig(logInterval, evalInterval, evalIters, null, timingLogLevel, logThroughput, logParamsNorm,
                logNumZerosInGrad, null,
                evalMicroBatchSize, evalGlobalBatchSize, skipTrain, timingLogOption);
    }

    /** {@code --eval-micro-batch-size}, or the training micro batch size. */
    public int evalMicroBatchSize(BatchConfig batch) {
        return evalMicroBatchSize > 0 ? evalMicroBatchSize : batch.microBatchSize();
    }

    /** {@code --eval-global-batch-size}, or the training global batch size (Megatron's args.global_batch_size). */
    public int evalGlobalBatchSize(BatchConfig batch) {
        return evalGlobalBatchSize > 0 ? evalGlobalBatchSize : batch.globalBatchSize();
    }

    public LoggingConfig {
        if (logInterval < 1) {
            throw new IllegalArgumentException("--log-interval must be positive, got " + logInterval);
        }
        if (evalInterval < 0 || evalIters < 0) {
            throw new IllegalArgumentException("--eval-interval and --eval-iters must be >= 0, got " + evalInterval + " and " + evalIters);
        }
        if (timingLogLevel < 0 || timingLogLevel > 2) {
            throw new IllegalArgumentException("--timing-log-level must be 0, 1 or 2, got " + timingLogLevel);
        }
    }

    public boolean evaluates() {
        return evalInterval > 0 && evalIters > 0;
    }
}
