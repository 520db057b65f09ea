package org.megatronj.parallel.context;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.megatronj.model.MicroBatch;

/** Megatron's get_batch_on_this_cp_rank: rank r keeps chunks r and 2C-1-r of each sample, with global positions. */
class ContextParallelBatchesTest {

    /** Two samples of 8 positions, token = 100 x sample + position, label = token + 1, mask 1 except position 5. */
    private static MicroBatch batch() {
        int b = 2, s = 8;
        int[] tokens = new int[b * s];
        int[] labels = new int[b * s];
        float[] mask = new float[b * s];
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = 100 * (i / s) + i % s;
            labels[i] = tokens[i] + 1;
            mask[i] = i % s == 5 ? 0f : 1f;
        }
        return new MicroBatch(b, s, tokens, labels, mask, null);
    }

    @Test
    void eachRankKeepsItsLoadBalancedPairOfChunks() {
        // C = 2: four chunks of 2 positions; rank 0 keeps chunks 0 and 3, rank 1 chunks 1 and 2
        MicroBatch r0 = ContextParallelBatches.slice(batch(), 2, 0);
        assertEquals(4, r0.seqLength());
        assertEquals(2, r0.batchSize());
        assertArrayEquals(new int[] {0, 1, 6, 7, 100, 101, 106, 107}, r0.tokens());
        assertArrayEquals(new int[] {1, 2, 7, 8, 101, 102, 107, 108}, r0.labels());
        assertArrayEquals(new int[] {0, 1, 6, 7, 0, 1, 6, 7}, r0.positionIds());
        MicroBatch r1 = ContextParallelBatches.slice(batch(), 2, 1);
        assertArrayEquals(new int[] {2, 3, 4, 5, 102, 103, 104, 105}, r1.tokens());
        assertArrayEquals(new int[] {2, 3, 4, 5, 2, 3, 4, 5}, r1.positionIds());
        assertArrayEquals(new float[] {1, 1, 1, 0, 1, 1, 1, 0}, r1.lossMask());
        // the ranks' tokens add up to the whole micro-batch's
        assertEquals(ContextParallelBatches.maskSum(batch()), ContextParallelBatches.maskSum(r0) + ContextParallelBatches.maskSum(r1));
    }

    @Test
    void everyPositionLandsOnExactlyOneRank() {
        int c = 4;
        MicroBatch whole = batch();
        int[] seen = new int[whole.tokens().length];
        for (int r = 0; r < c; r++) {
            MicroBatch part = ContextParallelBatches.slice(whole, c, r);
            assertEquals(2, part.seqLength());
            // chunk length 1: rank r holds positions r and 7 - r
            assertArrayEquals(new int[] {r, 7 - r, r, 7 - r}, part.positionIds());
            for (int i = 0; i < part.tokens().length; i++) {
                seen[part.tokens()[i] / 100 * 8 + part.positionIds()[i]]++;
            }
        }
        assertEquals(0, Arrays.stream(seen).filter(n -> n != 1).count(), Arrays.toString(seen));
    }

    @Test
    void givenPositionIdsAreSlicedNotReplaced() {
        MicroBatch b = batch();
        int[] positions = new int[16];
        for (int i = 0; i < positions.length; i++) {
            positions[i] = (i % 8) % 3;   // --reset-position-ids: documents restart their positions
        }
        MicroBatch withPositions = new MicroBatch(2, 8, b.tokens(), b.labels(), b.lossMask(), positions);
        assertArrayEquals(new int[] {0, 1, 0, 1, 0, 1, 0, 1}, ContextParallelBatches.slice(withPositions, 2, 0).positionIds());
    }

    @Test
    void oneRankKeepsTheBatchAndOddSplitsAreRefused() {
        MicroBatch b = batch();
        assertSame(b, ContextParallelBatches.slice(b, 1, 0));
        assertEquals("context parallelism: sequence length 8 is not divisible by 2 x context-parallel size = 6",
                assertThrows(IllegalArgumentException.class, () -> ContextParallelBatches.slice(b, 3, 0)).getMessage());
        MicroBatch documents = new MicroBatch(2, 8, b.tokens(), b.labels(), b.lossMask(), null, new int[16]);
        assertThrows(IllegalArgumentException.class, () -> ContextParallelBatches.slice(documents, 2, 0));
    }
}
