package org.megatronj.model.optim;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Values computed by hand from Megatron's {@code OptimizerParamScheduler.get_lr}. */
class OptimizerParamSchedulerTest {
    @Test
    void scheduleMatchesMegatron() {
        OptimizerParamScheduler cosine = new OptimizerParamScheduler(6e-4, 6e-5, 10, 110, DecayStyle.COSINE);
        assertEquals(0.0, cosine.lrAt(0));
        assertEquals(6e-5, cosine.lrAt(1), 1e-12);
        assertEquals(6e-4, cosine.lrAt(10), 1e-12);
        assertEquals(6e-5 + 0.5 * (6e-4 - 6e-5), cosine.lrAt(60), 1e-12);     // half way: cos(pi/2) = 0
        assertEquals(6e-5, cosine.lrAt(110), 1e-12);
        assertEquals(6e-5, cosine.lrAt(1000), 1e-12);
        OptimizerParamScheduler linear = new OptimizerParamScheduler(1, 0, 0, 100, DecayStyle.LINEAR);
        assertEquals(1.0, linear.lrAt(0));
        assertEquals(0.75, linear.lrAt(25), 1e-12);
        // constant: only the warmup matters, the decay length may be shorter than it
        OptimizerParamScheduler constant = new OptimizerParamScheduler(1, 0, 4, 1, DecayStyle.CONSTANT);
        assertEquals(0.5, constant.lrAt(2));
        assertEquals(1.0, constant.lrAt(1000));
        OptimizerParamScheduler invSqrt = new OptimizerParamScheduler(1, 0.1, 4, 1000, DecayStyle.INVERSE_SQUARE_ROOT);
        assertEquals(0.5, invSqrt.lrAt(16), 1e-12);                             // 1 * sqrt(4) / sqrt(16)
        assertEquals(0.1, invSqrt.lrAt(999), 1e-12);                            // floored at min-lr
        assertEquals(DecayStyle.INVERSE_SQUARE_ROOT, DecayStyle.parse("inverse-square-root"));
    }

    /** WSD: stable at --lr until the last 30 of 100 steps, then each decay style (Megatron's formulas, printed by Python). */
    @Test
    void wsdHoldsThenDecaysAsMegatron() {
        double[][] expected = {   // steps 5, 50, 70, 80, 95, 100, 101
            {0.5, 1.0, 1.0, 0.6286609467713796, 0.21021584347843572, 0.1, 0.1},
            {0.5, 1.0, 1.0, 0.7000000000000001, 0.24999999999999997, 0.1, 0.1},
            {0.5, 1.0, 1.0, 0.775, 0.16028856829700258, 0.1, 0.1},
            {0.5, 1.0, 1.0, 0.48038475772933686, 0.17841616374225078, 0.1, 0.1},
        };
        long[] steps = {5, 50, 70, 80, 95, 100, 101};
        WsdDecay.Style[] styles = {WsdDecay.Style.EXPONENTIAL, WsdDecay.Style.LINEAR, WsdDecay.Style.COSINE,
                WsdDecay.Style.MINUS_SQRT};
        for (int i = 0; i < styles.length; i++) {
            OptimizerParamScheduler wsd = new OptimizerParamScheduler(1, 0.1, 10, 100, DecayStyle.parse("WSD"),
                    new WsdDecay(30, styles[i]), OptimizerParamScheduler.OnLoad.CHECK);
            for (int k = 0; k < steps.length; k++) {
                assertEquals(expected[i][k], wsd.lrAt(steps[k]), 1e-12, styles[i] + " at step " + steps[k]);
            }
        }
        var missing = assertThrows(IllegalArgumentException.class,
                () -> new OptimizerParamScheduler(1, 0, 0, 100, DecayStyle.WSD, null, OptimizerParamScheduler.OnLoad.CHECK));
        assertTrue(missing.getMessage().contains("--lr-decay-style WSD needs --lr-wsd-decay-iters"), missing.getMessage());
    }

    /** Megatron's get_wd: linear or half-cosine from start to end over the run, then the end value (printed by Python). */
    @Test
    void weightDecayIncrementAsMegatron() {
        long[] steps = {0, 25, 50, 100, 101};
        double[] linear = {0.0, 0.025, 0.05, 0.1, 0.1};
        double[] cosine = {0.0, 0.014644660940672627, 0.05, 0.1, 0.1};
        for (int k = 0; k < steps.length; k++) {
            assertEquals(linear[k], new WeightDecaySchedule(0, 0.1, 100, WeightDecaySchedule.Style.LINEAR).at(steps[k]), 1e-15);
            assertEquals(cosine[k], new WeightDecaySchedule(0, 0.1, 100, WeightDecaySchedule.Style.COSINE).at(steps[k]), 1e-15);
        }
        OptimizerParamScheduler s = new OptimizerParamScheduler(1, 0, 0, 100, DecayStyle.LINEAR)
                .withWeightDecay(new WeightDecaySchedule(0, 0.1, 100, WeightDecaySchedule.Style.LINEAR));
        s.step(50);
        assertEquals(0.05, s.currentWeightDecay(), 1e-15);
        var e = assertThrows(IllegalArgumentException.class, () -> s.loadState(new OptimizerParamScheduler.State(1, 0, 0, 100,
                DecayStyle.LINEAR, 10)));
        assertTrue(e.getMessage().contains("weight decay increment none (this run: linear 0.0 to 0.1 over 100.0)"), e.getMessage());
    }

    /** --lr-warmup-init: Megatron's init_lr + (max_lr - init_lr) * step / warmup. */
    @Test
    void warmupRisesFromItsInitialRate() {
        OptimizerParamScheduler s = new OptimizerParamScheduler(1.0, 0.1, 10, 110, DecayStyle.LINEAR).withWarmupInit(0.2);
        assertEquals(0.2, s.lrAt(0), 1e-12);
        assertEquals(0.6, s.lrAt(5), 1e-12);
        assertEquals(1.0, s.lrAt(10), 1e-12);
    }

    /** --decoupled-lr: the same warmup and decay between its own maximum and minimum. */
    @Test
    void decoupledLrFollowsTheSameShape() {
        OptimizerParamScheduler s = new OptimizerParamScheduler(1.0, 0.1, 10, 110, DecayStyle.COSINE).withDecoupledLr(2.0, 0.2);
        long[] steps = {5, 10, 60, 110, 200};
        double[] expected = {1.0, 2.0, 0.2 + 0.5 * 1.8, 0.2, 0.2};
        for (int k = 0; k < steps.length; k++) {
            s.step(steps[k] - s.numSteps());
            assertEquals(expected[k], s.currentDecoupledLr(), 1e-12, "step " + steps[k]);
            assertEquals(expected[k] / 2, s.currentLr(), 1e-12, "step " + steps[k]);
        }
    }

    @Test
    void clockStartsAtZeroAndIsRestorable() {
        OptimizerParamScheduler s = new OptimizerParamScheduler(1, 0, 10, 100, DecayStyle.LINEAR);
        assertEquals(0.0, s.currentLr());                // the first warmup step runs at lr 0, as in Megatron
        s.step(5);
        assertEquals(5, s.numSteps());
        assertEquals(0.5, s.currentLr(), 1e-12);
        s.loadState(new OptimizerParamScheduler.State(1, 0, 10, 100, DecayStyle.LINEAR, 55));
        assertEquals(s.lrAt(55), s.currentLr());
        assertEquals(0.5, s.currentLr(), 1e-12);         // (55 - 10) / 90 = 0.5 of the linear decay
    }

    /** Megatron's load_state_dict: values must match, unless the run's override them or the checkpoint's are taken. */
    @Test
    void aCheckpointsScheduleMustMatchUnlessOverriddenOrTaken() {
        var saved = new OptimizerParamScheduler.State(1e-3, 1e-4, 10, 100, DecayStyle.COSINE, 40);
        var check = new OptimizerParamScheduler(5e-3, 1e-4, 10, 200, DecayStyle.COSINE);
        var e = assertThrows(IllegalArgumentException.class, () -> check.loadState(saved));
        assertTrue(e.getMessage().contains("learning rate (--lr) 0.001 (this run: 0.005), decay steps 100.0 (this run: 200.0)")
                && e.getMessage().contains("--override-opt_param-scheduler"), e.getMessage());

        var override = new OptimizerParamScheduler(5e-3, 1e-4, 10, 200, DecayStyle.COSINE, OptimizerParamScheduler.OnLoad.OVERRIDE);
        override.loadState(saved);
        assertEquals(40, override.numSteps());
        assertEquals(5e-3, override.maxLr());
        assertEquals(200, override.decaySteps());

        var taken = new OptimizerParamScheduler(5e-3, 0, 0, 200, DecayStyle.LINEAR, OptimizerParamScheduler.OnLoad.USE_CHECKPOINT);
        taken.loadState(saved);
        assertEquals(new OptimizerParamScheduler(1e-3, 1e-4, 10, 100, DecayStyle.COSINE).lrAt(40), taken.currentLr());

        var same = new OptimizerParamScheduler(1e-3, 1e-4, 10, 100, DecayStyle.COSINE);
        same.loadState(saved);
        assertEquals(40, same.numSteps());
    }

    @Test
    void badArgumentsAreRefusedWithTheFlags() {
        var minAboveMax = assertThrows(IllegalArgumentException.class,
                () -> new OptimizerParamScheduler(1, 2, 0, 10, DecayStyle.LINEAR));
        assertEquals("need 0 <= --min-lr <= --lr, got --lr 1.0 and --min-lr 2.0", minAboveMax.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new OptimizerParamScheduler(1, 0, 10, 5, DecayStyle.COSINE));
        assertThrows(IllegalArgumentException.class, () -> new OptimizerParamScheduler(1, 0, 0, 0, DecayStyle.LINEAR));
        assertThrows(IllegalArgumentException.class, () -> DecayStyle.parse("exponential"));
    }
}
