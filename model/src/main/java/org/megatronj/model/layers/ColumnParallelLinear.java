package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.Backend.Activation;
import org.megatronj.memory.Tensor;
import org.megatronj.model.Parameter;
import org.megatronj.model.parallel.TensorParallelGroup;

/**
 * Megatron-core's {@code ColumnParallelLinear} with {@code gather_output=False}: this rank holds
 * rows {@code [r out/t, (r+1) out/t)} of the weight (and bias) and produces that slice of the
 * output features. The input is the whole activation, so its gradient is a per-rank partial sum:
 * backward all-reduces it over the TP group ({@code copy_to_tensor_model_parallel_region}).
 * Under sequence parallelism the input arrives split along the sequence: it is all-gathered first
 * and its gradient reduce-scattered ({@code gather_from_sequence_parallel_region}). The gather is
 * done once per norm output by {@link TransformerLayer} (the gathered input is kept for the weight
 * gradient), so forward is the local GEMM in both cases.
 */
public final class ColumnParallelLinear extends Linear {
    private final TensorParallelGroup tp;
    private final boolean sequenceParallel;

    public ColumnParallelLinear(Backend backend, Parameter weight, Parameter bias, TensorParallelGroup tp,
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
     * dW, db accumulate; dx {@code [..., in]} is written and summed over the TP ranks. The input is
     * the replicated activation of the layer before (a norm's output): no input activation here,
     * whose derivative would have to follow the sum.
     */
    @Override
    public void backward(Tensor dy, Tensor x, Tensor dx, Activation inputActivation, Tensor inputPreActivation) {
        if (sequenceParallel) {
            throw new IllegalStateException(weight.name() + " is sequence-parallel: use backwardSequenceParallel");
        }
        if (inputActivation != Activation.NONE) {
            throw new IllegalArgumentException(weight.name() + " is column-parallel: its input gradient is summed over "
                    + "the ranks, so an input activation's derivative cannot be fused (got " + inputActivation + ")");
        }
        super.backward(dy, x, dx, Activation.NONE, null);
        if (dx != null) {
            tp.allReduceSum(dx);
        }
    }

    /**
     * Sequence-parallel backward from the gathered input {@code xFull}: the local input gradient
     * lands in {@code dxFull [s, b, in]} (scratch) and this rank's rows of its sum over the ranks
     * in {@code dxShard [s/t, b, in]}.
     */
    public void backwardSequenceParallel(Tensor dy, Tensor xFull, Tensor dxFull, Tensor dxShard) {
        super.backward(dy, xFull, dxFull, Activation.NONE, null);
        tp.reduceScatterFirstDim(dxFull, dxShard);
    }
}
