package org.megatronj.parallel.train;

/**
 * Told when each training iteration starts and ends, with the iterations completed so far: Megatron's
 * {@code --profile-step-start/-end} window opens before iteration {@code start + 1} and closes after
 * iteration {@code end}.
 */
public interface StepProfiler {
    /** Before the iteration that follows {@code completed} ones. */
    void beforeIteration(long completed);

    /** After iteration {@code completed}. */
    void afterIteration(long completed);
}
