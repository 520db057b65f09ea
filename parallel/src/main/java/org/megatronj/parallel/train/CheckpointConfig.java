package org.megatronj.parallel.train;

import java.nio.file.Path;

/**
 * {@code --save DIR --save-interval N} (0: save only at the end and on exits), {@code --load DIR},
 * {@code --finetune} (load the weights only and start from iteration 0), {@code --no-load-optim}
 * and {@code --no-load-rng}. Paths are null when not given.
 */
public record CheckpointConfig(Path save, int saveInterval, Path load, boolean finetune, boolean noLoadOptim, boolean noLoadRng) {

    public CheckpointConfig {
        if (saveInterval < 0) {
            throw new IllegalArgumentException("--save-interval must be >= 0, got " + saveInterval);
        }
        if (saveInterval > 0 && save == null) {
            throw new IllegalArgumentException("--save-interval " + saveInterval + " needs --save DIR");
        }
    }

    public static CheckpointConfig none() {
        return new CheckpointConfig(null, 0, null, false, false, false);
    }
}
