package org.megatronj.parallel.optim;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;
import org.megatronj.memory.Backend;
import org.megatronj.model.ActivationRecompute;
import org.megatronj.model.MicroBatch;
import org.megatronj.model.ModelChunk;
import org.megatronj.model.Normalization;
import org.megatronj.model.PositionEmbeddingType;
import org.megatronj.model.TransformerConfig;
import org.megatronj.model.optim.AdamW;
import org.megatronj.parallel.ParallelConfig;
import org.megatronj.parallel.TestBackends;
import org.megatronj.parallel.comm.LocalWorld;
import org.megatronj.parallel.comm.RankFailedException;
import org.megatronj.parallel.pipeline.ParallelGptRank;

/** Layouts Megatron refuses are refused here too, with the numbers in the message. */
class ParallelLayoutErrorsTest {
    private static final TransformerConfig CONFIG =
            ParallelGptHarness.config(Normalization.LAYER_NORM, PositionEmbeddingType.LEARNED_ABSOLUTE, false, 4);

    private static String failure(ParallelConfig layout, int world, int microBatches) {
        RankFailedException e = assertThrows(RankFailedException.class, () -> LocalWorld.run(layout, world, ctx -> {
            try (Backend backend = TestBackends.cpu();
                 ParallelGptRank rank = new ParallelGptRank(CONFIG, backend, 1, ctx,
                         new ParallelGptRank.Options(ActivationRecompute.none(), false, 0, null),
                         params -> new AdamW(params, backend, 0.9f, 0.95f, 1e-8f, 0f))) {
                List<MicroBatch> batch = ParallelGptHarness.globalBatch(CONFIG, 0).subList(0, microBatches);
                rank.trainStep(batch, new long[microBatches], 1e-3f, 1.0);
            }
        }));
        return e.getCause().getMessage();
    }

    @Test
    void headsNotDivisibleByTensorParallelSize() {
        String m = failure(ParallelConfig.of(3, 1), 3, 4);
        assertTrue(m.contains("--num-attention-heads 4") && m.contains("--tensor-model-parallel-size 3"), m);
    }

    @Test
    void layersNotDivisibleByPipelineStages() {
        String m = failure(ParallelConfig.of(1, 3), 3, 4);
        assertTrue(m.contains("--num-layers 4") && m.contains("--pipeline-model-parallel-size 3"), m);
    }

    @Test
    void layersNotDivisibleByVirtualStages() {
        String m = failure(new ParallelConfig(1, 2, 3, false), 2, 4);
        assertTrue(m.contains("--num-layers 4") && m.contains("= 6"), m);
    }

    @Test
    void interleavedScheduleNeedsMicroBatchesDivisibleByStages() {
        String m = failure(new ParallelConfig(1, 2, 1, false), 2, 3);
        assertTrue(m.contains("micro-batches 3") && m.contains("--pipeline-model-parallel-size 2"), m);
    }

    @Test
    void sequenceParallelNeedsSequenceDivisibleByTensorParallelSize() {
        TransformerConfig odd = TransformerConfig.builder().numLayers(2).hiddenSize(32).numAttentionHeads(4).seqLength(6)
                .maxPositionEmbeddings(8).attentionDropout(0f).hiddenDropout(0f).vocabSize(64).makeVocabSizeDivisibleBy(16)
                .build();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new ParallelConfig(4, 1, 0, true).validateForModel(2, 4, 4, 128, odd.seqLength()));
        assertTrue(e.getMessage().contains("--seq-length 6"), e.getMessage());
    }

    @Test
    void modelChunkOutsideTheModel() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelChunk.of(CONFIG, 0, 3, 0, 1));
        assertTrue(e.getMessage().contains("--num-layers 4"), e.getMessage());
    }
}
