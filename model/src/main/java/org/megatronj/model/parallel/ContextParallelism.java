package org.megatronj.model.parallel;

/**
 * How one rank's model is context-parallel ({@code --context-parallel-size}): the CP group that splits every
 * sequence, and which parts of the sequence this rank holds. A sequence of S positions is cut into
 * {@code 2 C} equal chunks; rank r holds chunks {@code r} and {@code 2C - 1 - r}, in that order, so under the
 * causal mask every rank attends to the same number of keys (Megatron's {@code get_batch_on_this_cp_rank}).
 * {@link #none()} is the model without context parallelism (C = 1: the one rank holds the two halves, in order).
 *
 * <p>The group is seen through the model's sequence-first collectives ({@link TensorParallelGroup}, whose
 * all-gather and reduce-scatter along the first dimension are what the attention needs), over the CP ranks.
 */
public record ContextParallelism(TensorParallelGroup group) {

    /** Local chunks per rank: the load-balancing pair. */
    public static final int LOCAL_CHUNKS = 2;

    public ContextParallelism {
        if (group == null) {
            throw new IllegalArgumentException("context-parallel group must not be null (use ContextParallelism.none())");
        }
    }

    public static ContextParallelism none() {
        return new ContextParallelism(TensorParallelGroup.single());
    }

    public int size() {
        return group.size();
    }

    public int rank() {
        return group.rank();
    }

    /** True when sequences are split over more than one rank. */
    public boolean active() {
        return group.size() > 1;
    }

    /** The global chunk index (of {@code 2 C}) of this rank's local chunk {@code local} (0 or 1). */
    public int globalChunk(int local) {
        return globalChunk(rank(), size(), local);
    }

    /** The global chunk index of local chunk {@code local} of CP rank {@code rank} of {@code size}. */
    public static int globalChunk(int rank, int size, int local) {
        if (local < 0 || local >= LOCAL_CHUNKS) {
            throw new IllegalArgumentException("a context-parallel rank holds chunks 0 and 1, not " + local);
        }
        return local == 0 ? rank : 2 * size - 1 - rank;
    }
}
