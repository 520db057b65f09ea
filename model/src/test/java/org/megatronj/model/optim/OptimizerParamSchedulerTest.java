package org.megatronj.model.optim;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

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

    @Test
    void clockStartsAtZeroAndIsRestorable() {
        OptimizerParamScheduler s = new OptimizerParamScheduler(1, 0, 10, 100, DecayStyle.LINEAR);
        assertEquals(0.0, s.currentLr());                // the first warmup step runs at lr 0, as in Megatron
        s.step(5);
        assertEquals(5, s.numSteps());
        assertEquals(0.5, s.currentLr(), 1e-12);
        s.setNumSteps(55);
        assertEquals(s.lrAt(55), s.currentLr());
        assertEquals(0.5, s.currentLr(), 1e-12);         // (55 - 10) / 90 = 0.5 of the linear decay
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
