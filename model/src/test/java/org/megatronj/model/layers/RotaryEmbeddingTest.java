package org.megatronj.model.layers;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/**
 * Llama 3.x's rope scaling against its formula in double precision (Hugging Face's {@code _compute_llama3_parameters},
 * which Megatron's {@code _apply_scaling} adapts; values printed by Python): Llama 3.1's base 500000 over 128 channels,
 * factor 8: the high frequencies stay, the low ones are divided by 8, one in between is blended.
 */
class RotaryEmbeddingTest {
    private static float invFreq(int c) {
        return (float) (1.0 / Math.pow(500000.0, (2.0 * c) / 128));
    }

    @Test
    void llama3ScalingKeepsHighDividesLowAndBlendsBetween() {
        double[][] expected = {   // channel, scaled inverse frequency
            {0, 1.0}, {10, 0.12868737343265052}, {28, 0.0032114459947525913},   // wavelength < 2048: kept
            {30, 0.0013718935677611381},                                          // between 2048 and 8192: blended
            {40, 3.428102195952591e-05}, {63, 3.068925988914511e-07},             // wavelength > 8192: divided by 8
        };
        for (double[] e : expected) {
            int c = (int) e[0];
            assertEquals(e[1], RotaryEmbedding.llama3Scaled(invFreq(c), 8f), 2e-6 * e[1], "channel " + c);
        }
    }
}
