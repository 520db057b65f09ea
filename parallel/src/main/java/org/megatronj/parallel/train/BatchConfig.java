package org.megatronj.parallel.train;

/**
 * Batch sizes: {@code --micro-batch-size}, {@code --global-batch-size} and the optional
 * {@code --rampup-batch-size <start> <increment> <samples>}. The global batch is made of
 * {@code global / (micro * dp)} micro-batches per rank whose gradients accumulate before the step.
 *
 * @param rampup null without ramp-up
 */
public record BatchConfig(int microBatchSize, int globalBatchSize, int dataParallelSize, Rampup rampup) {

    /** {@code --rampup-batch-size start increment samples}: the global batch grows from start by increment over samples. */
    public record Rampup(int startBatchSize, int batchSizeIncrement, long rampupSamples) {
    }

    public BatchConfig {
        if (microBatchSize < 1) {
            throw new IllegalArgumentException("--micro-batch-size must be positive, got " + microBatchSize);
        }
        if (dataParallelSize < 1) {
            throw new IllegalArgumentException("data-parallel size must be positive, got " + dataParallelSize);
        }
        int perStep = microBatchSize * dataParallelSize;
        if (globalBatchSize < 1 || globalBatchSize % perStep != 0) {
            throw new IllegalArgumentException("--global-batch-size (" + globalBatchSize + ") must be a positive multiple of"
                    + " --micro-batch-size (" + microBatchSize + ") x data-parallel size (" + dataParallelSize + ") = " + perStep);
        }
        if (rampup != null) {
            if (rampup.startBatchSize() < 1 || rampup.startBatchSize() % perStep != 0) {
                throw new IllegalArgumentException("--rampup-batch-size start (" + rampup.startBatchSize()
                        + ") must be a positive multiple of micro batch x data-parallel size (" + perStep + ")");
            }
            if (rampup.batchSizeIncrement() < 1 || rampup.batchSizeIncrement() % perStep != 0) {
                throw new IllegalArgumentException("--rampup-batch-size increment (" + rampup.batchSizeIncrement()
                        + ") must be a positive multiple of micro batch x data-parallel size (" + perStep + ")");
            }
            int diff = globalBatchSize - rampup.startBatchSize();
            if (diff < 0 || diff % rampup.batchSizeIncrement() != 0) {
                throw new IllegalArgumentException("--global-batch-size (" + globalBatchSize + ") minus the ramp-up start ("
                        + rampup.startBatchSize() + ") must be a non-negative multiple of the increment ("
                        + rampup.batchSizeIncrement() + ")");
            }
            if (rampup.rampupSamples() < 0) {
                throw new IllegalArgumentException("--rampup-batch-size samples must be >= 0, got " + rampup.rampupSamples());
            }
        }
    }

    public static BatchConfig of(int micro, int global) {
        return new BatchConfig(micro, global, 1, null);
    }

    /**
     * The global batch size after {@code consumedSamples} samples (Megatron's
     * {@code RampupBatchsizeNumMicroBatches}): start + increment per {@code samples / num_increments} samples.
     */
    public int globalBatchSizeAt(long consumedSamples) {
        if (rampup == null || consumedSamples > rampup.rampupSamples()) {
            return globalBatchSize;
        }
        int increments = (globalBatchSize - rampup.startBatchSize()) / rampup.batchSizeIncrement();
        if (increments == 0) {
            return globalBatchSize;
        }
        double samplesPerIncrement = (double) rampup.rampupSamples() / increments;
        long steps = (long) (consumedSamples / samplesPerIncrement);
        return (int) Math.min(globalBatchSize, rampup.startBatchSize() + steps * rampup.batchSizeIncrement());
    }

    /** Micro-batches each rank runs in the iteration that starts after {@code consumedSamples}. */
    public int numMicroBatchesAt(long consumedSamples) {
        return globalBatchSizeAt(consumedSamples) / (microBatchSize * dataParallelSize);
    }

    /** Megatron's {@code update_train_iters}: iterations needed for {@code trainSamples} with ramp-up. */
    public long iterationsForSamples(long trainSamples) {
        if (rampup == null) {
            return trainSamples / globalBatchSize;
        }
        long iterations = 0;
        long consumed = 0;
        while (consumed <= rampup.rampupSamples() && consumed <= trainSamples) {
            consumed += globalBatchSizeAt(consumed);
            iterations++;
        }
        // floor division as Python's //: overshooting the samples takes an iteration back, as in Megatron
        return iterations + Math.floorDiv(trainSamples - consumed, globalBatchSize);
    }
}
