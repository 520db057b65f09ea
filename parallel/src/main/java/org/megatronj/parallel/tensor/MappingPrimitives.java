package org.megatronj.parallel.tensor;

import java.util.Arrays;
import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorException;
import org.megatronj.parallel.comm.Communicator;
import org.megatronj.parallel.comm.ReduceOp;

/**
 * The communication primitives of Megatron-core's {@code tensor_parallel/mappings.py}
 * ({@code _reduce}, {@code _split_along_last_dim}, ...) over a tensor-parallel group, on
 * caller-allocated {@code [s, b, h]} tensors (any rank ≥ 1: "first dim" is dim 0, "last dim" the
 * last). With a group of one rank each is a copy (none at all when input and output are the same
 * tensor). Package-private: layers use the conjugate pairs of {@link TensorParallelMappings}.
 */
final class MappingPrimitives {
    private final Communicator group;
    private final Backend backend;
    private final ScratchBuffer scratch;

    MappingPrimitives(Communicator group, Backend backend, ScratchBuffer scratch) {
        this.group = group;
        this.backend = backend;
        this.scratch = scratch;
    }

    int size() {
        return group.size();
    }

    /** All-reduce (sum) of {@code input} over the group into {@code output} (which may be input itself). */
    void reduce(Tensor input, Tensor output) {
        requireShape("reduce", output, input.shape());
        copyUnlessSame(input, output);
        if (group.size() > 1) {
            group.allReduce(output, ReduceOp.SUM);
        }
    }

    /** {@code output [.., h/t]} = this rank's block of columns of {@code input [.., h]}. */
    void splitAlongLastDim(Tensor input, Tensor output) {
        long part = divide("splitAlongLastDim", input, input.rank() - 1);
        requireShape("splitAlongLastDim", output, withDim(input.shape(), input.rank() - 1, part));
        if (group.size() == 1) {
            copyUnlessSame(input, output);
            return;
        }
        ColumnBlocks.copy("splitAlongLastDim", input, group.rank() * part, output, 0, part);
    }

    /** {@code output [s/t, ..]} = this rank's block of rows of {@code input [s, ..]}. */
    void splitAlongFirstDim(Tensor input, Tensor output) {
        long part = divide("splitAlongFirstDim", input, 0);
        requireShape("splitAlongFirstDim", output, withDim(input.shape(), 0, part));
        Tensor mine = input.view(group.rank() * part, (group.rank() + 1) * part);
        copyUnlessSame(mine, output);
    }

    /** {@code output [.., t*h]} = the ranks' {@code input [.., h]} side by side, in rank order. */
    void gatherAlongLastDim(Tensor input, Tensor output) {
        int last = input.rank() - 1;
        long part = input.dim(last);
        requireShape("gatherAlongLastDim", output, withDim(input.shape(), last, part * group.size()));
        if (group.size() == 1) {
            copyUnlessSame(input, output);
            return;
        }
        // all-gather stacks the inputs along a new first dim; then each block moves to its columns
        long[] stackedShape = new long[input.rank() + 1];
        stackedShape[0] = group.size();
        System.arraycopy(input.shape(), 0, stackedShape, 1, input.rank());
        Tensor stacked = scratch.get(backend, input.dtype(), stackedShape);
        group.allGather(input, stacked);
        for (int k = 0; k < group.size(); k++) {
            ColumnBlocks.copy("gatherAlongLastDim", stacked.select(k), 0, output, k * part, part);
        }
    }

    /** {@code output [t*s, ..]} = the ranks' {@code input [s, ..]} stacked in rank order. */
    void gatherAlongFirstDim(Tensor input, Tensor output) {
        requireShape("gatherAlongFirstDim", output, withDim(input.shape(), 0, input.dim(0) * group.size()));
        if (group.size() == 1) {
            copyUnlessSame(input, output);
            return;
        }
        group.allGather(input, output);
    }

    /** {@code output [s/t, ..]} = this rank's block of rows of the sum over the group of {@code input [s, ..]}. */
    void reduceScatterAlongFirstDim(Tensor input, Tensor output) {
        long part = divide("reduceScatterAlongFirstDim", input, 0);
        requireShape("reduceScatterAlongFirstDim", output, withDim(input.shape(), 0, part));
        if (group.size() == 1) {
            copyUnlessSame(input, output);
            return;
        }
        group.reduceScatter(input, output, ReduceOp.SUM);
    }

    // ---------------------------------------------------------------- helpers

    void copyUnlessSame(Tensor input, Tensor output) {
        if (input.address() != output.address() || input.device() != output.device()) {
            backend.copy(input, output);
        }
    }

    private long divide(String op, Tensor t, int dim) {
        if (t.rank() == 0 || t.dim(dim) % group.size() != 0) {
            throw new TensorException(op + " at " + group.describeMember(group.rank()) + ": dimension " + dim + " of " + t
                    + " is not divisible by the tensor-parallel size " + group.size());
        }
        return t.dim(dim) / group.size();
    }

    static long[] withDim(long[] shape, int dim, long value) {
        long[] s = shape.clone();
        s[dim] = value;
        return s;
    }

    private void requireShape(String op, Tensor t, long[] expected) {
        if (!Arrays.equals(t.shape(), expected)) {
            throw new TensorException(op + " at " + group.describeMember(group.rank()) + ": output is " + t
                    + ", expected shape " + Tensor.shapeString(expected));
        }
    }
}
