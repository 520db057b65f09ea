package org.megatronj.parallel.optim;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.megatronj.model.ParameterStore;

/**
 * How a model chunk's flat gradient store is cut into buckets for the data-parallel reduction, as
 * Megatron's grad buffer: without {@code --overlap-grad-reduce} one bucket; with it, buckets of
 * about {@code --ddp-bucket-size} elements laid from the end of the store (backward completes the
 * gradients in that order), each a multiple of {@code 16 x DP} elements so the distributed
 * optimizer splits it evenly. The tied word embedding shared with another pipeline stage gets a
 * bucket of its own ({@link #sharedEmbedding}): it is summed over the embedding group before its
 * reduction, and its shards then line up on both stages.
 *
 * @param buckets in store order
 * @param sharedEmbedding index of the shared word-embedding bucket, or -1
 */
public record GradBuckets(List<Bucket> buckets, int sharedEmbedding) {

    /** Store elements {@code [start, end)}. */
    public record Bucket(long start, long end) {
        public long numel() {
            return end - start;
        }
    }

    /** Megatron's default {@code --ddp-bucket-size}: max(40M, 1M x DP) elements. */
    public static long defaultBucketSize(int dataParallelSize) {
        return Math.max(40_000_000L, 1_000_000L * dataParallelSize);
    }

    /** One bucket over the whole store. */
    public static GradBuckets single(ParameterStore store) {
        return new GradBuckets(List.of(new Bucket(0, store.flatGrad().numel())), -1);
    }

    /**
     * @param bucketSize elements per bucket, {@code <= 0} for one bucket (plus the shared embedding's)
     * @param sharedEmbeddingElements elements of the shared word embedding at the start of the store, or 0
     */
    public static GradBuckets plan(ParameterStore store, long bucketSize, int dataParallelSize, long sharedEmbeddingElements) {
        long total = store.flatGrad().numel();
        long quantum = 16L * dataParallelSize;
        if (total % quantum != 0) {
            throw new IllegalArgumentException("the flat gradient store (" + total + " elements) is not a multiple of 16 x DP "
                    + dataParallelSize + ": build the model with dataParallelSize = " + dataParallelSize);
        }
        long embeddingEnd = sharedEmbeddingElements > 0
                ? Math.min(total, (sharedEmbeddingElements + quantum - 1) / quantum * quantum) : 0;
        List<Bucket> reversed = new ArrayList<>();
        long end = total;
        while (end > embeddingEnd) {
            long start = bucketSize <= 0 ? embeddingEnd : Math.max(embeddingEnd, (end - bucketSize) / quantum * quantum);
            if (start == end) {
                start = end - quantum;   // a bucket size below 16 x DP still makes progress
            }
            reversed.add(new Bucket(start, end));
            end = start;
        }
        if (embeddingEnd > 0) {
            reversed.add(new Bucket(0, embeddingEnd));
        }
        Collections.reverse(reversed);
        return new GradBuckets(List.copyOf(reversed), embeddingEnd > 0 ? 0 : -1);
    }
}
