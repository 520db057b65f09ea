package org.megatronj.parallel.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;
import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;
import org.megatronj.parallel.TestBackends;
import org.megatronj.parallel.ParallelConfig;
import org.megatronj.parallel.comm.CommException;
import org.megatronj.parallel.comm.LocalWorld;

class GradReducerTest {
    private static final List<ParamSpec> PARAMS = List.of(
            new ParamSpec("embedding.word_embeddings.weight", 300), new ParamSpec("decoder.layers.0.mlp.linear_fc1.weight", 200),
            new ParamSpec("decoder.layers.0.mlp.linear_fc1.bias", 7), new ParamSpec("decoder.final_layernorm.weight", 50));

    /** The gradient rank r computed for element i of a parameter. */
    private static float grad(int rank, int param, long i) {
        return (float) Math.cos(0.1 * i + param + 0.7 * rank);
    }

    private static float mean(int dp, int param, long i) {
        float acc = 0;
        for (int r = 0; r < dp; r++) {
            acc += grad(r, param, i) * (1f / dp);
        }
        return acc;
    }

    private static void fill(GradBuffer buffer, int rank, String name) {
        int p = PARAMS.indexOf(PARAMS.stream().filter(s -> s.name().equals(name)).findFirst().orElseThrow());
        Tensor g = buffer.grad(name);
        for (long i = 0; i < g.numel(); i++) {
            g.setFloat(i, grad(rank, p, i));
        }
    }

    @ParameterizedTest(name = "dp={0} overlap={1} distributedOptimizer={2}")
    @CsvSource({"2,false,false", "4,false,false", "2,true,false", "4,true,false", "2,false,true", "4,true,true"})
    void averagesGradientsOverDataParallelRanks(int dp, boolean overlap, boolean distributed) {
        DdpConfig config = new DdpConfig(overlap, distributed, 250);
        LocalWorld.run(ParallelConfig.single(), dp, ctx -> {
            GradBufferLayout layout = GradBufferLayout.plan(PARAMS, config.effectiveBucketSize(dp), dp, distributed);
            try (Backend backend = TestBackends.cpu(); GradBuffer buffer = new GradBuffer(layout, backend)) {
                GradReducer reducer = new GradReducer(buffer, ctx.groups().data(), backend, config);
                reducer.reset();
                // backward produces gradients in reverse parameter order, i.e. buffer order
                for (GradBufferLayout.ParamRange r : layout.paramRanges()) {
                    fill(buffer, ctx.rank(), r.name());
                    if (overlap) {
                        reducer.registerGradReady(r.name());
                    }
                }
                if (overlap) {
                    assertEquals(2, layout.buckets().size());
                    assertTrue(reducer.started(0) && reducer.started(1));
                }
                reducer.finishGradSync();
                int dpRank = ctx.groups().data().rank();
                for (int p = 0; p < PARAMS.size(); p++) {
                    String name = PARAMS.get(p).name();
                    Tensor g = buffer.grad(name);
                    long from = 0;
                    long to = g.numel();
                    if (distributed) {
                        // only this rank's shard of the parameter holds the averaged gradient
                        var mine = layout.paramShards(dpRank).stream().filter(s -> s.name().equals(name)).findFirst();
                        if (mine.isEmpty()) {
                            continue;
                        }
                        from = mine.get().param().start();
                        to = mine.get().param().end();
                    }
                    for (long i = from; i < to; i++) {
                        assertEquals(mean(dp, p, i), g.getFloat(i), 1e-6f, name + "[" + i + "]");
                    }
                }
            }
        });
    }

    @Test
    void bucketStartsOnlyWhenAllItsGradientsAreReady() {
        LocalWorld.run(ParallelConfig.single(), 2, ctx -> {
            DdpConfig config = new DdpConfig(true, false, 250);
            GradBufferLayout layout = GradBufferLayout.plan(PARAMS, 250, 2, false);
            assertEquals(List.of("decoder.final_layernorm.weight", "decoder.layers.0.mlp.linear_fc1.bias",
                    "decoder.layers.0.mlp.linear_fc1.weight"), layout.buckets().get(0).params());
            try (Backend backend = TestBackends.cpu(); GradBuffer buffer = new GradBuffer(layout, backend)) {
                GradReducer reducer = new GradReducer(buffer, ctx.groups().data(), backend, config);
                reducer.setLastMicroBatch(false);
                reducer.registerGradReady("decoder.final_layernorm.weight"); // ignored: not the last micro-batch
                reducer.setLastMicroBatch(true);
                reducer.registerGradReady("decoder.final_layernorm.weight");
                reducer.registerGradReady("decoder.layers.0.mlp.linear_fc1.bias");
                assertFalse(reducer.started(0));
                reducer.registerGradReady("decoder.layers.0.mlp.linear_fc1.weight");
                assertTrue(reducer.started(0));
                assertFalse(reducer.started(1));
                IllegalStateException twice = assertThrows(IllegalStateException.class,
                        () -> reducer.registerGradReady("decoder.layers.0.mlp.linear_fc1.weight"));
                assertTrue(twice.getMessage().contains("twice"));
                CommException missing = assertThrows(CommException.class, reducer::finishGradSync);
                assertTrue(missing.getMessage().contains("bucket 1 was never started: 0/1")
                        && missing.getMessage().contains("embedding.word_embeddings.weight"), missing.getMessage());
                reducer.registerGradReady("embedding.word_embeddings.weight");
                reducer.finishGradSync();
            }
        });
    }

    @Test
    void refusesMismatchedGroupOrMode() {
        LocalWorld.run(ParallelConfig.single(), 2, ctx -> {
            try (Backend backend = TestBackends.cpu();
                 GradBuffer buffer = new GradBuffer(GradBufferLayout.plan(PARAMS, 0, 4, false), backend)) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> new GradReducer(buffer, ctx.groups().data(), backend, DdpConfig.defaults()));
                assertTrue(e.getMessage().contains("DP 4") && e.getMessage().contains("has 2 ranks"), e.getMessage());
            }
        });
    }
}
