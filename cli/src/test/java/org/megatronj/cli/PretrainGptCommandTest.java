package org.megatronj.cli;

import org.junit.jupiter.api.Test;
import org.megatronj.memory.Backends;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PretrainGptCommandTest {
    @TempDir
    Path dir;

    /** 40 documents of a learnable pattern over ids 0..49 (NullTokenizer --vocab-size 51, EOD 50). */
    private Path dataset() {
        return ToyCorpus.write(dir);
    }

    private List<String> args(Path data, String... extra) {
        List<String> a = new ArrayList<>(List.of("pretrain", "gpt", "--data-path", data.toString(), "--split", "90,10,0",
                "--data-cache-path", dir.resolve("cache").toString(), "--tokenizer-type", "NullTokenizer", "--vocab-size", "51",
                "--num-layers", "1", "--hidden-size", "16", "--num-attention-heads", "2", "--seq-length", "16",
                "--make-vocab-size-divisible-by", "8", "--micro-batch-size", "2", "--global-batch-size", "4",
                "--train-iters", "6", "--lr", "1e-2", "--lr-decay-style", "cosine", "--log-interval", "1",
                "--eval-interval", "3", "--eval-iters", "1", "--seed", "3"));
        for (int i = 0; i < extra.length; i += 2) {   // flag, value pairs; a flag already present gets the new value
            int at = a.indexOf(extra[i]);
            if (at >= 0) {
                a.set(at + 1, extra[i + 1]);
            } else {
                a.add(extra[i]);
                a.add(extra[i + 1]);
            }
        }
        return a;
    }

    private static CliRun run(List<String> args) {
        return CliRun.of(args.toArray(String[]::new));
    }

    /** Flags one training iteration must refuse, and the message it names. */
    private record Refusal(List<String> flags, String message) {
    }

    /** Each refusal's flags added to a one-iteration run: exit 1 with its message, before training. */
    private void assertRefused(Path data, List<Refusal> refusals) {
        for (Refusal r : refusals) {
            List<String> a = args(data, "--train-iters", "1");
            a.addAll(r.flags());
            CliRun refused = run(a);
            assertEquals(1, refused.code(), refused.toString());
            assertTrue(refused.err().contains(r.message()), r.message() + " in " + refused.err());
        }
    }

    @Test
    void trainsLogsLikeMegatronSavesAndResumes() throws IOException {
        Path data = dataset();
        Path whole = dir.resolve("whole.csv");
        CliRun full = run(args(data, "--log-loss-to", whole.toString()));
        assertEquals(0, full.code(), full.toString());
        assertTrue(full.out().contains(" iteration        6/       6 | consumed samples:           24 | elapsed time per iteration (ms): "),
                full.toString());
        assertTrue(full.out().contains("| learning rate: "), full.out());
        assertTrue(full.out().contains(" | global batch size:     4 | lm loss: "), full.out());
        assertTrue(full.out().contains(" validation loss at iteration 3 | lm loss value: "), full.out());
        assertTrue(full.out().contains(" validation loss at iteration 6 on validation set | lm loss value: "), full.out());

        // Interrupted at iteration 3 by --exit-interval, then resumed from the checkpoint.
        Path save = dir.resolve("ckpt");
        Path parts = dir.resolve("parts.csv");
        CliRun first = run(args(data, "--save", save.toString(), "--exit-interval", "3", "--log-loss-to", parts.toString()));
        assertEquals(0, first.code(), first.toString());
        assertTrue(first.out().contains("exiting program at iteration 3"), first.out());
        assertEquals("3", Files.readString(save.resolve("latest_checkpointed_iteration.txt")).strip());
        CliRun second = run(args(data, "--save", save.toString(), "--load", save.toString(), "--log-loss-to", parts.toString()));
        assertEquals(0, second.code(), second.toString());
        assertTrue(second.out().contains("successfully loaded checkpoint from " + save + " [ t 1/1, p 1/1 ] at iteration 3"), second.out());
        assertEquals("6", Files.readString(save.resolve("latest_checkpointed_iteration.txt")).strip());
        List<Double> expected = trainLosses(whole);
        List<Double> resumed = trainLosses(parts);
        assertEquals(6, expected.size());
        assertEquals(6, resumed.size());
        for (int i = 0; i < 6; i++) {
            // Bit-exact with the scalar kernels (see GptTrainerTest); the vector kernels' reductions may round differently per run.
            assertEquals(expected.get(i), resumed.get(i), 1e-5 * expected.get(i), "iteration " + (i + 1));
        }
        assertTrue(resumed.get(5) < resumed.get(0), "loss falls: " + resumed);

        CliRun inspect = CliRun.of("checkpoint", "inspect", save.toString());
        assertEquals(0, inspect.code(), inspect.toString());
        assertTrue(inspect.out().contains("iteration:              6"), inspect.out());
        assertTrue(inspect.out().contains("optimizer:              adam, 6 steps"), inspect.out());
        assertTrue(inspect.out().contains("decoder.layers.0.self_attention.linear_qkv.weight"), inspect.out());

        CliRun gen = CliRun.of("generate", "--load", save.toString(), "--prompt", "1 2 3", "--tokens-to-generate", "5",
                "--temperature", "0");
        assertEquals(0, gen.code(), gen.toString());
        assertTrue(gen.out().strip().matches("1 2 3( [0-9]+){5}"), gen.out());   // prompt and continuation apart
        assertTrue(gen.err().contains("generated "), gen.err());
        CliRun smallerVocab = CliRun.of("generate", "--load", save.toString(), "--prompt", "1 2 3", "--tokenizer-type",
                "NullTokenizer", "--vocab-size", "41");
        assertEquals(1, smallerVocab.code(), smallerVocab.toString());
        assertTrue(smallerVocab.err().contains("the tokenizer has 41 tokens but the model in")
                && smallerVocab.err().contains("was trained with a vocabulary of 51"), smallerVocab.err());
        CliRun genBf16 = CliRun.of("generate", "--load", save.toString(), "--prompt", "1 2 3", "--tokens-to-generate", "5",
                "--temperature", "0", "--bf16");
        assertEquals(0, genBf16.code(), genBf16.toString());
        assertTrue(genBf16.out().startsWith("1 2 3"), genBf16.out());
        CliRun both = CliRun.of("generate", "--load", save.toString(), "--prompt", "1", "--bf16", "--fp16");
        assertEquals(1, both.code(), both.toString());
        assertTrue(both.err().contains("mutually exclusive"), both.err());

        // A checkpoint of another shape, then a corrupt one: clear errors naming the mismatch.
        CliRun wider = run(args(data, "--load", save.toString(), "--hidden-size", "32"));
        assertEquals(1, wider.code(), wider.toString());
        assertTrue(wider.err().contains("was saved from another model shape: hiddenSize 16 (this run: 32)"), wider.err());
        // The same shapes computed differently (exact GeLU, another epsilon) are refused too, naming the flags.
        List<String> exactGelu = args(data, "--load", save.toString());
        exactGelu.add("--no-bias-gelu-fusion");
        CliRun gelu = run(exactGelu);
        assertEquals(1, gelu.code(), gelu.toString());
        assertTrue(gelu.err().contains("geluTanh true (this run: false)") && gelu.err().contains("--no-bias-gelu-fusion"), gelu.err());
        CliRun epsilon = run(args(data, "--load", save.toString(), "--layernorm-epsilon", "1e-3"));
        assertEquals(1, epsilon.code(), epsilon.toString());
        assertTrue(epsilon.err().contains("layernormEpsilon 1.0E-5 (this run: 0.001)"), epsilon.err());
        // Another learning rate on resume: refused as Megatron's scheduler refuses it, unless one of its two flags says how.
        CliRun lr = run(args(data, "--load", save.toString(), "--lr", "5e-3"));
        assertEquals(1, lr.code(), lr.toString());
        assertTrue(lr.err().contains("learning rate (--lr) 0.01 (this run: 0.005)"), lr.err());
        List<String> overridden = args(data, "--load", save.toString(), "--lr", "5e-3");
        overridden.add("--override-opt-param-scheduler");   // Megatron's second spelling of --override-opt_param-scheduler
        assertEquals(0, run(overridden).code());
        Path model = save.resolve("iter_0000006/mp_rank_00/model.safetensors");
        byte[] bytes = Files.readAllBytes(model);
        Files.write(model, Arrays.copyOf(bytes, bytes.length / 2));
        CliRun corrupt = run(args(data, "--load", save.toString()));
        assertEquals(1, corrupt.code(), corrupt.toString());
        assertTrue(corrupt.err().contains("checkpoint file is corrupt") && corrupt.err().contains("model.safetensors"), corrupt.err());
    }

    /**
     * {@code --attention-dropout 0.1} (Megatron's default, also ours): the probabilities' masks come from
     * the checkpointed RNG stream, so a run interrupted at iteration 3 and resumed repeats the
     * uninterrupted losses bit for bit; the losses differ from a run without attention dropout.
     */
    @Test
    void attentionDropoutTrainsAndResumesBitExactly() throws IOException {
        Path data = dataset();
        Path whole = dir.resolve("whole.csv");
        CliRun full = run(args(data, "--attention-dropout", "0.1", "--log-loss-to", whole.toString()));
        assertEquals(0, full.code(), full.toString());
        assertTrue(full.out().lines().anyMatch(l -> l.contains(" attention_dropout ") && l.endsWith(" 0.1")), full.out());
        Path save = dir.resolve("ckpt");
        Path parts = dir.resolve("parts.csv");
        CliRun first = run(args(data, "--attention-dropout", "0.1", "--save", save.toString(), "--exit-interval", "3",
                "--log-loss-to", parts.toString()));
        assertEquals(0, first.code(), first.toString());
        CliRun second = run(args(data, "--attention-dropout", "0.1", "--save", save.toString(), "--load", save.toString(),
                "--log-loss-to", parts.toString()));
        assertEquals(0, second.code(), second.toString());
        List<Double> expected = trainLosses(whole);
        assertEquals(6, expected.size());
        assertEquals(expected, trainLosses(parts), "resumed losses, bit for bit");

        Path none = dir.resolve("none.csv");
        CliRun without = run(args(data, "--attention-dropout", "0", "--log-loss-to", none.toString()));
        assertEquals(0, without.code(), without.toString());
        List<Double> plain = trainLosses(none);
        assertEquals(expected.getFirst(), plain.getFirst(), 0.5, "same model, same data");
        assertTrue(!expected.equals(plain), "attention dropout changes the losses: " + expected + " vs " + plain);
    }

    /**
     * Attention dropout on the GPU runs in the tensor-core kernels only (16-bit, head dim 64 or 128):
     * fp32 (and head dim 8 here) is refused by name before anything is built.
     */
    @Test
    void cudaRefusesAttentionDropoutBeforeTraining() {
        Path data = dataset();
        for (List<String> a : List.of(args(data, "--device", "cuda"), args(data, "--device", "cuda", "--attention-dropout", "0.1"))) {
            CliRun cuda = run(a);
            assertEquals(1, cuda.code(), cuda.toString());
            assertTrue(cuda.err().contains(Backends.CUDA_ATTENTION_DROPOUT_UNSUPPORTED), cuda.err());
            assertTrue(!cuda.out().contains("building") && !cuda.out().contains("iteration"), cuda.out());
        }
    }

    /**
     * Today's NullTokenizer takes --vocab-size as the vocabulary (EOD its last id), the legacy one (--legacy-tokenizer,
     * or a Megatron up to core_v0.17) adds EOD after it: Megatron's benchmark 50304 pads to 50432 only there.
     */
    @Test
    void nullTokenizerVocabularyFollowsTheMegatronVersion() {
        List<String> a = new ArrayList<>(List.of("pretrain", "gpt", "--mock-data", "--tokenizer-type", "NullTokenizer",
                "--vocab-size", "50304", "--num-layers", "1", "--hidden-size", "8", "--num-attention-heads", "2",
                "--seq-length", "8", "--micro-batch-size", "1", "--global-batch-size", "1", "--train-iters", "1",
                "--lr", "1e-3", "--eval-iters", "0"));
        CliRun today = run(a);
        assertEquals(0, today.code(), today.toString());
        assertTrue(today.out().contains("tokenizer (vocab 50304, padded to 50304)"), today.out());
        for (List<String> legacyFlags : List.of(List.of("--legacy-tokenizer"), List.of("--cache-compat", "CORE_V0_16"))) {
            List<String> legacy = new ArrayList<>(a);
            legacy.addAll(legacyFlags);
            CliRun r = run(legacy);
            assertEquals(0, r.code(), r.toString());
            assertTrue(r.out().contains("tokenizer (vocab 50305, padded to 50432)"), legacyFlags + ": " + r.out());
        }
        List<String> eodGiven = new ArrayList<>(a);
        eodGiven.addAll(List.of("--null-tokenizer-eod-id", "0", "--legacy-tokenizer"));
        CliRun contradiction = run(eodGiven);
        assertEquals(1, contradiction.code(), contradiction.toString());
        assertTrue(contradiction.err().contains("--null-tokenizer-eod-id and --null-tokenizer-pad-id apply to today's"
                + " NullTokenizer"), contradiction.err());
        eodGiven.remove("--legacy-tokenizer");
        eodGiven.set(eodGiven.indexOf("--null-tokenizer-eod-id") + 1, "50304");
        CliRun outside = run(eodGiven);
        assertEquals(1, outside.code(), outside.toString());
        assertTrue(outside.err().contains("--null-tokenizer-eod-id 50304 is outside the vocabulary 0..50303"), outside.err());
    }

    /**
     * Megatron's {@code --profile} switch: without a file it records iterations {@code --profile-step-start} + 1 to
     * {@code --profile-step-end} into megatron-profile.jfr under {@code --tensorboard-dir}.
     */
    @Test
    void profileSwitchRecordsMegatronsStepWindow() throws IOException {
        Path tb = dir.resolve("tb-profile");
        List<String> a = args(dataset(), "--tensorboard-dir", tb.toString(), "--profile-step-start", "2", "--profile-step-end",
                "4");
        a.addAll(List.of("--profile", "--use-pytorch-profiler"));
        CliRun r = run(a);
        assertEquals(0, r.code(), r.toString());
        Path jfr = tb.resolve("megatron-profile.jfr");
        assertTrue(r.out().contains("> recording JFR events to " + jfr + " (iterations 3 to 4)")
                && r.out().contains("profile written to " + jfr), r.out());
        List<Long> iterations = new ArrayList<>();
        try (jdk.jfr.consumer.RecordingFile recording = new jdk.jfr.consumer.RecordingFile(jfr)) {
            while (recording.hasMoreEvents()) {
                jdk.jfr.consumer.RecordedEvent e = recording.readEvent();
                if (e.getEventType().getName().equals("org.megatronj.TrainStep")) {
                    iterations.add(e.getLong("iteration"));
                }
            }
        }
        assertEquals(List.of(3L, 4L), iterations);

        CliRun stepsAlone = run(args(dataset(), "--profile-step-start", "2"));
        assertEquals(1, stepsAlone.code(), stepsAlone.toString());
        assertTrue(stepsAlone.err().contains("--profile-step-start, --profile-step-end and --use-pytorch-profiler need --profile"),
                stepsAlone.err());
    }

    /**
     * {@code --save-retain-interval}: of the saves at 2, 4 and 6 the one at 2 goes when 4 replaces it; the progress log
     * says so. (And the two data-parallel replicas' weights hash alike every 3 iterations.)
     */
    @Test
    void saveRetainIntervalKeepsItsMultiples() throws IOException {
        Path save = dir.resolve("retain");
        List<String> a = args(dataset(), "--save", save.toString(), "--save-interval", "2", "--save-retain-interval", "4",
                "--world-size", "2", "--check-weight-hash-across-dp-replicas-interval", "3");
        a.add("--log-progress");
        CliRun r = run(a);
        assertEquals(0, r.code(), r.toString());
        assertTrue(r.out().contains(">>> Weight hashes match after 3 iterations...")
                && r.out().contains(">>> Weight hashes match after 6 iterations..."), r.out());   // the two replicas agree
        assertTrue(r.out().contains("  successfully deleted checkpoint from iteration       2 at " + save), r.out());
        try (var dirs = Files.list(save)) {
            assertEquals(List.of("iter_0000004", "iter_0000006", "latest_checkpointed_iteration.txt", "progress.txt"),
                    dirs.map(p -> p.getFileName().toString()).sorted().toList());
        }
        assertTrue(Files.readString(save.resolve("progress.txt")).contains("\tDeleted checkpoint\tIteration: 2\n"));
    }

    /** {@code --mock-data}: no corpus, Megatron's generated sequences split 1,1,1; the loss goes down on them. */
    @Test
    void trainsOnMockDataAndLowersTheLoss() throws IOException {
        Path csv = dir.resolve("mock-loss.csv");
        List<String> a = new ArrayList<>(List.of("pretrain", "gpt", "--mock-data", "--tokenizer-type", "NullTokenizer",
                "--vocab-size", "1000", "--num-layers", "1", "--hidden-size", "32", "--num-attention-heads", "2",
                "--seq-length", "32", "--micro-batch-size", "4", "--global-batch-size", "8", "--train-iters", "20",
                "--lr", "5e-3", "--log-interval", "1", "--eval-iters", "1", "--seed", "3", "--split", "99,1,0",
                "--log-loss-to", csv.toString()));
        CliRun r = run(a);
        assertEquals(0, r.code(), r.toString());
        assertTrue(r.err().contains("WARNING: --split '99,1,0' is ignored with --mock-data: mock data is split 1,1,1"), r.err());
        // 100,000 sequences, 1,1,1: train holds sequences [0, 33333); one epoch of 32-token samples
        assertTrue(r.out().contains(" > datasets: train 2130946, valid 2129991, test 2133970 samples of 32 tokens"), r.out());
        List<Double> losses = trainLosses(csv);
        assertEquals(20, losses.size(), losses.toString());
        double first = (losses.get(0) + losses.get(1)) / 2;
        double last = (losses.get(18) + losses.get(19)) / 2;
        assertTrue(last < first - 0.3, "the loss falls on mock data (about 6.9 to 6.5): " + losses);
    }

    @Test
    void mockDataWithADataPathIsRefusedBeforeAnythingIsBuilt() {
        List<String> a = args(dataset());
        a.add("--mock-data");
        CliRun r = run(a);
        assertEquals(1, r.code(), r.toString());
        assertTrue(r.err().contains("--mock-data generates its own data: drop --data-path (Megatron: a single data source must be provided)"),
                r.err());
        assertTrue(!r.out().contains("arguments"), "refused before the run starts: " + r.out());
    }

    /**
     * {@code --reset-attention-mask} trains with document-masked attention: the samples that straddle an
     * end of document (one in four here) give other losses than causal attention across it, and the
     * loss still falls.
     */
    @Test
    void resetAttentionMaskTrainsWithinDocuments() throws IOException {
        Path data = dataset();
        Path causal = dir.resolve("causal.csv");
        Path masked = dir.resolve("masked.csv");
        List<String> withoutMask = args(data, "--log-loss-to", causal.toString());
        withoutMask.add("--reset-position-ids");
        CliRun plain = run(withoutMask);
        assertEquals(0, plain.code(), plain.toString());
        List<String> withMask = args(data, "--log-loss-to", masked.toString());
        withMask.addAll(List.of("--reset-position-ids", "--reset-attention-mask"));
        CliRun documents = run(withMask);
        assertEquals(0, documents.code(), documents.toString());
        assertTrue(documents.out().contains(" reset_attention_mask ") , documents.out());
        List<Double> a = trainLosses(causal);
        List<Double> b = trainLosses(masked);
        assertEquals(6, b.size());
        assertNotEquals(a, b, "document masks change the losses of samples that straddle an end of document");
        assertTrue(b.get(5) < b.get(0), "loss falls: " + b);

        // Megatron's two other flags: the dataset's documents (each ends with an EOD here) bound attention the
        // same way; without dataloader masks --reset-attention-mask does nothing, and says so
        Path documentsCsv = dir.resolve("documents.csv");
        List<String> interArgs = args(data, "--log-loss-to", documentsCsv.toString());
        interArgs.add("--dataloader-inter-document-masking");
        CliRun interDocument = run(interArgs);
        assertEquals(0, interDocument.code(), interDocument.toString());
        assertEquals(b, trainLosses(documentsCsv));
        Path noMaskCsv = dir.resolve("nomask.csv");
        List<String> noMaskArgs = args(data, "--log-loss-to", noMaskCsv.toString());
        noMaskArgs.addAll(List.of("--reset-position-ids", "--reset-attention-mask", "--no-create-attention-mask-in-dataloader"));
        CliRun noMask = run(noMaskArgs);
        assertEquals(0, noMask.code(), noMask.toString());
        assertTrue(noMask.err().contains("WARNING: --reset-attention-mask has no effect with"
                + " --no-create-attention-mask-in-dataloader"), noMask.err());
        assertEquals(a, trainLosses(noMaskCsv));
    }

    /**
     * {@code --step-batch-size-schedule} (Megatron's replacement of --rampup-batch-size): thresholds in tokens,
     * here 0 and 64 tokens = 4 samples of 16: global batches of 2 for two iterations, then of 4; it replaces
     * --global-batch-size, as in Megatron.
     */
    @Test
    void stepBatchSizeScheduleGrowsTheGlobalBatch() {
        List<String> a = args(dataset(), "--step-batch-size-schedule", "0:2 64:4");
        int at = a.indexOf("--global-batch-size");
        a.remove(at + 1);
        a.remove(at);
        CliRun r = run(a);
        assertEquals(0, r.code(), r.toString());
        assertTrue(r.out().contains("> using step batch size schedule: 0:2 64:4"), r.out());
        assertTrue(r.out().contains(" iteration        2/       6 | consumed samples:            4 |"), r.out());
        assertTrue(r.out().lines().anyMatch(l -> l.contains(" iteration        2/") && l.contains("global batch size:     2 |")),
                r.out());
        assertTrue(r.out().lines().anyMatch(l -> l.contains(" iteration        3/") && l.contains("global batch size:     4 |")),
                r.out());
        assertTrue(r.out().contains(" iteration        6/       6 | consumed samples:           20 |"), r.out());

        CliRun both = run(args(dataset(), "--step-batch-size-schedule", "0:2 64:4"));   // with --global-batch-size 4
        assertEquals(1, both.code(), both.toString());
        assertTrue(both.err().contains("Cannot specify both --step-batch-size-schedule and --global-batch-size"), both.err());
    }

    /**
     * Megatron's implementation-choice flags (fusions, attention backend, transformer implementation, workers, GC,
     * timeouts) are accepted, checked and recorded, and train exactly as without them.
     */
    @Test
    void implementationChoiceFlagsRunAndChangeNothing() throws IOException {
        Path data = dataset();
        Path plainCsv = dir.resolve("plain.csv");
        Path choicesCsv = dir.resolve("choices.csv");
        CliRun plain = run(args(data, "--train-iters", "2", "--log-loss-to", plainCsv.toString()));
        assertEquals(0, plain.code(), plain.toString());
        List<String> a = args(data, "--train-iters", "2", "--log-loss-to", choicesCsv.toString(), "--attention-backend", "flash",
                "--transformer-impl", "local", "--num-workers", "4", "--manual-gc-interval", "100",
                "--distributed-timeout-minutes", "60", "--empty-unused-memory-level", "1", "--cross-entropy-fusion-impl", "te",
                "--distributed-backend", "gloo", "--num-dataset-builder-threads", "4", "--dataloader-type", "single");
        a.addAll(List.of("--use-mcore-models", "--no-masked-softmax-fusion", "--no-bias-dropout-fusion", "--no-bias-swiglu-fusion",
                "--no-rope-fusion", "--no-persist-layer-norm", "--no-gradient-accumulation-fusion", "--cross-entropy-loss-fusion",
                "--overlap-param-gather", "--no-mmap-bin-files", "--manual-gc", "--no-manual-gc-eval", "--attention-softmax-in-fp32",
                "--no-async-tensor-model-parallel-allreduce", "--use-cpu-initialization", "--exit-signal-handler",
                "--trust-remote-code", "--legacy-tokenizer", "--deterministic-mode", "--ckpt-fully-parallel-load",
                "--no-ckpt-fully-parallel-save", "--ckpt-fully-parallel-save", "--ckpt-assume-constant-structure",
                "--dist-ckpt-strictness", "log_all", "--rerun-mode", "disabled", "--te-rng-tracker",
                "--disable-gloo-process-groups", "--overlap-p2p-communication-warmup-flush",
                "--microbatch-group-size-per-virtual-pipeline-stage", "2", "--wgrad-deferral-limit", "1"));
        CliRun choices = run(a);
        assertEquals(0, choices.code(), choices.toString());
        assertTrue(choices.out().lines().anyMatch(l -> l.startsWith("  attention_backend ") && l.endsWith(" flash")),
                choices.out());
        assertTrue(choices.out().lines().anyMatch(l -> l.startsWith("  transformer_impl ") && l.endsWith(" local")),
                choices.out());
        assertEquals(trainLosses(plainCsv), trainLosses(choicesCsv));

        CliRun bad = run(args(data, "--attention-backend", "cudnn"));
        assertEquals(1, bad.code(), bad.toString());
        assertTrue(bad.err().contains("--attention-backend 'cudnn': expected one of flash, fused, unfused, local, auto"),
                bad.err());
        List<String> deterministicOnCuda = args(data, "--device", "cuda");
        deterministicOnCuda.add("--deterministic-mode");
        CliRun cudaDeterministic = run(deterministicOnCuda);
        assertEquals(1, cudaDeterministic.code(), cudaDeterministic.toString());
        assertTrue(cudaDeterministic.err().contains("--deterministic-mode needs --device cpu: on cuda the embedding's"),
                cudaDeterministic.err());
        CliRun stats = run(args(data, "--rerun-mode", "report_stats"));
        assertEquals(1, stats.code(), stats.toString());
        assertTrue(stats.err().contains("--rerun-mode report_stats reruns every iteration"), stats.err());
        CliRun strictness = run(args(data, "--dist-ckpt-strictness", "strict"));
        assertEquals(1, strictness.code(), strictness.toString());
        assertTrue(strictness.err().contains("--dist-ckpt-strictness"), strictness.err());
        CliRun cyclic = run(args(data, "--dataloader-type", "cyclic"));
        assertEquals(1, cyclic.code(), cyclic.toString());
        assertTrue(cyclic.err().contains("--dataloader-type cyclic draws the samples in another order"), cyclic.err());
        List<String> overlapWithoutSp = args(data);
        overlapWithoutSp.add("--tp-comm-overlap");
        CliRun overlap = run(overlapWithoutSp);
        assertEquals(1, overlap.code(), overlap.toString());
        assertTrue(overlap.err().contains("Tensor parallel communication/GEMM overlap can happen only when sequence parallelism"
                + " is enabled"), overlap.err());
        List<String> deferWithoutPipeline = args(data);
        deferWithoutPipeline.add("--defer-embedding-wgrad-compute");
        CliRun defer = run(deferWithoutPipeline);
        assertEquals(1, defer.code(), defer.toString());
        assertTrue(defer.err().contains("Cannot defer embedding wgrad compute when pipeline model parallel is not used"),
                defer.err());
    }

    /**
     * {@code --tensorboard-dir} writes Megatron's scalars (read back from the event file here) and
     * {@code --log-throughput} adds Megatron's throughput field to the log line. Megatron's memory report follows the
     * first two log lines (the second after the optimizer's first step), and {@code --log-memory-to-tensorboard} writes
     * the same figures each iteration.
     */
    @Test
    void tensorBoardScalarsAndThroughput() throws IOException {
        Path data = dataset();
        Path csv = dir.resolve("tb.csv");
        Path tb = dir.resolve("tb");
        Path save = dir.resolve("tb-ckpt");
        List<String> a = args(data, "--log-loss-to", csv.toString(), "--tensorboard-dir", tb.toString(), "--timing-log-level", "1",
                "--save", save.toString());
        a.addAll(List.of("--log-throughput", "--log-timers-to-tensorboard", "--log-validation-ppl-to-tensorboard",
                "--log-params-norm", "--log-memory-to-tensorboard", "--log-memory-interval", "5", "--log-progress"));
        CliRun r = run(a);
        assertEquals(0, r.code(), r.toString());
        assertTrue(r.out().lines().anyMatch(l -> l.contains(" iteration        6/       6 |")
                && l.matches(".*\\(ms\\): [0-9.]+ \\| throughput per GPU \\(TFLOP/s/GPU\\): [0-9.]+ \\| learning rate: .*")), r.out());
        List<Path> files;
        try (var list = Files.list(tb)) {
            files = list.toList();
        }
        assertEquals(1, files.size(), files.toString());
        assertTrue(files.getFirst().getFileName().toString().startsWith("events.out.tfevents."), files.toString());
        java.util.Map<String, java.util.TreeMap<Long, Float>> scalars = EventFiles.scalars(files.getFirst());
        for (String tag : List.of("lm loss", "lm loss vs samples", "learning-rate", "learning-rate vs samples", "batch-size",
                "loss-scale", "grad-norm", "lm loss validation", "lm loss validation vs samples", "lm loss validation ppl",
                "iteration-time", "throughput", "forward-backward-time", "mem-allocated-bytes", "mem-max-allocated-bytes",
                "mem-reserved-bytes", "mem-allocated-count")) {
            assertTrue(scalars.containsKey(tag), tag + " in " + scalars.keySet());
        }
        List<String> memoryLines = r.out().lines().filter(l -> l.startsWith("[Rank 0] (after ")).toList();
        assertEquals(3, memoryLines.size(), r.out());   // after iterations 1 and 2, then every --log-memory-interval
        for (int i = 0; i < 3; i++) {
            assertTrue(memoryLines.get(i).matches("\\[Rank 0] \\(after " + List.of(1, 2, 5).get(i) + " iterations\\) memory \\(MB\\)"
                    + " \\| allocated: [0-9]+\\.[0-9]{2} \\| max allocated: [0-9]+\\.[0-9]{2} \\| reserved: [0-9]+\\.[0-9]{2}"
                    + " \\| max reserved: [0-9]+\\.[0-9]{2}"), memoryLines.get(i));
        }
        assertEquals(2, r.out().lines().filter(l -> l.startsWith("Theoretical memory footprints: weight and optimizer=")).count());
        List<String> progress = Files.readAllLines(save.resolve("progress.txt"));   // --log-progress
        assertEquals(2, progress.size(), progress.toString());
        assertTrue(progress.get(0).endsWith("\t# GPUs: 1\tStarting job"), progress.get(0));
        assertTrue(progress.get(1).matches(".*\tSaved checkpoint\tIteration: 6\tJob throughput: [0-9.]+ TFLOP/s/GPU\t"
                + "Cumulative throughput: .* TFLOP/s/GPU\tFloating-point operations: [0-9]\\.[0-9]{2}e\\+[0-9]{2}\t"
                + "Tokens \\(in billions\\): 0\\.00"), progress.get(1));
        float allocated = scalars.get("mem-allocated-bytes").get(6L);
        assertTrue(allocated > 0 && scalars.get("mem-max-allocated-bytes").get(6L) >= allocated, scalars.toString());
        List<Double> losses = trainLosses(csv);
        for (int i = 0; i < losses.size(); i++) {
            assertEquals(losses.get(i).floatValue(), scalars.get("lm loss").get((long) i + 1), "iteration " + (i + 1));
        }
        assertEquals(4f, scalars.get("batch-size").get(6L));
        assertEquals(java.util.Set.of(4L, 8L, 12L, 16L, 20L, 24L), scalars.get("lm loss vs samples").keySet());
        assertEquals(java.util.Set.of(3L, 6L), scalars.get("lm loss validation").keySet());

        // --log-params-norm: the norm of the weights the step left, which the final checkpoint holds
        double sum = 0;
        try (var ckpt = org.megatronj.io.checkpoint.Checkpoint.openLatest(save, "mp_rank_00")) {
            for (String name : ckpt.model().names()) {
                for (float v : ckpt.model().tensor(name).toFloatArray()) {
                    sum += (double) v * v;
                }
            }
        }
        String expected = org.megatronj.parallel.train.TrainingLog.pythonF(Math.sqrt(sum), 3);
        assertTrue(r.out().lines().anyMatch(l -> l.contains(" iteration        6/") && l.contains("| params norm: " + expected + " |")),
                expected + " in " + r.out());
        assertEquals((float) Math.sqrt(sum), scalars.get("params-norm").get(6L), 1e-3);
    }

    /**
     * {@code --no-save-optim --no-save-rng} save the weights and counters only; the resume needs {@code --no-load-optim}
     * and {@code --no-load-rng}, and {@code --ckpt-step} resumes from an earlier iteration than the latest.
     */
    @Test
    void leanCheckpointsAndCkptStep() throws IOException {
        Path data = dataset();
        Path save = dir.resolve("lean");
        List<String> first = args(data, "--save", save.toString(), "--save-interval", "3");
        first.addAll(List.of("--no-save-optim", "--no-save-rng"));
        CliRun saved = run(first);
        assertEquals(0, saved.code(), saved.toString());
        assertFalse(Files.exists(save.resolve("iter_0000006/mp_rank_00/optimizer.safetensors")));
        CliRun refused = run(args(data, "--load", save.toString(), "--train-iters", "8"));
        assertEquals(1, refused.code(), refused.toString());
        assertTrue(refused.err().contains("Unable to load optimizer from checkpoint " + save.resolve("iter_0000006/mp_rank_00")),
                refused.err());
        List<String> resume = args(data, "--load", save.toString(), "--train-iters", "8", "--ckpt-step", "3");
        resume.addAll(List.of("--no-load-optim", "--no-load-rng"));
        CliRun resumed = run(resume);
        assertEquals(0, resumed.code(), resumed.toString());
        assertTrue(resumed.out().contains("successfully loaded checkpoint from " + save + " [ t 1/1, p 1/1 ] at iteration 3"), resumed.out());
        assertTrue(resumed.out().contains(" iteration        4/       8 |"), resumed.out());
    }

    /**
     * {@code --use-checkpoint-args}: the sizes not given and the architecture's switches come from the checkpoint under
     * {@code --load} (so a resume needs no model or tokenizer flags); a size given on the command line wins, as in
     * Megatron.
     */
    @Test
    void useCheckpointArgsTakesTheModelFromTheCheckpoint() throws IOException {
        Path data = dataset();
        Path save = dir.resolve("shaped");
        List<String> first = args(data, "--save", save.toString(), "--train-iters", "4", "--exit-interval", "2",
                "--hidden-size", "24", "--num-attention-heads", "3");
        first.addAll(List.of("--swiglu", "--normalization", "RMSNorm", "--position-embedding-type", "rope",
                "--untie-embeddings-and-output-weights"));
        CliRun trained = run(first);
        assertEquals(0, trained.code(), trained.toString());

        List<String> resume = withoutModelFlags(args(data, "--load", save.toString(), "--train-iters", "4"));
        CliRun missing = run(resume);
        assertEquals(1, missing.code(), missing.toString());
        assertTrue(missing.err().contains("--num-layers is required (or --use-checkpoint-args with --load"), missing.err());
        for (String flag : List.of("--tokenizer-type", "--vocab-size")) {   // the checkpoint's tokenizer, too
            resume.remove(resume.indexOf(flag) + 1);
            resume.remove(flag);
        }
        resume.add("--use-checkpoint-args");
        CliRun resumed = run(resume);
        assertEquals(0, resumed.code(), resumed.toString());
        for (String line : List.of("Setting num_layers to 1 from checkpoint", "Setting hidden_size to 24 from checkpoint",
                "Setting swiglu to True from checkpoint", "Setting position_embedding_type to rope from checkpoint",
                "Setting normalization to RMSNorm from checkpoint")) {
            assertTrue(resumed.out().contains(line), line + " in " + resumed.out());
        }
        assertTrue(resumed.out().contains("successfully loaded checkpoint from " + save + " [ t 1/1, p 1/1 ] at iteration 2"),
                resumed.out());
        assertTrue(resumed.out().contains(" iteration        4/       4 |"), resumed.out());
        List<String> ownTokenizer = new ArrayList<>(resume);
        ownTokenizer.add("--no-use-tokenizer-model-from-checkpoint-args");   // then the tokenizer flags must be given
        CliRun noTokenizer = run(ownTokenizer);
        assertEquals(1, noTokenizer.code(), noTokenizer.toString());
        assertTrue(noTokenizer.err().contains("tokenizer"), noTokenizer.err());

        List<String> wider = withoutModelFlags(args(data, "--load", save.toString(), "--train-iters", "4"));
        wider.addAll(List.of("--use-checkpoint-args", "--num-layers", "1", "--hidden-size", "32", "--num-attention-heads", "4"));
        CliRun given = run(wider);
        assertEquals(1, given.code(), given.toString());
        assertTrue(given.err().contains("hiddenSize 24 (this run: 32)"), given.err());
    }

    /**
     * {@code --squared-relu} (Nemotron's MLP): trains (other losses than gelu's) without biases, and with biases only
     * under {@code --no-bias-gelu-fusion}, as Megatron's config check demands; never with {@code --swiglu}. A checkpoint
     * keeps it: {@code --use-checkpoint-args} takes it back, a run without it may not load it, export-hf writes relu2.
     */
    @Test
    void squaredReluTrainsResumesAndExports() throws IOException {
        Path data = dataset();
        Path save = dir.resolve("sqrelu");
        Path csv = dir.resolve("sqrelu.csv");
        List<String> first = args(data, "--save", save.toString(), "--log-loss-to", csv.toString(), "--train-iters", "8",
                "--exit-interval", "6");
        first.addAll(List.of("--squared-relu", "--disable-bias-linear"));
        CliRun trained = run(first);
        assertEquals(0, trained.code(), trained.toString());
        List<Double> losses = trainLosses(csv);
        assertTrue(losses.get(5) < losses.get(0), "loss falls: " + losses);
        Path geluCsv = dir.resolve("gelu.csv");
        List<String> gelu = args(data, "--train-iters", "1", "--log-loss-to", geluCsv.toString());
        gelu.add("--disable-bias-linear");
        assertEquals(0, run(gelu).code());
        assertNotEquals(trainLosses(geluCsv).get(0), losses.get(0), "the first loss, before any step");

        List<String> resume = withoutModelFlags(args(data, "--load", save.toString(), "--train-iters", "8"));
        resume.add("--use-checkpoint-args");
        CliRun resumed = run(resume);
        assertEquals(0, resumed.code(), resumed.toString());
        assertTrue(resumed.out().contains("Setting squared_relu to True from checkpoint"), resumed.out());
        assertTrue(resumed.out().contains(" iteration        8/       8 |"), resumed.out());
        List<String> plain = args(data, "--load", save.toString(), "--train-iters", "8");
        plain.add("--disable-bias-linear");
        CliRun refused = run(plain);
        assertEquals(1, refused.code(), refused.toString());
        assertTrue(refused.err().contains("squaredRelu true (this run: false)"), refused.err());

        List<String> fused = args(data);
        fused.add("--squared-relu");
        CliRun fusion = run(fused);
        assertEquals(1, fusion.code(), fusion.toString());
        assertTrue(fusion.err().contains("When bias_activation_fusion is True, activation function should be either gelu,"
                + " swiglu, or quick_geglu"), fusion.err());
        List<String> gated = args(data);
        gated.addAll(List.of("--squared-relu", "--swiglu"));
        CliRun swiglu = run(gated);
        assertEquals(1, swiglu.code(), swiglu.toString());
        assertTrue(swiglu.err().contains("--squared-relu and --swiglu cannot be combined"), swiglu.err());

        Path biased = dir.resolve("sqrelu-bias");
        List<String> withBias = args(data, "--train-iters", "2", "--save", biased.toString());
        withBias.addAll(List.of("--squared-relu", "--no-bias-gelu-fusion"));
        CliRun trainedWithBias = run(withBias);
        assertEquals(0, trainedWithBias.code(), trainedWithBias.toString());
        Path hf = dir.resolve("sqrelu-hf");
        CliRun export = CliRun.of("checkpoint", "export-hf", "--load", biased.toString(), "--hf-dir", hf.toString());
        assertEquals(0, export.code(), export.toString());
        String config = Files.readString(hf.resolve("config.json"));
        assertTrue(config.contains("\"activation_function\" : \"relu2\""), config);
    }

    /**
     * {@code --use-tp-pp-dp-mapping} gives other ranks each role and the same losses; {@code
     * --num-distributed-optimizer-instances} is checked (it divides DP) and changes no number either.
     */
    @Test
    void rankMappingAndOptimizerInstancesKeepTheNumbers() throws IOException {
        Path data = dataset();
        List<String> layout = List.of("--num-layers", "2", "--tensor-model-parallel-size", "2", "--pipeline-model-parallel-size",
                "2", "--world-size", "8", "--use-distributed-optimizer");
        Path plainCsv = dir.resolve("mapping-plain.csv");
        List<String> plain = args(data, "--train-iters", "3", "--log-loss-to", plainCsv.toString());
        plain.addAll(layout);
        assertEquals(0, run(plain).code());
        Path mappedCsv = dir.resolve("mapping-tp-pp-dp.csv");
        List<String> mapped = args(data, "--train-iters", "3", "--log-loss-to", mappedCsv.toString());
        mapped.addAll(layout);
        mapped.addAll(List.of("--use-tp-pp-dp-mapping", "--num-distributed-optimizer-instances", "2", "--cuda-graph-impl",
                "local", "--logging-level", "20"));
        CliRun m = run(mapped);
        assertEquals(0, m.code(), m.toString());
        assertEquals(trainLosses(plainCsv), trainLosses(mappedCsv));
        List<String> wrong = args(data, "--train-iters", "1");
        wrong.addAll(layout);
        wrong.addAll(List.of("--num-distributed-optimizer-instances", "3"));
        CliRun refused = run(wrong);
        assertEquals(1, refused.code(), refused.toString());
        assertTrue(refused.err().contains("--num-distributed-optimizer-instances 3 must divide the data-parallel size 2"),
                refused.err());
    }

    /**
     * As Megatron's validate_args: {@code --async-save} without {@code --use-persistent-ckpt-worker} warns and saves in
     * place; with it the save is written in the background and published at a later iteration.
     */
    @Test
    void asyncSaveNeedsThePersistentWorker() throws IOException {
        Path data = dataset();
        List<String> plain = args(data, "--save", dir.resolve("no-worker").toString(), "--save-interval", "3");
        plain.add("--async-save");
        CliRun inPlace = run(plain);
        assertEquals(0, inPlace.code(), inPlace.toString());
        assertTrue(inPlace.out().contains("WARNING: --async-save is not supported without --use-persistent-ckpt-worker."
                + " Disabling --async-save."), inPlace.out());
        assertTrue(!inPlace.out().contains("async checkpoint"), inPlace.out());
        List<String> worker = args(data, "--save", dir.resolve("worker").toString(), "--save-interval", "3");
        worker.addAll(List.of("--async-save", "--use-persistent-ckpt-worker", "--async-ckpt-cpu-priority", "15",
                "--dist-ckpt-optim-fully-reshardable", "--auto-detect-ckpt-format"));
        CliRun background = run(worker);
        assertEquals(0, background.code(), background.toString());
        assertTrue(background.out().contains("async checkpoint"), background.out());
    }

    /**
     * Multi-Token Prediction (two depths): trains, logs Megatron's {@code mtp_1 loss} and {@code mtp_2 loss} after the lm
     * loss (and to TensorBoard under those names) while validation reports the lm loss alone, comes back with
     * {@code --use-checkpoint-args}, refuses a load with another depth count, generates and evaluates from the
     * checkpoint without the depths; TP2 + SP x PP2 and DP2 with the distributed optimizer train too; the combinations
     * Megatron-J does not build are refused by name.
     */
    @Test
    void multiTokenPredictionTrainsLogsResumesAndGenerates() throws IOException {
        Path data = dataset();
        Path save = dir.resolve("mtp");
        Path csv = dir.resolve("mtp.csv");
        Path tb = dir.resolve("mtp-tb");
        List<String> mtp = List.of("--position-embedding-type", "rope", "--mtp-num-layers", "2");
        List<String> first = args(data, "--save", save.toString(), "--log-loss-to", csv.toString(), "--train-iters", "8",
                "--exit-interval", "6", "--num-layers", "2", "--tensorboard-dir", tb.toString());
        first.addAll(mtp);
        CliRun trained = run(first);
        assertEquals(0, trained.code(), trained.toString());
        assertTrue(java.util.regex.Pattern.compile("\\| lm loss: \\S+ \\| mtp_1 loss: 3\\.\\d+E\\+00 \\| mtp_2 loss: 3\\.\\d+E\\+00 \\|")
                .matcher(trained.out()).find(), trained.out());
        assertTrue(java.util.regex.Pattern.compile("validation loss at iteration 3 \\| lm loss value: \\S+ \\| lm loss PPL: \\S+ \\| \\n")
                .matcher(trained.out()).find(), "validation is the lm loss alone: " + trained.out());
        Path events;
        try (java.util.stream.Stream<Path> list = Files.list(tb)) {
            events = list.filter(p -> p.getFileName().toString().startsWith("events.out.tfevents.")).findFirst().orElseThrow();
        }
        java.util.Map<String, java.util.TreeMap<Long, Float>> scalars = EventFiles.scalars(events);
        assertEquals(java.util.Set.of(1L, 2L, 3L, 4L, 5L, 6L), scalars.get("mtp_1 loss").keySet(), scalars.keySet().toString());
        assertEquals(java.util.Set.of(1L, 2L, 3L, 4L, 5L, 6L), scalars.get("mtp_2 loss").keySet());
        for (String rate : List.of("mtp_1_acceptance_rate", "mtp_2_acceptance_rate", "mtp_1_cumulative_acceptance_rate",
                "mtp_2_cumulative_acceptance_rate")) {   // Megatron's MTPLossLoggingHelper, TensorBoard only
            assertEquals(java.util.Set.of(1L, 2L, 3L, 4L, 5L, 6L), scalars.get(rate).keySet(), rate);
            assertTrue(scalars.get(rate).values().stream().allMatch(v -> v >= 0 && v <= 100), rate + " " + scalars.get(rate));
        }
        assertFalse(trained.out().contains("acceptance"), "the rates are not in the log line: " + trained.out());
        List<Double> losses = trainLosses(csv);
        assertTrue(losses.get(5) < losses.get(0), "loss falls: " + losses);

        List<String> resume = withoutModelFlags(args(data, "--load", save.toString(), "--train-iters", "8"));
        resume.add("--use-checkpoint-args");
        CliRun resumed = run(resume);
        assertEquals(0, resumed.code(), resumed.toString());
        assertTrue(resumed.out().contains("Setting mtp_num_layers to 2 from checkpoint"), resumed.out());
        assertTrue(resumed.out().contains(" iteration        8/       8 |") && resumed.out().contains("mtp_2 loss: "),
                resumed.out());
        List<String> otherDepths = args(data, "--load", save.toString(), "--train-iters", "8", "--num-layers", "2",
                "--position-embedding-type", "rope", "--mtp-num-layers", "1", "--mtp-loss-scaling-factor", "0.3");
        CliRun refusedLoad = run(otherDepths);   // the factor may change, the depths may not
        assertEquals(1, refusedLoad.code(), refusedLoad.toString());
        assertTrue(refusedLoad.err().contains("mtp.numLayers 2 (this run: 1)"), refusedLoad.err());
        CliRun generated = CliRun.of("generate", "--load", save.toString(), "--prompt", "1 2 3", "--tokens-to-generate", "4");
        assertEquals(0, generated.code(), generated.toString());
        CliRun hf = CliRun.of("checkpoint", "export-hf", "--load", save.toString(), "--hf-dir", dir.resolve("mtp-hf").toString());
        assertEquals(1, hf.code(), hf.toString());   // no transformers GPT-2 or Llama class carries MTP heads
        assertTrue(hf.err().contains("a model with --mtp-num-layers 2 has no Hugging Face GPT-2 equivalent"), hf.err());
        // export-torch: the depths under Megatron-core's module names (mtp_model_layer in a torch-format state dict, TE's
        // fused norms), mtp_num_layers in its args; import-torch reads it back to the same tensors
        for (String impl : List.of("transformer_engine", "local")) {
            Path exported = dir.resolve("mtp-torch-" + impl);
            CliRun export = CliRun.of("checkpoint", "export-torch", "--load", save.toString(), "--save", exported.toString(),
                    "--transformer-impl", impl);
            assertEquals(0, export.code(), export.toString());
            try (org.megatronj.io.torch.TorchFile torch = org.megatronj.io.torch.TorchFile.open(
                    exported.resolve("release/mp_rank_00/model_optim_rng.pt"))) {
                java.util.Map<?, ?> state = (java.util.Map<?, ?>) torch.root();
                java.util.Map<?, ?> model = (java.util.Map<?, ?>) state.get("model");
                boolean te = impl.equals("transformer_engine");
                for (String key : List.of("mtp.layers.1.enorm.weight", "mtp.layers.1.hnorm.bias", "mtp.layers.0.eh_proj.weight",
                        "mtp.layers.1.final_layernorm.weight", "mtp.layers.0.mtp_model_layer.mlp.linear_fc2.weight",
                        te ? "mtp.layers.0.mtp_model_layer.self_attention.linear_qkv.layer_norm_weight"
                                : "mtp.layers.0.mtp_model_layer.input_layernorm.weight")) {
                    assertTrue(model.containsKey(key), key + " in " + model.keySet());
                }
                assertEquals(te, model.containsKey("mtp.layers.1.eh_proj._extra_state"), model.keySet().toString());
                java.util.Map<?, ?> margs = (java.util.Map<?, ?>) ((org.megatronj.io.torch.Unpickler.Instance) state.get("args"))
                        .state();
                assertEquals(2L, margs.get("mtp_num_layers"));
            }
            Path back = dir.resolve("mtp-back-" + impl);
            CliRun imported = CliRun.of("checkpoint", "import-torch", "--load", exported.toString(), "--save", back.toString());
            assertEquals(0, imported.code(), imported.toString());
            try (var original = org.megatronj.io.checkpoint.Checkpoint.openLatest(save, "mp_rank_00");
                 var again = org.megatronj.io.checkpoint.Checkpoint.openLatest(back, "mp_rank_00")) {
                assertEquals(original.model().names(), again.model().names());
                for (String name : original.model().names()) {
                    assertArrayEquals(original.model().tensor(name).toFloatArray(), again.model().tensor(name).toFloatArray(),
                            name);
                }
            }
        }

        // untied and pipelined: the last stage holds the word embedding for the depths; a reshard merges it to one rank
        Path staged = dir.resolve("mtp-pp2");
        List<String> pipelined = args(data, "--train-iters", "2", "--num-layers", "2", "--save", staged.toString(),
                "--world-size", "2", "--pipeline-model-parallel-size", "2");
        pipelined.add("--untie-embeddings-and-output-weights");
        pipelined.addAll(mtp);
        CliRun pp = run(pipelined);
        assertEquals(0, pp.code(), pp.toString());
        Path merged = dir.resolve("mtp-pp2-merged");
        CliRun reshard = CliRun.of("checkpoint", "reshard", "--load", staged.toString(), "--save", merged.toString(),
                "--target-tensor-parallel-size", "1", "--target-pipeline-parallel-size", "1");
        assertEquals(0, reshard.code(), reshard.toString());
        try (var one = org.megatronj.io.checkpoint.Checkpoint.openLatest(merged, "mp_rank_00")) {
            assertTrue(one.model().names().contains("mtp.layers.1.eh_proj.weight"), one.model().names().toString());
        }
        CliRun fromMerged = CliRun.of("generate", "--load", merged.toString(), "--prompt", "1 2 3", "--tokens-to-generate", "2");
        assertEquals(0, fromMerged.code(), fromMerged.toString());

        for (List<String> layout : List.of(
                List.of("--world-size", "4", "--tensor-model-parallel-size", "2", "--sequence-parallel",
                        "--pipeline-model-parallel-size", "2"),
                List.of("--world-size", "2", "--use-distributed-optimizer", "--recompute-granularity", "full",
                        "--recompute-method", "uniform", "--recompute-num-layers", "1", "--calculate-per-token-loss"))) {
            List<String> a = args(data, "--train-iters", "2", "--num-layers", "2");
            a.addAll(mtp);
            a.addAll(layout);
            CliRun parallel = run(a);
            assertEquals(0, parallel.code(), parallel.toString());
            assertTrue(parallel.out().contains("| mtp_1 loss: "), parallel.out());
        }

        assertRefused(data, List.of(
                new Refusal(List.of("--mtp-num-layers", "1"), "--mtp-num-layers needs --position-embedding-type rope or none"),
                new Refusal(List.of("--position-embedding-type", "rope", "--mtp-num-layers", "0"),
                        "--mtp-num-layers must be positive, got 0"),
                new Refusal(List.of("--position-embedding-type", "rope", "--mtp-num-layers", "1", "--context-parallel-size",
                        "2", "--world-size", "2"), "--mtp-num-layers with --context-parallel-size 2 is not supported"),
                new Refusal(List.of("--position-embedding-type", "rope", "--mtp-num-layers", "1", "--device", "cuda"),
                        "--mtp-num-layers trains on --device cpu only")));
    }

    /**
     * A mixture-of-experts model (every other layer, 4 experts top-2 with a shared expert): trains, logs Megatron's
     * load_balancing_loss and z_loss after the lm loss, comes back with {@code --use-checkpoint-args}, generates, and has
     * no GPT-2 form; the flags Megatron-J cannot honour are refused by name.
     */
    @Test
    void mixtureOfExpertsTrainsLogsResumesAndGenerates() throws IOException {
        Path data = dataset();
        Path save = dir.resolve("moe");
        Path csv = dir.resolve("moe.csv");
        List<String> moe = List.of("--disable-bias-linear", "--swiglu", "--ffn-hidden-size", "32", "--num-experts", "4",
                "--moe-router-topk", "2",
                "--moe-ffn-hidden-size", "24", "--moe-layer-freq", "([1]+[0])*1", "--moe-aux-loss-coeff", "1e-2",
                "--moe-z-loss-coeff", "1e-3", "--moe-shared-expert-intermediate-size", "16", "--moe-grouped-gemm",
                "--moe-token-dispatcher-type", "alltoall");
        Path tb = dir.resolve("moe-tb");
        List<String> first = args(data, "--save", save.toString(), "--log-loss-to", csv.toString(), "--train-iters", "8",
                "--exit-interval", "6", "--num-layers", "2", "--tensorboard-dir", tb.toString());
        first.addAll(moe);
        first.add("--moe-per-layer-logging");
        CliRun trained = run(first);
        assertEquals(0, trained.code(), trained.toString());
        Path events;
        try (java.util.stream.Stream<Path> list = Files.list(tb)) {
            events = list.filter(p -> p.getFileName().toString().startsWith("events.out.tfevents.")).findFirst().orElseThrow();
        }
        java.util.Map<String, java.util.TreeMap<Long, Float>> scalars = EventFiles.scalars(events);
        assertEquals(java.util.Set.of(1L, 2L, 3L, 4L, 5L, 6L), scalars.get("load_balancing_loss").keySet(), scalars.keySet().toString());
        assertEquals(java.util.Set.of(1L, 2L, 3L, 4L, 5L, 6L), scalars.get("z_loss").keySet());
        // --moe-per-layer-logging: every layer, the dense one (layer 1) at 0; the MoE layer's value is the average's
        assertEquals(scalars.get("load_balancing_loss"), scalars.get("moe/load_balancing_loss_layer_0"));
        assertEquals(java.util.Set.of(0f), new java.util.HashSet<>(scalars.get("moe/z_loss_layer_1").values()));
        assertTrue(java.util.regex.Pattern.compile("\\| lm loss: \\S+ \\| load_balancing_loss: 1\\.0\\d+E\\+00 \\| z_loss: \\S+ \\|")
                .matcher(trained.out()).find(), trained.out());
        List<Double> losses = trainLosses(csv);
        assertTrue(losses.get(5) < losses.get(0), "loss falls: " + losses);

        List<String> resume = withoutModelFlags(args(data, "--load", save.toString(), "--train-iters", "8"));
        resume.add("--use-checkpoint-args");
        CliRun resumed = run(resume);
        assertEquals(0, resumed.code(), resumed.toString());
        for (String line : List.of("Setting num_experts to 4 from checkpoint", "Setting moe_ffn_hidden_size to 24 from checkpoint",
                "Setting moe_layer_freq to ([1]+[0])*1 from checkpoint")) {
            assertTrue(resumed.out().contains(line), line + " in " + resumed.out());
        }
        assertTrue(resumed.out().contains(" iteration        8/       8 |"), resumed.out());
        List<String> otherRouter = args(data, "--load", save.toString(), "--train-iters", "8", "--num-layers", "2");
        otherRouter.addAll(moe);
        otherRouter.addAll(List.of("--moe-router-topk", "1", "--moe-router-pre-softmax", "--moe-aux-loss-coeff", "0.5"));
        CliRun refusedLoad = run(otherRouter);   // the coefficient may change, the routing may not
        assertEquals(1, refusedLoad.code(), refusedLoad.toString());
        assertTrue(refusedLoad.err().contains("moe.routerTopk 2 (this run: 1), moe.routerPreSoftmax false (this run: true)"),
                refusedLoad.err());
        List<String> deepseek = args(data, "--train-iters", "3", "--num-layers", "2", "--log-params-norm",
                "--log-num-zeros-in-grad");
        deepseek.addAll(List.of("--disable-bias-linear", "--num-experts", "8", "--moe-router-topk", "4",
                "--moe-router-score-function", "sigmoid", "--moe-router-enable-expert-bias", "--moe-router-bias-update-rate",
                "1e-2", "--moe-router-num-groups", "4", "--moe-router-group-topk", "2", "--moe-router-topk-scaling-factor",
                "2.5", "--moe-layer-freq", "[0,1]", "--moe-aux-loss-coeff", "1e-4", "--moe-router-load-balancing-type",
                "seq_aux_loss"));
        CliRun v3 = run(deepseek);
        assertEquals(0, v3.code(), v3.toString());
        assertTrue(v3.out().contains("seq_load_balancing_loss: "), v3.out());
        assertTrue(!v3.out().contains(" load_balancing_loss: "), "load_balancing_loss is 0 and not printed: " + v3.out());
        List<String> expertParallel = args(data, "--train-iters", "2", "--num-layers", "2", "--world-size", "2");
        expertParallel.addAll(moe);
        expertParallel.addAll(List.of("--expert-model-parallel-size", "2"));   // Megatron's script runs; the same numbers
        CliRun ep = run(expertParallel);
        assertEquals(0, ep.code(), ep.toString());
        CliRun generated = CliRun.of("generate", "--load", save.toString(), "--prompt", "1 2 3", "--tokens-to-generate", "4");
        assertEquals(0, generated.code(), generated.toString());
        CliRun export = CliRun.of("checkpoint", "export-hf", "--load", save.toString(), "--hf-dir", dir.resolve("moe-hf").toString());
        assertEquals(1, export.code(), export.toString());
        assertTrue(export.err().contains("a model with --num-experts 4 has no Hugging Face GPT-2 equivalent"), export.err());

        assertRefused(data, List.of(
                new Refusal(List.of("--num-experts", "4"), "--num-experts needs --disable-bias-linear in Megatron-J"),
                new Refusal(List.of("--disable-bias-linear", "--num-experts", "4", "--expert-model-parallel-size", "2"),
                        "--expert-model-parallel-size 2 must divide the data-parallel x context-parallel size 1"),
                new Refusal(List.of("--disable-bias-linear", "--num-experts", "4", "--expert-model-parallel-size", "3",
                        "--world-size", "3"), "Number of experts should be a multiple of expert model parallel_size"),
                new Refusal(List.of("--disable-bias-linear", "--num-experts", "4", "--moe-router-topk", "1"),
                        "Please use --moe-router-pre-softmax when topk is 1."),
                new Refusal(List.of("--disable-bias-linear", "--num-experts", "4", "--moe-layer-freq", "[1,0,1]"),
                        "--moe-layer-freq [1,0,1] gives 3 layers; it must give one 0 or 1 per layer of --num-layers 1"),
                new Refusal(List.of("--disable-bias-linear", "--num-experts", "4", "--moe-router-load-balancing-type",
                        "global_aux_loss"), "--moe-router-load-balancing-type global_aux_loss is not supported by Megatron-J"),
                new Refusal(List.of("--disable-bias-linear", "--num-experts", "4", "--tensor-model-parallel-size", "2"),
                        "needs --sequence-parallel"),
                new Refusal(List.of("--disable-bias-linear", "--num-experts", "4", "--moe-router-group-topk", "2"),
                        "When using group limited routing, moe_router_num_groups must be specified")));
    }

    /**
     * {@code --multi-latent-attention} with YaRN, latent norms and a MoE layer: trains (the loss falls), saves, comes back
     * with {@code --use-checkpoint-args}, names the MLA fields that differ on a load, generates from the checkpoint, runs
     * in bf16; what Megatron-J does not compute is refused by name.
     */
    @Test
    void multiLatentAttentionTrainsResumesGeneratesAndRefuses() throws IOException {
        Path data = dataset();
        Path save = dir.resolve("mla");
        Path csv = dir.resolve("mla.csv");
        List<String> mla = List.of("--multi-latent-attention", "--q-lora-rank", "8", "--kv-lora-rank", "8", "--qk-head-dim",
                "8", "--qk-pos-emb-head-dim", "4", "--v-head-dim", "6", "--qk-layernorm", "--rope-type", "yarn",
                "--rotary-scaling-factor", "4", "--mscale", "1.0", "--mscale-all-dim", "0.5", "--position-embedding-type",
                "rope", "--normalization", "RMSNorm", "--disable-bias-linear", "--swiglu", "--ffn-hidden-size", "32", "--num-experts", "4",
                "--moe-layer-freq", "[0,1]", "--mla-down-proj-fusion");
        List<String> first = args(data, "--save", save.toString(), "--log-loss-to", csv.toString(), "--train-iters", "8",
                "--exit-interval", "6", "--num-layers", "2");
        first.addAll(mla);
        CliRun trained = run(first);
        assertEquals(0, trained.code(), trained.toString());
        List<Double> losses = trainLosses(csv);
        assertTrue(losses.get(5) < losses.get(0), "loss falls: " + losses);
        try (var ckpt = org.megatronj.io.checkpoint.Checkpoint.openLatest(save, "mp_rank_00")) {
            for (String name : List.of("linear_q_down_proj.weight", "q_layernorm.weight", "linear_q_up_proj.weight",
                    "linear_kv_down_proj.weight", "kv_layernorm.weight", "linear_kv_up_proj.weight", "linear_proj.weight")) {
                assertTrue(ckpt.model().contains("decoder.layers.1.self_attention." + name), name);
            }
        }

        List<String> resume = withoutModelFlags(args(data, "--load", save.toString(), "--train-iters", "8"));
        resume.add("--use-checkpoint-args");
        CliRun resumed = run(resume);
        assertEquals(0, resumed.code(), resumed.toString());
        for (String line : List.of("Setting multi_latent_attention to True from checkpoint",
                "Setting q_lora_rank to 8 from checkpoint", "Setting v_head_dim to 6 from checkpoint",
                "Setting rope_type to yarn from checkpoint", "Setting mscale_all_dim to 0.5 from checkpoint")) {
            assertTrue(resumed.out().contains(line), line + " in " + resumed.out());
        }
        assertTrue(resumed.out().contains(" iteration        8/       8 |"), resumed.out());
        List<String> otherLatent = args(data, "--load", save.toString(), "--train-iters", "8", "--num-layers", "2");
        otherLatent.addAll(mla);
        otherLatent.addAll(List.of("--kv-lora-rank", "6", "--rotary-scaling-factor", "8"));
        CliRun refusedLoad = run(otherLatent);
        assertEquals(1, refusedLoad.code(), refusedLoad.toString());
        assertTrue(refusedLoad.err().contains("mla.kvLoraRank 8 (this run: 6)"), refusedLoad.err());
        assertTrue(refusedLoad.err().contains("mla.rotaryScalingFactor 4.0 (this run: 8.0)"), refusedLoad.err());
        List<String> standard = args(data, "--load", save.toString(), "--train-iters", "8", "--num-layers", "2");
        standard.addAll(mla.subList(mla.indexOf("--position-embedding-type"), mla.size() - 1));
        standard.add("--qk-layernorm");
        CliRun noMla = run(standard);
        assertEquals(1, noMla.code(), noMla.toString());
        assertTrue(noMla.err().contains("mla {"), noMla.err());

        CliRun generated = CliRun.of("generate", "--load", save.toString(), "--prompt", "1 2 3", "--tokens-to-generate", "4",
                "--temperature", "0");
        assertEquals(0, generated.code(), generated.toString());
        // export-torch under either spec and import-torch back: the same weights and MLA configuration
        java.util.Map<String, float[]> trainedWeights = new java.util.LinkedHashMap<>();
        com.fasterxml.jackson.databind.JsonNode trainedMla;
        try (var ckpt = org.megatronj.io.checkpoint.Checkpoint.openLatest(save, "mp_rank_00")) {
            for (String name : ckpt.model().names()) {
                trainedWeights.put(name, ckpt.model().tensor(name).toFloatArray());
            }
            trainedMla = ckpt.metadata().path("model").path("mla");
        }
        for (String impl : List.of("transformer_engine", "local")) {
            Path exported = dir.resolve("mla-torch-" + impl);
            CliRun exp = CliRun.of("checkpoint", "export-torch", "--load", save.toString(), "--save", exported.toString(),
                    "--transformer-impl", impl);
            assertEquals(0, exp.code(), exp.toString());
            try (var torch = org.megatronj.io.torch.TorchFile.open(exported.resolve("release/mp_rank_00/model_optim_rng.pt"))) {
                java.util.Map<?, ?> state = (java.util.Map<?, ?>) torch.root();
                java.util.Set<?> names = ((java.util.Map<?, ?>) state.get("model")).keySet();
                boolean te = impl.equals("transformer_engine");
                String p = "decoder.layers.0.";
                assertEquals(te, names.contains(p + "self_attention.linear_q_up_proj.layer_norm_weight")
                        && names.contains(p + "self_attention.linear_kv_up_proj.layer_norm_weight")
                        && names.contains(p + "self_attention.linear_kv_down_proj._extra_state")
                        && names.contains(p + "mlp.linear_fc1.layer_norm_weight"), names.toString());
                assertEquals(!te, names.contains(p + "self_attention.q_layernorm.weight"), names.toString());
                assertTrue(names.contains(p + "input_layernorm.weight"), names.toString());
                java.util.Map<?, ?> margs = (java.util.Map<?, ?>) ((org.megatronj.io.torch.Unpickler.Instance)
                        state.get("args")).state();
                assertEquals(Boolean.TRUE, margs.get("multi_latent_attention"));
                assertEquals(8L, margs.get("q_lora_rank"));
                assertEquals(6L, margs.get("v_head_dim"));
                assertEquals("yarn", margs.get("rope_type"));
                assertEquals(0.5, margs.get("mscale_all_dim"));
            }
            Path again = dir.resolve("mla-again-" + impl);
            CliRun imp = CliRun.of("checkpoint", "import-torch", "--load", exported.toString(), "--save", again.toString());
            assertEquals(0, imp.code(), imp.toString());
            try (var ckpt = org.megatronj.io.checkpoint.Checkpoint.openLatest(again, "mp_rank_00")) {
                assertEquals(trainedMla, ckpt.metadata().path("model").path("mla"), impl);
                assertEquals(trainedWeights.keySet(), new java.util.LinkedHashSet<>(ckpt.model().names()), impl);
                for (var e : trainedWeights.entrySet()) {
                    org.junit.jupiter.api.Assertions.assertArrayEquals(e.getValue(),
                            ckpt.model().tensor(e.getKey()).toFloatArray(), impl + " " + e.getKey());
                }
            }
        }
        CliRun hf = CliRun.of("checkpoint", "export-hf", "--load", save.toString(), "--hf-dir", dir.resolve("mla-hf").toString());
        assertEquals(1, hf.code(), hf.toString());
        // MLA exports as DeepSeek-V3 only with its norms' eps, sigmoid routing with the expert bias and shared experts
        assertTrue(hf.err().contains("has no Hugging Face DeepseekV3ForCausalLM (deepseek_v3) equivalent"), hf.err());
        List<String> bf16 = args(data, "--train-iters", "2", "--num-layers", "2");
        bf16.addAll(mla);
        bf16.add("--bf16");
        CliRun half = run(bf16);
        assertEquals(0, half.code(), half.toString());
        CliRun onCuda = CliRun.of("generate", "--load", save.toString(), "--prompt", "1", "--device", "cuda");
        assertEquals(1, onCuda.code(), onCuda.toString());
        assertTrue(onCuda.err().contains("--multi-latent-attention runs on --device cpu only"), onCuda.err());

        assertRefused(data, List.of(
                new Refusal(List.of("--rope-type", "yarn"), "Common attention only support rope_type=\"rope\", but got yarn."),
                new Refusal(List.of("--multi-latent-attention", "--group-query-attention", "--num-query-groups", "1"),
                        "Group query attention is mutually exclusive with multi latent attention."),
                new Refusal(List.of("--multi-latent-attention", "--cache-mla-latents"),
                        "--cache-mla-latents is not supported by Megatron-J"),
                new Refusal(List.of("--multi-latent-attention", "--device", "cuda"),
                        "--multi-latent-attention runs on --device cpu only"),
                new Refusal(List.of("--multi-latent-attention", "--context-parallel-size", "2", "--world-size", "2"),
                        "--context-parallel-size 2 is not supported with --multi-latent-attention"),
                new Refusal(List.of("--multi-latent-attention", "--qk-head-dim", "4", "--qk-pos-emb-head-dim", "2",
                        "--v-head-dim", "8"), "--v-head-dim (8) must not exceed --qk-head-dim + --qk-pos-emb-head-dim (6)"),
                new Refusal(List.of("--multi-latent-attention", "--rotary-percent", "0.5"),
                        "--rotary-percent 0.5 is not supported with --multi-latent-attention"),
                new Refusal(List.of("--position-embedding-type", "yarn"),
                        "--position-embedding-type yarn (YaRN for standard attention) is not supported by Megatron-J"),
                new Refusal(List.of("--multi-latent-attention", "--yarn-beta-fast", "16"),
                        "configure --position-embedding-type yarn, which Megatron-J does not support"),
                new Refusal(List.of("--mla-down-proj-fusion", "--train-iters", "1"),
                        "--mla-down-proj-fusion requires --multi-latent-attention")));
    }

    /**
     * {@code --rotary-interleaved}: rope on neighbouring channel pairs (here over half of each head) trains, computes
     * other losses than rotate half, generates from its checkpoint, comes back with {@code --use-checkpoint-args}, is
     * checked on load, and has no Hugging Face GPT-2 form (rope has none).
     */
    @Test
    void rotaryInterleavedTrainsResumesAndGenerates() throws IOException {
        Path data = dataset();
        Path save = dir.resolve("interleaved");
        Path csv = dir.resolve("interleaved.csv");
        List<String> first = args(data, "--save", save.toString(), "--log-loss-to", csv.toString(), "--train-iters", "8",
                "--exit-interval", "6", "--position-embedding-type", "rope", "--rotary-percent", "0.5");
        first.add("--rotary-interleaved");
        CliRun trained = run(first);
        assertEquals(0, trained.code(), trained.toString());
        List<Double> losses = trainLosses(csv);
        assertTrue(losses.get(5) < losses.get(0), "loss falls: " + losses);
        Path halfCsv = dir.resolve("rotate-half.csv");
        assertEquals(0, run(args(data, "--train-iters", "1", "--log-loss-to", halfCsv.toString(), "--position-embedding-type",
                "rope", "--rotary-percent", "0.5")).code());
        assertNotEquals(trainLosses(halfCsv).get(0), losses.get(0), "the first loss, before any step");

        CliRun gen = CliRun.of("generate", "--load", save.toString(), "--prompt", "1 2 3", "--tokens-to-generate", "4",
                "--temperature", "0");
        assertEquals(0, gen.code(), gen.toString());
        List<String> resume = withoutModelFlags(args(data, "--load", save.toString(), "--train-iters", "8"));
        resume.add("--use-checkpoint-args");
        CliRun resumed = run(resume);
        assertEquals(0, resumed.code(), resumed.toString());
        assertTrue(resumed.out().contains("Setting rotary_interleaved to True from checkpoint"), resumed.out());
        assertTrue(resumed.out().contains(" iteration        8/       8 |"), resumed.out());
        CliRun refused = run(args(data, "--load", save.toString(), "--train-iters", "8", "--position-embedding-type", "rope",
                "--rotary-percent", "0.5"));
        assertEquals(1, refused.code(), refused.toString());
        assertTrue(refused.err().contains("rotaryInterleaved true (this run: false)"), refused.err());
        CliRun export = CliRun.of("checkpoint", "export-hf", "--load", save.toString(), "--hf-dir",
                dir.resolve("interleaved-hf").toString());
        assertEquals(1, export.code(), export.toString());
        assertTrue(export.err().contains("--position-embedding-type rope has no Hugging Face GPT-2 equivalent"), export.err());
    }

    /** The arguments without --num-layers, --hidden-size and --num-attention-heads. */
    private static List<String> withoutModelFlags(List<String> args) {
        for (String flag : List.of("--num-layers", "--hidden-size", "--num-attention-heads")) {
            int at = args.indexOf(flag);
            args.remove(at + 1);
            args.remove(at);
        }
        return args;
    }

    /**
     * Position embeddings: {@code none} (NoPE) trains without a position table or rope; Megatron's older
     * {@code --use-rotary-position-embeddings} means rope, and {@code --no-position-embedding} is refused unless rope.
     */
    @Test
    void positionEmbeddingChoices() throws IOException {
        Path data = dataset();
        Path save = dir.resolve("nope");
        CliRun nope = run(args(data, "--position-embedding-type", "none", "--train-iters", "2", "--save", save.toString()));
        assertEquals(0, nope.code(), nope.toString());
        try (var ckpt = org.megatronj.io.checkpoint.Checkpoint.openLatest(save, "mp_rank_00")) {
            assertFalse(ckpt.model().contains("embedding.position_embeddings.weight"), ckpt.model().names().toString());
        }
        Path ropeCsv = dir.resolve("rope.csv");
        Path aliasCsv = dir.resolve("alias.csv");
        CliRun rope = run(args(data, "--position-embedding-type", "rope", "--train-iters", "2", "--log-loss-to", ropeCsv.toString()));
        assertEquals(0, rope.code(), rope.toString());
        List<String> aliasArgs = args(data, "--train-iters", "2", "--log-loss-to", aliasCsv.toString());
        aliasArgs.addAll(List.of("--use-rotary-position-embeddings", "--no-position-embedding"));
        CliRun alias = run(aliasArgs);
        assertEquals(0, alias.code(), alias.toString());
        assertEquals(trainLosses(ropeCsv), trainLosses(aliasCsv));
        // rope's variants train and compute other losses than plain rope of the same base: position interpolation, and
        // Llama 3.x's scaling (with Llama 3.1's base a head of 8 channels has a blended and a scaled frequency)
        List<List<Double>> losses = new ArrayList<>();
        for (List<String> variant : List.of(List.of("--rotary-seq-len-interpolation-factor", "4"), List.<String>of(),
                List.of("--use-rope-scaling", "--rope-scaling-factor", "16"))) {
            Path csv = dir.resolve("rope-variant-" + losses.size() + ".csv");
            List<String> a = args(data, "--position-embedding-type", "rope", "--train-iters", "2", "--log-loss-to", csv.toString(),
                    "--rotary-base", losses.isEmpty() ? "10000" : "500000");
            a.addAll(variant);
            CliRun run = run(a);
            assertEquals(0, run.code(), run.toString());
            losses.add(trainLosses(csv));
        }
        assertNotEquals(trainLosses(ropeCsv), losses.get(0), "position interpolation");
        assertNotEquals(losses.get(1), losses.get(2), "Llama 3.x rope scaling");
        List<String> learned = args(data);
        learned.add("--no-position-embedding");
        CliRun refused = run(learned);
        assertEquals(1, refused.code(), refused.toString());
        assertTrue(refused.err().contains("--no-position-embedding is deprecated, use --position-embedding-type"), refused.err());
    }

    /**
     * {@code --lr-decay-style WSD}: the learning rate holds at --lr until the last {@code --lr-wsd-decay-iters}, then falls
     * (linearly here) to --min-lr; a resume from its checkpoint continues the same schedule.
     */
    @Test
    void wsdScheduleHoldsThenDecays() throws IOException {
        Path data = dataset();
        Path save = dir.resolve("wsd");
        List<String> a = args(data, "--lr-decay-style", "WSD", "--min-lr", "1e-3", "--save", save.toString(),
                "--exit-interval", "3");
        a.addAll(List.of("--lr-wsd-decay-iters", "2", "--lr-wsd-decay-style", "linear"));
        CliRun first = run(a);
        assertEquals(0, first.code(), first.toString());
        a.addAll(List.of("--load", save.toString()));
        a.set(a.indexOf("--exit-interval") + 1, "0");
        CliRun resumed = run(a);
        assertEquals(0, resumed.code(), resumed.toString());
        java.util.regex.Pattern lr = java.util.regex.Pattern.compile("\\| learning rate: ([0-9.E+-]+) \\|");
        List<Double> rates = (first.out() + resumed.out()).lines().map(lr::matcher).filter(java.util.regex.Matcher::find)
                .map(m -> Double.parseDouble(m.group(1))).toList();
        // 6 iterations of 4 samples: decay over 24 steps, the last 8 of them WSD's linear fall; iteration i logs the rate
        // at step 4i (the next step's), stable through step 16
        assertEquals(List.of(1e-2, 1e-2, 1e-2, 1e-2, 5.5e-3, 1e-3), rates);

        // --lr-warmup-init: the warmup of 2 iterations (8 samples) rises from 4e-3, half way after the first
        CliRun warm = run(args(data, "--lr-warmup-iters", "2", "--lr-warmup-init", "4e-3", "--train-iters", "2"));
        assertEquals(0, warm.code(), warm.toString());
        assertEquals(List.of(7e-3, 1e-2), warm.out().lines().map(lr::matcher).filter(java.util.regex.Matcher::find)
                .map(m -> Double.parseDouble(m.group(1))).toList());
    }

    /**
     * {@code --weight-decay-incr-style}: a constant increment (start = end) trains exactly as {@code --weight-decay} of
     * that value, a rising one otherwise; constant with a start or end, or linear without them, is refused.
     */
    @Test
    void weightDecayIncrementReachesTheOptimizer() throws IOException {
        Path data = dataset();
        List<List<Double>> losses = new ArrayList<>();
        for (List<String> wd : List.of(List.of("--weight-decay", "0.5"),
                List.of("--weight-decay-incr-style", "linear", "--start-weight-decay", "0.5", "--end-weight-decay", "0.5"),
                List.of("--weight-decay-incr-style", "cosine", "--start-weight-decay", "0", "--end-weight-decay", "0.5"))) {
            Path csv = dir.resolve("wd" + losses.size() + ".csv");
            List<String> a = args(data, "--train-iters", "4", "--log-loss-to", csv.toString(), "--lr", "0.1");
            a.addAll(wd);
            CliRun r = run(a);
            assertEquals(0, r.code(), r.toString());
            losses.add(trainLosses(csv));
        }
        assertEquals(losses.get(0), losses.get(1));
        assertNotEquals(losses.get(0), losses.get(2));
        // the distributed optimizer takes the scheduled decay too (two data-parallel ranks, each way)
        List<List<Double>> sharded = new ArrayList<>();
        for (List<String> wd : List.of(List.of("--weight-decay", "0.5"),
                List.of("--weight-decay-incr-style", "linear", "--start-weight-decay", "0.5", "--end-weight-decay", "0.5"))) {
            Path csv = dir.resolve("wd-dp" + sharded.size() + ".csv");
            List<String> a = args(data, "--train-iters", "4", "--log-loss-to", csv.toString(), "--lr", "0.1");
            a.addAll(wd);
            a.addAll(List.of("--world-size", "2", "--use-distributed-optimizer"));
            CliRun r = run(a);
            assertEquals(0, r.code(), r.toString());
            sharded.add(trainLosses(csv));
        }
        assertEquals(sharded.get(0), sharded.get(1));
        List<String> constant = args(data);
        constant.addAll(List.of("--start-weight-decay", "0.1"));
        CliRun refused = run(constant);
        assertEquals(1, refused.code(), refused.toString());
        assertTrue(refused.err().contains("need --weight-decay-incr-style linear or cosine"), refused.err());
        List<String> linear = args(data);
        linear.addAll(List.of("--weight-decay-incr-style", "linear"));
        CliRun incomplete = run(linear);
        assertEquals(1, incomplete.code(), incomplete.toString());
        assertTrue(incomplete.err().contains("needs --start-weight-decay and --end-weight-decay"), incomplete.err());
    }

    /**
     * {@code --decoupled-lr}: the embedding and output layer at their own rate. Equal to --lr it trains exactly as
     * without, on one rank and on two with the distributed optimizer; another rate trains otherwise, and a rate of 0
     * leaves the word embedding as initialised.
     */
    @Test
    void decoupledLrMovesTheEmbeddingAtItsOwnRate() throws IOException {
        Path data = dataset();
        for (List<String> layout : List.of(List.<String>of(), List.of("--world-size", "2", "--use-distributed-optimizer"))) {
            List<List<Double>> losses = new ArrayList<>();
            for (List<String> decoupled : List.of(List.<String>of(), List.of("--decoupled-lr", "1e-2"),
                    List.of("--decoupled-lr", "5e-2", "--decoupled-min-lr", "1e-3"))) {
                Path csv = dir.resolve("dlr" + layout.size() + "-" + losses.size() + ".csv");
                List<String> a = args(data, "--train-iters", "4", "--log-loss-to", csv.toString());
                a.addAll(decoupled);
                a.addAll(layout);
                CliRun r = run(a);
                assertEquals(0, r.code(), r.toString());
                losses.add(trainLosses(csv));
            }
            assertEquals(losses.get(0), losses.get(1), "--decoupled-lr equal to --lr " + layout);
            assertNotEquals(losses.get(0), losses.get(2), "another --decoupled-lr " + layout);
        }
        Path init = dir.resolve("dlr-init");
        Path frozen = dir.resolve("dlr-frozen");
        assertEquals(0, run(args(data, "--train-iters", "1", "--lr", "0", "--save", init.toString())).code());
        CliRun zero = run(args(data, "--train-iters", "2", "--decoupled-lr", "0", "--save", frozen.toString()));
        assertEquals(0, zero.code(), zero.toString());
        try (var a = org.megatronj.io.checkpoint.Checkpoint.openLatest(init, "mp_rank_00");
             var b = org.megatronj.io.checkpoint.Checkpoint.openLatest(frozen, "mp_rank_00")) {
            String word = "embedding.word_embeddings.weight";
            assertArrayEquals(a.model().tensor(word).toFloatArray(), b.model().tensor(word).toFloatArray());
            String qkv = "decoder.layers.0.self_attention.linear_qkv.weight";
            assertFalse(java.util.Arrays.equals(a.model().tensor(qkv).toFloatArray(), b.model().tensor(qkv).toFloatArray()));
        }
    }

    /** Megatron-LM's own checkpoint formats: refused by name, as a flag and as a folder to load. */
    @Test
    void megatronLmCheckpointFormatsAreNamed() throws IOException {
        Path data = dataset();
        CliRun flag = run(args(data, "--ckpt-format", "torch_dist"));
        assertEquals(1, flag.code(), flag.toString());
        assertTrue(flag.err().contains("--ckpt-format torch_dist: Megatron-J's training saves and loads its own checkpoint"
                + " format") && flag.err().contains("'megatron checkpoint import-torch' and 'export-torch' convert"), flag.err());
        Path torch = dir.resolve("mlm-torch");
        Files.createDirectories(torch.resolve("iter_0000010/mp_rank_00"));
        Files.writeString(torch.resolve("latest_checkpointed_iteration.txt"), "10");
        Files.write(torch.resolve("iter_0000010/mp_rank_00/model_optim_rng.pt"), new byte[8]);
        CliRun pickle = run(args(data, "--load", torch.toString()));
        assertEquals(1, pickle.code(), pickle.toString());
        assertTrue(pickle.err().contains("is a Megatron-LM checkpoint in its --ckpt-format torch (mp_rank_00/model_optim_rng.pt)")
                && pickle.err().contains("'megatron checkpoint import-torch --load " + torch + " --save <new folder>'"), pickle.err());
        Path empty = Files.createDirectories(dir.resolve("no-ckpt"));
        List<String> missing = args(data, "--load", empty.toString());
        missing.add("--exit-on-missing-checkpoint");
        CliRun exit = run(missing);
        assertEquals(1, exit.code(), exit.toString());
        assertTrue(exit.err().contains("'--exit-on-missing-checkpoint' is set but no checkpoint was found under load directory"),
                exit.err());
        Path dist = dir.resolve("mlm-dist");
        Files.createDirectories(dist.resolve("iter_0000010"));
        Files.writeString(dist.resolve("latest_checkpointed_iteration.txt"), "10");
        Files.write(dist.resolve("iter_0000010/__0_0.distcp"), new byte[8]);
        CliRun distcp = run(args(data, "--load", dist.toString()));
        assertEquals(1, distcp.code(), distcp.toString());
        assertTrue(distcp.err().contains("is a Megatron-LM checkpoint in its --ckpt-format torch_dist")
                && distcp.err().contains("'megatron checkpoint import-torch --load " + dist + " --save <new folder>'"), distcp.err());
    }

    /**
     * {@code --apply-layernorm-1p} trains and saves zero-centred norm weights; its checkpoint does not load into a
     * run without the flag (another computation), and export-hf writes Hugging Face's scale, 1 + the weight.
     */
    @Test
    void layernorm1pTrainsLoadsOnlyWithTheFlagAndExportsTheScale() throws IOException {
        Path data = dataset();
        Path save = dir.resolve("ckpt-1p");
        List<String> a = args(data, "--train-iters", "2", "--save", save.toString());
        a.add("--apply-layernorm-1p");
        CliRun train = run(a);
        assertEquals(0, train.code(), train.toString());
        CliRun without = run(args(data, "--train-iters", "3", "--load", save.toString()));
        assertEquals(1, without.code(), without.toString());
        assertTrue(without.err().contains("applyLayernorm1p"), without.err());
        Path hf = dir.resolve("hf-1p");
        CliRun export = CliRun.of("checkpoint", "export-hf", "--load", save.toString(), "--hf-dir", hf.toString());
        assertEquals(0, export.code(), export.toString());
        try (var ckpt = org.megatronj.io.checkpoint.Checkpoint.openLatest(save, "mp_rank_00");
             var exported = org.megatronj.io.safetensors.SafetensorsFile.open(hf.resolve("model.safetensors"))) {
            float[] stored = ckpt.model().tensor("decoder.final_layernorm.weight").toFloatArray();
            float[] scale = exported.tensor("transformer.ln_f.weight").toFloatArray();
            for (int i = 0; i < stored.length; i++) {
                assertEquals(1f + stored[i], scale[i], "element " + i);
            }
        }
    }

    /**
     * {@code --calculate-per-token-loss}: the gradients are the global batch's token mean, so splitting the global
     * batch into micro-batches with different counted tokens (--eod-mask-loss) trains alike, which the default mean
     * of micro-batch means does not.
     */
    @Test
    void perTokenLossDoesNotDependOnTheMicroBatchSplit() throws IOException {
        Path data = dataset();
        List<Double> split = perTokenRun(data, "split.csv", "2", true);
        List<Double> whole = perTokenRun(data, "whole.csv", "4", true);
        for (int i = 0; i < whole.size(); i++) {
            assertEquals(whole.get(i), split.get(i), 1e-5 * whole.get(i), "iteration " + (i + 1));
        }
        List<Double> meanOfMeans = perTokenRun(data, "means.csv", "2", false);
        assertNotEquals(whole, meanOfMeans);
    }

    private List<Double> perTokenRun(Path data, String csv, String microBatch, boolean perToken) throws IOException {
        List<String> a = args(data, "--micro-batch-size", microBatch, "--log-loss-to", dir.resolve(csv).toString(),
                "--hidden-dropout", "0", "--attention-dropout", "0");
        a.add("--eod-mask-loss");
        if (perToken) {
            a.add("--calculate-per-token-loss");
        }
        CliRun r = run(a);
        assertEquals(0, r.code(), r.toString());
        return trainLosses(dir.resolve(csv));
    }

    /**
     * {@code --skip-train} evaluates the loaded model and exits without training or saving; evaluation batches
     * take {@code --eval-micro-batch-size} and {@code --eval-global-batch-size}, checked as Megatron checks them.
     */
    @Test
    void skipTrainAndEvaluationBatchSizes() throws IOException {
        Path data = dataset();
        Path save = dir.resolve("skip-ckpt");
        CliRun train = run(args(data, "--train-iters", "2", "--save", save.toString()));
        assertEquals(0, train.code(), train.toString());
        List<String> a = args(data, "--train-iters", "2", "--load", save.toString(), "--save", save.toString(),
                "--eval-micro-batch-size", "4", "--eval-global-batch-size", "8", "--eval-iters", "2");
        a.add("--skip-train");
        CliRun skip = run(a);
        assertEquals(0, skip.code(), skip.toString());
        assertTrue(skip.out().contains("skipping training (--skip-train is on) ..."), skip.out());
        assertFalse(skip.out().lines().anyMatch(l -> l.matches(".*\\] iteration +\\d+/.*")), skip.out());   // no training line
        assertTrue(skip.out().contains(" validation loss at iteration 2 on validation set | lm loss value: "), skip.out());
        assertTrue(skip.out().contains(" > datasets: train "), skip.out());
        assertEquals("2", Files.readString(save.resolve("latest_checkpointed_iteration.txt")).strip());

        CliRun bad = run(args(data, "--eval-micro-batch-size", "3"));   // global batch 4
        assertEquals(1, bad.code(), bad.toString());
        assertTrue(bad.err().contains("eval_global_batch_size (4) must be divisible by eval_micro_batch_size (3)"
                + " * data_parallel_size (1)"), bad.err());
    }

    @Test
    void aRepeatedFlagKeepsItsLastValue() {
        List<String> a = args(dataset(), "--train-iters", "6");
        a.addAll(List.of("--train-iters", "2"));
        CliRun r = run(a);
        assertEquals(0, r.code(), r.toString());
        assertTrue(r.out().contains("iteration        2/       2 |"), r.out());
        assertTrue(!r.out().contains("iteration        3/"), r.out());
        // a flag of several values (argparse's nargs='+') keeps its last occurrence's values too
        List<String> moe = args(dataset(), "--train-iters", "1");
        moe.addAll(List.of("--disable-bias-linear", "--num-experts", "4", "--moe-aux-loss-coeff", "0.5", "0.25",
                "--moe-router-load-balancing-type", "sinkhorn", "--moe-router-load-balancing-type", "aux_loss",
                "--moe-aux-loss-coeff", "1e-2"));
        CliRun twice = run(moe);
        assertEquals(0, twice.code(), twice.toString());
        assertTrue(twice.out().contains("load_balancing_loss: "), twice.out());
    }

    @Test
    void contradictingFlagsAreRefusedByName() {
        Path data = dataset();
        CliRun batch = run(args(data, "--global-batch-size", "5"));
        assertEquals(1, batch.code(), batch.toString());
        assertTrue(batch.err().contains("--global-batch-size (5) must be a positive multiple of --micro-batch-size (2)"), batch.err());

        CliRun positions = run(args(data, "--max-position-embeddings", "8"));
        assertEquals(1, positions.code(), positions.toString());
        assertTrue(positions.err().contains("--seq-length (16) is larger than --max-position-embeddings (8)"), positions.err());

        CliRun both = run(args(data, "--train-samples", "100"));   // with --train-iters 6
        assertEquals(1, both.code(), both.toString());
        assertTrue(both.err().contains("give exactly one of --train-iters and --train-samples"), both.err());

        CliRun warmup = run(args(data, "--lr-warmup-fraction", "0.1", "--lr-warmup-iters", "2"));
        assertEquals(1, warmup.code(), warmup.toString());
        assertTrue(warmup.err().contains("can only specify one of --lr-warmup-fraction and --lr-warmup-iters"), warmup.err());

        List<String> ramp = args(data);
        ramp.addAll(List.of("--rampup-batch-size", "2", "2", "100"));
        CliRun rampIters = run(ramp);
        assertEquals(1, rampIters.code(), rampIters.toString());
        assertTrue(rampIters.err().contains("--rampup-batch-size needs sample-based training (--train-samples)"), rampIters.err());

        CliRun world = run(args(data, "--world-size", "0"));
        assertEquals(1, world.code(), world.toString());
        assertTrue(world.err().contains("--world-size must be >= 1, got 0"), world.err());

        CliRun style = run(args(data, "--lr-decay-style", "exponential"));
        assertEquals(1, style.code(), style.toString());
        assertTrue(style.err().contains("unknown --lr-decay-style 'exponential'"), style.err());
    }

    /**
     * {@code --bf16}: the log reads like Megatron's (loss scale 1.0, no skipped iterations), the
     * arguments record the precision and {@code --use-flash-attn}, a run resumes from its
     * checkpoint with the uninterrupted losses, an fp32 checkpoint loads into a bf16 run, and
     * generation reads the bf16 run's F32 checkpoint.
     */
    @Test
    void bf16TrainsResumesAndLoadsFp32Checkpoints() throws IOException {
        Path data = dataset();
        Path whole = dir.resolve("bf16.csv");
        CliRun full = run(plus(args(data, "--log-loss-to", whole.toString()), "--bf16", "--use-flash-attn"));
        assertEquals(0, full.code(), full.toString());
        assertTrue(full.out().matches("(?s).*\\n  params_dtype \\.+ torch\\.bfloat16\\n.*"), full.out());
        assertTrue(full.out().matches("(?s).*\\n  use_flash_attn \\.+ True\\n.*"), full.out());
        assertTrue(full.out().contains(" > mixed precision: bf16 compute weights and activations"), full.out());
        assertTrue(full.out().contains(" | loss scale: 1.0 | grad norm: "), full.out());
        assertTrue(full.out().contains(" number of skipped iterations:   0 | number of nan iterations:   0 |"), full.out());
        List<Double> expected = trainLosses(whole);
        assertTrue(expected.get(5) < expected.get(0), "bf16 loss falls: " + expected);

        Path save = dir.resolve("ckpt-bf16");
        Path parts = dir.resolve("bf16-parts.csv");
        CliRun first = run(plus(args(data, "--save", save.toString(), "--exit-interval", "3", "--log-loss-to",
                parts.toString()), "--bf16"));
        assertEquals(0, first.code(), first.toString());
        CliRun second = run(plus(args(data, "--load", save.toString(), "--log-loss-to", parts.toString()), "--bf16"));
        assertEquals(0, second.code(), second.toString());
        List<Double> resumed = trainLosses(parts);
        assertEquals(6, resumed.size());
        for (int i = 0; i < 6; i++) {
            assertEquals(expected.get(i), resumed.get(i), 1e-5 * expected.get(i), "bf16 iteration " + (i + 1));
        }
        CliRun inspect = CliRun.of("checkpoint", "inspect", save.toString());
        assertEquals(0, inspect.code(), inspect.toString());
        assertTrue(inspect.out().contains("F32"), "the checkpoint keeps the fp32 main weights: " + inspect.out());
        CliRun gen = CliRun.of("generate", "--load", save.toString(), "--prompt", "1 2 3", "--tokens-to-generate", "3",
                "--temperature", "0");
        assertEquals(0, gen.code(), gen.toString());

        Path fp32 = dir.resolve("ckpt-fp32");
        assertEquals(0, run(args(data, "--save", fp32.toString(), "--exit-interval", "3")).code());
        CliRun mixed = run(plus(args(data, "--load", fp32.toString()), "--bf16"));
        assertEquals(0, mixed.code(), mixed.toString());
        assertTrue(mixed.out().contains("at iteration 3"), mixed.out());
        assertTrue(mixed.out().contains(" iteration        6/       6 |"), mixed.out());
    }

    /**
     * {@code --fp16} from a loss scale of 2^40 (fp16 overflows at once): the first iteration only
     * spends hysteresis, each later overflow halves the scale; skipped iterations show no grad norm.
     */
    @Test
    void fp16SkipsOverflowingIterationsAndHalvesTheScale() {
        Path data = dataset();
        CliRun r = run(plus(args(data, "--initial-loss-scale", "1099511627776", "--train-iters", "4"), "--fp16"));
        assertEquals(0, r.code(), r.toString());
        assertTrue(r.out().contains(" iteration        1/       4 |"), r.out());
        assertTrue(r.out().contains("| global batch size:     4 | loss scale: 1099511627776.0 | number of skipped"
                + " iterations:   1 | number of nan iterations:   0 |"), "no lm loss or grad norm when skipped: " + r.out());
        assertTrue(r.out().contains("| loss scale: 549755813888.0 | number of skipped iterations:   1 |"), r.out());
        assertTrue(r.out().contains("| loss scale: 274877906944.0 | number of skipped iterations:   1 |"), r.out());

        // the scaler's state is in the checkpoint, and inspect shows it
        Path ckpt = dir.resolve("fp16-ckpt");
        CliRun saved = run(plus(args(data, "--initial-loss-scale", "1099511627776", "--train-iters", "3", "--save",
                ckpt.toString()), "--fp16"));
        assertEquals(0, saved.code(), saved.toString());
        CliRun inspect = CliRun.of("checkpoint", "inspect", "--no-tensors", ckpt.toString());
        assertEquals(0, inspect.code(), inspect.toString());
        assertTrue(inspect.out().contains("  loss scaler:            dynamic, scale 274877906944.0, growth tracker 0,"
                + " hysteresis tracker -1\n"), inspect.out());

        CliRun fixed = run(plus(args(data, "--loss-scale", "256", "--train-iters", "2"), "--fp16"));
        assertEquals(0, fixed.code(), fixed.toString());
        assertTrue(fixed.out().contains("| loss scale: 256.0 | grad norm: "), fixed.out());
    }

    @Test
    void precisionFlagsAreValidated() {
        Path data = dataset();
        CliRun both = run(plus(args(data), "--fp16", "--bf16"));
        assertEquals(1, both.code(), both.toString());
        assertTrue(both.err().contains("--fp16 and --bf16 are mutually exclusive"), both.err());

        CliRun scales = run(plus(args(data, "--initial-loss-scale", "2", "--min-loss-scale", "4"), "--fp16"));
        assertEquals(1, scales.code(), scales.toString());
        assertTrue(scales.err().contains("need 0 < --min-loss-scale <= --initial-loss-scale"), scales.err());

        CliRun window = run(plus(args(data, "--loss-scale-window", "0"), "--fp16"));
        assertEquals(1, window.code(), window.toString());
        assertTrue(window.err().contains("--loss-scale-window must be a whole number >= 1"), window.err());

        CliRun hysteresis = run(plus(args(data, "--hysteresis", "0"), "--fp16"));
        assertEquals(1, hysteresis.code(), hysteresis.toString());
        assertTrue(hysteresis.err().contains("--hysteresis must be >= 1"), hysteresis.err());

        CliRun scale = run(plus(args(data, "--loss-scale", "-1"), "--bf16"));
        assertEquals(1, scale.code(), scale.toString());
        assertTrue(scale.err().contains("--loss-scale must be a positive finite number"), scale.err());
    }

    /**
     * Flags of Megatron's scripts that change nothing here: {@code --sequence-parallel} at TP = 1 is
     * switched off with Megatron's warning, {@code --accumulate-allreduce-grads-in-fp32} is what
     * always happens (F32 main gradients).
     */
    @Test
    void megatronScriptFlagsThatChangeNothingAreAcceptedAndSaidSo() {
        Path data = dataset();
        CliRun r = run(plus(args(data, "--train-iters", "1", "--eval-iters", "0"), "--sequence-parallel", "--bf16",
                "--accumulate-allreduce-grads-in-fp32"));
        assertEquals(0, r.code(), r.toString());
        assertTrue(r.out().contains("WARNING: Disabling sequence parallelism because tensor model parallelism is disabled\n"),
                r.out());
        // as Megatron's args after validate_args: the flag is off for the run, in the log and in the checkpoint's args
        assertTrue(r.out().matches("(?s).*\n  sequence_parallel \\.+ False\n.*"), r.out());
        // every flag is listed, defaults too, with Python's values, as Megatron prints its namespace
        assertTrue(r.out().matches("(?s).*\n  use_distributed_optimizer \\.+ False\n.*"), r.out());
        assertTrue(r.out().matches("(?s).*\n  load \\.+ None\n.*"), r.out());
        assertTrue(r.out().matches("(?s).*\n  adam_beta2 \\.+ 0\\.999\n.*"), r.out());
        assertTrue(r.out().matches("(?s).*\n  adam_eps \\.+ 1e-08\n.*"), r.out());   // Python's repr, not Java's 1.0E-8
        assertTrue(r.out().contains(" iteration        1/       1 |"), r.out());
    }

    @Test
    void timingLevelTwoSplitsTheStepIntoForwardAndBackwardCompute() {
        CliRun r = run(plus(args(dataset(), "--train-iters", "2", "--eval-iters", "0"), "--timing-log-level", "2"));
        assertEquals(0, r.code(), r.toString());
        for (String timer : List.of("forward-backward", "batch-generator", "forward-compute", "backward-compute")) {
            assertTrue(r.out().contains("\n    " + timer + " ."), timer + " in:\n" + r.out());
        }
        assertFalse(r.out().contains("forward-recv"), r.out());   // one rank: no pipeline to wait on
    }

    /** The arguments plus flags without values. */
    private static List<String> plus(List<String> args, String... flags) {
        List<String> a = new ArrayList<>(args);
        a.addAll(List.of(flags));
        return a;
    }

    private static List<Double> trainLosses(Path csv) throws IOException {
        return Files.readAllLines(csv).stream().filter(l -> l.startsWith("train,")).map(l -> Double.parseDouble(l.split(",")[3])).toList();
    }
}
