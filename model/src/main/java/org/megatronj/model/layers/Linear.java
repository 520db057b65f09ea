package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.Backend.Activation;
import org.megatronj.memory.Tensor;
import org.megatronj.model.Parameter;

/**
 * {@code y = x W^T + b} with Megatron's {@code [out, in]} weight (torch.nn.Linear layout).
 * The tensor-parallel forms add their communication around the same local GEMMs:
 * {@link ColumnParallelLinear} and {@link RowParallelLinear}.
 *
 * <p>Gradients: {@code dx} is written ({@code =}); {@code dW} and {@code db} accumulate ({@code +=}).
 */
public sealed class Linear permits ColumnParallelLinear, RowParallelLinear {
    final Backend backend;
    final Parameter weight;   // [out, in]
    final Parameter bias;     // [out] or null without bias

    public Linear(Backend backend, Parameter weight, Parameter bias) {
        if (weight.data().rank() != 2) {
            throw new IllegalArgumentException("linear " + weight.name() + ": weight must be 2-D [out, in], got " + weight.data());
        }
        if (bias != null && bias.numel() != weight.data().dim(0)) {
            throw new IllegalArgumentException("linear " + weight.name() + ": bias " + bias.data() + " does not match "
                    + weight.data().dim(0) + " outputs");
        }
        this.backend = backend;
        this.weight = weight;
        this.bias = bias;
    }

    public Parameter weight() {
        return weight;
    }

    /** The bias, or null. */
    public Parameter bias() {
        return bias;
    }

    /** True for a tensor-parallel layer whose activations outside the TP region are split along the sequence. */
    public boolean sequenceParallel() {
        return false;
    }

    public int inFeatures() {
        return (int) weight.data().dim(1);
    }

    public int outFeatures() {
        return (int) weight.data().dim(0);
    }

    /** x {@code [..., in]} -> y {@code [..., out]} (written). */
    public void forward(Tensor x, Tensor y) {
        forward(x, y, Activation.NONE, null);
    }

    /**
     * {@code y = act(x W^T + b)}, x {@code [..., in]} -> y {@code [..., out]} (written); with an
     * activation, {@code preActivation} {@code [..., out]} receives {@code x W^T + b} for the
     * backward. One op ({@link Backend#linearForward}): on a GPU the bias and gelu run in the GEMM's
     * epilogue.
     */
    public void forward(Tensor x, Tensor y, Activation activation, Tensor preActivation) {
        Tensor x2 = x.reshape(-1, inFeatures());      // [n, in]
        Tensor y2 = y.reshape(-1, outFeatures());     // [n, out]
        backend.linearForward(x2, weight.compute(), bias == null ? null : bias.compute(), activation, y2,
                preActivation == null ? null : preActivation.reshape(-1, outFeatures()));
    }

    /**
     * {@code y = residual + x W^T + b} (y written, residual {@code [..., out]} another tensor): the layer
     * feeding a residual stream, one op ({@link Backend#linearForwardAdd}; on a GPU the residual is the
     * GEMM's C operand).
     */
    public void forwardAdd(Tensor x, Tensor residual, Tensor y) {
        backend.linearForwardAdd(x.reshape(-1, inFeatures()), weight.compute(), bias == null ? null : bias.compute(),
                residual.reshape(-1, outFeatures()), y.reshape(-1, outFeatures()));
    }

    /** From dy {@code [..., out]} and the forward input x: dW, db accumulate; dx {@code [..., in]} written unless null. */
    public void backward(Tensor dy, Tensor x, Tensor dx) {
        backward(dy, x, dx, Activation.NONE, null);
    }

    /**
     * As {@link #backward(Tensor, Tensor, Tensor)} for an input that was {@code x = act(inputPreActivation)}
     * (the previous layer's activation, e.g. fc2 after fc1's gelu): dx is then the gradient of
     * inputPreActivation, {@code (dy W) * act'(inputPreActivation)}, in one op
     * ({@link Backend#linearDgrad}: the DGELU epilogue on a GPU).
     */
    public void backward(Tensor dy, Tensor x, Tensor dx, Activation inputActivation, Tensor inputPreActivation) {
        Tensor dy2 = dy.reshape(-1, outFeatures());   // [n, out]
        // dW[out, in] += dy^T x; db += sum of dy's rows
        backend.linearWgrad(dy2, x.reshape(-1, inFeatures()), weight.grad(), bias == null ? null : bias.grad());
        if (dx != null) {
            backend.linearDgrad(dy2, weight.compute(), inputActivation,                   // dx = dy W (* act'(pre))
                    inputPreActivation == null ? null : inputPreActivation.reshape(-1, inFeatures()),
                    dx.reshape(-1, inFeatures()));
        }
    }
}
