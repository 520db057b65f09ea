package org.megatronj.model.generate;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** The filters' distributions, measured over many seeded draws. */
class SamplerTest {
    // Real vocabulary of 4 with probabilities 0.5, 0.3, 0.15, 0.05, then two padded columns that must never be drawn.
    private static final float[] LOGITS = {(float) Math.log(0.5), (float) Math.log(0.3), (float) Math.log(0.15),
            (float) Math.log(0.05), 10f, 10f};

    private static double[] frequencies(GenerationParams params) {
        Sampler sampler = new Sampler(params, 4, 6);
        SplittableRandom random = new SplittableRandom(1);
        double[] counts = new double[6];
        int draws = 200_000;
        for (int i = 0; i < draws; i++) {
            counts[sampler.next(LOGITS, 0, random)] += 1.0 / draws;
        }
        return counts;
    }

    @Test
    void temperatureOneSamplesTheModelDistribution() {
        assertArrayEquals(new double[] {0.5, 0.3, 0.15, 0.05, 0, 0}, frequencies(GenerationParams.sampling(1, 1f, 0, 1f, 0)),
                0.005);
    }

    @Test
    void topKAndTopPRenormaliseTheKeptTokens() {
        assertArrayEquals(new double[] {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0, 0, 0},
                frequencies(GenerationParams.sampling(1, 1f, 3, 1f, 0)), 0.005);
        // Nucleus 0.7: token 0 (cumulative before it 0) and token 1 (0.5 <= 0.7) stay; token 2 (0.8 > 0.7) goes.
        assertArrayEquals(new double[] {0.5 / 0.8, 0.3 / 0.8, 0, 0, 0, 0},
                frequencies(GenerationParams.sampling(1, 1f, 0, 0.7f, 0)), 0.005);
        // Temperature 2 flattens: p_i ∝ sqrt(p_i).
        double z = Math.sqrt(0.5) + Math.sqrt(0.3) + Math.sqrt(0.15) + Math.sqrt(0.05);
        assertEquals(Math.sqrt(0.05) / z, frequencies(GenerationParams.sampling(1, 2f, 0, 1f, 0))[3], 0.005);
    }

    @Test
    void topKKeepsTiesWithTheKthLogitAsMegatronsFilter() {
        float[] tied = {1f, 3f, 2f, 2f, 0f};
        SplittableRandom random = new SplittableRandom(5);
        boolean[] drawn = new boolean[5];
        for (int i = 0; i < 2000; i++) {
            drawn[Sampler.sample(tied, 0, 5, 1.0, 2, 0.0, random)] = true;
        }
        assertArrayEquals(new boolean[] {false, true, true, true, false}, drawn, "top-k 2 keeps 3, 2 and the tied 2");
        // top-k then top-p over what it kept: {0.5, 0.3, 0.15} renormalised, nucleus 0.5 keeps the first only
        for (int i = 0; i < 200; i++) {
            assertEquals(0, Sampler.sample(LOGITS, 0, 4, 1.0, 3, 0.5, random));
        }
    }

    @Test
    void logProbIsOverTheWholeRowAndOrderBreaksTiesByIndex() {
        Sampler sampler = new Sampler(GenerationParams.greedy(1), 4, 6);
        double z = 0.5 + 0.3 + 0.15 + 0.05 + 2 * Math.exp(10);
        assertEquals(Math.log(0.5 / z), sampler.logProb(LOGITS, 0, 0), 1e-6);
        assertEquals(0, sampler.next(LOGITS, 0, new SplittableRandom(0)), "greedy ignores padded columns");
        assertArrayEquals(new int[] {1, 3, 0, 2}, Sampler.descendingOrder(new double[] {-1, 2, -3, 2}));
    }
}
