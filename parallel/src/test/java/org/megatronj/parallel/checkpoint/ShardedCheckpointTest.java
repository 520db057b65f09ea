package org.megatronj.parallel.checkpoint;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.megatronj.io.checkpoint.Checkpoint;
import org.megatronj.io.checkpoint.CheckpointException;
import org.megatronj.io.checkpoint.OptimizerStateFiles;
import org.megatronj.io.safetensors.SafetensorsFile;
import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.ActivationRecompute;
import org.megatronj.model.GPTModel;
import org.megatronj.model.LossResult;
import org.megatronj.model.MicroBatch;
import org.megatronj.model.ParameterSpec;
import org.megatronj.model.TransformerConfig;
import org.megatronj.model.optim.AdamW;
import org.megatronj.model.optim.DecayStyle;
import org.megatronj.model.optim.OptimizerParamScheduler;
import org.megatronj.parallel.ParallelConfig;
import org.megatronj.parallel.TestBackends;
import org.megatronj.parallel.comm.LocalWorld;
import org.megatronj.parallel.pipeline.ParallelCheckpointer;
import org.megatronj.parallel.pipeline.ParallelGptRank;
import org.megatronj.parallel.pipeline.ParallelTraining;
import org.megatronj.parallel.train.ResumePoint;
import org.megatronj.parallel.train.TrainingCheckpointer;
import org.megatronj.parallel.train.TrainingCheckpoints;
import org.megatronj.parallel.train.TrainingOptimizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Sharded checkpoints (one folder per (TP, PP) rank, distributed-optimizer files per DP rank)
 * and {@code reshard}: a TP2/PP2/DP2 checkpoint resharded to 1 x 1 evaluates to the same loss,
 * a single-rank checkpoint resharded to TP2/PP2 resumes like the original, the distributed
 * optimizer's state reloads at another DP size, and mismatched layouts fail with a pointer to
 * reshard.
 */
class ShardedCheckpointTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long SEED = 1234;
    private static final int MICRO_BATCH = 2;
    private static final int GLOBAL_BATCH = 8;
    private static final float LR = 1e-2f;

    @TempDir
    Path dir;

    record Layout(int tp, int pp, int dp, boolean distributedOptimizer, int layersPerVirtualStage) {
        Layout(int tp, int pp, int dp, boolean distributedOptimizer) {
            this(tp, pp, dp, distributedOptimizer, 0);
        }

        ParallelConfig parallelConfig() {
            return new ParallelConfig(tp, pp, layersPerVirtualStage, false);
        }

        int world() {
            return tp * pp * dp;
        }
    }

    interface RankBody {
        void run(ParallelGptRank rank, ParallelCheckpointer checkpointer, TrainingOptimizer optimizer,
                 OptimizerParamScheduler scheduler);
    }

    static TransformerConfig config(int vocab) {
        return TransformerConfig.builder().numLayers(4).hiddenSize(32).numAttentionHeads(4).numQueryGroups(2)
                .seqLength(8).maxPositionEmbeddings(8).attentionDropout(0f).hiddenDropout(0f)
                .vocabSize(vocab).makeVocabSizeDivisibleBy(16).build();
    }

    static void onLayout(TransformerConfig c, Layout l, RankBody body) {
        LocalWorld.run(l.parallelConfig(), l.world(), ctx -> {
            var adam = l.distributedOptimizer() ? new ParallelGptRank.AdamSettings(0.9f, 0.95f, 1e-8f, 0.1f) : null;
            var options = new ParallelGptRank.Options(ActivationRecompute.none(), false, 0, adam);
            try (Backend backend = TestBackends.cpu();
                 ParallelGptRank rank = new ParallelGptRank(c, backend, SEED, ctx, options,
                         params -> new AdamW(params, backend, 0.9f, 0.95f, 1e-8f, 0.1f))) {
                var checkpointer = new ParallelCheckpointer(new TrainingCheckpointer(JSON.valueToTree(c), null), rank);
                body.run(rank, checkpointer, ParallelTraining.optimizer(rank, "adam", null, null),
                        new OptimizerParamScheduler(LR, 0, 0, 100, DecayStyle.CONSTANT));
            }
        });
    }

    static List<MicroBatch> batch(TransformerConfig c, int it) {
        SplittableRandom random = new SplittableRandom(SEED * 31 + it);
        List<MicroBatch> out = new ArrayList<>();
        int n = MICRO_BATCH * c.seqLength();
        for (int m = 0; m < GLOBAL_BATCH / MICRO_BATCH; m++) {
            int[] tokens = new int[n];
            int[] labels = new int[n];
            for (int i = 0; i < n; i++) {
                tokens[i] = random.nextInt(c.vocabSize());
                labels[i] = random.nextInt(c.vocabSize());
            }
            out.add(MicroBatch.of(MICRO_BATCH, c.seqLength(), tokens, labels));
        }
        return out;
    }

    private static double step(ParallelGptRank rank, TransformerConfig c, int it) {
        long[] offsets = new long[GLOBAL_BATCH / MICRO_BATCH];
        return rank.trainStep(batch(c, it), offsets, LR, 1.0).loss();
    }

    /** Trains {@code from..to-1} (loading {@code load} first when given), saves at {@code to} when {@code save} is given. */
    static double[] train(TransformerConfig c, Layout l, Path load, Path save, int from, int to) {
        double[] losses = new double[to - from];
        onLayout(c, l, (rank, ckpt, opt, sched) -> {
            if (load != null) {
                ResumePoint r = ckpt.load(load, ParallelTraining.model(rank), opt, sched, false, false, false, SEED);
                assertEquals(from, r.iteration());
                assertEquals(from, opt.stepCount());
            }
            for (int it = from; it < to; it++) {
                double loss = step(rank, c, it);
                if (rank.context().rank() == 0) {
                    losses[it - from] = loss;
                }
            }
            if (save != null) {
                ckpt.save(save, new ResumePoint(to, (long) to * GLOBAL_BATCH, 0, SEED), ParallelTraining.model(rank), opt, sched);
            }
        });
        return losses;
    }

    /** The loss of a held-out batch after loading {@code load} on layout {@code l} (rank 0's answer). */
    static double validation(TransformerConfig c, Layout l, Path load) {
        double[] out = new double[1];
        onLayout(c, l, (rank, ckpt, opt, sched) -> {
            ckpt.load(load, ParallelTraining.model(rank), opt, sched, false, false, false, SEED);
            double loss = rank.evaluate(batch(c, 99)).meanLoss();
            if (rank.context().rank() == 0) {
                out[0] = loss;
            }
        });
        return out[0];
    }

    /** The same on one rank with the ordinary single-rank loader (what {@code evaluate} does). */
    static double singleRankValidation(TransformerConfig c, Path load) {
        try (Backend backend = TestBackends.cpu(); GPTModel model = new GPTModel(c, backend, 0);
             Checkpoint ckpt = Checkpoint.openLatest(load, TrainingCheckpointer.RANK_DIR)) {
            TrainingCheckpointer.loadWeights(ckpt, model.parameters());
            LossResult sum = new LossResult(0, 0);
            for (MicroBatch mb : batch(c, 99)) {
                sum = sum.plus(model.forwardLoss(mb));
            }
            return sum.meanLoss();
        }
    }

    /** {@code --no-save-optim} writes no optimizer file on any rank, and a resume that wants the state is refused. */
    @ParameterizedTest(name = "distributed optimizer {0}")
    @ValueSource(booleans = {false, true})
    void noSaveOptimLeavesEveryRanksOptimizerStateOut(boolean distributedOptimizer) {
        TransformerConfig c = config(64);
        Layout layout = new Layout(2, 1, 2, distributedOptimizer);
        Path saved = dir.resolve("lean");
        onLayout(c, layout, (rank, ckpt, opt, sched) -> {
            step(rank, c, 0);
            ckpt.save(saved, new ResumePoint(1, GLOBAL_BATCH, 0, SEED), ParallelTraining.model(rank), opt, sched,
                    new TrainingCheckpoints.Contents(false, true));
        });
        for (String rankDir : List.of("mp_rank_00", "mp_rank_01")) {
            Path folder = saved.resolve("iter_0000001").resolve(rankDir);
            assertTrue(Files.exists(folder.resolve("model.safetensors")), rankDir);
            assertEquals(List.of(), OptimizerStateFiles.distribFiles(folder), rankDir);
            assertFalse(Files.exists(folder.resolve("optimizer.safetensors")), rankDir);
        }
        var refused = assertThrows(RuntimeException.class, () -> validation(c, layout, saved));
        assertTrue(String.valueOf(rootCause(refused).getMessage()).contains("Specify --no-load-optim or --finetune"),
                String.valueOf(rootCause(refused).getMessage()));
        onLayout(c, layout, (rank, ckpt, opt, sched) -> assertEquals(1,
                ckpt.load(saved, ParallelTraining.model(rank), opt, sched, false, true, false, SEED).iteration()));
    }

    private static Throwable rootCause(Throwable t) {
        return t.getCause() == null ? t : rootCause(t.getCause());
    }

    @ParameterizedTest(name = "distributed optimizer {0}")
    @ValueSource(booleans = {false, true})
    void tp2pp2dp2ReshardedToOneRankGivesTheSameValidationLoss(boolean distributedOptimizer) {
        TransformerConfig c = config(64);
        Layout layout = new Layout(2, 2, 2, distributedOptimizer);
        Path saved = dir.resolve("tp2pp2");
        train(c, layout, null, saved, 0, 2);
        Path iter = saved.resolve("iter_0000002");
        for (String rankDir : List.of("mp_rank_00_000", "mp_rank_01_000", "mp_rank_00_001", "mp_rank_01_001")) {
            assertTrue(Files.exists(iter.resolve(rankDir).resolve("model.safetensors")), rankDir);
            assertEquals(distributedOptimizer, Files.exists(iter.resolve(rankDir).resolve(OptimizerStateFiles.distribFileName(1))));
            assertEquals(!distributedOptimizer, Files.exists(iter.resolve(rankDir).resolve("optimizer.safetensors")));
        }
        double original = validation(c, layout, saved);

        Path single = dir.resolve("tp1pp1");
        var result = CheckpointResharder.reshard(saved, single, ParallelConfig.of(1, 1), true, line -> { });
        assertTrue(result.optimizerState());
        assertTrue(Files.exists(single.resolve("iter_0000002/mp_rank_00/optimizer.safetensors")));
        double resharded = singleRankValidation(c, single);
        assertEquals(original, resharded, 1e-6 * original);
        // Back to the original layout: the same loss again, and the optimizer state resumes.
        Path back = dir.resolve("back");
        CheckpointResharder.reshard(single, back, ParallelConfig.of(2, 2), true, line -> { });
        assertEquals(original, validation(c, layout, back), 1e-6 * original);
    }

    @Test
    void singleRankReshardedToTp2pp2ResumesLikeTheOriginal() {
        TransformerConfig c = config(64);
        Path saved = dir.resolve("single");
        train(c, new Layout(1, 1, 1, false), null, saved, 0, 2);
        double[] expected = train(c, new Layout(1, 1, 1, false), saved, null, 2, 4);

        Path sharded = dir.resolve("tp2pp2");
        CheckpointResharder.reshard(saved, sharded, ParallelConfig.of(2, 2), true, line -> { });
        double[] actual = train(c, new Layout(2, 2, 1, true), sharded, null, 2, 4);
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], 1e-5 * expected[i], "loss of resumed iteration " + (i + 3));
        }

        // The interleaved schedule (2 chunks of 1 layer per stage) resumes too, saves sharded, and reshards back.
        Path interleaved = dir.resolve("pp2-interleaved");
        CheckpointResharder.reshard(saved, interleaved, new ParallelConfig(1, 2, 1, false), true, line -> { });
        Layout vpp = new Layout(1, 2, 2, true, 1);
        Path continued = dir.resolve("pp2-interleaved-4");
        double[] resumed = train(c, vpp, interleaved, continued, 2, 4);
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], resumed[i], 1e-5 * expected[i], "interleaved: loss of resumed iteration " + (i + 3));
        }
        Path whole = dir.resolve("whole-4");
        CheckpointResharder.reshard(continued, whole, ParallelConfig.of(1, 1), true, line -> { });
        double original = validation(c, vpp, continued);
        assertEquals(original, singleRankValidation(c, whole), 1e-6 * original);
    }

    @Test
    void distributedOptimizerStateReloadsAtAnotherDataParallelSize() {
        TransformerConfig c = config(64);
        Layout dp2 = new Layout(1, 2, 2, true);
        double[] uninterrupted = train(c, dp2, null, null, 0, 4);
        Path saved = dir.resolve("dp2");
        train(c, dp2, null, saved, 0, 2);
        double[] dp4 = train(c, new Layout(1, 2, 4, true), saved, null, 2, 4);
        double[] dp1Plain = train(c, new Layout(1, 2, 1, false), saved, null, 2, 4);
        for (int i = 0; i < 2; i++) {
            assertEquals(uninterrupted[2 + i], dp4[i], 1e-5 * uninterrupted[2 + i], "DP 4, iteration " + (i + 3));
            assertEquals(uninterrupted[2 + i], dp1Plain[i], 1e-5 * uninterrupted[2 + i], "DP 1 plain Adam, iteration " + (i + 3));
        }
    }

    @Test
    void dataParallelDistributedOptimizerCheckpointLoadsOnOneRank() {
        TransformerConfig c = config(64);
        Path plain = dir.resolve("plain");
        Path distributed = dir.resolve("distributed");
        // The same DP2 run with plain Adam (optimizer.safetensors) and with the distributed optimizer: bitwise the same steps.
        train(c, new Layout(1, 1, 2, false), null, plain, 0, 2);
        train(c, new Layout(1, 1, 2, true), null, distributed, 0, 2);
        assertTrue(Files.exists(distributed.resolve("iter_0000002/mp_rank_00/" + OptimizerStateFiles.distribFileName(1))));
        try (TensorArena arena = TensorArena.named("test");
             Checkpoint a = Checkpoint.openLatest(plain, TrainingCheckpointer.RANK_DIR);
             Checkpoint b = Checkpoint.openLatest(distributed, TrainingCheckpointer.RANK_DIR)) {
            Map<String, Tensor> expected = new LinkedHashMap<>();
            Map<String, Tensor> actual = new LinkedHashMap<>();
            for (ParameterSpec spec : ParameterSpec.forGpt(c)) {
                for (String suffix : List.of("exp_avg", "exp_avg_sq")) {
                    expected.put(spec.name() + "." + suffix, arena.allocate(DType.F32, spec.shape()));
                    actual.put(spec.name() + "." + suffix, arena.allocate(DType.F32, spec.shape()));
                }
            }
            TrainingCheckpointer.copyOptimizerState(a, expected);   // optimizer.safetensors of plain Adam
            TrainingCheckpointer.copyOptimizerState(b, actual);     // the two DP ranks' distrib_optim files
            for (String key : expected.keySet()) {
                assertArrayEquals(expected.get(key).toFloatArray(), actual.get(key).toFloatArray(), key);
            }
        }
        Path weightsOnly = dir.resolve("weights-only");
        var result = CheckpointResharder.reshard(distributed, weightsOnly, ParallelConfig.of(2, 1), false, line -> { });
        assertFalse(result.optimizerState());
        assertFalse(OptimizerStateFiles.present(weightsOnly.resolve("iter_0000002/mp_rank_01")));
        assertTrue(Files.exists(weightsOnly.resolve("iter_0000002/mp_rank_01/model.safetensors")));
    }

    @Test
    void mismatchedLayoutsFailWithAPointerToReshard() {
        TransformerConfig c = config(64);
        Path saved = dir.resolve("tp2");
        train(c, new Layout(2, 1, 1, false), null, saved, 0, 1);
        RuntimeException e = assertThrows(RuntimeException.class, () -> validation(c, new Layout(1, 2, 1, false), saved));
        assertTrue(messages(e).contains("megatron checkpoint reshard"), messages(e));
        assertTrue(messages(e).contains("--target-tensor-parallel-size 1 --target-pipeline-parallel-size 2"), messages(e));
        // Single-rank readers (generate, evaluate, export-hf) refuse the TP2 shard instead of misreading it.
        CheckpointException single = assertThrows(CheckpointException.class, () -> singleRankValidation(c, saved));
        assertTrue(single.getMessage().contains("checkpoint reshard"), single.getMessage());
        // Reshard checks the target against the model and refuses to write into its source.
        assertThrows(IllegalArgumentException.class,
                () -> CheckpointResharder.reshard(saved, dir.resolve("x"), ParallelConfig.of(3, 1), true, line -> { }));
        assertThrows(CheckpointException.class,
                () -> CheckpointResharder.reshard(saved, saved.resolve("inside"), ParallelConfig.of(1, 1), true, line -> { }));
    }

    @Test
    void vocabularyPaddingIsDroppedAndRestoredBetweenTpSizes() throws Exception {
        TransformerConfig c = config(40);   // padded to 48 rows at TP 1, 64 at TP 2
        Path saved = dir.resolve("tp1");
        train(c, new Layout(1, 1, 1, false), null, saved, 0, 1);
        Path tp2 = dir.resolve("tp2");
        CheckpointResharder.reshard(saved, tp2, ParallelConfig.of(2, 1), true, line -> { });
        try (SafetensorsFile f = SafetensorsFile.open(tp2.resolve("iter_0000001/mp_rank_01/model.safetensors"));
             SafetensorsFile whole = SafetensorsFile.open(saved.resolve("iter_0000001/mp_rank_00/model.safetensors"))) {
            assertArrayEquals(new long[] {32, 32}, f.info("embedding.word_embeddings.weight").shape());
            float[] shard = f.tensor("embedding.word_embeddings.weight").toFloatArray();
            float[] last = java.util.Arrays.copyOfRange(whole.tensor("embedding.word_embeddings.weight").toFloatArray(), 47 * 32,
                    48 * 32);
            // TP rank 1 holds rows 32..63: rows 48..63 are copies of row 47 (Megatron's checkpoint_util).
            assertArrayEquals(last, java.util.Arrays.copyOfRange(shard, 63 * 32 - 32 * 32, 64 * 32 - 32 * 32));
        }
        Path back = dir.resolve("back");
        CheckpointResharder.reshard(tp2, back, ParallelConfig.of(1, 1), true, line -> { });
        for (String file : List.of("model.safetensors", "optimizer.safetensors")) {
            try (SafetensorsFile a = SafetensorsFile.open(saved.resolve("iter_0000001/mp_rank_00/" + file));
                 SafetensorsFile b = SafetensorsFile.open(back.resolve("iter_0000001/mp_rank_00/" + file))) {
                assertEquals(a.names(), b.names());
                for (String n : a.names()) {
                    assertArrayEquals(a.tensor(n).toFloatArray(), b.tensor(n).toFloatArray(), n);
                }
            }
        }
        assertEquals(singleRankValidation(c, saved), singleRankValidation(c, back));
    }

    private static String messages(Throwable t) {
        StringBuilder sb = new StringBuilder();
        for (Throwable x = t; x != null; x = x.getCause()) {
            sb.append(x.getMessage()).append(" | ");
        }
        for (Throwable s : t.getSuppressed()) {
            sb.append(s.getMessage()).append(" | ");
        }
        return sb.toString();
    }
}
