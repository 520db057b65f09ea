package org.megatronj.parallel.data;

/**
 * Data-parallel gradient reduction options with Megatron's flags.
 *
 * @param overlapGradReduce       {@code --overlap-grad-reduce}: start a bucket's reduction as soon as its
 *                                gradients are complete during backward, instead of all at the end
 * @param useDistributedOptimizer {@code --use-distributed-optimizer}: reduce-scatter (each DP rank keeps its
 *                                shard of each bucket) instead of all-reduce
 * @param bucketSize              {@code --ddp-bucket-size} in elements; {@code <= 0} picks Megatron's default
 *                                (max(40M, 1M x DP)); without overlap
 *                                there is a single bucket, as in Megatron
 */
public record DdpConfig(boolean overlapGradReduce, boolean useDistributedOptimizer, long bucketSize) {

    /** Megatron's defaults: no overlap, no distributed optimizer, default bucket size. */
    public static DdpConfig defaults() {
        return new DdpConfig(false, false, 0);
    }

    /** The bucket size actually used for {@code dataParallelSize} ranks; {@code <= 0} means one bucket. */
    public long effectiveBucketSize(int dataParallelSize) {
        if (!overlapGradReduce) {
            return 0; // as Megatron: without overlap one bucket, whatever --ddp-bucket-size says
        }
        return bucketSize > 0 ? bucketSize : GradBufferLayout.defaultBucketSize(dataParallelSize);
    }
}
