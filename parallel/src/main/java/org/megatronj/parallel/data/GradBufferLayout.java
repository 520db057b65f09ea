package org.megatronj.parallel.data;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Where each parameter's gradient lives in one flat fp32 buffer and how that buffer splits into
 * buckets, as Megatron's {@code _ParamAndGradBuffer} plans it. Pure arithmetic: the storage is
 * {@link GradBuffer}.
 *
 * <ul>
 *   <li>Parameters are placed in <b>reverse</b> order, roughly the order backward produces their
 *       gradients, so the first bucket fills first and its reduction starts earliest.</li>
 *   <li>A bucket is closed as soon as it holds at least {@code bucketSize} elements (a parameter is
 *       never split across buckets); no bucket size means one bucket.</li>
 *   <li>With the distributed optimizer every parameter starts on a multiple of 64 elements and every
 *       bucket ends on a multiple of lcm(DP, 128), so each bucket splits into DP equal, aligned
 *       shards for reduce-scatter; the padding is zero and never read. Without it nothing is padded.</li>
 * </ul>
 */
public final class GradBufferLayout {
    /** Megatron's alignment of a parameter's start under the distributed optimizer (128 bytes of 16-bit values). */
    public static final int PARAM_ALIGNMENT = 64;
    /** Megatron's bucket-end alignment factor besides DP (256 bytes of 16-bit values). */
    public static final int BUCKET_ALIGNMENT = 128;

    /** A parameter's slot: elements {@code [start, end)} of the flat buffer, in bucket {@code bucket}. */
    public record ParamRange(String name, long start, long end, int bucket) {
        public long numel() {
            return end - start;
        }
    }

    /**
     * A bucket: elements {@code [start, end)} of the flat buffer (padding included), of which
     * {@code numelUnpadded} hold gradients and padding between them; {@code params} in buffer order.
     */
    public record Bucket(int index, long start, long end, long numelUnpadded, List<String> params) {
        public long numel() {
            return end - start;
        }
    }

    private final List<ParamRange> ranges;
    private final Map<String, ParamRange> byName;
    private final List<Bucket> buckets;
    private final int dataParallelSize;
    private final boolean distributedOptimizer;
    private final long numel;

    private GradBufferLayout(List<ParamRange> ranges, List<Bucket> buckets, int dataParallelSize, boolean distributedOptimizer,
                             long numel) {
        this.ranges = List.copyOf(ranges);
        this.buckets = List.copyOf(buckets);
        this.dataParallelSize = dataParallelSize;
        this.distributedOptimizer = distributedOptimizer;
        this.numel = numel;
        Map<String, ParamRange> map = new HashMap<>();
        for (ParamRange r : ranges) {
            map.put(r.name(), r);
        }
        this.byName = Collections.unmodifiableMap(map);
    }

    /** Megatron's default bucket size with overlapped reduction: max(40M, 1M x DP) elements. */
    public static long defaultBucketSize(int dataParallelSize) {
        return Math.max(40_000_000L, 1_000_000L * dataParallelSize);
    }

    /**
     * Plans the buffer.
     *
     * @param params               parameters in model order (the order {@code GPTModel.parameters()} gives)
     * @param bucketSize           elements per bucket; {@code <= 0} for a single bucket
     * @param dataParallelSize     DP ranks sharing the reduction
     * @param distributedOptimizer pad for equal reduce-scatter shards
     */
    public static GradBufferLayout plan(List<ParamSpec> params, long bucketSize, int dataParallelSize, boolean distributedOptimizer) {
        if (dataParallelSize < 1) {
            throw new IllegalArgumentException("data-parallel size must be >= 1, got " + dataParallelSize);
        }
        if (params.isEmpty()) {
            throw new IllegalArgumentException("gradient buffer: no parameters");
        }
        Set<String> seen = new HashSet<>();
        for (ParamSpec p : params) {
            if (!seen.add(p.name())) {
                throw new IllegalArgumentException("gradient buffer: parameter '" + p.name() + "' is listed twice");
            }
        }
        long bucketDivisor = distributedOptimizer ? lcm(dataParallelSize, BUCKET_ALIGNMENT) : 1;
        List<ParamRange> ranges = new ArrayList<>();
        List<Bucket> buckets = new ArrayList<>();
        List<String> bucketParams = new ArrayList<>();
        long bucketStart = 0;
        long cursor = 0;
        long lastEnd = 0;
        for (int i = params.size() - 1; i >= 0; i--) {
            ParamSpec p = params.get(i);
            long start = distributedOptimizer ? roundUp(cursor, PARAM_ALIGNMENT) : cursor;
            long end = start + p.numel();
            ranges.add(new ParamRange(p.name(), start, end, buckets.size()));
            bucketParams.add(p.name());
            lastEnd = end;
            cursor = end;
            if (bucketSize > 0 && end - bucketStart >= bucketSize) {
                long bucketEnd = roundUp(end, bucketDivisor);
                buckets.add(new Bucket(buckets.size(), bucketStart, bucketEnd, end - bucketStart, List.copyOf(bucketParams)));
                bucketParams.clear();
                bucketStart = bucketEnd;
                cursor = bucketEnd;
            }
        }
        if (!bucketParams.isEmpty()) {
            long bucketEnd = roundUp(lastEnd, bucketDivisor);
            buckets.add(new Bucket(buckets.size(), bucketStart, bucketEnd, lastEnd - bucketStart, List.copyOf(bucketParams)));
            cursor = bucketEnd;
        }
        return new GradBufferLayout(ranges, buckets, dataParallelSize, distributedOptimizer, cursor);
    }

    /** Elements of the whole buffer, padding included. */
    public long numel() {
        return numel;
    }

    /** Elements that hold gradients (the sum of the parameters' sizes). */
    public long paramNumel() {
        return ranges.stream().mapToLong(ParamRange::numel).sum();
    }

    public int dataParallelSize() {
        return dataParallelSize;
    }

    public boolean distributedOptimizer() {
        return distributedOptimizer;
    }

    public List<Bucket> buckets() {
        return buckets;
    }

    /** Parameter slots in buffer order (reverse model order). */
    public List<ParamRange> paramRanges() {
        return ranges;
    }

    public ParamRange range(String name) {
        ParamRange r = byName.get(name);
        if (r == null) {
            throw new IllegalArgumentException("gradient buffer has no parameter '" + name + "'");
        }
        return r;
    }

    public boolean contains(String name) {
        return byName.containsKey(name);
    }

    // ---------------------------------------------------------------- distributed-optimizer shards

    /** Elements {@code [start, end)} of the flat buffer: the shard of {@code bucket} that DP rank {@code dpRank} owns. */
    public record ShardRange(int bucket, int dpRank, long start, long end) {
        public long numel() {
            return end - start;
        }
    }

    /**
     * The part of one parameter inside one DP rank's shard (Megatron's param range map):
     * {@code world} is the flat-buffer range, {@code worldInBucket} the same relative to the
     * bucket start, {@code local} relative to the shard start, {@code param} the elements of the
     * (flattened) parameter.
     */
    public record ParamShard(String name, int bucket, Range world, Range worldInBucket, Range local, Range param) {
    }

    /** A half-open range {@code [start, end)}. */
    public record Range(long start, long end) {
        public long size() {
            return end - start;
        }
    }

    /** DP rank {@code dpRank}'s shard of {@code bucket}: bucket elements split in DP equal parts, in rank order. */
    public ShardRange shard(int bucket, int dpRank) {
        requireDistributed();
        if (dpRank < 0 || dpRank >= dataParallelSize) {
            throw new IllegalArgumentException("DP rank " + dpRank + " is outside [0, " + dataParallelSize + ")");
        }
        Bucket b = buckets.get(bucket);
        long shardSize = b.numel() / dataParallelSize;
        long start = b.start() + dpRank * shardSize;
        return new ShardRange(bucket, dpRank, start, start + shardSize);
    }

    /**
     * Every parameter piece DP rank {@code dpRank} owns, bucket by bucket in buffer order: what its
     * optimizer steps (fp32 master slice, Adam moments) and what it all-gathers back.
     */
    public List<ParamShard> paramShards(int dpRank) {
        requireDistributed();
        List<ParamShard> shards = new ArrayList<>();
        for (Bucket b : buckets) {
            ShardRange shard = shard(b.index(), dpRank);
            for (String name : b.params()) {
                ParamRange p = byName.get(name);
                long localStart = Math.max(0, p.start() - shard.start());
                long localEnd = Math.min(shard.numel(), p.end() - shard.start());
                if (localEnd > localStart) {
                    long worldStart = shard.start() + localStart;
                    long worldEnd = shard.start() + localEnd;
                    long paramStart = worldStart - p.start();
                    shards.add(new ParamShard(name, b.index(), new Range(worldStart, worldEnd),
                            new Range(worldStart - b.start(), worldEnd - b.start()), new Range(localStart, localEnd),
                            new Range(paramStart, paramStart + (worldEnd - worldStart))));
                }
            }
        }
        return shards;
    }

    private void requireDistributed() {
        if (!distributedOptimizer) {
            throw new IllegalStateException("shard ranges exist only for a buffer planned for the distributed optimizer");
        }
    }

    private static long roundUp(long n, long divisor) {
        return (n + divisor - 1) / divisor * divisor;
    }

    private static long lcm(long a, long b) {
        long x = a;
        long y = b;
        while (y != 0) {
            long t = x % y;
            x = y;
            y = t;
        }
        return a / x * b;
    }
}
