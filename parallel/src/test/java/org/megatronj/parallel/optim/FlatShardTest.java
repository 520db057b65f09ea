package org.megatronj.parallel.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.megatronj.memory.Backend;
import org.megatronj.model.Parameter;
import org.megatronj.model.ParameterSpec;
import org.megatronj.model.ParameterStore;
import org.megatronj.parallel.TestBackends;

/** Bucket plans and distributed-optimizer shards of random parameter stores. */
class FlatShardTest {

    /** Every element of every parameter is owned by exactly one DP rank, and the ranges agree with each other. */
    @Test
    void shardsCoverEveryParameterExactlyOnce() {
        Random random = new Random(7);
        try (Backend backend = TestBackends.cpu()) {
            for (int trial = 0; trial < 50; trial++) {
                int dp = 1 + random.nextInt(8);
                List<ParameterSpec> specs = new ArrayList<>();
                int count = 1 + random.nextInt(12);
                for (int i = 0; i < count; i++) {
                    specs.add(new ParameterSpec("p" + i, new long[] {1 + random.nextInt(700)}, ParameterSpec.Init.ZEROS, true));
                }
                long bucketSize = random.nextBoolean() ? 0 : 1 + random.nextInt(1500);
                long shared = random.nextBoolean() ? specs.getFirst().numel() : 0;
                String what = "trial " + trial + ": dp " + dp + ", bucket size " + bucketSize + ", shared " + shared;
                try (ParameterStore store = new ParameterStore(backend, specs, dp)) {
                    GradBuckets plan = GradBuckets.plan(store, bucketSize, dp, shared);
                    checkBucketsTileTheStore(store, plan, dp, shared, what);
                    checkShardsOwnEachElementOnce(store, plan, dp, what);
                }
            }
        }
    }

    private static void checkBucketsTileTheStore(ParameterStore store, GradBuckets plan, int dp, long shared, String what) {
        long next = 0;
        for (GradBuckets.Bucket b : plan.buckets()) {
            assertEquals(next, b.start(), what);
            assertTrue(b.numel() > 0 && b.numel() % (16L * dp) == 0, what + ": " + b);
            next = b.end();
        }
        assertEquals(store.flatGrad().numel(), next, what);
        if (shared > 0) {
            assertEquals(0, plan.sharedEmbedding(), what);
            assertTrue(plan.buckets().getFirst().end() >= shared, what + ": the shared embedding is split");
        } else {
            assertEquals(-1, plan.sharedEmbedding(), what);
        }
    }

    private static void checkShardsOwnEachElementOnce(ParameterStore store, GradBuckets plan, int dp, String what) {
        int[] storeOwners = new int[(int) store.flatGrad().numel()];
        List<int[]> paramOwners = new ArrayList<>();
        for (Parameter p : store.parameters()) {
            paramOwners.add(new int[(int) p.numel()]);
        }
        for (int r = 0; r < dp; r++) {
            FlatShard shard = FlatShard.of(store, plan, r, dp);
            long state = 0;
            for (FlatShard.Range range : shard.ranges()) {
                assertEquals(state, range.stateOffset(), what + ": rank " + r + " state is not back to back");
                state += range.numel();
                for (long e = range.start(); e < range.end(); e++) {
                    storeOwners[(int) e]++;
                }
            }
            assertEquals(state, shard.numel(), what);
            for (FlatShard.Segment s : shard.segments()) {
                long storeStart = store.offset(s.parameter().name()) + s.from();
                FlatShard.Range range = shard.ranges().stream()
                        .filter(x -> x.start() <= storeStart && storeStart + s.numel() <= x.end()).findFirst()
                        .orElseThrow(() -> new AssertionError(what + ": segment " + s + " outside the rank's ranges"));
                assertEquals(range.stateOffset() + storeStart - range.start(), s.stateOffset(), what);
                int[] owners = paramOwners.get(store.parameters().indexOf(s.parameter()));
                for (long e = s.from(); e < s.to(); e++) {
                    owners[(int) e]++;
                }
            }
        }
        for (int owner : storeOwners) {
            assertEquals(1, owner, what + ": a store element owned " + owner + " times");
        }
        for (int i = 0; i < paramOwners.size(); i++) {
            for (int owner : paramOwners.get(i)) {
                assertEquals(1, owner, what + ": an element of p" + i + " owned " + owner + " times");
            }
        }
    }

    @Test
    void megatronBucketSizeDefaults() {
        assertEquals(40_000_000L, GradBuckets.defaultBucketSize(8));
        assertEquals(64_000_000L, GradBuckets.defaultBucketSize(64));
    }

    @Test
    void refusesStoresAndBucketsThatDoNotSplitEvenly() {
        try (Backend backend = TestBackends.cpu();
             ParameterStore store = new ParameterStore(backend,
                     List.of(new ParameterSpec("w", new long[] {300}, ParameterSpec.Init.ZEROS, true)), 2)) {
            assertEquals(320, store.flatGrad().numel());
            IllegalArgumentException notMultiple = assertThrows(IllegalArgumentException.class,
                    () -> GradBuckets.plan(store, 0, 3, 0));
            assertTrue(notMultiple.getMessage().contains("not a multiple of 16 x DP 3"), notMultiple.getMessage());
            IllegalArgumentException uneven = assertThrows(IllegalArgumentException.class,
                    () -> FlatShard.of(store, 0, 3));
            assertTrue(uneven.getMessage().contains("does not split into 3 equal shards"), uneven.getMessage());
            // a parameter split across the two shards: each rank steps its half
            FlatShard second = FlatShard.of(store, 1, 2);
            assertEquals(List.of(new FlatShard.Range(160, 320, 0)), second.ranges());
            assertEquals(1, second.segments().size());
            assertEquals(160, second.segments().getFirst().from());
            assertEquals(300, second.segments().getFirst().to());
        }
    }
}
