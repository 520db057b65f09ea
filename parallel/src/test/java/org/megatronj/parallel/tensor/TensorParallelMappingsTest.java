package org.megatronj.parallel.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.megatronj.memory.DType;
import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.memory.TensorException;
import org.megatronj.parallel.TestBackends;
import org.megatronj.parallel.ParallelConfig;
import org.megatronj.parallel.comm.LocalWorld;
import org.megatronj.parallel.comm.RankContext;

/** Each mapping on 2 and 4 ranks against what one rank computes on the full tensor. */
class TensorParallelMappingsTest {
    private static final int S = 4;
    private static final int B = 2;
    private static final int H = 8;

    /** A full [S, B, H] tensor's values; {@code salt} makes different tensors (and per-rank partials). */
    static float value(int s, int b, int h, int salt) {
        return (float) Math.sin(0.37 * s + 1.3 * b + 0.11 * h + salt);
    }

    static float[] full(int salt) {
        float[] v = new float[S * B * H];
        for (int s = 0; s < S; s++) {
            for (int b = 0; b < B; b++) {
                for (int h = 0; h < H; h++) {
                    v[(s * B + b) * H + h] = value(s, b, h, salt);
                }
            }
        }
        return v;
    }

    /** Columns [from, from + width) of a [S, B, H] array. */
    static float[] columns(float[] x, int from, int width) {
        float[] out = new float[S * B * width];
        for (int r = 0; r < S * B; r++) {
            System.arraycopy(x, r * H + from, out, r * width, width);
        }
        return out;
    }

    /** Sequence rows [from, from + count) of a [S, B, H] array. */
    static float[] sequenceRows(float[] x, int from, int count) {
        float[] out = new float[count * B * H];
        System.arraycopy(x, from * B * H, out, 0, out.length);
        return out;
    }

    static float[] sumOfPartials(int tp) {
        float[] sum = full(100);
        for (int r = 1; r < tp; r++) {
            float[] p = full(100 + r);
            for (int i = 0; i < sum.length; i++) {
                sum[i] += p[i];
            }
        }
        return sum;
    }

    private static void onRanks(int tp, java.util.function.BiConsumer<RankContext, Fixture> body) {
        LocalWorld.run(ParallelConfig.of(tp, 1), tp, ctx -> {
            try (Backend backend = TestBackends.cpu();
                 TensorArena arena = new TensorArena("test");
                 TensorParallelMappings mappings = new TensorParallelMappings(ctx.groups().tensor(), backend)) {
                body.accept(ctx, new Fixture(arena, mappings, ctx.groups().tensor().rank()));
            }
        });
    }

    record Fixture(TensorArena arena, TensorParallelMappings m, int r) {
        Tensor tensor(float[] values, long... shape) {
            return arena.fromFloats(values, shape);
        }

        Tensor empty(long... shape) {
            return arena.allocate(DType.F32, shape);
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 4})
    void copyAndReduceAreConjugate(int tp) {
        float[] partialSum = sumOfPartials(tp);
        onRanks(tp, (ctx, f) -> {
            RegionMapping copy = f.m().copyToTensorParallelRegion();
            Tensor x = f.tensor(full(1), S, B, H);
            Tensor y = f.empty(S, B, H);
            copy.forward(x, y);
            assertArrayEquals(full(1), y.toFloatArray());
            Tensor dx = f.empty(S, B, H);
            copy.backward(f.tensor(full(100 + f.r()), S, B, H), dx);
            assertArrayEquals(partialSum, dx.toFloatArray(), 0f);

            RegionMapping reduce = f.m().reduceFromTensorParallelRegion();
            Tensor partial = f.tensor(full(100 + f.r()), S, B, H);
            reduce.forward(partial, partial); // in place, as Megatron's _reduce
            assertArrayEquals(partialSum, partial.toFloatArray(), 0f);
            Tensor g = f.tensor(full(7), S, B, H);
            reduce.backward(g, g);
            assertArrayEquals(full(7), g.toFloatArray());
        });
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 4})
    void scatterAndGatherAlongHidden(int tp) {
        int w = H / tp;
        onRanks(tp, (ctx, f) -> {
            RegionMapping scatter = f.m().scatterToTensorParallelRegion();
            assertArrayEquals(new long[] {S, B, w}, scatter.outputShape(new long[] {S, B, H}));
            Tensor local = f.empty(S, B, w);
            scatter.forward(f.tensor(full(2), S, B, H), local);
            assertArrayEquals(columns(full(2), f.r() * w, w), local.toFloatArray());
            Tensor grad = f.empty(S, B, H);
            scatter.backward(f.tensor(columns(full(3), f.r() * w, w), S, B, w), grad);
            assertArrayEquals(full(3), grad.toFloatArray());

            RegionMapping gather = f.m().gatherFromTensorParallelRegion();
            Tensor whole = f.empty(S, B, H);
            gather.forward(f.tensor(columns(full(4), f.r() * w, w), S, B, w), whole);
            assertArrayEquals(full(4), whole.toFloatArray());
            Tensor gradLocal = f.empty(S, B, w);
            gather.backward(f.tensor(full(5), S, B, H), gradLocal);
            assertArrayEquals(columns(full(5), f.r() * w, w), gradLocal.toFloatArray());
        });
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 4})
    void sequenceParallelScatterGatherAndReduceScatter(int tp) {
        int rows = S / tp;
        float[] partialSum = sumOfPartials(tp);
        onRanks(tp, (ctx, f) -> {
            int from = f.r() * rows;
            RegionMapping scatter = f.m().scatterToSequenceParallelRegion();
            Tensor shard = f.empty(rows, B, H);
            scatter.forward(f.tensor(full(1), S, B, H), shard);
            assertArrayEquals(sequenceRows(full(1), from, rows), shard.toFloatArray());
            Tensor grad = f.empty(S, B, H);
            scatter.backward(f.tensor(sequenceRows(full(2), from, rows), rows, B, H), grad);
            assertArrayEquals(full(2), grad.toFloatArray());

            RegionMapping gather = f.m().gatherFromSequenceParallelRegion(true);
            Tensor whole = f.empty(S, B, H);
            gather.forward(f.tensor(sequenceRows(full(3), from, rows), rows, B, H), whole);
            assertArrayEquals(full(3), whole.toFloatArray());
            Tensor gradShard = f.empty(rows, B, H);
            gather.backward(f.tensor(full(100 + f.r()), S, B, H), gradShard);
            assertArrayEquals(sequenceRows(partialSum, from, rows), gradShard.toFloatArray(), 0f);

            RegionMapping gatherNoReduce = f.m().gatherFromSequenceParallelRegion(false);
            gatherNoReduce.backward(f.tensor(full(6), S, B, H), gradShard);
            assertArrayEquals(sequenceRows(full(6), from, rows), gradShard.toFloatArray());

            RegionMapping reduceScatter = f.m().reduceScatterToSequenceParallelRegion();
            Tensor out = f.empty(rows, B, H);
            reduceScatter.forward(f.tensor(full(100 + f.r()), S, B, H), out);
            assertArrayEquals(sequenceRows(partialSum, from, rows), out.toFloatArray(), 0f);
            Tensor back = f.empty(S, B, H);
            reduceScatter.backward(f.tensor(sequenceRows(full(8), from, rows), rows, B, H), back);
            assertArrayEquals(full(8), back.toFloatArray());
        });
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3})
    void refusesIndivisibleShapesAndWrongOutputs(int tp) {
        onRanks(tp, (ctx, f) -> {
            if (tp == 1) {
                // one rank: every mapping is a copy
                Tensor x = f.tensor(full(1), S, B, H);
                Tensor y = f.empty(S, B, H);
                f.m().gatherFromTensorParallelRegion().forward(x, y);
                assertArrayEquals(full(1), y.toFloatArray());
                f.m().reduceScatterToSequenceParallelRegion().forward(x, y);
                assertArrayEquals(full(1), y.toFloatArray());
                return;
            }
            TensorException e = assertThrows(TensorException.class,
                    () -> f.m().scatterToTensorParallelRegion().forward(f.empty(S, B, H), f.empty(S, B, 2)));
            assertTrue(e.getMessage().contains("not divisible by the tensor-parallel size 3"), e.getMessage());
            TensorException o = assertThrows(TensorException.class,
                    () -> f.m().gatherFromSequenceParallelRegion(true).forward(f.empty(S, B, H), f.empty(S, B, H)));
            assertTrue(o.getMessage().contains("expected shape [12, 2, 8]"), o.getMessage());
        });
    }
}
