package org.megatronj.parallel.train;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BatchConfigTest {
    @Test
    void rampupFollowsMegatronsCalculator() {
        // --rampup-batch-size 4 2 40 --global-batch-size 8 --micro-batch-size 2:
        // 2 increments, one per 20 samples.
        BatchConfig b = new BatchConfig(2, 8, 1, new BatchConfig.Rampup(4, 2, 40));
        assertEquals(4, b.globalBatchSizeAt(0));
        assertEquals(4, b.globalBatchSizeAt(19));
        assertEquals(6, b.globalBatchSizeAt(20));
        assertEquals(8, b.globalBatchSizeAt(40));
        assertEquals(8, b.globalBatchSizeAt(41));
        assertEquals(3, b.numMicroBatchesAt(20));
        // update_train_iters for 120 samples: batches 4,4,4,4,4 (20) 6,6,6,6 (44) -> 9 iterations to 44 > 40,
        // then (120 - 44) // 8 = 9 more.
        assertEquals(18, b.iterationsForSamples(120));
        assertEquals(15, BatchConfig.of(2, 8).iterationsForSamples(120));
    }

    /**
     * {@code --step-batch-size-schedule} as Megatron's {@code StepBatchsizeNumMicroBatchesCalculator}: thresholds in
     * tokens with suffixes, floor-divided by the sequence length, sorted; the size from each threshold on.
     */
    @Test
    void stepScheduleFollowsMegatronsCalculator() {
        var s = BatchConfig.StepSchedule.parse(" 0.1K:8, 0:4  1k:12 ", 10);   // 100 and 1000 tokens: 10 and 100 samples
        assertEquals(3, s.steps().size());
        BatchConfig b = new BatchConfig(2, 2, 1, s);
        assertEquals(4, b.globalBatchSizeAt(0));
        assertEquals(4, b.globalBatchSizeAt(9));
        assertEquals(8, b.globalBatchSizeAt(10));
        assertEquals(12, b.globalBatchSizeAt(100));
        assertEquals(6, b.numMicroBatchesAt(100));
        // update_train_iters: 4 4 4 (12) 8 x 11 (100) 12 12 (124 >= 120)
        assertEquals(16, b.iterationsForSamples(120));
        assertEquals(2_400_000_000L / 2048, BatchConfig.StepSchedule.parse("0:16 2.4B:320", 2048).steps().get(1)[0]);

        var first = assertThrows(IllegalArgumentException.class, () -> BatchConfig.StepSchedule.parse("5:4 100:8", 1));
        assertTrue(first.getMessage().contains("the first threshold must be 0, got 5 samples"), first.getMessage());
        var same = assertThrows(IllegalArgumentException.class, () -> BatchConfig.StepSchedule.parse("0:4 5:8", 10));
        assertTrue(same.getMessage().contains("strictly increasing in samples (tokens // --seq-length 10), got 0 before 0"),
                same.getMessage());
        var bad = assertThrows(IllegalArgumentException.class, () -> BatchConfig.StepSchedule.parse("0:4 10x:8", 1));
        assertTrue(bad.getMessage().contains("\"10x\" is not a number"), bad.getMessage());
        var split = assertThrows(IllegalArgumentException.class,
                () -> new BatchConfig(2, 2, 1, BatchConfig.StepSchedule.parse("0:4 10:9", 1)));
        assertTrue(split.getMessage().contains("global batch size 9 (from 10 samples on) is not divisible by --micro-batch-size"
                + " x data-parallel size = 2"), split.getMessage());
    }

    @Test
    void globalBatchMustSplitIntoMicroBatches() {
        var e = assertThrows(IllegalArgumentException.class, () -> new BatchConfig(3, 8, 1, null));
        assertEquals("--global-batch-size (8) must be a positive multiple of --micro-batch-size (3) x data-parallel size (1) = 3",
                e.getMessage());
        var r = assertThrows(IllegalArgumentException.class, () -> new BatchConfig(2, 8, 1, new BatchConfig.Rampup(2, 4, 10)));
        assertTrue(r.getMessage().contains("multiple of the increment"), r.getMessage());
    }
}
