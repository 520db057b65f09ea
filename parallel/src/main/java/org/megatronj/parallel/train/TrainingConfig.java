package org.megatronj.parallel.train;

/**
 * Everything the {@link Trainer} needs besides the model and the data, split as Megatron's flags group.
 *
 * @param checkForNanInLoss Megatron's {@code --check-for-nan-in-loss-and-grad} (on unless
 *                          {@code --no-check-for-nan-in-loss-and-grad}): a NaN or Inf training loss
 *                          stops the run instead of skipping the iteration
 * @param calculatePerTokenLoss Megatron's {@code --calculate-per-token-loss}: the gradients are those of the global
 *                          batch's mean over its counted tokens, not the mean of its micro-batches' means
 */
public record TrainingConfig(BatchConfig batch, ScheduleConfig schedule, OptimizerConfig optimizer,
                             LoggingConfig logging, CheckpointConfig checkpoint, ExitConfig exit, long seed,
                             boolean checkForNanInLoss, boolean calculatePerTokenLoss) {

    /** With Megatron's defaults: a NaN or Inf training loss stops the run; each micro-batch's mean loss weighs the same. */
    public TrainingConfig(BatchConfig batch, ScheduleConfig schedule, OptimizerConfig optimizer, LoggingConfig logging,
                          CheckpointConfig checkpoint, ExitConfig exit, long seed) {
        this(batch, schedule, optimizer, logging, checkpoint, exit, seed, true, false);
    }

    public TrainingConfig {
        if (batch == null || schedule == null || optimizer == null || logging == null || checkpoint == null || exit == null) {
            throw new IllegalArgumentException("training config: every part must be set");
        }
        if (schedule.trainSamples() > 0 && batch.schedule() == null && schedule.trainSamples() < batch.globalBatchSize()) {
            throw new IllegalArgumentException("--train-samples (" + schedule.trainSamples() + ") is smaller than one global batch ("
                    + batch.globalBatchSize() + ")");
        }
        if (schedule.trainIters() > 0 && batch.schedule() instanceof BatchConfig.Rampup) {
            throw new IllegalArgumentException("--rampup-batch-size needs sample-based training (--train-samples), as in Megatron");
        }
    }

    public long totalIterations() {
        return schedule.totalIterations(batch);
    }
}
