package org.megatronj.parallel.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.io.checkpoint.CheckpointException;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.optim.DecayStyle;
import org.megatronj.model.optim.OptimizerParamScheduler;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TrainerTest {
    private static final int VOCAB = 16;
    private static final int SEQ = 8;

    @TempDir
    Path dir;

    private static TrainingConfig config(BatchConfig batch, ScheduleConfig schedule, Path save, Path load, long exitInterval,
                                         Path csv) {
        return new TrainingConfig(batch, schedule,
                new OptimizerConfig(OptimizerType.SGD, 0, 0.9, 0.999, 1e-8, 0.9, 1.0),
                new LoggingConfig(1, 4, 2, csv, 2),
                new CheckpointConfig(save, 0, load, false, false, false),
                new ExitConfig(exitInterval, 0, true), 1234);
    }

    /** Runs a fresh model (init seed {@code initSeed}) under {@code config}; returns the result and the log. */
    private static TrainingResult run(TrainingConfig config, long initSeed, List<String> log, ExitSignal signal) {
        try (TensorArena arena = TensorArena.named("toy")) {
            ToyBigramModel model = new ToyBigramModel(arena, VOCAB, initSeed);
            ToySgd sgd = new ToySgd(arena, model.parameters());
            var checkpointer = new TrainingCheckpointer(new ObjectMapper().createObjectNode().put("vocabSize", VOCAB), null);
            Trainer trainer = new Trainer(config, model, sgd, new PatternSource(VOCAB, SEQ, 1000, 0),
                    new PatternSource(VOCAB, SEQ, 50, 3), null, checkpointer, signal, log::add);
            trainer.loadCheckpoint();
            return trainer.train();
        }
    }

    @Test
    void lossFallsOnALearnablePattern() {
        List<String> log = new ArrayList<>();
        var schedule = ScheduleConfig.iterations(60, 0.5, 0.05, DecayStyle.COSINE, 5);
        TrainingResult r = run(config(BatchConfig.of(2, 8), schedule, null, null, 0, null), 1, log, null);
        assertEquals(60, r.iteration());
        assertEquals(480, r.consumedTrainSamples());
        double first = r.iterationLosses().get(0);
        double last = r.iterationLosses().get(59);
        assertEquals(Math.log(VOCAB), first, 0.05, "an untrained model is near uniform");
        assertTrue(last < 0.5 * first, "loss fell from " + first + " to " + last);
        assertTrue(r.lastValidationLoss() < 0.6 * first, "validation loss " + r.lastValidationLoss());
        assertTrue(log.stream().anyMatch(l -> l.contains("] iteration       60/      60 | consumed samples:          480 |")),
                String.join("\n", log));
        assertTrue(log.stream().anyMatch(l -> l.contains(" validation loss at iteration 60 on validation set | lm loss value: ")));
        assertTrue(log.stream().anyMatch(l -> l.startsWith("(min, max) time across ranks (ms):")
                && l.contains("forward-backward ...") && l.contains("batch-generator ...")));
    }

    /** {@code --timing-log-level 1} shows Megatron's level-1 timers: the step and the optimizer's parts, not the data. */
    @Test
    void timingLevelOneShowsTheOptimizersPartsAsMegatron() {
        TrainingConfig base = config(BatchConfig.of(2, 8), ScheduleConfig.iterations(2, 0.5, 0.05, DecayStyle.LINEAR, 0), null,
                null, 0, null);
        TrainingConfig levelOne = new TrainingConfig(base.batch(), base.schedule(), base.optimizer(),
                new LoggingConfig(2, 4, 0, null, 1), base.checkpoint(), base.exit(), base.seed());
        List<String> log = new ArrayList<>();
        run(levelOne, 1, log, null);
        String timing = log.stream().filter(l -> l.startsWith("(min, max) time across ranks (ms):")).findFirst().orElseThrow();
        for (String timer : List.of("forward-backward", "optimizer", "optimizer-clip-main-grad", "optimizer-inner-step")) {
            assertTrue(timing.contains("\n    " + timer + " ."), timer + " in:\n" + timing);
        }
        assertTrue(!timing.contains("batch-generator"), timing);
    }

    /** The toy model whose {@code nanCall}-th forward-backward (counting from 1) reports a NaN loss. */
    private static TrainableModel nanAt(ToyBigramModel model, int nanCall) {
        int[] calls = {0};
        return new TrainableModel() {
            @Override
            public List<org.megatronj.model.Parameter> parameters() {
                return model.parameters();
            }

            @Override
            public org.megatronj.model.LossResult forwardBackward(org.megatronj.model.MicroBatch batch, float gradScale,
                                                                  long rngOffset) {
                org.megatronj.model.LossResult r = model.forwardBackward(batch, gradScale, rngOffset);
                return ++calls[0] == nanCall ? new org.megatronj.model.LossResult(Double.NaN, r.tokens()) : r;
            }

            @Override
            public org.megatronj.model.LossResult forwardLoss(org.megatronj.model.MicroBatch batch) {
                return model.forwardLoss(batch);
            }
        };
    }

    /**
     * A NaN training loss stops the run before its optimizer step, as Megatron's default loss check
     * does; with {@code --no-check-for-nan-in-loss-and-grad} the run goes on.
     */
    @Test
    void aNanLossStopsTheRunUnlessTheCheckIsOff() {
        TrainingConfig checked = config(BatchConfig.of(2, 8), ScheduleConfig.iterations(4, 0.5, 0.05, DecayStyle.LINEAR, 0),
                null, null, 0, null);
        TrainingConfig unchecked = new TrainingConfig(checked.batch(), checked.schedule(), checked.optimizer(),
                checked.logging(), checked.checkpoint(), checked.exit(), checked.seed(), false, false);
        for (TrainingConfig config : List.of(checked, unchecked)) {
            List<String> log = new ArrayList<>();
            try (TensorArena arena = TensorArena.named("toy")) {
                ToyBigramModel toy = new ToyBigramModel(arena, VOCAB, 1);
                ToySgd sgd = new ToySgd(arena, toy.parameters());
                // 4 micro-batches per iteration: the 10th is the second of iteration 3
                Trainer trainer = new Trainer(config, nanAt(toy, 10), sgd, new PatternSource(VOCAB, SEQ, 1000, 0), null, null,
                        null, null, log::add);
                if (config.checkForNanInLoss()) {
                    IllegalStateException e = assertThrows(IllegalStateException.class, trainer::train);
                    assertTrue(e.getMessage().startsWith("iteration 3: found NaN in the training loss"), e.getMessage());
                    assertTrue(e.getMessage().contains("--no-check-for-nan-in-loss-and-grad"), e.getMessage());
                    assertEquals(2, log.stream().filter(l -> l.contains("] iteration ")).count(), String.join("\n", log));
                } else {
                    TrainingResult r = trainer.train();
                    assertEquals(4, r.iteration());
                    // the gradients stayed finite, so the step was taken; as in Megatron a NaN average is not printed
                    assertTrue(log.stream().anyMatch(l -> l.contains("] iteration        3/       4 |") && !l.contains("lm loss")),
                            String.join("\n", log));
                }
            }
        }
    }

    @Test
    void resumingFromACheckpointRepeatsTheLossesBitForBit() throws Exception {
        // Sample-based with ramp-up: the batch size, LR clock and data order all depend on restored counters.
        BatchConfig batch = new BatchConfig(2, 8, 1, new BatchConfig.Rampup(4, 2, 40));
        ScheduleConfig schedule = new ScheduleConfig(0, 120, 0.3, 0.01, DecayStyle.LINEAR, 0, 0, Double.NaN, 0, 16);
        Path csv = dir.resolve("loss.csv");
        TrainingResult whole = run(config(batch, schedule, null, null, 0, null), 1, new ArrayList<>(), null);

        Path save = dir.resolve("ckpt");
        List<String> log1 = new ArrayList<>();
        TrainingResult first = run(config(batch, schedule, save, null, 7, csv), 1, log1, null);
        assertEquals(TrainingResult.ExitReason.EXIT_INTERVAL, first.exitReason());
        assertEquals(7, first.iteration());
        assertEquals("7", Files.readString(save.resolve("latest_checkpointed_iteration.txt")).strip());

        // Another init seed: everything must come from the checkpoint.
        List<String> log2 = new ArrayList<>();
        TrainingResult second = run(config(batch, schedule, save, save, 0, csv), 99, log2, null);
        assertEquals(TrainingResult.ExitReason.COMPLETED, second.exitReason());
        assertEquals(whole.iteration(), second.iteration());
        assertEquals(whole.consumedTrainSamples(), second.consumedTrainSamples());
        List<Double> resumed = new ArrayList<>(first.iterationLosses());
        resumed.addAll(second.iterationLosses());
        assertEquals(whole.iterationLosses().size(), resumed.size());
        for (int i = 0; i < resumed.size(); i++) {
            assertEquals(Double.doubleToRawLongBits(whole.iterationLosses().get(i)), Double.doubleToRawLongBits(resumed.get(i)),
                    "iteration " + (i + 1) + ": " + whole.iterationLosses().get(i) + " vs " + resumed.get(i));
        }
        assertEquals(Double.doubleToRawLongBits(whole.lastValidationLoss()), Double.doubleToRawLongBits(second.lastValidationLoss()));
        assertTrue(log2.get(0).startsWith(" loading checkpoint from "), log2.get(0));
        List<String> rows = Files.readAllLines(csv);
        assertEquals(LossCsvWriter.HEADER, rows.get(0));
        assertEquals(whole.iteration(), rows.stream().filter(r -> r.startsWith("train,")).count());

        // As after a kill past the last save: resumed from iteration 7 again, the run replaces the CSV rows it repeats.
        Files.writeString(save.resolve("latest_checkpointed_iteration.txt"), "7");
        run(config(batch, schedule, save, save, 0, csv), 99, new ArrayList<>(), null);
        assertEquals(rows, Files.readAllLines(csv));
    }

    @Test
    void sigtermSavesAndStopsAfterTheCurrentIteration() throws Exception {
        Path save = dir.resolve("ckpt");
        ExitSignal signal = ExitSignal.manual();
        signal.request();
        List<String> log = new ArrayList<>();
        var schedule = ScheduleConfig.iterations(50, 0.1, 0.1, DecayStyle.CONSTANT, 0);
        TrainingResult r = run(config(BatchConfig.of(2, 4), schedule, save, null, 0, null), 1, log, signal);
        assertEquals(TrainingResult.ExitReason.SIGNAL, r.exitReason());
        assertEquals(1, r.iteration());
        assertEquals("1", Files.readString(save.resolve("latest_checkpointed_iteration.txt")).strip());
        assertTrue(log.contains("exiting program after receiving SIGTERM."));
    }

    @Test
    void finetuneAndNoLoadOptimTakeTheWeightsOnly() {
        Path save = dir.resolve("ckpt");
        var schedule = ScheduleConfig.iterations(4, 0.1, 0.1, DecayStyle.CONSTANT, 0);
        run(config(BatchConfig.of(2, 4), schedule, save, null, 0, null), 1, new ArrayList<>(), null);
        try (TensorArena arena = TensorArena.named("toy")) {
            ToyBigramModel model = new ToyBigramModel(arena, VOCAB, 5);
            ToySgd sgd = new ToySgd(arena, model.parameters());
            var ckpt = new TrainingCheckpointer(null, null);
            OptimizerParamScheduler sched = schedule.scheduler(BatchConfig.of(2, 4));
            ResumePoint finetune = ckpt.load(save, model, sgd, sched, true, false, false, 77);
            assertEquals(new ResumePoint(0, 0, 0, 77), finetune);
            assertEquals(0, sgd.stepCount());
            assertEquals(0, sched.numSteps());
            ResumePoint noOptim = ckpt.load(save, model, sgd, sched, false, true, false, 77);
            assertEquals(4, noOptim.iteration());
            assertEquals(16, noOptim.consumedTrainSamples());
            assertEquals(1234, noOptim.rngStream(), "the checkpoint's RNG stream");
            assertEquals(0, sgd.stepCount());
            ResumePoint all = ckpt.load(save, model, sgd, sched, false, false, true, 77);
            assertEquals(4, sgd.stepCount());
            assertEquals(16, sched.numSteps());
            assertEquals(77, all.rngStream(), "--no-load-rng keeps --seed");
        }
    }

    /**
     * {@code --no-save-optim} and {@code --no-save-rng} leave those parts out, and a resume that asks for them fails
     * with Megatron's words; {@code --ckpt-step} loads an earlier iteration than the tracker's.
     */
    @Test
    void partsLeftOutOfASaveAreRefusedOnLoadAndCkptStepPicksTheIteration() throws Exception {
        Path save = dir.resolve("ckpt");
        var schedule = ScheduleConfig.iterations(4, 0.1, 0.1, DecayStyle.CONSTANT, 0);
        TrainingConfig base = config(BatchConfig.of(2, 4), schedule, save, null, 0, null);
        TrainingConfig lean = new TrainingConfig(base.batch(), base.schedule(), base.optimizer(), base.logging(),
                new CheckpointConfig(save, 2, null, false, false, false, OptimizerParamScheduler.OnLoad.CHECK, false, -1,
                        true, true, false), base.exit(), base.seed());
        run(lean, 1, new ArrayList<>(), null);
        Path rankDir = save.resolve("iter_0000004").resolve("mp_rank_00");
        assertTrue(Files.exists(rankDir.resolve("model.safetensors")));
        assertFalse(Files.exists(rankDir.resolve("optimizer.safetensors")));
        var meta = new ObjectMapper().readTree(rankDir.resolve("metadata.json").toFile());
        for (String left : List.of("optimizer", "scheduler", "rng")) {
            assertFalse(meta.has(left), left + " in " + meta);
        }
        try (TensorArena arena = TensorArena.named("toy")) {
            ToyBigramModel model = new ToyBigramModel(arena, VOCAB, 5);
            ToySgd sgd = new ToySgd(arena, model.parameters());
            var ckpt = new TrainingCheckpointer(null, null);
            OptimizerParamScheduler sched = schedule.scheduler(BatchConfig.of(2, 4));
            var optim = assertThrows(CheckpointException.class, () -> ckpt.load(save, model, sgd, sched, false, false, false, 7));
            assertTrue(optim.getMessage().startsWith("Unable to load optimizer from checkpoint " + rankDir)
                    && optim.getMessage().contains("Specify --no-load-optim or --finetune"), optim.getMessage());
            var rng = assertThrows(CheckpointException.class, () -> ckpt.load(save, model, sgd, sched, false, true, false, 7));
            assertTrue(rng.getMessage().contains("Specify --no-load-rng or --finetune"), rng.getMessage());
            assertEquals(new ResumePoint(4, 16, 8, 7), ckpt.load(save, model, sgd, sched, false, true, true, 7));
        }

        CheckpointConfig step2 = new CheckpointConfig(null, 0, save, false, true, true, OptimizerParamScheduler.OnLoad.CHECK,
                false, 2, false, false, false);
        List<String> log = new ArrayList<>();
        try (TensorArena arena = TensorArena.named("toy")) {
            ToyBigramModel model = new ToyBigramModel(arena, VOCAB, 5);
            Trainer trainer = new Trainer(new TrainingConfig(base.batch(), base.schedule(), base.optimizer(), base.logging(),
                    step2, base.exit(), base.seed()), model, new ToySgd(arena, model.parameters()),
                    new PatternSource(VOCAB, SEQ, 1000, 0), null, null, new TrainingCheckpointer(null, null), null, log::add);
            trainer.loadCheckpoint();
            assertEquals(2, trainer.position().iteration());

            Trainer missing = new Trainer(new TrainingConfig(base.batch(), base.schedule(), base.optimizer(), base.logging(),
                    new CheckpointConfig(null, 0, save, false, true, true, OptimizerParamScheduler.OnLoad.CHECK, false, 3,
                            false, false, false), base.exit(), base.seed()), model, new ToySgd(arena, model.parameters()),
                    new PatternSource(VOCAB, SEQ, 1000, 0), null, null, new TrainingCheckpointer(null, null), null, log::add);
            var e = assertThrows(IllegalStateException.class, missing::loadCheckpoint);
            assertTrue(e.getMessage().contains("iter_0000003 does not exist (" + save + " holds [iter_0000002, iter_0000004])"),
                    e.getMessage());
        }
    }

    @Test
    void exitDurationSavesAndStops() throws Exception {
        Path save = dir.resolve("ckpt");
        var schedule = ScheduleConfig.iterations(1000, 0.1, 0.1, DecayStyle.CONSTANT, 0);
        TrainingConfig base = config(BatchConfig.of(2, 4), schedule, save, null, 0, null);
        TrainingConfig timed = new TrainingConfig(base.batch(), base.schedule(), base.optimizer(), base.logging(), base.checkpoint(),
                new ExitConfig(0, 1e-9, true), base.seed());
        List<String> log = new ArrayList<>();
        TrainingResult r = run(timed, 1, log, null);
        assertEquals(TrainingResult.ExitReason.DURATION, r.exitReason());
        assertEquals(1, r.iteration());
        assertEquals("1", Files.readString(save.resolve("latest_checkpointed_iteration.txt")).strip());
        assertTrue(log.stream().anyMatch(l -> l.startsWith("exiting program after ") && l.endsWith(" minutes")), log.toString());
    }

    @Test
    void aCheckpointOfAnotherShapeIsRefusedWithTheMismatchNamed() {
        Path save = dir.resolve("ckpt");
        var schedule = ScheduleConfig.iterations(2, 0.1, 0.1, DecayStyle.CONSTANT, 0);
        run(config(BatchConfig.of(2, 4), schedule, save, null, 0, null), 1, new ArrayList<>(), null);
        try (TensorArena arena = TensorArena.named("toy")) {
            ToyBigramModel bigger = new ToyBigramModel(arena, VOCAB * 2, 1);
            var ckpt = new TrainingCheckpointer(new ObjectMapper().createObjectNode(), null);
            var e = assertThrows(CheckpointException.class, () -> ckpt.load(save, bigger, new ToySgd(arena, bigger.parameters()),
                    schedule.scheduler(BatchConfig.of(2, 4)), false, false, false, 1));
            assertTrue(e.getMessage().contains("'embedding.word_embeddings.weight' is F32[16, 16] in the checkpoint but F32[32, 32]"),
                    e.getMessage());

            var withConfig = new TrainingCheckpointer(new ObjectMapper().createObjectNode().put("vocabSize", VOCAB * 2), null);
            var e2 = assertThrows(CheckpointException.class, () -> withConfig.load(save, bigger, new ToySgd(arena, bigger.parameters()),
                    schedule.scheduler(BatchConfig.of(2, 4)), false, false, false, 1));
            assertTrue(e2.getMessage().contains("another model shape: vocabSize 16 (this run: 32)"), e2.getMessage());
        }
    }

    /** An imported model's Hugging Face config travels through finetuning, so exporting the result keeps its fields. */
    @Test
    void theHfConfigOfAnImportIsKeptThroughFinetuning() throws Exception {
        Path imported = dir.resolve("imported");
        Path tuned = dir.resolve("tuned");
        ObjectMapper json = new ObjectMapper();
        var hfConfig = json.createObjectNode().put("model_type", "gpt2").put("torch_dtype", "bfloat16");
        try (TensorArena arena = TensorArena.named("toy")) {
            ToyBigramModel model = new ToyBigramModel(arena, VOCAB, 1);
            var weights = new java.util.LinkedHashMap<String, org.megatronj.memory.Tensor>();
            model.parameters().forEach(p -> weights.put(p.name(), p.data()));
            new TrainingCheckpointer(null, null).saveRelease(imported,
                    weights, json.createObjectNode().set(TrainingCheckpointer.HF_CONFIG, hfConfig));
        }
        var schedule = ScheduleConfig.iterations(2, 0.1, 0.1, DecayStyle.CONSTANT, 0);
        TrainingConfig base = config(BatchConfig.of(2, 4), schedule, tuned, imported, 0, null);
        run(new TrainingConfig(base.batch(), base.schedule(), base.optimizer(), base.logging(),
                new CheckpointConfig(tuned, 0, imported, true, false, false), base.exit(), base.seed()), 1, new ArrayList<>(), null);
        var meta = json.readTree(tuned.resolve("iter_0000002/mp_rank_00/metadata.json").toFile());
        assertEquals(hfConfig, meta.get(TrainingCheckpointer.HF_CONFIG));
    }

    /**
     * Megatron stops its interval clock around evaluations and saves: the time per iteration is training time,
     * and the evaluate timer is logged right after the evaluation, before the validation block.
     */
    @Test
    void timePerIterationLeavesOutEvaluation() {
        PatternSource patterns = new PatternSource(VOCAB, SEQ, 50, 3);
        SampleSource slowValid = new SampleSource() {
            @Override
            public long size() {
                return patterns.size();
            }

            @Override
            public org.megatronj.model.MicroBatch microBatch(long first, int batchSize) {
                try {
                    Thread.sleep(400);
                } catch (InterruptedException e) {
                    throw new IllegalStateException(e);
                }
                return patterns.microBatch(first, batchSize);
            }
        };
        var schedule = ScheduleConfig.iterations(4, 0.1, 0.1, DecayStyle.CONSTANT, 0);
        TrainingConfig base = config(BatchConfig.of(2, 2), schedule, null, null, 0, null);
        TrainingConfig evalEvery2 = new TrainingConfig(base.batch(), base.schedule(), base.optimizer(),
                new LoggingConfig(2, 2, 1, null, 0), base.checkpoint(), base.exit(), base.seed());
        List<String> log = new ArrayList<>();
        try (TensorArena arena = TensorArena.named("toy")) {
            ToyBigramModel model = new ToyBigramModel(arena, VOCAB, 1);
            new Trainer(evalEvery2, model, new ToySgd(arena, model.parameters()), new PatternSource(VOCAB, SEQ, 1000, 0),
                    slowValid, null, null, null, log::add).train();
        }
        String line = log.stream().filter(l -> l.contains("iteration        4/")).findFirst().orElseThrow();
        double ms = Double.parseDouble(line.replaceAll(".*elapsed time per iteration \\(ms\\): ([0-9.]+) .*", "$1"));
        assertTrue(ms < 150, "an evaluation of 400 ms in the interval of two iterations, yet " + line);
        int evalTimer = log.indexOf(log.stream().filter(l -> l.contains("evaluate ....")).findFirst().orElseThrow());
        assertTrue(log.get(evalTimer + 1).contains("validation loss at iteration 2"), log.toString());
        double evalMs = Double.parseDouble(log.get(evalTimer).replaceAll("(?s).*evaluate \\.+: \\(([0-9.]+), .*", "$1"));
        assertTrue(evalMs >= 399, log.get(evalTimer));
    }

    /**
     * {@code --async-save} writes the same files as a save in place, publishes each checkpoint at a later iteration
     * (never before its files are complete) and waits for the last one before training returns.
     */
    @Test
    void asyncSavesWriteTheSameCheckpointsAndPublishThemLater() throws Exception {
        var schedule = ScheduleConfig.iterations(6, 0.5, 0.05, DecayStyle.LINEAR, 0);
        Path sync = dir.resolve("sync"), async = dir.resolve("async");
        TrainingConfig base = config(BatchConfig.of(2, 4), schedule, sync, null, 0, null);
        run(new TrainingConfig(base.batch(), base.schedule(), base.optimizer(), base.logging(),
                new CheckpointConfig(sync, 2, null, false, false, false), base.exit(), base.seed()), 1, new ArrayList<>(), null);
        List<String> log = new ArrayList<>();
        run(new TrainingConfig(base.batch(), base.schedule(), base.optimizer(), base.logging(),
                new CheckpointConfig(async, 2, null, false, false, false, OptimizerParamScheduler.OnLoad.CHECK, false, -1, false,
                        false, true), base.exit(), base.seed()), 1, log, null);
        for (String iter : List.of("iter_0000002", "iter_0000004", "iter_0000006")) {
            for (String file : List.of("model.safetensors", "optimizer.safetensors")) {
                assertEquals(-1L, Files.mismatch(sync.resolve(iter).resolve("mp_rank_00").resolve(file),
                        async.resolve(iter).resolve("mp_rank_00").resolve(file)), iter + "/" + file);
            }
        }
        assertEquals("6", Files.readString(async.resolve("latest_checkpointed_iteration.txt")).strip());
        try (var left = Files.list(async)) {
            assertEquals(List.of(), left.filter(p -> p.getFileName().toString().startsWith(".")).toList(), "no partial folders");
        }
        int saving = log.indexOf(" saving checkpoint at iteration       2 to " + async);
        int saved = log.indexOf("  successfully saved checkpoint from iteration       2 to " + async + " [ t 1/1, p 1/1 ]");
        assertTrue(saving >= 0 && saved > saving, String.join("\n", log));
        assertTrue(log.subList(saving, saved).stream().anyMatch(l -> l.contains("] iteration        3/")),
                "published at a later iteration: " + String.join("\n", log));
        int last = log.indexOf("Unfinalized async checkpoint saves. Finalizing them synchronously now.");
        assertTrue(last > log.indexOf(" saving checkpoint at iteration       6 to " + async)
                && log.get(last + 1).startsWith("  successfully saved checkpoint from iteration       6"), String.join("\n", log));
    }

    /** A background save shows nothing until it is finished; a failed writer publishes nothing and says why. */
    @Test
    void backgroundSavePublishesOnlyWhenFinished() throws Exception {
        Path root = dir.resolve("bg");
        java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
        List<String> published = new ArrayList<>();
        BackgroundSave save = new BackgroundSave(TensorArena.named("snap"), () -> {
            release.await();
            Files.createDirectories(root);
            return 42L;
        }, () -> published.add("published"));
        assertFalse(save.written());
        assertEquals(List.of(), published);
        release.countDown();
        assertEquals(42L, save.finish());
        assertTrue(save.written());
        assertEquals(List.of("published"), published);

        BackgroundSave failing = new BackgroundSave(TensorArena.named("snap"), () -> {
            throw new java.io.UncheckedIOException(new java.io.IOException("disk full"));
        }, () -> published.add("never"));
        var e = assertThrows(java.io.UncheckedIOException.class, failing::finish);
        assertTrue(e.getMessage().contains("disk full"), e.getMessage());
        assertEquals(List.of("published"), published);
    }

    /**
     * --dist-ckpt-strictness: a checkpoint with a tensor besides the model's loads by Megatron's default and fails
     * raise_all; one that lacks a model tensor fails the default and, under log_unexpected, leaves it at its value with
     * a warning.
     */
    @Test
    void strictnessDecidesWhatAMismatchedCheckpointDoes() throws Exception {
        Path save = dir.resolve("strict");
        var schedule = ScheduleConfig.iterations(2, 0.1, 0.1, DecayStyle.CONSTANT, 0);
        TrainingConfig base = config(BatchConfig.of(2, 4), schedule, save, null, 0, null);
        run(base, 1, new ArrayList<>(), null);
        Path modelFile = save.resolve("iter_0000002").resolve("mp_rank_00").resolve("model.safetensors");
        try (TensorArena arena = TensorArena.named("toy")) {
            ToyBigramModel model = new ToyBigramModel(arena, VOCAB, 5);
            ToySgd sgd = new ToySgd(arena, model.parameters());
            OptimizerParamScheduler sched = schedule.scheduler(BatchConfig.of(2, 4));
            java.util.Map<String, org.megatronj.memory.Tensor> tensors = new java.util.LinkedHashMap<>();
            for (var p : model.parameters()) {
                tensors.put(p.name(), p.data());
            }
            tensors.put("extra.weight", arena.fromFloats(new float[] {1, 2}, 2));
            org.megatronj.io.safetensors.SafetensorsWriter.write(modelFile, tensors, java.util.Map.of());
            List<String> warnings = new ArrayList<>();
            var ckpt = new TrainingCheckpointer(null, null);
            ckpt.setStrictness(CheckpointStrictness.ASSUME_OK_UNEXPECTED, warnings::add);
            ckpt.load(save, model, sgd, sched, false, true, true, 7);
            ckpt.setStrictness(CheckpointStrictness.LOG_ALL, warnings::add);
            ckpt.load(save, model, sgd, sched, false, true, true, 7);
            assertEquals(1, warnings.size(), warnings.toString());
            assertTrue(warnings.get(0).contains("unexpected tensor 'extra.weight' [2] is not loaded"), warnings.toString());
            ckpt.setStrictness(CheckpointStrictness.RAISE_ALL, warnings::add);
            var e = assertThrows(CheckpointException.class, () -> ckpt.load(save, model, sgd, sched, false, true, true, 7));
            assertTrue(e.getMessage().contains("unexpected tensor 'extra.weight'"), e.getMessage());

            String dropped = model.parameters().getFirst().name();
            tensors.remove("extra.weight");
            tensors.remove(dropped);
            org.megatronj.io.safetensors.SafetensorsWriter.write(modelFile, tensors, java.util.Map.of());
            ckpt.setStrictness(CheckpointStrictness.ASSUME_OK_UNEXPECTED, warnings::add);
            e = assertThrows(CheckpointException.class, () -> ckpt.load(save, model, sgd, sched, false, true, true, 7));
            assertTrue(e.getMessage().contains("missing tensor '" + dropped + "'")
                    && e.getMessage().endsWith("(--dist-ckpt-strictness assume_ok_unexpected)"), e.getMessage());
            warnings.clear();
            ckpt.setStrictness(CheckpointStrictness.LOG_UNEXPECTED, warnings::add);
            ckpt.load(save, model, sgd, sched, false, true, true, 7);
            assertTrue(warnings.size() == 1 && warnings.get(0).contains("missing tensor '" + dropped + "'")
                    && warnings.get(0).contains("keeps its initial value"), warnings.toString());
            assertEquals(CheckpointStrictness.RETURN_ALL, CheckpointStrictness.parse("return_all"));
        }
    }

    /**
     * --save-retain-interval 3 with a save every iteration: each save deletes the checkpoint it replaces unless that one's
     * iteration is a multiple of 3, in place and with --async-save alike.
     */
    @Test
    void saveRetainIntervalDeletesTheReplacedCheckpoints() throws Exception {
        var schedule = ScheduleConfig.iterations(6, 0.1, 0.1, DecayStyle.CONSTANT, 0);
        for (boolean async : new boolean[] {false, true}) {
            Path save = dir.resolve(async ? "retain-async" : "retain");
            TrainingConfig base = config(BatchConfig.of(2, 4), schedule, save, null, 0, null);
            TrainingConfig every = new TrainingConfig(base.batch(), base.schedule(), base.optimizer(), base.logging(),
                    new CheckpointConfig(save, 1, null, false, false, false, OptimizerParamScheduler.OnLoad.CHECK, false, -1,
                            false, false, async), base.exit(), base.seed());
            List<String> log = new ArrayList<>();
            List<Long> deleted = new ArrayList<>();
            try (TensorArena arena = TensorArena.named("toy")) {
                ToyBigramModel model = new ToyBigramModel(arena, VOCAB, 1);
                var checkpointer = new TrainingCheckpointer(null, null);
                checkpointer.setStrictness(CheckpointStrictness.ASSUME_OK_UNEXPECTED, log::add);
                checkpointer.setSaveRetainInterval(3, deleted::add);
                new Trainer(every, model, new ToySgd(arena, model.parameters()), new PatternSource(VOCAB, SEQ, 1000, 0), null,
                        null, checkpointer, null, log::add).train();
            }
            try (var dirs = Files.list(save)) {
                assertEquals(List.of("iter_0000003", "iter_0000006", "latest_checkpointed_iteration.txt"),
                        dirs.map(p -> p.getFileName().toString()).sorted().toList(), "async " + async);
            }
            assertEquals(List.of(1L, 2L, 4L, 5L), deleted, "async " + async);
            assertTrue(log.contains("  successfully deleted checkpoint from iteration       1 at " + save), String.join("\n", log));
        }
    }

    /**
     * With --calculate-per-token-loss the MoE auxiliary losses' scale is Megatron's: the loss scale times a
     * micro-batch's tokens over the global batch's counted ones (lossScale / micro-batches when nothing is masked).
     */
    @Test
    void perTokenAuxiliaryLossScaleCountsTheMaskedTokens() {
        org.megatronj.model.MicroBatch full = org.megatronj.model.MicroBatch.of(2, 4, new int[8], new int[8]);
        float[] mask = {1, 1, 0, 1, 1, 0, 0, 1};
        org.megatronj.model.MicroBatch masked = new org.megatronj.model.MicroBatch(2, 4, new int[8], new int[8], mask, null);
        assertEquals(0.5f, Trainer.perTokenAuxLossScale(List.of(full, full), 1f), 0f);
        assertEquals(8f * 2 / (8 + 5), Trainer.perTokenAuxLossScale(List.of(full, masked), 2f), 1e-6f);
    }
}
