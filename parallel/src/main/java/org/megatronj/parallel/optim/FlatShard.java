package org.megatronj.parallel.optim;

import java.util.ArrayList;
import java.util.List;
import org.megatronj.model.Parameter;
import org.megatronj.model.ParameterStore;

/**
 * One data-parallel rank's piece of a model's flat parameter store, {@code [start, end)} in
 * elements (Megatron's distributed-optimizer shard of a grad buffer), and the parts of
 * parameters that fall inside it. The store is padded to split evenly (see
 * {@link ParameterStore#ParameterStore(org.megatronj.memory.Backend, java.util.List, int)}).
 *
 * @param segments the pieces of parameters inside the shard, in store order
 */
public record FlatShard(long start, long end, List<Segment> segments) {

    /** Elements {@code [from, to)} of {@code parameter} (offsets within the parameter) lie in the shard. */
    public record Segment(Parameter parameter, long from, long to) {
        public long numel() {
            return to - from;
        }
    }

    /** Rank {@code rank}'s shard of {@code store} among {@code ranks} equal shards. */
    public static FlatShard of(ParameterStore store, int rank, int ranks) {
        long total = store.flatData().numel();
        if (total % ranks != 0) {
            throw new IllegalArgumentException("the flat parameter store (" + total + " elements) does not split into " + ranks
                    + " equal shards: build the model with dataParallelSize = " + ranks);
        }
        long size = total / ranks;
        long start = rank * size;
        long end = start + size;
        List<Segment> segments = new ArrayList<>();
        for (Parameter p : store.parameters()) {
            long offset = store.offset(p.name());
            long from = Math.max(start, offset);
            long to = Math.min(end, offset + p.numel());
            if (from < to) {
                segments.add(new Segment(p, from - offset, to - offset));
            }
        }
        return new FlatShard(start, end, List.copyOf(segments));
    }

    public long numel() {
        return end - start;
    }
}
