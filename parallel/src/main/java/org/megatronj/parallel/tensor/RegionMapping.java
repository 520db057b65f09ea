package org.megatronj.parallel.tensor;

/**
 * A communication step between a tensor-parallel region and the rest of the model, with its
 * backward conjugate: Megatron-core's {@code autograd.Function}s of {@code mappings.py} written as
 * explicit forward/backward, as every layer here is. Outputs are allocated by the caller (shapes
 * from {@link #outputShape}); the gradient of the input is written ({@code =}), never accumulated.
 */
public interface RegionMapping {

    /** Megatron's name, e.g. "copyToTensorParallelRegion". */
    String name();

    /** The output shape for an input of shape {@code inputShape} (the gradient input has the input's shape). */
    long[] outputShape(long[] inputShape);

    /** {@code output = f(input)}. Identity mappings accept output == input. */
    void forward(org.megatronj.memory.Tensor input, org.megatronj.memory.Tensor output);

    /** {@code gradInput = f'(gradOutput)}: the conjugate communication. Identity mappings accept gradInput == gradOutput. */
    void backward(org.megatronj.memory.Tensor gradOutput, org.megatronj.memory.Tensor gradInput);
}
