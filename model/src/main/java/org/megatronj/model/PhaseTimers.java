package org.megatronj.model;

/**
 * Where a trainer's timers learn how long the parts of a training step took: the model reports
 * Megatron's {@code forward-compute} and {@code backward-compute}, a pipeline schedule its
 * {@code forward-recv}, {@code forward-send}, {@code backward-recv} and {@code backward-send}
 * (all at Megatron's timing level 2). The model owns no timers: the trainer, which prints them,
 * hands this to the model chunks of its rank.
 */
public interface PhaseTimers {
    /** Times nothing (the default, and below {@code --timing-log-level 2}). */
    PhaseTimers NONE = new PhaseTimers() {
        @Override
        public boolean enabled() {
            return false;
        }

        @Override
        public void start(String phase) {
        }

        @Override
        public void stop(String phase) {
        }
    };

    /** Whether any phase is timed: callers synchronise a device before {@link #start} and {@link #stop} only then. */
    boolean enabled();

    void start(String phase);

    void stop(String phase);
}
