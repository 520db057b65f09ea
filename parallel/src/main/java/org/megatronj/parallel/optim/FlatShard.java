package org.megatronj.parallel.optim;

import java.util.ArrayList;
import java.util.List;
import org.megatronj.model.Parameter;
import org.megatronj.model.ParameterStore;

/**
 * One data-parallel rank's share of a model's flat parameter store under the distributed
 * optimizer, as Megatron shards each gradient bucket: bucket {@code [a, b)} gives rank r the
 * range {@code [a + r (b-a)/DP, a + (r+1) (b-a)/DP)}. The rank keeps the optimizer state of these
 * ranges back to back ({@code stateOffset}), and {@code segments} are the pieces of parameters
 * inside them (padding between parameters belongs to no segment).
 */
public record FlatShard(List<Range> ranges, List<Segment> segments) {

    /** Store elements {@code [start, end)}, whose state starts at {@code stateOffset} of the rank's shard state. */
    public record Range(long start, long end, long stateOffset) {
        public long numel() {
            return end - start;
        }
    }

    /** Elements {@code [from, to)} of {@code parameter} (offsets within it), with state at {@code stateOffset}. */
    public record Segment(Parameter parameter, long from, long to, long stateOffset) {
        public long numel() {
            return to - from;
        }
    }

    /** Rank {@code rank}'s shard of one bucket covering the whole store. */
    public static FlatShard of(ParameterStore store, int rank, int ranks) {
        return of(store, GradBuckets.single(store), rank, ranks);
    }

    /** Rank {@code rank}'s share of every bucket. */
    public static FlatShard of(ParameterStore store, GradBuckets buckets, int rank, int ranks) {
        List<Range> ranges = new ArrayList<>();
        long state = 0;
        for (GradBuckets.Bucket b : buckets.buckets()) {
            if (b.numel() % ranks != 0) {
                throw new IllegalArgumentException("gradient bucket [" + b.start() + ", " + b.end() + ") of " + b.numel()
                        + " elements does not split into " + ranks + " equal shards: build the model with dataParallelSize = "
                        + ranks);
            }
            long size = b.numel() / ranks;
            ranges.add(new Range(b.start() + rank * size, b.start() + (rank + 1) * size, state));
            state += size;
        }
        List<Segment> segments = new ArrayList<>();
        for (Parameter p : store.parameters()) {
            long offset = store.offset(p.name());
            for (Range r : ranges) {
                long from = Math.max(r.start(), offset);
                long to = Math.min(r.end(), offset + p.numel());
                if (from < to) {
                    segments.add(new Segment(p, from - offset, to - offset, r.stateOffset() + from - r.start()));
                }
            }
        }
        return new FlatShard(List.copyOf(ranges), List.copyOf(segments));
    }

    /** Elements of state this rank keeps. */
    public long numel() {
        long n = 0;
        for (Range r : ranges) {
            n += r.numel();
        }
        return n;
    }
}
