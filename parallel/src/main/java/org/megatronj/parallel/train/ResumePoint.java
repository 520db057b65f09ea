package org.megatronj.parallel.train;

/**
 * Where a run continues after {@code --load}: the iteration and sample counters, the RNG stream
 * that selects dropout masks (the checkpoint's unless {@code --no-load-rng}), and the model FLOPs
 * of all iterations so far (Megatron's {@code num_floating_point_operations_so_far}, which
 * {@code --log-progress} reports).
 */
public record ResumePoint(long iteration, long consumedTrainSamples, long consumedValidSamples, long rngStream,
                          double floatingPointOperationsSoFar) {

    public ResumePoint(long iteration, long consumedTrainSamples, long consumedValidSamples, long rngStream) {
        this(iteration, consumedTrainSamples, consumedValidSamples, rngStream, 0);
    }

    public static ResumePoint fresh(long seed) {
        return new ResumePoint(0, 0, 0, seed);
    }
}
