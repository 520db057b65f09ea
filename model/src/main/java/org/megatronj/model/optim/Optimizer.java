package org.megatronj.model.optim;

import org.megatronj.memory.Tensor;
import org.megatronj.model.Parameter;

import java.util.Map;

/** An optimizer over the fp32 gradients of a list of parameters. */
public interface Optimizer {
    /** One update of every parameter from its current gradient, at learning rate {@code lr}. */
    void step(float lr);

    /** The state to checkpoint, by stable names ({@code <parameter>.exp_avg}, ...); restored by writing into them. */
    Map<String, Tensor> stateTensors();

    /** Steps taken so far (Adam's bias correction uses it). */
    long stepCount();

    void setStepCount(long steps);

    /**
     * The weight decay of the next steps for the parameters that decay ({@code --start-weight-decay} to
     * {@code --end-weight-decay} as the scheduler moves it; others stay at 0).
     */
    void setWeightDecay(float weightDecay);

    /**
     * {@code --decoupled-lr}: the learning rate of the next steps for {@link #isEmbeddingOrOutput} parameters (NaN: the
     * step's own, the default).
     */
    void setDecoupledLr(float lr);

    /** {@code weightDecay} when it is a weight decay (>= 0), else an error saying so. */
    static float checkedWeightDecay(float weightDecay) {
        if (!(weightDecay >= 0)) {
            throw new IllegalArgumentException("weight decay must be >= 0, got " + weightDecay);
        }
        return weightDecay;
    }

    /** The word embedding and the output layer: the parameters --decoupled-lr applies to (Megatron's is_embedding_or_output_parameter). */
    static boolean isEmbeddingOrOutput(Parameter p) {
        return p.name().equals("embedding.word_embeddings.weight") || p.name().equals("output_layer.weight");
    }
}
