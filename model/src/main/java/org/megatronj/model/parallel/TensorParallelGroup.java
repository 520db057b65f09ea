package org.megatronj.model.parallel;

import org.megatronj.memory.Tensor;

/**
 * The tensor-parallel group as the model layers see it: the collectives that Megatron-core's
 * {@code tensor_parallel} layers issue, over this rank's TP group. The model module only depends
 * on this interface; the {@code parallel} module adapts its communicators to it, and
 * {@link #single()} is the one-rank group in which every collective is the identity.
 *
 * <p>Tensors are contiguous and sequence-first ({@code [s, b, ...]}): "first dim" is the sequence.
 * Sums are taken in rank order so that results are reproducible.
 */
public interface TensorParallelGroup {

    int size();

    /** This rank's index in the group, 0 &le; rank &lt; size. */
    int rank();

    /** In place: every member's tensor becomes the elementwise sum over the group. */
    void allReduceSum(Tensor tensor);

    /** In place: every member's tensor becomes the elementwise maximum over the group. */
    void allReduceMax(Tensor tensor);

    /** {@code output [t*s, ...]} = the members' {@code input [s, ...]} stacked in rank order. */
    void allGatherFirstDim(Tensor input, Tensor output);

    /** {@code output [s/t, ...]} = this rank's rows of the sum over the group of {@code input [s, ...]}. */
    void reduceScatterFirstDim(Tensor input, Tensor output);

    /** "tp 1 of 4" (for error messages). */
    default String describe() {
        return "tp " + rank() + " of " + size();
    }

    /** The group of one rank: no communication at all. */
    static TensorParallelGroup single() {
        return Single.INSTANCE;
    }

    /** One rank: the collectives have nothing to combine. */
    enum Single implements TensorParallelGroup {
        INSTANCE;

        @Override
        public int size() {
            return 1;
        }

        @Override
        public int rank() {
            return 0;
        }

        @Override
        public void allReduceSum(Tensor tensor) {
        }

        @Override
        public void allReduceMax(Tensor tensor) {
        }

        @Override
        public void allGatherFirstDim(Tensor input, Tensor output) {
            throw new IllegalStateException("allGatherFirstDim on a one-rank group: the caller must use the input itself");
        }

        @Override
        public void reduceScatterFirstDim(Tensor input, Tensor output) {
            throw new IllegalStateException("reduceScatterFirstDim on a one-rank group: the caller must use the input itself");
        }
    }
}
