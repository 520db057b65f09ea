package org.megatronj.parallel.train;

import org.megatronj.memory.Tensor;

import java.util.Map;

/**
 * What the trainer needs of an optimizer: the gradient-norm clip, the update at a given learning
 * rate, and its state for checkpoints. The adapters over model/optim's AdamW and SGD live in
 * {@link GptTraining}.
 */
public interface TrainingOptimizer {
    /** {@code adam} or {@code sgd}: stored in the checkpoint so that a load with another optimizer fails clearly. */
    String name();

    /**
     * The global L2 norm of all gradients before clipping; when {@code maxNorm > 0} and the norm
     * exceeds it, the gradients are scaled by {@code maxNorm / norm} (Megatron's {@code clip_grad_norm}).
     */
    double clipGradNorm(double maxNorm);

    /** One update of every parameter from its gradient. */
    void step(double lr);

    /** Live state tensors (moments, momentum buffers) keyed by stable names; loading copies into them. */
    Map<String, Tensor> stateTensors();

    /** Updates taken so far (Adam's bias correction depends on it). */
    long stepCount();

    void setStepCount(long steps);
}
