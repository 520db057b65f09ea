package org.megatronj.parallel.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.megatronj.memory.Backend;
import org.megatronj.model.GPTModel;
import org.megatronj.model.MicroBatch;
import org.megatronj.model.Normalization;
import org.megatronj.model.PositionEmbeddingType;
import org.megatronj.model.TransformerConfig;
import org.megatronj.model.parallel.TensorParallelism;
import org.megatronj.parallel.ParallelConfig;
import org.megatronj.parallel.TestBackends;
import org.megatronj.parallel.comm.LocalWorld;
import org.megatronj.parallel.pipeline.PipelineChannels;
import org.megatronj.parallel.pipeline.PipelineSchedule;

/** Bucket planning and the overlap of bucket reductions with the last backward. */
class ParallelGradientsTest {
    private static final TransformerConfig CONFIG =
            ParallelGptHarness.config(Normalization.LAYER_NORM, PositionEmbeddingType.LEARNED_ABSOLUTE, false, 4);

    @Test
    void bucketsCoverTheStoreFromTheEndInMultiplesOf16TimesDp() {
        try (Backend backend = TestBackends.cpu();
             GPTModel model = new GPTModel(CONFIG, backend, 1, TensorParallelism.none(), 4)) {
            var store = model.parameterStore();
            long total = store.flatGrad().numel();
            GradBuckets b = GradBuckets.plan(store, 1000, 4, model.parameter("embedding.word_embeddings.weight").numel());
            assertEquals(0, b.sharedEmbedding());
            long expectedStart = 0;
            for (GradBuckets.Bucket bucket : b.buckets()) {
                assertEquals(expectedStart, bucket.start());
                assertEquals(0, bucket.numel() % 64, bucket.toString());
                expectedStart = bucket.end();
            }
            assertEquals(total, expectedStart);
            assertEquals(64 * 32, b.buckets().getFirst().numel());   // the 64 x 32 word embedding alone
            assertEquals(1, GradBuckets.plan(store, 0, 4, 0).buckets().size());
            // Every DP rank's shard is a quarter of each bucket, and the shards tile the store.
            long covered = 0;
            for (int r = 0; r < 4; r++) {
                covered += FlatShard.of(store, b, r, 4).numel();
            }
            assertEquals(total, covered);
        }
    }

    @Test
    void overlapStartsBucketsDuringTheLastBackward() {
        AtomicInteger startedBeforeSync = new AtomicInteger(-1);
        AtomicInteger buckets = new AtomicInteger();
        LocalWorld.run(ParallelConfig.single(), 2, ctx -> {
            try (Backend backend = TestBackends.cpu();
                 GPTModel model = new GPTModel(CONFIG, backend, 1, TensorParallelism.none(), 2);
                 PipelineChannels channels = PipelineChannels.create(ctx.groups().world(), ctx.state())) {
                ParallelGradients gradients = new ParallelGradients(List.of(model), ctx.groups(), false, true, 4096);
                List<MicroBatch> batch = ParallelGptHarness.globalBatch(CONFIG, 0).subList(0, 2);
                new PipelineSchedule(List.of(model), channels).run(batch, new long[2], new float[] {0.5f, 0.5f},
                        gradients::armLastBackward);
                if (ctx.rank() == 0) {
                    startedBeforeSync.set(gradients.bucketsStarted());
                    buckets.set(gradients.bucketCount());
                }
                gradients.synchronize();
                assertEquals(0, gradients.bucketsStarted());   // reset for the next iteration
            }
        });
        assertTrue(buckets.get() > 2, "buckets " + buckets.get());
        // Backward issued every bucket's reduction itself, the last one (with the word embedding) at its very end.
        assertEquals(buckets.get(), startedBeforeSync.get());
    }
}
