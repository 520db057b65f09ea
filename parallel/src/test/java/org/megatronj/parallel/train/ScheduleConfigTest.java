package org.megatronj.parallel.train;

import org.junit.jupiter.api.Test;
import org.megatronj.model.optim.DecayStyle;
import org.megatronj.model.optim.OptimizerParamScheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * The scheduler {@link ScheduleConfig} builds from Megatron's flags (lengths in samples, warmup
 * fraction); values computed by hand from Megatron's OptimizerParamScheduler.get_lr.
 */
class ScheduleConfigTest {
    @Test
    void warmupThenCosineLinearInverseSqrtAndConstant() {
        // --train-iters 100 --global-batch-size 8 --lr 1e-3 --min-lr 1e-4 --lr-warmup-iters 10: steps in samples.
        BatchConfig batch = BatchConfig.of(2, 8);
        OptimizerParamScheduler cos = ScheduleConfig.iterations(100, 1e-3, 1e-4, DecayStyle.COSINE, 10).scheduler(batch);
        assertEquals(80, cos.warmupSteps());
        assertEquals(800, cos.decaySteps());
        assertEquals(0.0, cos.lrAt(0));
        assertEquals(1e-4, cos.lrAt(8), 1e-18);            // 1e-3 * 8/80
        assertEquals(1e-3, cos.lrAt(80), 1e-18);
        // halfway through the decay: ratio 0.5, coeff 0.5 -> min + 0.5 (max - min) = 5.5e-4
        assertEquals(5.5e-4, cos.lrAt(440), 1e-15);
        // ratio (200 - 80) / 720 = 1/6: coeff 0.5 (cos(pi/6) + 1) = 0.9330127
        assertEquals(1e-4 + 0.5 * (Math.cos(Math.PI / 6) + 1) * 9e-4, cos.lrAt(200), 1e-15);
        assertEquals(1e-4, cos.lrAt(800), 1e-15);
        assertEquals(1e-4, cos.lrAt(5000));

        OptimizerParamScheduler lin = ScheduleConfig.iterations(100, 1e-3, 0, DecayStyle.LINEAR, 0).scheduler(batch);
        assertEquals(1e-3, lin.lrAt(0), 1e-18);
        assertEquals(7.5e-4, lin.lrAt(200), 1e-15);        // 1 - 200/800

        OptimizerParamScheduler isr = ScheduleConfig.iterations(100, 1e-3, 1e-5, DecayStyle.INVERSE_SQUARE_ROOT, 10).scheduler(batch);
        assertEquals(1e-3 * Math.sqrt(80) / Math.sqrt(320), isr.lrAt(320), 1e-15);  // 5e-4
        assertEquals(5e-4, isr.lrAt(320), 1e-15);

        OptimizerParamScheduler constant = ScheduleConfig.iterations(100, 2e-3, 0, DecayStyle.CONSTANT, 10).scheduler(batch);
        assertEquals(1e-3, constant.lrAt(40), 1e-18);
        assertEquals(2e-3, constant.lrAt(81));
        assertEquals(2e-3, constant.lrAt(10_000));
    }

    @Test
    void warmupFractionAndSampleBasedLengths() {
        BatchConfig batch = BatchConfig.of(1, 4);
        // --train-samples 1000 --lr-decay-samples 600 --lr-warmup-fraction 0.1: warmup 60 samples.
        OptimizerParamScheduler s = new ScheduleConfig(0, 1000, 1.0, 0.0, DecayStyle.LINEAR, 0, 600, 0.1, 0, 0).scheduler(batch);
        assertEquals(60, s.warmupSteps(), 1e-12);
        assertEquals(600, s.decaySteps());
        assertEquals(0.5, s.lrAt(30), 1e-15);
        assertEquals(0.5, s.lrAt(330), 1e-15);             // (330 - 60) / 540 = 0.5
        // --train-iters 50 --lr-warmup-fraction 0.02 --lr-decay-iters 25 (gbs 4): decay 100 samples, warmup 2.
        OptimizerParamScheduler t = new ScheduleConfig(50, 0, 1.0, 0.0, DecayStyle.COSINE, 25, 0, 0.02, 0, 0).scheduler(batch);
        assertEquals(100, t.decaySteps());
        assertEquals(2, t.warmupSteps(), 1e-12);
        assertEquals(0.5, t.lrAt(1), 1e-15);
        // the clock advances by the global batch per step and can be restored
        t.step(4);
        t.step(4);
        assertEquals(8, t.numSteps());
        assertEquals(t.lrAt(8), t.currentLr());
    }

    @Test
    void contradictingFlagsAreRefused() {
        var both = assertThrows(IllegalArgumentException.class,
                () -> new ScheduleConfig(10, 100, 1e-3, 0, DecayStyle.LINEAR, 0, 0, Double.NaN, 0, 0));
        assertEquals("give exactly one of --train-iters and --train-samples (got 10 and 100)", both.getMessage());
        var warm = assertThrows(IllegalArgumentException.class,
                () -> new ScheduleConfig(10, 0, 1e-3, 0, DecayStyle.LINEAR, 0, 0, 0.1, 2, 0));
        assertEquals("can only specify one of --lr-warmup-fraction and --lr-warmup-iters", warm.getMessage());
        var mixed = assertThrows(IllegalArgumentException.class,
                () -> new ScheduleConfig(10, 0, 1e-3, 0, DecayStyle.LINEAR, 0, 50, Double.NaN, 0, 0));
        assertTrue(mixed.getMessage().startsWith("--train-iters counts in iterations"));
        var minLr = assertThrows(IllegalArgumentException.class,
                () -> ScheduleConfig.iterations(10, 1e-4, 1e-3, DecayStyle.LINEAR, 0));
        assertTrue(minLr.getMessage().contains("--min-lr"));
    }

    private static void assertTrue(boolean b) {
        org.junit.jupiter.api.Assertions.assertTrue(b);
    }
}
