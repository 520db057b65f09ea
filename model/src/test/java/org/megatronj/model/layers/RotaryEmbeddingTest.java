package org.megatronj.model.layers;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;

import org.junit.jupiter.api.Test;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.memory.cpu.CpuBackend;

/**
 * Llama 3.x's rope scaling against its formula in double precision (Hugging Face's {@code _compute_llama3_parameters},
 * which Megatron's {@code _apply_scaling} adapts; values printed by Python): Llama 3.1's base 500000 over 128 channels,
 * factor 8: the high frequencies stay, the low ones are divided by 8, one in between is blended. And the layer, its
 * table and kernel together, against Megatron's rope formulas in both layouts.
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

    /**
     * Megatron's {@code RotaryEmbedding.get_emb} and {@code _apply_rotary_pos_emb_bshd} in float64: pair i at position p
     * has the angle {@code p base^(-2i/r)}, laid out {@code cat(theta, theta)} or, interleaved, {@code stack(theta,
     * theta)} (each twice in a row); the first r channels become {@code t cos + rotate_half(t) sin} with rotate half's
     * {@code cat(-t2, t1)} or the interleaved {@code stack(-t[1::2], t[::2])}; the rest pass through. A quarter of the
     * head rotates, at positions past 0 (as in cached generation); the backward undoes the forward.
     */
    @Test
    void bothLayoutsFollowMegatronsFormulas() {
        int maxPositions = 12, s = 5, heads = 3, d = 32, r = 8, half = r / 2, start = 4;
        double base = 10000;
        Random rnd = new Random(7);
        try (CpuBackend backend = new CpuBackend(); TensorArena arena = TensorArena.named("rope-test")) {
            for (boolean interleaved : new boolean[] {false, true}) {
                RotaryEmbedding rope = new RotaryEmbedding(backend, arena, maxPositions, r, (float) base, 0f, 0f, interleaved);
                Tensor x = arena.allocate(DType.F32, s, 1, heads, d);
                for (long i = 0; i < x.numel(); i++) {
                    x.setFloat(i, (float) rnd.nextGaussian());
                }
                float[] in = x.toFloatArray();
                rope.forward(x, start);
                for (int row = 0; row < s * heads; row++) {
                    int p = start + row / heads;
                    for (int c = 0; c < d; c++) {
                        double t = in[row * d + c];
                        double expected = t;
                        if (c < r) {
                            int pair = interleaved ? c / 2 : c % half;
                            double theta = p * Math.pow(base, -2.0 * pair / r);
                            double rotated = interleaved ? (c % 2 == 0 ? -in[row * d + c + 1] : in[row * d + c - 1])
                                    : c < half ? -in[row * d + c + half] : in[row * d + c - half];
                            expected = t * Math.cos(theta) + rotated * Math.sin(theta);
                        }
                        assertEquals(expected, x.getFloat(row * d + c), 1e-5,
                                (interleaved ? "interleaved" : "rotate half") + " row " + row + " channel " + c);
                    }
                }
                rope.backward(x, start);
                for (int i = 0; i < in.length; i++) {
                    assertEquals(in[i], x.getFloat(i), 1e-5, "backward undoes forward, element " + i);
                }
            }
        }
    }
}
