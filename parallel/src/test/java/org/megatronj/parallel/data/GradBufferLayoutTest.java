package org.megatronj.parallel.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.megatronj.parallel.data.GradBufferLayout.ParamShard;
import org.megatronj.parallel.data.GradBufferLayout.Range;

class GradBufferLayoutTest {
    private static final List<ParamSpec> PARAMS = List.of(
            new ParamSpec("a", 10), new ParamSpec("b", 20), new ParamSpec("c", 30), new ParamSpec("d", 5));

    @Test
    void oneBucketInReverseOrderWithoutPadding() {
        GradBufferLayout l = GradBufferLayout.plan(PARAMS, 0, 4, false);
        assertEquals(65, l.numel());
        assertEquals(1, l.buckets().size());
        assertEquals(List.of("d", "c", "b", "a"), l.buckets().get(0).params());
        assertEquals(new GradBufferLayout.ParamRange("d", 0, 5, 0), l.range("d"));
        assertEquals(new GradBufferLayout.ParamRange("a", 55, 65, 0), l.range("a"));
    }

    @Test
    void bucketClosesOnceItReachesTheBucketSize() {
        GradBufferLayout l = GradBufferLayout.plan(PARAMS, 30, 2, false);
        assertEquals(2, l.buckets().size());
        assertEquals(new GradBufferLayout.Bucket(0, 0, 35, 35, List.of("d", "c")), l.buckets().get(0));
        assertEquals(new GradBufferLayout.Bucket(1, 35, 65, 30, List.of("b", "a")), l.buckets().get(1));
        assertEquals(1, l.range("b").bucket());
    }

    @Test
    void distributedOptimizerPadsParamsAndBuckets() {
        GradBufferLayout l = GradBufferLayout.plan(PARAMS, 30, 4, true);
        // d [0,5); c starts at 64 -> [64,94), bucket 0 ends at lcm(4,128) multiple 128
        assertEquals(new GradBufferLayout.ParamRange("c", 64, 94, 0), l.range("c"));
        assertEquals(new GradBufferLayout.Bucket(0, 0, 128, 94, List.of("d", "c")), l.buckets().get(0));
        assertEquals(new GradBufferLayout.ParamRange("b", 128, 148, 1), l.range("b"));
        assertEquals(new GradBufferLayout.ParamRange("a", 192, 202, 1), l.range("a"));
        assertEquals(new GradBufferLayout.Bucket(1, 128, 256, 74, List.of("b", "a")), l.buckets().get(1));
        assertEquals(256, l.numel());
        assertEquals(65, l.paramNumel());

        assertEquals(new GradBufferLayout.ShardRange(1, 2, 192, 224), l.shard(1, 2));
        List<ParamShard> rank2 = l.paramShards(2);
        assertEquals(2, rank2.size());
        assertEquals(new ParamShard("c", 0, new Range(64, 94), new Range(64, 94), new Range(0, 30), new Range(0, 30)), rank2.get(0));
        assertEquals(new ParamShard("a", 1, new Range(192, 202), new Range(64, 74), new Range(0, 10), new Range(0, 10)), rank2.get(1));
        assertTrue(l.paramShards(1).isEmpty(), "rank 1's shards hold only padding");
    }

    @Test
    void parameterSplitAcrossShards() {
        // one 300-element parameter, DP 2, one bucket of 384 (lcm(2,128) multiple): shards of 192
        GradBufferLayout l = GradBufferLayout.plan(List.of(new ParamSpec("w", 300)), 0, 2, true);
        assertEquals(384, l.numel());
        ParamShard first = l.paramShards(0).get(0);
        ParamShard second = l.paramShards(1).get(0);
        assertEquals(new Range(0, 192), first.param());
        assertEquals(new Range(192, 300), second.param());
        assertEquals(new Range(0, 108), second.local());
        assertEquals(new Range(192, 300), second.world());
    }

    /** Every element of every parameter is owned by exactly one DP rank, and the ranges agree with each other. */
    @Test
    void shardsCoverEveryParameterExactlyOnce() {
        Random random = new Random(7);
        for (int trial = 0; trial < 50; trial++) {
            int dp = 1 + random.nextInt(8);
            List<ParamSpec> params = new ArrayList<>();
            int count = 1 + random.nextInt(12);
            for (int i = 0; i < count; i++) {
                params.add(new ParamSpec("p" + i, 1 + random.nextInt(700)));
            }
            long bucketSize = random.nextBoolean() ? 0 : 1 + random.nextInt(1500);
            GradBufferLayout l = GradBufferLayout.plan(params, bucketSize, dp, true);
            for (GradBufferLayout.Bucket b : l.buckets()) {
                assertEquals(0, b.start() % dp);
                assertEquals(0, b.numel() % dp);
            }
            for (ParamSpec p : params) {
                int[] owners = new int[(int) p.numel()];
                for (int r = 0; r < dp; r++) {
                    GradBufferLayout.ShardRange shardOfBucket;
                    for (ParamShard s : l.paramShards(r)) {
                        if (!s.name().equals(p.name())) {
                            continue;
                        }
                        shardOfBucket = l.shard(s.bucket(), r);
                        assertEquals(s.world().start() - shardOfBucket.start(), s.local().start());
                        assertEquals(s.world().start() - l.range(p.name()).start(), s.param().start());
                        assertEquals(s.world().size(), s.param().size());
                        for (long e = s.param().start(); e < s.param().end(); e++) {
                            owners[(int) e]++;
                        }
                    }
                }
                for (int owner : owners) {
                    assertEquals(1, owner, "element of " + p.name() + " owned " + owner + " times (dp " + dp + ")");
                }
            }
        }
    }

    @Test
    void refusesBadInput() {
        assertThrows(IllegalArgumentException.class,
                () -> GradBufferLayout.plan(List.of(new ParamSpec("x", 1), new ParamSpec("x", 2)), 0, 1, false));
        assertThrows(IllegalArgumentException.class, () -> new ParamSpec("x", 0));
        GradBufferLayout plain = GradBufferLayout.plan(PARAMS, 0, 2, false);
        assertThrows(IllegalStateException.class, () -> plain.shard(0, 0));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> plain.range("nope"));
        assertTrue(e.getMessage().contains("'nope'"));
    }

    @Test
    void megatronBucketSizeDefaults() {
        assertEquals(40_000_000L, GradBufferLayout.defaultBucketSize(8));
        assertEquals(64_000_000L, GradBufferLayout.defaultBucketSize(64));
        assertEquals(0, new DdpConfig(false, false, 1000).effectiveBucketSize(2));
        assertEquals(1000, new DdpConfig(true, false, 1000).effectiveBucketSize(2));
        assertEquals(40_000_000L, new DdpConfig(true, true, 0).effectiveBucketSize(2));
    }
}
