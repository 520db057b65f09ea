package org.megatronj.parallel.train;

import org.megatronj.model.LossResult;
import org.megatronj.model.MicroBatch;
import org.megatronj.model.Parameter;

import java.util.List;

/**
 * What the trainer needs of a model: its parameters (in checkpoint order) and a forward+backward
 * per micro-batch. {@code GPTModel} is adapted to it; a pipeline-parallel stage or a test model
 * can implement it too.
 */
public interface TrainableModel {
    /** Parameters in a fixed order; their names key the checkpoint tensors. */
    List<Parameter> parameters();

    /**
     * Forward and backward of one micro-batch: gradients of {@code gradScale * meanLoss} accumulate
     * into the parameters' grads. {@code rngOffset} selects the dropout masks (deterministic per
     * iteration and micro-batch, so a resumed run repeats them).
     */
    LossResult forwardBackward(MicroBatch batch, float gradScale, long rngOffset);

    /** Forward only, without dropout and without gradients (evaluation). */
    LossResult forwardLoss(MicroBatch batch);

    /** Sets every gradient to zero before an iteration's micro-batches accumulate. */
    default void zeroGrad() {
        for (Parameter p : parameters()) {
            p.zeroGrad();
        }
    }
}
