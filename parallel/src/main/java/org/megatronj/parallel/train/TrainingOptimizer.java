package org.megatronj.parallel.train;

import org.megatronj.memory.Tensor;
import org.megatronj.model.optim.LossScaler;

import java.util.Map;

/**
 * What the trainer needs of an optimizer: the loss scaler and the unscale/inf check of mixed
 * precision, the gradient-norm clip, the update at a given learning rate, and its state for
 * checkpoints. The trainer calls, per iteration after backward: {@link #unscaleAndCheckForInfOrNan}
 * (only with a {@link #lossScaler()}), then unless that found inf/NaN {@link #clipGradNorm} and
 * {@link #step} (Megatron's {@code MixedPrecisionOptimizer.step}). The adapters over model/optim's
 * AdamW and SGD live in {@link GptTraining}.
 */
public interface TrainingOptimizer {
    /** {@code adam} or {@code sgd}: stored in the checkpoint so that a load with another optimizer fails clearly. */
    String name();

    /**
     * The global L2 norm of all gradients before clipping; when {@code maxNorm > 0} and the norm
     * exceeds it, the gradients are scaled by {@code maxNorm / norm} (Megatron's {@code clip_grad_norm}),
     * here or, folded into its pass over the parameters, by the {@link #step} that follows: nothing
     * may read the gradients in between.
     */
    double clipGradNorm(double maxNorm);

    /**
     * One update of every parameter from its gradient; with mixed precision the model's compute
     * copy of the weights is refreshed from the updated main weights before this returns.
     */
    void step(double lr);

    /**
     * Megatron's {@code grad_scaler}: a {@link LossScaler} whose scale the trainer multiplies the
     * loss by before backward and reports each iteration's inf/NaN outcome to, or null (fp32, and
     * bf16 without {@code --loss-scale}): no scaling and no inf check.
     */
    default LossScaler lossScaler() {
        return null;
    }

    /**
     * Megatron's {@code _unscale_main_grads_and_check_for_nan}: multiplies the main gradients this
     * optimizer uses by {@code inverseScale} and returns true when any of them, on any rank of a
     * parallel run (so that all ranks skip together), is inf or NaN. Called once per iteration
     * after backward, only when {@link #lossScaler()} is not null.
     */
    default boolean unscaleAndCheckForInfOrNan(float inverseScale) {
        throw new UnsupportedOperationException(name() + " optimizer has no loss scaling");
    }

    /**
     * Megatron's {@code calc_params_l2_norm} ({@code --log-params-norm}): the L2 norm of the fp32 (main) parameters
     * over every rank, each element once; a collective in a parallel run. NaN where not provided.
     */
    default double paramsNorm() {
        return Double.NaN;
    }

    /**
     * Megatron's {@code count_zeros_fp32} ({@code --log-num-zeros-in-grad}): the main-gradient elements that are zero,
     * each counted once over every rank; a collective in a parallel run. Called after {@link #clipGradNorm}.
     */
    long zerosInGradients();

    /** The weight decay of the next steps (Megatron's scheduler sets it with {@code --weight-decay-incr-style}). */
    void setWeightDecay(double weightDecay);

    /** The word embedding's and output layer's learning rate of the next steps ({@code --decoupled-lr}). */
    void setDecoupledLr(double lr);

    /** Live state tensors (moments, momentum buffers) keyed by stable names; loading copies into them. */
    Map<String, Tensor> stateTensors();

    /** Updates taken so far (Adam's bias correction depends on it). */
    long stepCount();

    void setStepCount(long steps);
}
