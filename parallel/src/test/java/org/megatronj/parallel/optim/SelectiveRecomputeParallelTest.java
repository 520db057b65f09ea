package org.megatronj.parallel.optim;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.megatronj.model.ActivationRecompute;
import org.megatronj.model.MlaConfig;
import org.megatronj.model.MoeConfig;
import org.megatronj.model.MtpConfig;
import org.megatronj.model.Normalization;
import org.megatronj.model.PositionEmbeddingType;
import org.megatronj.model.TransformerConfig;

/**
 * {@code --recompute-modules} on parallel layouts: three training iterations (dropout on) give bitwise the losses and
 * gradient norms of the same layout without recompute. Under sequence parallelism the refilled norm outputs are
 * all-gathered again in backward; under pipelining (also interleaved, one layer per virtual stage) several
 * micro-batches are in flight, each with its own shared buffers.
 */
class SelectiveRecomputeParallelTest {
    private static final int ITERATIONS = 3;

    private static TransformerConfig config(String name) {
        TransformerConfig dense = ParallelGptHarness.config(Normalization.RMS_NORM, PositionEmbeddingType.ROPE, true, 2,
                0.1f, 0.1f);
        return switch (name) {
            case "dense" -> dense;
            case "moe" -> dense.toBuilder().addBiasLinear(false).moe(MoeConfig.of(4, 16).withRouterTopk(2)
                    .withLayerFreq("[0,1,1,0]").withSharedExperts(16, true)).build();
            case "mla" -> dense.toBuilder().numQueryGroups(4).qkLayernorm(true).mla(MlaConfig.of(8, 6, 4, 2, 4)).build();
            case "mtp" -> dense.toBuilder().mtp(MtpConfig.of(1)).build();
            case "mtp2" -> dense.toBuilder().mtp(MtpConfig.of(2)).build();
            default -> throw new IllegalArgumentException(name);
        };
    }

    @ParameterizedTest(name = "{0} tp={1} pp={2} dp={3} sp={4} {5} vpLayers={6}")
    @CsvSource({
            "dense,2,1,1,true,selective:layernorm+mlp,0",
            "dense,1,2,1,false,selective:layernorm+mlp+core_attn,0",
            "dense,2,2,2,true,selective:mlp,0",
            "moe,2,1,1,true,selective:layernorm+mlp+moe_act+shared_experts,0",
            "moe,1,2,1,false,selective:moe_act+shared_experts,0",
            "moe,2,1,1,true,selective:moe+layernorm,0",
            "moe,1,2,2,false,selective:moe+mlp,0",
            "mla,2,1,1,true,selective:layernorm+mlp,0",
            "mla,1,2,1,false,selective:layernorm+mla_up_proj,0",
            "mla,2,1,1,true,selective:mla_up_proj,0",
            "mla,2,1,1,false,selective:mla_up_proj+layernorm,0",
            "mtp,1,2,1,false,selective:layernorm+mlp,0",
            "mtp2,2,1,1,true,selective:layernorm+mlp,0",
            "dense,1,2,1,false,selective:layernorm+mlp,1",
            "moe,2,2,1,true,selective:moe_act+shared_experts+layernorm,1",
    })
    void modulesGiveTheLayoutsNumbersBitwise(String model, int tp, int pp, int dp, boolean sp, String modules,
                                             int vpLayers) {
        TransformerConfig c = config(model);
        var stored = new ParallelGptHarness.Layout(tp, pp, dp, vpLayers, sp, dp > 1, ActivationRecompute.none());
        var recomputed = new ParallelGptHarness.Layout(tp, pp, dp, vpLayers, sp, dp > 1,
                ParallelGptHarness.recompute(modules));
        ParallelGptHarness.Trace want = ParallelGptHarness.parallel(c, ITERATIONS, stored);
        ParallelGptHarness.Trace got = ParallelGptHarness.parallel(c, ITERATIONS, recomputed);
        assertArrayEquals(want.losses(), got.losses(), 0.0, "losses");
        assertArrayEquals(want.gradNorms(), got.gradNorms(), 0.0, "grad norms");
    }
}
