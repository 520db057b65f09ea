package org.megatronj.model.layers;

import org.megatronj.memory.Tensor;

/**
 * What a transformer layer runs after {@code pre_mlp_layernorm}: Megatron-core's dense {@link Mlp} or its
 * mixture-of-experts {@link MoeLayer} (both are the layer's {@code mlp}).
 */
public interface FeedForward {

    /**
     * x {@code [s, b, h]} (the all-gathered input under sequence parallelism) -> out {@code [s, b, h]}, or this rank's
     * {@code [s/t, b, h]} rows under sequence parallelism (written). With a {@code residual} (not under sequence
     * parallelism) {@code out = residual + mlp(x)}. Saves what the backward needs in {@code a}; {@code training}: the
     * forward of a training step (the mixture of experts then computes its auxiliary losses).
     */
    void forward(Tensor x, Tensor residual, Tensor out, LayerActivations a, Workspace ws, boolean training);

    /**
     * Before {@link #backward}: refills the buffers of {@code a} that selective recompute left to be shared between layers
     * ({@link LayerActivations#recompute()}) by rerunning the forward ops that wrote them, from the saved input x. Does
     * nothing when every buffer this module reads in backward is its layer's own.
     */
    void recompute(Tensor x, LayerActivations a, Workspace ws);

    /** dOut (shaped as the forward's out) -> dx (shaped as out, written); parameter gradients accumulate. */
    void backward(Tensor dOut, Tensor x, Tensor dx, LayerActivations a, Workspace ws);
}
