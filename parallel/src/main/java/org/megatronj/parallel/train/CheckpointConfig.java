package org.megatronj.parallel.train;

import java.nio.file.Files;
import java.nio.file.Path;
import org.megatronj.model.optim.OptimizerParamScheduler;

/**
 * {@code --save DIR --save-interval N} (0: save only at the end and on exits), {@code --load DIR},
 * {@code --finetune} (load the weights only and start from iteration 0), {@code --no-load-optim},
 * {@code --no-load-rng}, and what the loaded learning-rate schedule does ({@code
 * --override-opt_param-scheduler}, {@code --use-checkpoint-opt_param-scheduler}), and {@code --exit-on-missing-checkpoint}
 * (no checkpoint under {@code --load} is an error instead of a start from scratch). Paths are null when not given.
 */
public record CheckpointConfig(Path save, int saveInterval, Path load, boolean finetune, boolean noLoadOptim, boolean noLoadRng,
                               OptimizerParamScheduler.OnLoad schedulerOnLoad, boolean exitOnMissingCheckpoint) {

    public CheckpointConfig {
        if (saveInterval < 0) {
            throw new IllegalArgumentException("--save-interval must be >= 0, got " + saveInterval);
        }
        if (saveInterval > 0 && save == null) {
            throw new IllegalArgumentException("--save-interval " + saveInterval + " needs --save DIR");
        }
        if (save != null && Files.exists(save) && !Files.isDirectory(save)) {   // found now, not after the first interval
            throw new IllegalArgumentException("--save " + save + " is a file; expected a folder (or a path to create)");
        }
    }

    /** A schedule whose values must match the checkpoint's, as Megatron's default. */
    public CheckpointConfig(Path save, int saveInterval, Path load, boolean finetune, boolean noLoadOptim, boolean noLoadRng) {
        this(save, saveInterval, load, finetune, noLoadOptim, noLoadRng, OptimizerParamScheduler.OnLoad.CHECK, false);
    }

    public static CheckpointConfig none() {
        return new CheckpointConfig(null, 0, null, false, false, false);
    }
}
