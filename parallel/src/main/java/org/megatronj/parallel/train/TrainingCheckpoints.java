package org.megatronj.parallel.train;

import org.megatronj.model.optim.OptimizerParamScheduler;

import java.nio.file.Path;

/**
 * How the trainer saves and loads checkpoints: {@link TrainingCheckpointer} on one rank; a
 * parallel run's ranks share one through {@code org.megatronj.parallel.pipeline.ParallelCheckpointer}.
 */
public interface TrainingCheckpoints {

    /**
     * What a save writes besides the weights and counters: the optimizer's and scheduler's state, and
     * the RNG stream ({@code --no-save-optim} and {@code --no-save-rng} leave them out, as Megatron's).
     */
    record Contents(boolean optimizer, boolean rng) {
        public static final Contents ALL = new Contents(true, true);
    }

    /** Writes iteration {@code state.iteration()} under {@code root}; returns bytes written (by this rank). */
    long save(Path root, ResumePoint state, TrainableModel model, TrainingOptimizer optimizer, OptimizerParamScheduler scheduler,
              Contents contents);

    /** {@link #save(Path, ResumePoint, TrainableModel, TrainingOptimizer, OptimizerParamScheduler, Contents)} of everything. */
    default long save(Path root, ResumePoint state, TrainableModel model, TrainingOptimizer optimizer,
                      OptimizerParamScheduler scheduler) {
        return save(root, state, model, optimizer, scheduler, Contents.ALL);
    }

    /** Loads the latest checkpoint under {@code root} and returns where to continue (see {@link TrainingCheckpointer#load}). */
    ResumePoint load(Path root, TrainableModel model, TrainingOptimizer optimizer, OptimizerParamScheduler scheduler,
                     boolean finetune, boolean noLoadOptim, boolean noLoadRng, long seed);

    /**
     * This rank's place in Megatron's save and load lines, {@code [ t 1/2, p 1/2 ]}: the
     * 1-based tensor and pipeline rank over their sizes.
     */
    default String rankLabel() {
        return "[ t 1/1, p 1/1 ]";
    }
}
