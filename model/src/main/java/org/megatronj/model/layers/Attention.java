package org.megatronj.model.layers;

import org.megatronj.memory.Tensor;

/**
 * What a transformer layer runs after {@code input_layernorm}: Megatron-core's standard {@link SelfAttention} or its
 * {@link MultiLatentAttention} (both are the layer's {@code self_attention}).
 */
public interface Attention {

    /**
     * x {@code [s, b, h]} (input_layernorm's output, all-gathered under sequence parallelism) -> out {@code [s, b, h]},
     * or this rank's {@code [s/t, b, h]} rows under sequence parallelism (written). With a {@code residual} (not under
     * sequence parallelism) {@code out = residual + attention(x)}. With a {@code cache} the new keys and values land in
     * its rows {@code [start, start + s)} and the queries attend to rows {@code [0, start + s)}. {@code probsKey}: the
     * attention-probabilities dropout key, null = none; {@code keyStarts}: documents, null = none.
     */
    void forward(Tensor x, Tensor residual, Tensor out, LayerActivations a, Workspace ws, KvSlot cache, int start,
                 DropoutKey probsKey, Tensor keyStarts);

    /**
     * dOut (shaped as the forward's out) -> dx {@code [s, b, h]} ({@code [s/t, b, h]} under sequence parallelism,
     * written) from the saved activations; parameter gradients accumulate. x is the forward's input.
     */
    void backward(Tensor dOut, Tensor x, Tensor dx, LayerActivations a, Workspace ws, DropoutKey probsKey,
                  Tensor keyStarts);

    /** linear_proj, the layer writing into the residual stream. */
    Linear linearProj();
}
