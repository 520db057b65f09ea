package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
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
        Tensor x2 = x.reshape(-1, inFeatures());      // [n, in]
        Tensor y2 = y.reshape(-1, outFeatures());     // [n, out]
        backend.gemm(false, true, 1f, x2, weight.compute(), 0f, y2);
        if (bias != null) {
            backend.biasAdd(y2, bias.compute());
        }
    }

    /** From dy {@code [..., out]} and the forward input x: dW, db accumulate; dx {@code [..., in]} written unless null. */
    public void backward(Tensor dy, Tensor x, Tensor dx) {
        Tensor dy2 = dy.reshape(-1, outFeatures());   // [n, out]
        Tensor x2 = x.reshape(-1, inFeatures());      // [n, in]
        if (bias != null) {
            backend.biasBackward(dy2, bias.grad());
        }
        backend.gemm(true, false, 1f, dy2, x2, 1f, weight.grad());     // dW[out, in] += dy^T x
        if (dx != null) {
            backend.gemm(false, false, 1f, dy2, weight.compute(), 0f, dx.reshape(-1, inFeatures()));  // dx = dy W
        }
    }
}
