package org.megatronj.parallel.train;

import jdk.jfr.Category;
import jdk.jfr.DataAmount;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.StackTrace;
import jdk.jfr.Timespan;

/**
 * JFR events of the training loop. Record with {@code --profile run.jfr} (or
 * {@code -XX:StartFlightRecording}) and read with {@code jfr print --events org.megatronj.TrainStep run.jfr},
 * {@code jfr summary} or JDK Mission Control. Durations are the events' own begin/end; hot events
 * carry no stack trace.
 */
public final class TrainingEvents {
    private TrainingEvents() {
    }

    @Name("org.megatronj.TrainStep")
    @Label("Train Step")
    @Category({"Megatron-J", "Training"})
    @Description("One training iteration: all micro-batches, the gradient clip and the optimizer step")
    @StackTrace(false)
    public static final class TrainStep extends Event {
        @Label("Iteration")
        public long iteration;
        @Label("LM Loss")
        public double loss;
        @Label("Learning Rate")
        public double learningRate;
        @Label("Grad Norm")
        public double gradNorm;
        @Label("Global Batch Size")
        public int globalBatchSize;
        @Label("Tokens")
        @Description("Labels counted by the loss in this iteration")
        public long tokens;
        @Label("Data Wait")
        @Description("Part of the step spent assembling micro-batches")
        @Timespan(Timespan.NANOSECONDS)
        public long dataWait;
    }

    @Name("org.megatronj.ForwardBackward")
    @Label("Forward-Backward")
    @Category({"Megatron-J", "Training"})
    @Description("Forward and backward pass of one micro-batch (the model computes both in one call)")
    @StackTrace(false)
    public static final class ForwardBackward extends Event {
        @Label("Iteration")
        public long iteration;
        @Label("Micro-batch")
        public int microBatch;
        @Label("Tokens")
        public long tokens;
    }

    @Name("org.megatronj.OptimizerStep")
    @Label("Optimizer Step")
    @Category({"Megatron-J", "Training"})
    @Description("Gradient-norm computation, clipping and the optimizer update")
    @StackTrace(false)
    public static final class OptimizerStep extends Event {
        @Label("Iteration")
        public long iteration;
        @Label("Skipped")
        @Description("True when the gradient norm was not finite and the update was skipped")
        public boolean skipped;
    }

    @Name("org.megatronj.DataWait")
    @Label("Data Wait")
    @Category({"Megatron-J", "Training"})
    @Description("Time spent assembling one micro-batch from the dataset")
    @StackTrace(false)
    public static final class DataWait extends Event {
        @Label("Iteration")
        public long iteration;
        @Label("Samples")
        public int samples;
    }

    @Name("org.megatronj.CheckpointSave")
    @Label("Checkpoint Save")
    @Category({"Megatron-J", "Checkpoint"})
    @Description("Writing one checkpoint iteration folder and the tracker file")
    public static final class CheckpointSave extends Event {
        @Label("Iteration")
        public long iteration;
        @Label("Bytes")
        @DataAmount
        public long bytes;
        @Label("Directory")
        public String directory;
    }

    @Name("org.megatronj.Evaluation")
    @Label("Evaluation")
    @Category({"Megatron-J", "Training"})
    @Description("One validation or test pass of --eval-iters iterations")
    public static final class Evaluation extends Event {
        @Label("Iteration")
        public long iteration;
        @Label("Split")
        public String split;
        @Label("LM Loss")
        public double loss;
    }
}
