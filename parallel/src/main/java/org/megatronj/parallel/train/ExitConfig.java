package org.megatronj.parallel.train;

/**
 * When to stop early with a checkpoint: {@code --exit-interval N} (after every N-th iteration; 0 never),
 * {@code --exit-duration-in-mins M} (0 never) and {@code --exit-signal-handler} (SIGTERM saves and exits).
 */
public record ExitConfig(long exitInterval, double exitDurationInMins, boolean exitOnSignal) {

    public ExitConfig {
        if (exitInterval < 0 || !(exitDurationInMins >= 0)) {
            throw new IllegalArgumentException("--exit-interval and --exit-duration-in-mins must be >= 0, got "
                    + exitInterval + " and " + exitDurationInMins);
        }
    }

    public static ExitConfig none() {
        return new ExitConfig(0, 0, true);
    }
}
