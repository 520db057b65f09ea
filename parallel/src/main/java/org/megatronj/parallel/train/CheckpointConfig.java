package org.megatronj.parallel.train;

import java.nio.file.Files;
import java.nio.file.Path;
import org.megatronj.io.checkpoint.CheckpointLayout;
import org.megatronj.model.optim.OptimizerParamScheduler;

/**
 * {@code --save DIR --save-interval N} (0: save only at the end and on exits), {@code --load DIR},
 * {@code --finetune} (load the weights only and start from iteration 0), {@code --no-load-optim},
 * {@code --no-load-rng}, and what the loaded learning-rate schedule does ({@code
 * --override-opt_param-scheduler}, {@code --use-checkpoint-opt_param-scheduler}), and {@code --exit-on-missing-checkpoint}
 * (no checkpoint under {@code --load} is an error instead of a start from scratch), {@code --ckpt-step N} (load
 * {@code iter_N} instead of the tracker's iteration; -1: the tracker's), {@code --no-save-optim} and {@code --no-save-rng}
 * (saves leave the optimizer and scheduler state, or the RNG stream, out), {@code --async-save} (saves write their
 * files in the background while training goes on). Paths are null when not given.
 */
public record CheckpointConfig(Path save, int saveInterval, Path load, boolean finetune, boolean noLoadOptim, boolean noLoadRng,
                               OptimizerParamScheduler.OnLoad schedulerOnLoad, boolean exitOnMissingCheckpoint, long ckptStep,
                               boolean noSaveOptim, boolean noSaveRng, boolean asyncSave) {

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
        if (ckptStep < -1) {
            throw new IllegalArgumentException("--ckpt-step must be an iteration >= 0, got " + ckptStep);
        }
        if (ckptStep >= 0 && load == null) {
            throw new IllegalArgumentException("--ckpt-step " + ckptStep + " needs --load DIR");
        }
    }

    /** A schedule whose values must match the checkpoint's, as Megatron's default. */
    public CheckpointConfig(Path save, int saveInterval, Path load, boolean finetune, boolean noLoadOptim, boolean noLoadRng) {
        this(save, saveInterval, load, finetune, noLoadOptim, noLoadRng, OptimizerParamScheduler.OnLoad.CHECK, false, -1,
                false, false, false);
    }

    /**
     * The folder a load opens: {@code --load}, or with {@code --ckpt-step N} its {@code iter_N} folder (null
     * without {@code --load}).
     */
    public Path loadDir() {
        return load == null || ckptStep < 0 ? load : CheckpointLayout.iterationDir(load, ckptStep);
    }

    /** What a save writes besides the weights and counters. */
    public TrainingCheckpoints.Contents saveContents() {
        return new TrainingCheckpoints.Contents(!noSaveOptim, !noSaveRng);
    }

    public static CheckpointConfig none() {
        return new CheckpointConfig(null, 0, null, false, false, false);
    }
}
