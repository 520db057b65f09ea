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

    /**
     * A save whose files are written in the background ({@code --async-save}). Nothing is visible under the save folder
     * until {@link #finish} publishes it, so a kill before leaves the previous checkpoint the latest.
     */
    interface PendingSave {
        /** Whether this rank's files are written (or their writing failed, which {@link #finish} then throws). */
        boolean written();

        /**
         * Waits for this rank's files, then publishes the checkpoint (renames its folder into place and points the
         * tracker at it; a parallel run's ranks call it together) and frees the copy; returns the bytes this rank wrote.
         */
        long finish();
    }

    /**
     * {@link #save} in the background: copies what the save writes (weights, optimizer state) into memory of its own,
     * so training may go on changing them, and starts writing the copy.
     */
    PendingSave saveAsync(Path root, ResumePoint state, TrainableModel model, TrainingOptimizer optimizer,
                          OptimizerParamScheduler scheduler, Contents contents);

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
