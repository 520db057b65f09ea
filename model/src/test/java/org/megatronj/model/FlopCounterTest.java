package org.megatronj.model;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

class FlopCounterTest {

    @Test
    void gpt2MatchesTheClassicFormula() {
        TransformerConfig c = TransformerConfig.gpt2Small(50257);
        double b = 8, s = 1024, l = 12, h = 768, v = 50304;
        double classic = 72 * b * s * l * h * h * (1 + s / (6 * h) + v / (12 * l * h));
        assertEquals(classic, FlopCounter.trainingFlopsPerIteration(c, 8), classic * 1e-12);
        assertEquals(classic / (b * s), FlopCounter.trainingFlopsPerToken(c), classic * 1e-12);
        assertEquals(0.5, FlopCounter.mfu(1e15, 2.0, 1e15), 1e-12);
    }

    @Test
    void gqaAndSwigluTerms() {
        TransformerConfig c = TransformerConfig.builder().numLayers(2).hiddenSize(256).numAttentionHeads(8).numQueryGroups(2)
                .swiglu(true).ffnHiddenSize(512).seqLength(128).vocabSize(1000).build();
        double h = 256, s = 128, l = 2, v = 1024;
        double expected = 12 * s * l * h * h * ((1 + 2.0 / 8 + s / h) + (512 / h) * 1.5 + v / (2 * l * h));
        assertEquals(expected, FlopCounter.trainingFlopsPerIteration(c, 1), expected * 1e-12);
        // today's Megatron counts the causal half of QK^T and PV: 6 L b s^2 (np d) less
        double causalHalf = 6 * l * 3 * s * s * (8 * 32);
        assertEquals(FlopCounter.trainingFlopsPerIteration(c, 3) - causalHalf, FlopCounter.megatronLoggedFlopsPerIteration(c, 3),
                expected * 1e-12);
    }
}
