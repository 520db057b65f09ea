package org.megatronj.parallel.tensor;

import org.megatronj.memory.Tensor;
import org.megatronj.model.parallel.TensorParallelGroup;
import org.megatronj.parallel.comm.Communicator;
import org.megatronj.parallel.comm.ReduceOp;

/**
 * The model's view of a tensor-parallel group ({@link TensorParallelGroup}) over one of this
 * module's communicators (a rank's {@code groups().tensor()}). A group of one rank never
 * communicates.
 */
public final class CommunicatorTensorParallelGroup implements TensorParallelGroup {
    private final Communicator group;

    public CommunicatorTensorParallelGroup(Communicator group) {
        this.group = group;
    }

    /** The model-side group for {@code tensorGroup}: the no-op one-rank group when it has one member. */
    public static TensorParallelGroup of(Communicator tensorGroup) {
        return tensorGroup.size() == 1 ? TensorParallelGroup.single() : new CommunicatorTensorParallelGroup(tensorGroup);
    }

    @Override
    public int size() {
        return group.size();
    }

    @Override
    public int rank() {
        return group.rank();
    }

    @Override
    public void allReduceSum(Tensor tensor) {
        group.allReduce(tensor, ReduceOp.SUM);
    }

    @Override
    public void allReduceMax(Tensor tensor) {
        group.allReduce(tensor, ReduceOp.MAX);
    }

    @Override
    public void allGatherFirstDim(Tensor input, Tensor output) {
        group.allGather(input, output);
    }

    @Override
    public void reduceScatterFirstDim(Tensor input, Tensor output) {
        group.reduceScatter(input, output, ReduceOp.SUM);
    }

    @Override
    public String describe() {
        return group.describeMember(group.rank());
    }
}
