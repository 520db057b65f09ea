package org.megatronj.parallel.train;

/**
 * Where a run continues after {@code --load}: the iteration and sample counters, and the RNG
 * stream that selects dropout masks (the checkpoint's unless {@code --no-load-rng}).
 */
public record ResumePoint(long iteration, long consumedTrainSamples, long consumedValidSamples, long rngStream) {
    public static ResumePoint fresh(long seed) {
        return new ResumePoint(0, 0, 0, seed);
    }
}
