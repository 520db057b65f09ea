package org.megatronj.parallel.train;

import java.util.List;

/**
 * How a run ended: the last iteration, consumed samples, each iteration's lm loss in order (from
 * the first iteration this process ran), the last validation loss (NaN if none) and why it stopped.
 */
public record TrainingResult(long iteration, long consumedTrainSamples, List<Double> iterationLosses,
                             double lastValidationLoss, ExitReason exitReason) {

    public enum ExitReason {
        /** {@code --train-iters} or {@code --train-samples} reached. */
        COMPLETED,
        /** SIGTERM with {@code --exit-signal-handler}. */
        SIGNAL,
        /** {@code --exit-interval}. */
        EXIT_INTERVAL,
        /** {@code --exit-duration-in-mins}. */
        DURATION
    }
}
