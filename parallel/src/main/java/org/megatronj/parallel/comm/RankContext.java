package org.megatronj.parallel.comm;

import org.megatronj.parallel.ParallelState;

/** What a rank thread of {@link LocalWorld} gets: its place in the layout and its communicators. */
public record RankContext(ParallelState state, ProcessGroups groups) {

    public int rank() {
        return state.rank();
    }

    public int worldSize() {
        return state.worldSize();
    }

    /** "rank 5 (tp 1, pp 0, dp 2)". */
    public String describe() {
        return state.describe();
    }
}
