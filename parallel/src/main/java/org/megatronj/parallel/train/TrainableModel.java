package org.megatronj.parallel.train;

import org.megatronj.model.LossResult;
import org.megatronj.model.MicroBatch;
import org.megatronj.model.Parameter;
import org.megatronj.model.PhaseTimers;

import java.util.List;
import java.util.Map;
import java.util.function.IntFunction;

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

    /**
     * True when the model runs an iteration's micro-batches together ({@link #forwardBackwardAll}):
     * a pipeline schedule interleaves them, and data-parallel ranks each take their share.
     */
    default boolean schedulesMicroBatches() {
        return false;
    }

    /**
     * Forward and backward of all micro-batches of one iteration (the whole global batch; the model
     * decides which rank runs which), the gradients of each micro-batch's {@code gradScales[j] * meanLoss}
     * accumulating (the trainer's {@code lossScale / batches.size()}: Megatron divides each micro-batch's
     * loss by the number of micro-batches, then multiplies by the loss scale; or token-weighted with
     * {@code --calculate-per-token-loss}). A parallel model also completes the gradients' reduction over its
     * ranks before returning (Megatron's {@code finalize_model_grads}). Returns the unscaled loss summed over
     * the global batch. By default one after another.
     */
    default LossResult forwardBackwardAll(List<MicroBatch> batches, float[] gradScales, long[] rngOffsets) {
        LossResult total = new LossResult(0, 0);
        for (int j = 0; j < batches.size(); j++) {
            total = total.plus(forwardBackward(batches.get(j), gradScales[j], rngOffsets[j]));
        }
        return total;
    }

    /** Forward only over all micro-batches of a global batch; the loss summed over them. */
    default LossResult forwardLossAll(List<MicroBatch> batches) {
        LossResult total = new LossResult(0, 0);
        for (MicroBatch b : batches) {
            total = total.plus(forwardLoss(b));
        }
        return total;
    }

    /**
     * Called after a checkpoint load wrote the main weights: a mixed-precision model casts them
     * into its compute copy. Nothing to do in fp32.
     */
    default void refreshComputeWeights() {
    }

    /**
     * Where the model reports the parts of its step that Megatron times: {@code atLevel} gives the
     * trainer's timers of a timing level (forward-compute and the pipeline's sends and receives are
     * level 2, all-grads-sync level 1). Ignored by default.
     */
    default void setPhaseTimers(IntFunction<PhaseTimers> atLevel) {
    }

    /**
     * Megatron's {@code MoEAuxLossAutoScaler.set_loss_scale}: the gradient scale of the mixture-of-experts auxiliary
     * losses in the coming iteration (the loss scale over the micro-batches). Nothing to do for a dense model.
     */
    default void setMoeAuxLossScale(float scale) {
    }

    /**
     * The mixture-of-experts auxiliary losses of the iteration just run, as Megatron logs them (name to value: over
     * the ranks, scaled by 1 / {@code microBatches}, averaged over the MoE layers; {@link
     * org.megatronj.model.MoeMetrics}); empty for a dense model.
     */
    default org.megatronj.model.MoeMetrics.Report takeMoeMetrics(int microBatches) {
        return org.megatronj.model.MoeMetrics.Report.NONE;
    }

    /**
     * After an iteration's forward and backward, before the optimizer: {@code --moe-router-enable-expert-bias} moves the
     * MoE routers' biases by the tokens their experts received (Megatron does it in {@code finalize_model_grads}). A
     * parallel model does it in {@link #forwardBackwardAll}; nothing to do for a dense model.
     */
    default void updateMoeExpertBias() {
    }

    /** Sets every gradient to zero before an iteration's micro-batches accumulate. */
    default void zeroGrad() {
        for (Parameter p : parameters()) {
            p.zeroGrad();
        }
    }

    /**
     * The element-wise maximum of {@code values} over the ranks that train this model together
     * (a collective; the trainer's timers report their min and max across ranks with it). One
     * rank: the values themselves.
     */
    default double[] maxOverRanks(double[] values) {
        return values;
    }

    /**
     * The parameters whose values differ between data-parallel replicas (Megatron's weight-hash check; a collective over
     * the replicas). One replica: none.
     */
    default List<String> parametersDifferingAcrossDataParallel() {
        return List.of();
    }

    /** Every rank's {@code values}, by global rank (a collective, as {@link #maxOverRanks}). One rank: its own. */
    default double[][] gatherOverRanks(double[] values) {
        return new double[][] {values};
    }
}
