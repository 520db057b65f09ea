package org.megatronj.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** {@code --moe-layer-freq} as Megatron reads it, capacities, and the rules Megatron checks. */
class MoeConfigTest {

    private static boolean[] layers(String freq, int n) {
        return MoeConfig.of(4, 8).withLayerFreq(freq).moeLayers(n);
    }

    @Test
    void layerFrequencyIntegersAndListExpressions() {
        assertArrayEquals(new boolean[] {true, false, true, false, true}, layers("2", 5));
        assertArrayEquals(new boolean[] {true, true, true}, layers("1", 3));
        boolean[] deepseek = layers("([0]+[1]*23)", 24);   // Megatron's help text examples
        assertTrue(!deepseek[0] && deepseek[1] && deepseek[23]);
        assertArrayEquals(new boolean[] {true, true, true, false, false, true, true, true, false, false},
                layers("([1]*3+[0]*2)*2", 10));
        assertArrayEquals(new boolean[] {true, true, true, false, true, true, true, false, true, true, true, false},
                layers("([1]*3+[0]*1)*3", 12));
        assertArrayEquals(new boolean[] {false, true, true}, layers(" [0, 1] + 1 * [1] ", 3));
    }

    @Test
    void badLayerFrequenciesAreNamed() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> layers("[1,0]", 3)).getMessage()
                .contains("gives 2 layers; it must give one 0 or 1 per layer of --num-layers 3"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> layers("[1,2]", 2)).getMessage()
                .contains("layer 1 is 2; expected 0 or 1"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> layers("[1]*x", 2)).getMessage()
                .contains("unexpected 'x'"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> layers("0", 2)).getMessage()
                .contains("must be a positive integer"));
    }

    @Test
    void capacityIsMegatronsGetCapacity() {
        MoeConfig moe = MoeConfig.of(8, 16).withCapacity(1.25f, MoeConfig.TokenDropPolicy.PROBS, false);
        assertEquals(40, moe.capacity(256));   // ceil(256 / 8 * 1.25)
        assertEquals(1, moe.capacity(3));       // ceil(3 / 8 * 1.25)
    }

    @Test
    void megatronsRulesAreChecked() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> MoeConfig.of(4, 8).withRouterTopk(1).validate(2))
                .getMessage().contains("Please use --moe-router-pre-softmax when topk is 1."));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> MoeConfig.of(4, 8).withRouterTopk(5).validate(2))
                .getMessage().contains("--moe-router-topk (5) must be in [1, --num-experts 4]"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> MoeConfig.of(4, 8)
                .withCapacity(0, MoeConfig.TokenDropPolicy.PROBS, true).validate(2)).getMessage()
                .contains("moe_expert_capacity_factor must be set to use moe_pad_expert_input_to_capacity"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> MoeConfig.of(4, 8)
                .withLoadBalancing(MoeConfig.LoadBalancing.SINKHORN, 0.1f).validate(2)).getMessage()
                .contains("Sinkhorn routing does not support aux loss"));
        TransformerConfig.Builder b = TransformerConfig.builder().numLayers(2).hiddenSize(16).numAttentionHeads(4)
                .seqLength(8).vocabSize(32).moe(MoeConfig.of(4, 6));
        assertTrue(assertThrows(IllegalArgumentException.class, b::build).getMessage()
                .contains("--num-experts needs --disable-bias-linear"));
        TransformerConfig c = b.addBiasLinear(false).build();
        assertTrue(assertThrows(IllegalArgumentException.class, () -> c.checkTensorParallelSize(4)).getMessage()
                .contains("--moe-ffn-hidden-size (6) must be divisible by --tensor-model-parallel-size (4)"));
    }
}
