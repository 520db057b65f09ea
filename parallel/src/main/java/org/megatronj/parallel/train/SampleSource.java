package org.megatronj.parallel.train;

import org.megatronj.model.MicroBatch;

/**
 * A split of the training data as the trainer sees it: {@code size()} samples addressed by index,
 * assembled into micro-batches. Megatron's pretraining sampler reads consecutive indices from the
 * consumed-sample count on, so a run resumed from a checkpoint sees exactly the samples an
 * uninterrupted run would. Indices past the end wrap around (validation repeats, as eval passes
 * that outrun a small split do in Megatron's cyclic loader).
 */
public interface SampleSource {
    /** Samples in the split. */
    long size();

    /** The micro-batch of samples {@code first, first+1, ..., first+batchSize-1} (modulo {@link #size()}). */
    MicroBatch microBatch(long first, int batchSize);
}
