package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.Backend.Activation;
import org.megatronj.memory.Tensor;
import org.megatronj.model.Parameter;
import org.megatronj.model.parallel.TensorParallelGroup;

/**
 * Megatron-core's {@code RowParallelLinear} with {@code input_is_parallel=True}: this rank holds
 * columns {@code [r in/t, (r+1) in/t)} of the weight and multiplies its slice of the input
 * features; the partial outputs are summed over the TP group
 * ({@code reduce_from_tensor_model_parallel_region}) and the whole bias is added after the sum.
 * Under sequence parallelism the sum is a reduce-scatter along the sequence
 * ({@code reduce_scatter_to_sequence_parallel_region}) and backward all-gathers the gradient.
 */
public final class RowParallelLinear extends Linear {
    private final TensorParallelGroup tp;
    private final boolean sequenceParallel;

    public RowParallelLinear(Backend backend, Parameter weight, Parameter bias, TensorParallelGroup tp,
                             boolean sequenceParallel) {
        super(backend, weight, bias);
        this.tp = tp;
        this.sequenceParallel = sequenceParallel;
    }

    @Override
    public boolean sequenceParallel() {
        return sequenceParallel;
    }

    /**
     * x {@code [..., in/t]} -> y {@code [..., out]} = sum over ranks of x W_r^T, plus the bias: the
     * bias and any activation follow the sum, so they are not fused into the GEMM here.
     */
    @Override
    public void forward(Tensor x, Tensor y, Activation activation, Tensor preActivation) {
        if (sequenceParallel) {
            throw new IllegalStateException(weight.name() + " is sequence-parallel: use forwardSequenceParallel");
        }
        noActivation(activation);
        Tensor y2 = y.reshape(-1, outFeatures());
        backend.gemm(false, true, 1f, x.reshape(-1, inFeatures()), weight.compute(), 0f, y2);
        tp.allReduceSum(y);
        if (bias != null) {
            backend.biasAdd(y2, bias.compute());
        }
    }

    /** The sum over ranks and the bias come between the product and the residual: {@link #forward}, then the add. */
    @Override
    public void forwardAdd(Tensor x, Tensor residual, Tensor y) {
        forward(x, y);
        backend.add(y, residual, y);
    }

    private void noActivation(Activation activation) {
        if (activation != Activation.NONE) {
            throw new IllegalArgumentException(weight.name() + " is row-parallel: its output is summed over the ranks "
                    + "before the bias, so an activation cannot be fused (got " + activation + ")");
        }
    }

    /**
     * Sequence-parallel forward: the partial product lands in {@code yFull [s, b, out]} (scratch);
     * {@code yShard [s/t, b, out]} gets this rank's rows of the sum, plus the bias.
     */
    public void forwardSequenceParallel(Tensor x, Tensor yFull, Tensor yShard) {
        backend.gemm(false, true, 1f, x.reshape(-1, inFeatures()), weight.compute(), 0f, yFull.reshape(-1, outFeatures()));
        tp.reduceScatterFirstDim(yFull, yShard);
        if (bias != null) {
            backend.biasAdd(yShard.reshape(-1, outFeatures()), bias.compute());
        }
    }

    /** {@link #backwardSequenceParallel(Tensor, Tensor, Tensor, Tensor, Activation, Tensor)} of an input without activation. */
    public void backwardSequenceParallel(Tensor dyShard, Tensor dyFull, Tensor x, Tensor dx) {
        backwardSequenceParallel(dyShard, dyFull, x, dx, Activation.NONE, null);
    }

    /**
     * Sequence-parallel backward: {@code dyFull [s, b, out]} (scratch) becomes the all-gather of
     * the ranks' {@code dyShard}; the bias gradient accumulates from this rank's rows only (a
     * partial sum that the sequence-parallel gradient all-reduce completes); dW and dx as usual,
     * dx the gradient of {@code inputPreActivation} when the input was its activation (this rank's
     * slice of fc1's gelu: the derivative is local).
     */
    public void backwardSequenceParallel(Tensor dyShard, Tensor dyFull, Tensor x, Tensor dx, Activation inputActivation,
                                         Tensor inputPreActivation) {
        if (bias != null) {
            backend.biasBackward(dyShard.reshape(-1, outFeatures()), bias.grad());
        }
        tp.allGatherFirstDim(dyShard, dyFull);
        Tensor dy2 = dyFull.reshape(-1, outFeatures());
        backend.linearWgrad(dy2, x.reshape(-1, inFeatures()), weight.grad(), null);
        if (dx != null) {
            backend.linearDgrad(dy2, weight.compute(), inputActivation,
                    inputPreActivation == null ? null : inputPreActivation.reshape(-1, inFeatures()),
                    dx.reshape(-1, inFeatures()));
        }
    }
}
