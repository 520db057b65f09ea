package org.megatronj.model;

import org.megatronj.memory.Tensor;

/**
 * A model weight and its fp32 main gradient. The gradient accumulates ({@code +=}) across
 * micro-batches until the trainer zeroes it after the optimizer step.
 *
 * <p>{@link #data()} is the F32 main parameter (what the optimizer updates and checkpoints
 * keep); {@link #compute()} is what the layers read: the same tensor in fp32, a BF16/F16 copy
 * with mixed precision ({@link Precision}), refreshed from the main parameter after each
 * optimizer step ({@link ParameterStore#refreshComputeWeights}).
 *
 * <p>Names are Megatron-core's state-dict names (e.g.
 * {@code decoder.layers.0.self_attention.linear_qkv.weight}), so checkpoints line up.
 */
public final class Parameter {
    private final String name;
    private final Tensor data;
    private final Tensor compute;
    private final Tensor grad;
    private final boolean weightDecay;

    /**
     * @param weightDecay false for biases and norm weights (Megatron's default no-decay rule:
     *                    1-D parameters are excluded from weight decay)
     */
    public Parameter(String name, Tensor data, Tensor grad, boolean weightDecay) {
        this(name, data, data, grad, weightDecay);
    }

    /** A parameter whose layers compute with {@code compute} (a 16-bit copy of {@code data}, same shape). */
    public Parameter(String name, Tensor data, Tensor compute, Tensor grad, boolean weightDecay) {
        if (data.numel() != grad.numel() || data.numel() != compute.numel()) {
            throw new IllegalArgumentException("parameter " + name + ": data " + data + ", compute " + compute + " and grad "
                    + grad + " differ in size");
        }
        this.name = name;
        this.data = data;
        this.compute = compute;
        this.grad = grad;
        this.weightDecay = weightDecay;
    }

    public String name() {
        return name;
    }

    /** The F32 main weight: what the optimizer updates, checkpoints save and initialisation writes. */
    public Tensor data() {
        return data;
    }

    /** The weight the layers compute with: {@link #data()} in fp32, its BF16/F16 copy with mixed precision. */
    public Tensor compute() {
        return compute;
    }

    /** The F32 main gradient, same shape as {@link #data()}. */
    public Tensor grad() {
        return grad;
    }

    public boolean weightDecay() {
        return weightDecay;
    }

    public long numel() {
        return data.numel();
    }

    /** Sets the gradient to zero (host or device). */
    public void zeroGrad() {
        if (grad.device().isHost()) {
            grad.segment().fill((byte) 0);
        } else {
            throw new IllegalStateException("parameter " + name + ": zeroGrad of a device gradient needs its backend; "
                    + "use GPTModel.zeroGrad()");
        }
    }

    @Override
    public String toString() {
        return "Parameter[" + name + " " + Tensor.shapeString(data.shape()) + (weightDecay ? "" : ", no decay") + "]";
    }
}
