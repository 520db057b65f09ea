package org.megatronj.parallel.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.megatronj.memory.Backend;
import org.megatronj.model.ActivationRecompute;
import org.megatronj.model.Normalization;
import org.megatronj.model.Parameter;
import org.megatronj.model.PositionEmbeddingType;
import org.megatronj.model.TransformerConfig;
import org.megatronj.model.optim.AdamW;
import org.megatronj.parallel.ParallelConfig;
import org.megatronj.parallel.TestBackends;
import org.megatronj.parallel.comm.LocalWorld;
import org.megatronj.parallel.pipeline.ParallelGptRank;

/** Megatron's weight-hash check: replicas that agree report nothing; a replica with one weight changed names it, on every rank. */
class WeightHashCheckTest {

    @Test
    void namesTheParametersThatDifferBetweenReplicas() {
        TransformerConfig c = ParallelGptHarness.config(Normalization.LAYER_NORM, PositionEmbeddingType.LEARNED_ABSOLUTE, false, 4);
        Map<Integer, List<String>> before = new ConcurrentHashMap<>(), after = new ConcurrentHashMap<>();
        String[] changed = new String[1];
        LocalWorld.run(ParallelConfig.of(2, 1), 4, ctx -> {   // TP2 x DP2
            var options = new ParallelGptRank.Options(ActivationRecompute.none(), false, 0, null);
            try (Backend backend = TestBackends.cpu();
                 ParallelGptRank rank = new ParallelGptRank(c, backend, 3, ctx, options,
                         params -> new AdamW(params, backend, 0.9f, 0.95f, 1e-8f, 0.1f))) {
                before.put(ctx.rank(), rank.parametersDifferingAcrossDataParallel());
                if (ctx.groups().data().rank() == 1 && ctx.groups().tensor().rank() == 0) {
                    Parameter p = rank.parameters().get(3);
                    p.data().setFloat(0, p.data().getFloat(0) + 1e-3f);
                    changed[0] = p.name();
                }
                ctx.groups().world().barrier();
                after.put(ctx.rank(), rank.parametersDifferingAcrossDataParallel());
            }
        });
        for (int r = 0; r < 4; r++) {
            assertEquals(List.of(), before.get(r), "rank " + r);
        }
        assertEquals(List.of(changed[0]), after.get(0), "tensor rank 0's replicas differ");
        assertEquals(List.of(changed[0]), after.get(2));
        assertEquals(List.of(), after.get(1), "tensor rank 1's replicas agree");
        assertEquals(List.of(), after.get(3));
    }
}
