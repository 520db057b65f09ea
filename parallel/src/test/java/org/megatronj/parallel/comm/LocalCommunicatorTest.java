package org.megatronj.parallel.comm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.parallel.ParallelConfig;

class LocalCommunicatorTest {
    /** Long enough for a loaded CI machine to start the rank threads, short enough to keep the timeout tests quick. */
    private static final Duration SHORT = Duration.ofSeconds(2);

    /** Deterministic per-rank values with varied magnitudes, so summation order would show. */
    private static float[] values(int rank, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (Math.sin(rank * 31 + i * 7.3) * Math.pow(10, (i + rank) % 7 - 3));
        }
        return v;
    }

    @Test
    void allReduceSumsInRankOrderMaxAndMin() {
        int world = 4;
        int n = 1003;
        float[] expectedSum = new float[n];
        float[] expectedMax = new float[n];
        float[] expectedMin = new float[n];
        for (int i = 0; i < n; i++) {
            float acc = values(0, n)[i];
            float max = acc;
            float min = acc;
            for (int r = 1; r < world; r++) {
                acc += values(r, n)[i];
                max = Math.max(max, values(r, n)[i]);
                min = Math.min(min, values(r, n)[i]);
            }
            expectedSum[i] = acc;
            expectedMax[i] = max;
            expectedMin[i] = min;
        }
        LocalWorld.run(world, ctx -> {
            try (TensorArena arena = new TensorArena("t")) {
                Tensor t = arena.fromFloats(values(ctx.rank(), n), n);
                ctx.groups().world().allReduce(t, ReduceOp.SUM);
                assertArrayEquals(expectedSum, t.toFloatArray(), 0f);
                Tensor m = arena.fromFloats(values(ctx.rank(), n), n);
                ctx.groups().world().allReduce(m, ReduceOp.MAX);
                assertArrayEquals(expectedMax, m.toFloatArray(), 0f);
                Tensor lo = arena.fromFloats(values(ctx.rank(), n), n);
                ctx.groups().world().allReduce(lo, ReduceOp.MIN);
                assertArrayEquals(expectedMin, lo.toFloatArray(), 0f);
            }
        });
    }

    @Test
    void allGatherReduceScatterAndBroadcast() {
        int world = 3;
        LocalWorld.run(world, ctx -> {
            Communicator c = ctx.groups().world();
            try (TensorArena arena = new TensorArena("t")) {
                Tensor in = arena.fromFloats(new float[] {ctx.rank(), 10 + ctx.rank()}, 1, 2);
                Tensor out = arena.allocate(DType.F32, 3, 2);
                c.allGather(in, out);
                assertArrayEquals(new float[] {0, 10, 1, 11, 2, 12}, out.toFloatArray());

                // in-place all-gather: the input is this rank's chunk of the output
                Tensor whole = arena.allocate(DType.F32, 6);
                whole.view(2L * ctx.rank(), 2L * ctx.rank() + 2).copyFrom(new float[] {ctx.rank(), -ctx.rank()});
                c.allGather(whole.view(2L * ctx.rank(), 2L * ctx.rank() + 2), whole);
                assertArrayEquals(new float[] {0, 0, 1, -1, 2, -2}, whole.toFloatArray());

                float[] full = new float[6];
                for (int i = 0; i < 6; i++) {
                    full[i] = i * (ctx.rank() + 1);
                }
                Tensor rsIn = arena.fromFloats(full, 6);
                Tensor rsOut = arena.allocate(DType.F32, 2);
                c.reduceScatter(rsIn, rsOut);
                int lo = 2 * ctx.rank();
                assertArrayEquals(new float[] {lo * 6f, (lo + 1) * 6f}, rsOut.toFloatArray());

                // in-place reduce-scatter, as the distributed optimizer runs it on a bucket
                Tensor bucket = arena.fromFloats(full, 6);
                Tensor shard = bucket.view(lo, lo + 2);
                c.reduceScatter(bucket, shard);
                assertArrayEquals(new float[] {lo * 6f, (lo + 1) * 6f}, shard.toFloatArray());

                Tensor b = arena.fromFloats(new float[] {ctx.rank() + 0.5f}, 1);
                c.broadcast(b, 2);
                assertEquals(2.5f, b.getFloat(0));
            }
        });
    }

    @Test
    void bf16AndIntegerReductions() {
        LocalWorld.run(2, ctx -> {
            try (TensorArena arena = new TensorArena("t")) {
                Tensor t = arena.allocate(DType.BF16, 3);
                t.copyFrom(new float[] {1.5f, -2f, ctx.rank()});
                ctx.groups().world().allReduce(t);
                assertArrayEquals(new float[] {3f, -4f, 1f}, t.toFloatArray());
                Tensor i = arena.fromInts(new int[] {ctx.rank() * 5, 7}, 2);
                ctx.groups().world().allReduce(i, ReduceOp.MAX);
                assertEquals(5, i.getLong(0));
                assertEquals(7, i.getLong(1));
            }
        });
    }

    @Test
    void sendRecvBothWaysWithoutDeadlock() {
        LocalWorld.run(2, ctx -> {
            Communicator c = ctx.groups().world();
            int peer = 1 - ctx.rank();
            try (TensorArena arena = new TensorArena("t")) {
                // both ranks receive first, then send: receives run on their own stream
                Tensor got = arena.allocate(DType.F32, 2, 2);
                CommHandle recv = c.recvAsync(got, peer);
                Tensor mine = arena.fromFloats(new float[] {ctx.rank(), 1, 2, 3}, 2, 2);
                c.send(mine, peer);
                recv.await();
                assertArrayEquals(new float[] {peer, 1, 2, 3}, got.toFloatArray());
                // messages between a pair arrive in order
                if (ctx.rank() == 0) {
                    for (int k = 0; k < 5; k++) {
                        c.send(arena.fromFloats(new float[] {k}, 1), 1);
                    }
                } else {
                    for (int k = 0; k < 5; k++) {
                        Tensor x = arena.allocate(DType.F32, 1);
                        c.recv(x, 0);
                        assertEquals(k, x.getFloat(0));
                    }
                }
            }
        });
    }

    @Test
    void asyncOperationsRunInIssueOrder() {
        LocalWorld.run(4, ctx -> {
            Communicator c = ctx.groups().world();
            try (TensorArena arena = new TensorArena("t")) {
                List<CommHandle> handles = new ArrayList<>();
                List<Tensor> tensors = new ArrayList<>();
                for (int k = 0; k < 8; k++) {
                    Tensor t = arena.fromFloats(new float[] {k + ctx.rank()}, 1);
                    tensors.add(t);
                    handles.add(c.allReduceAsync(t, ReduceOp.SUM));
                }
                c.barrier(); // an inline operation after queued ones waits for them (stream order)
                assertTrue(handles.stream().allMatch(CommHandle::isDone));
                CommHandle.awaitAll(handles);
                for (int k = 0; k < 8; k++) {
                    assertEquals(4 * k + 6, tensors.get(k).getFloat(0));
                }
            }
        });
    }

    @Test
    void subGroupsFollowTheLayout() {
        // world 8, TP 2, PP 2, DP 2: rank = tp + 2 * (dp + 2 * pp)
        LocalWorld.run(ParallelConfig.of(2, 2), 8, ctx -> {
            ProcessGroups g = ctx.groups();
            assertEquals(2, g.tensor().size());
            assertEquals(ctx.state().tensorModelParallelRank(), g.tensor().rank());
            assertEquals(ctx.state().dataParallelRank(), g.data().rank());
            assertEquals(ctx.state().pipelineModelParallelRank(), g.pipeline().rank());
            assertEquals(4, g.modelParallel().size());
            assertTrue(g.hasEmbeddingGroup()); // PP 2: every stage is first or last
            try (TensorArena arena = new TensorArena("t")) {
                Tensor t = arena.fromFloats(new float[] {ctx.rank()}, 1);
                g.tensor().allReduce(t);
                int base = ctx.rank() - ctx.state().tensorModelParallelRank();
                assertEquals(2 * base + 1, t.getFloat(0));
                Tensor d = arena.fromFloats(new float[] {ctx.rank()}, 1);
                g.data().allReduce(d);
                int[] dpRanks = ctx.state().dataParallelGroup();
                assertEquals(dpRanks[0] + dpRanks[1], d.getFloat(0));
            }
        });
    }

    @Test
    void intermediateStagesHaveNoEmbeddingCommunicator() {
        AtomicInteger without = new AtomicInteger();
        LocalWorld.run(ParallelConfig.of(1, 3), 3, ctx -> {
            if (ctx.state().pipelineModelParallelRank() == 1) {
                assertNull(ctx.groups().embedding());
                without.incrementAndGet();
            } else {
                assertEquals(2, ctx.groups().embedding().size());
            }
        });
        assertEquals(1, without.get());
    }

    @Test
    void timeoutNamesTheOperationAndTheMissingRanks() {
        RankFailedException e = assertThrows(RankFailedException.class, () ->
                LocalWorld.run(ParallelConfig.single(), 3, SHORT, ctx -> {
                    try (TensorArena arena = new TensorArena("t")) {
                        Tensor t = arena.allocate(DType.F32, 4);
                        ctx.groups().world().allReduce(t);   // operation #0 after the splits
                        if (ctx.rank() != 2) {
                            ctx.groups().world().allReduce(t);
                        }
                    }
                }));
        CollectiveTimeoutException timeout = findCause(e, CollectiveTimeoutException.class);
        assertEquals("allReduce", timeout.operation());
        String m = timeout.getMessage();
        assertTrue(m.contains("allReduce #7 on group 'world'"), m); // 6 splits (tp, pp, dp, cp, mp, embd), then #6 and #7
        assertTrue(m.contains("missing: [rank 2 (tp 0, pp 0, dp 2)]"), m);
        assertTrue(timeout.arrived().contains("rank 0 (tp 0, pp 0, dp 0)"), m);
        assertEquals(2, timeout.arrived().size());
    }

    @Test
    void recvTimeoutNamesTheSender() {
        RankFailedException e = assertThrows(RankFailedException.class, () ->
                LocalWorld.run(ParallelConfig.single(), 2, SHORT, ctx -> {
                    if (ctx.rank() == 1) {
                        try (TensorArena arena = new TensorArena("t")) {
                            ctx.groups().world().recv(arena.allocate(DType.F32, 1), 0);
                        }
                    }
                }));
        CollectiveTimeoutException timeout = findCause(e, CollectiveTimeoutException.class);
        assertTrue(timeout.getMessage().contains("rank 0 (tp 0, pp 0, dp 0) has not sent its message #0"), timeout.getMessage());
    }

    @Test
    void firstFailureUnblocksTheOthersAndNamesTheRank() {
        long start = System.nanoTime();
        RankFailedException e = assertThrows(RankFailedException.class, () ->
                LocalWorld.run(ParallelConfig.of(2, 1), 4, Duration.ofMinutes(5), ctx -> {
                    if (ctx.rank() == 3) {
                        throw new IllegalStateException("boom");
                    }
                    try (TensorArena arena = new TensorArena("t")) {
                        ctx.groups().world().allReduce(arena.allocate(DType.F32, 2));
                    }
                }));
        assertTrue(System.nanoTime() - start < Duration.ofSeconds(60).toNanos(), "others were not unblocked");
        assertEquals(3, e.rank());
        // the CLI prints this message as the run's one error line: the reason, not the exception's class name
        assertEquals("rank 3 (tp 1, pp 0, dp 1) failed: boom", e.getMessage());
        assertInstanceOf(IllegalStateException.class, e.getCause());
        assertEquals(3, e.getSuppressed().length, "the other ranks' abandoned collectives are attached");
        assertTrue(e.getSuppressed()[0].getMessage().contains("abandoned"), e.getSuppressed()[0].getMessage());
    }

    @Test
    void mismatchedCollectivesAndSizesAreReported() {
        RankFailedException e = assertThrows(RankFailedException.class, () ->
                LocalWorld.run(ParallelConfig.single(), 2, SHORT, ctx -> {
                    try (TensorArena arena = new TensorArena("t")) {
                        Tensor t = arena.allocate(DType.F32, 2);
                        if (ctx.rank() == 0) {
                            ctx.groups().world().allReduce(t);
                        } else {
                            ctx.groups().world().broadcast(t, 0);
                        }
                    }
                }));
        CommException mismatch = findCause(e, CommException.class);
        assertTrue(mismatch.getMessage().contains("every member must issue the same collectives"), mismatch.getMessage());

        RankFailedException sizes = assertThrows(RankFailedException.class, () ->
                LocalWorld.run(ParallelConfig.single(), 2, SHORT, ctx -> {
                    try (TensorArena arena = new TensorArena("t")) {
                        ctx.groups().world().allReduce(arena.allocate(DType.F32, 2 + ctx.rank()));
                    }
                }));
        assertTrue(sizes.getCause().getMessage().contains("same dtype and size"), sizes.getCause().getMessage());
    }

    private static <T extends Throwable> T findCause(Throwable t, Class<T> type) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (type.isInstance(c)) {
                return type.cast(c);
            }
            for (Throwable s : c.getSuppressed()) {
                if (type.isInstance(s)) {
                    return type.cast(s);
                }
            }
        }
        throw new AssertionError("no " + type.getSimpleName() + " in " + t, t);
    }
}
