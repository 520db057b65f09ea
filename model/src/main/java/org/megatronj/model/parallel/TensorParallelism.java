package org.megatronj.model.parallel;

/**
 * How one rank's model shard is tensor-parallel: its TP group, and whether the activations
 * outside the tensor-parallel regions are split along the sequence ({@code --sequence-parallel}).
 * {@link #none()} is the single-rank model.
 */
public record TensorParallelism(TensorParallelGroup group, boolean sequenceParallel) {

    public TensorParallelism {
        if (group == null) {
            throw new IllegalArgumentException("tensor-parallel group must not be null (use TensorParallelGroup.single())");
        }
        if (sequenceParallel && group.size() == 1) {
            sequenceParallel = false;   // Megatron turns --sequence-parallel off when TP = 1
        }
    }

    public static TensorParallelism none() {
        return new TensorParallelism(TensorParallelGroup.single(), false);
    }

    public int size() {
        return group.size();
    }

    public int rank() {
        return group.rank();
    }
}
