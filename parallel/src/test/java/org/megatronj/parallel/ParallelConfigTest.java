package org.megatronj.parallel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.megatronj.model.ModelChunk;

class ParallelConfigTest {

    private static String refusal(Runnable r) {
        return assertThrows(IllegalArgumentException.class, r::run).getMessage();
    }

    @Test
    void headsMustDivideByTensorParallelSize() {
        String m = refusal(() -> ParallelConfig.of(4, 1).validateForModel(12, 6, 6, 3072, 1024));
        assertTrue(m.contains("--num-attention-heads 6") && m.contains("--tensor-model-parallel-size 4"), m);
        String g = refusal(() -> ParallelConfig.of(4, 1).validateForModel(12, 8, 2, 3072, 1024));
        assertTrue(g.contains("--num-query-groups 2"), g);
    }

    @Test
    void layersMustDivideByPipelineAndVirtualStages() {
        String m = refusal(() -> ParallelConfig.of(1, 5).validateForModel(12, 12, 12, 3072, 1024));
        assertTrue(m.contains("--num-layers 12") && m.contains("--pipeline-model-parallel-size 5"), m);
        ParallelConfig interleaved = new ParallelConfig(1, 2, 4, false);
        String v = refusal(() -> interleaved.validateForModel(12, 12, 12, 3072, 1024));
        assertTrue(v.contains("2 x --num-layers-per-virtual-pipeline-stage 4 = 8"), v);
        assertEquals(3, new ParallelConfig(1, 2, 2, false).virtualPipelineModelParallelSize(12));
        // chunk 0 of stage 1 is virtual stage 1: layers 2 and 3
        assertEquals(new ModelChunk(2, 2, false, false), new ParallelConfig(1, 2, 2, false).pipelineLayout(12).chunk(1, 0));
        assertEquals(1, ParallelConfig.of(1, 2).virtualPipelineModelParallelSize(12));
    }

    @Test
    void interleavingNeedsAPipeline() {
        String m = refusal(() -> new ParallelConfig(2, 1, 2, false));
        assertTrue(m.contains("--pipeline-model-parallel-size >= 2"), m);
        refusal(() -> new ParallelConfig(0, 1, 0, false));
        refusal(() -> new ParallelConfig(1, 0, 0, false));
    }

    @Test
    void sequenceParallelNeedsTensorParallelAndDivisibleSequence() {
        assertFalse(new ParallelConfig(1, 1, 0, true).sequenceParallelActive());
        ParallelConfig sp = new ParallelConfig(4, 1, 0, true);
        assertTrue(sp.sequenceParallelActive());
        String m = refusal(() -> sp.validateForModel(2, 8, 8, 64, 1022));
        assertTrue(m.contains("--seq-length 1022"), m);
        sp.validateForModel(2, 8, 8, 64, 1024);
        String f = refusal(() -> sp.validateForModel(2, 8, 8, 66, 1024));
        assertTrue(f.contains("--ffn-hidden-size 66"), f);
    }

    @Test
    void dataParallelSizeIsTheRest() {
        assertEquals(3, ParallelConfig.of(2, 2).dataParallelSize(12));
        String m = refusal(() -> ParallelConfig.of(2, 2).dataParallelSize(6));
        assertTrue(m.contains("world size 6"), m);
    }

    /** CP takes its share of the world, the sequence must split into 2 x CP chunks, and SP splits a CP rank's part. */
    @Test
    void contextParallelSplitsTheWorldAndTheSequence() {
        ParallelConfig cp = new ParallelConfig(2, 1, 0, true, 2);
        assertTrue(cp.contextParallel());
        assertEquals(2, cp.dataParallelSize(8));
        assertEquals("world size 6 is not divisible by tensor-model-parallel size 2 x pipeline-model-parallel size 1"
                + " x context-parallel size 2 = 4", refusal(() -> cp.dataParallelSize(6)));
        assertEquals("--context-parallel-size 2: --seq-length 18 is not divisible by 2 x context-parallel size = 4",
                refusal(() -> cp.validateForModel(2, 8, 8, 64, 18)));
        assertEquals("--sequence-parallel: --seq-length 20 / context-parallel size 2 = 10 is not divisible by"
                + " --tensor-model-parallel-size 4", refusal(() -> new ParallelConfig(4, 1, 0, true, 2).validateForModel(2, 8, 8, 64, 20)));
        cp.validateForModel(2, 8, 8, 64, 16);
        assertEquals("--context-parallel-size must be >= 1, got 0", refusal(() -> ParallelConfig.single().withContextParallelSize(0)));
        assertEquals(1, ParallelConfig.single().contextParallelSize());
    }
}
