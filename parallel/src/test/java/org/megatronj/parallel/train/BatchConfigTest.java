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

    @Test
    void globalBatchMustSplitIntoMicroBatches() {
        var e = assertThrows(IllegalArgumentException.class, () -> new BatchConfig(3, 8, 1, null));
        assertEquals("--global-batch-size (8) must be a positive multiple of --micro-batch-size (3) x data-parallel size (1) = 3",
                e.getMessage());
        var r = assertThrows(IllegalArgumentException.class, () -> new BatchConfig(2, 8, 1, new BatchConfig.Rampup(2, 4, 10)));
        assertTrue(r.getMessage().contains("multiple of the increment"), r.getMessage());
    }
}
