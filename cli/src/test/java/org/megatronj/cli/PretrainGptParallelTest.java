package org.megatronj.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import jdk.jfr.consumer.RecordingFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code pretrain gpt} on parallel layouts (ranks as threads) logs the losses of the single-rank run. */
class PretrainGptParallelTest {
    @TempDir
    Path dir;

    private Path dataset() {
        return ToyCorpus.write(dir);
    }

    private List<String> args(Path data, Path csv, String... extra) {
        List<String> a = new ArrayList<>(List.of("pretrain", "gpt", "--data-path", data.toString(), "--split", "90,10,0",
                "--data-cache-path", dir.resolve("cache").toString(), "--tokenizer-type", "NullTokenizer", "--vocab-size", "51",
                "--num-layers", "4", "--hidden-size", "16", "--num-attention-heads", "4", "--seq-length", "16",
                "--make-vocab-size-divisible-by", "16", "--micro-batch-size", "1", "--global-batch-size", "8",
                "--train-iters", "4", "--lr", "1e-2", "--log-interval", "1", "--eval-interval", "2", "--eval-iters", "1",
                "--hidden-dropout", "0.1", "--seed", "3", "--log-loss-to", csv.toString()));
        a.addAll(List.of(extra));
        return a;
    }

    private static List<Double> column(Path csv, String kind) throws IOException {
        return Files.readAllLines(csv).stream().filter(l -> l.startsWith(kind + ",")).map(l -> Double.parseDouble(l.split(",")[3]))
                .toList();
    }

    private void assertSameLosses(Path data, String... layout) throws IOException {
        Path single = dir.resolve("single.csv");
        if (!Files.exists(single)) {
            CliRun one = CliRun.of(args(data, single).toArray(String[]::new));
            assertEquals(0, one.code(), one.toString());
        }
        Path csv = dir.resolve("parallel-" + String.join("_", layout).replace("-", "") + ".csv");
        CliRun run = CliRun.of(args(data, csv, layout).toArray(String[]::new));
        assertEquals(0, run.code(), run.toString());
        assertTrue(run.out().contains("ranks as threads"), run.out());
        assertTrue(run.out().contains(" iteration        4/       4 |"), run.out());
        for (String kind : List.of("train", "valid")) {
            List<Double> expected = column(single, kind);
            List<Double> actual = column(csv, kind);
            assertEquals(expected.size(), actual.size(), kind + " rows");
            for (int i = 0; i < expected.size(); i++) {
                assertEquals(expected.get(i), actual.get(i), 1e-5 * expected.get(i), kind + " loss " + (i + 1) + " of " + layout[1]);
            }
        }
    }

    @Test
    void tensorSequencePipelineAndDataParallelMatchOneRank() throws IOException {
        Path data = dataset();
        assertSameLosses(data, "--tensor-model-parallel-size", "2", "--pipeline-model-parallel-size", "2", "--world-size", "8",
                "--sequence-parallel", "--use-distributed-optimizer", "--overlap-grad-reduce");
        assertSameLosses(data, "--pipeline-model-parallel-size", "2", "--num-layers-per-virtual-pipeline-stage", "1",
                "--world-size", "4", "--recompute-granularity", "full", "--recompute-method", "block", "--recompute-num-layers", "1");
    }

    /**
     * Megatron's uneven pipeline splits on the 4-layer model: one layer on the first stage and three on the second;
     * the embedding and loss counted as layers over three stages (1, 2, 1 layers); an explicit interleaved layout whose
     * first chunk holds only the embedding and last only the loss, with data parallelism and the distributed optimizer.
     * Then a checkpoint of an uneven split resumes in its own split, names the reshard command for another, and
     * reshards into an explicit layout that another run loads.
     */
    @Test
    void unevenPipelineSplitsMatchOneRankAndCheckpointTheirSplit() throws IOException {
        Path data = dataset();
        assertSameLosses(data, "--pipeline-model-parallel-size", "2", "--world-size", "2",
                "--decoder-first-pipeline-num-layers", "1");
        assertSameLosses(data, "--pipeline-model-parallel-size", "3", "--world-size", "3",
                "--account-for-embedding-in-pipeline-split", "--account-for-loss-in-pipeline-split");
        assertSameLosses(data, "--pipeline-model-parallel-size", "2", "--world-size", "4", "--pipeline-model-parallel-layout",
                "E|t*2|t*2|L", "--use-distributed-optimizer");
        CliRun shown = CliRun.of(args(data, dir.resolve("shown.csv"), "--pipeline-model-parallel-size", "2", "--world-size", "2",
                "--pipeline-model-parallel-layout", "E|t*2|t*2|L", "--train-iters", "1").toArray(String[]::new));
        assertTrue(shown.out().contains("> pipeline split E|t*2|t*2|L:\nPP rank 0    embedding    |    decoder*2\n"
                + "PP rank 1    decoder*2    |    loss\n"), shown.out());

        // a layout placing an MTP depth with the loss, as Megatron's 'm'; its count must be --mtp-num-layers
        assertLayoutsMatchOneRank(data, "mtp-layout", new String[] {"--position-embedding-type", "rope", "--mtp-num-layers", "1"},
                new String[] {"--pipeline-model-parallel-size", "2", "--world-size", "2", "--pipeline-model-parallel-layout",
                        "Et*2|t*2mL"});
        CliRun mtpCount = CliRun.of(args(data, dir.resolve("mtp-count.csv"), "--position-embedding-type", "rope",
                "--pipeline-model-parallel-size", "2", "--world-size", "2", "--pipeline-model-parallel-layout", "Et*2|t*2mL")
                .toArray(String[]::new));
        assertEquals(1, mtpCount.code(), mtpCount.toString());
        assertTrue(mtpCount.err().contains("Number of mtp layers in layout (1) must match mtp_num_layers (0, --mtp-num-layers)"),
                mtpCount.err());

        Path single = dir.resolve("single.csv");
        String[] uneven = {"--pipeline-model-parallel-size", "2", "--world-size", "2", "--decoder-last-pipeline-num-layers", "1"};
        Path parts = dir.resolve("uneven-parts.csv");
        Path ckpt = dir.resolve("ckpt-uneven");
        List<String> first = args(data, parts, uneven);
        first.addAll(List.of("--save", ckpt.toString(), "--exit-interval", "2"));
        CliRun a = CliRun.of(first.toArray(String[]::new));
        assertEquals(0, a.code(), a.toString());
        Path after = dir.resolve("uneven-after-reshard.csv");
        Files.copy(parts, after);   // the first two iterations, for the run that loads the resharded checkpoint
        CliRun inspect = CliRun.of("checkpoint", "inspect", "--no-tensors", ckpt.toString());
        assertTrue(inspect.out().contains("pipeline-parallel 2 with [3, 1] layers per virtual stage"), inspect.out());
        List<String> resume = args(data, parts, uneven);
        resume.addAll(List.of("--load", ckpt.toString()));
        CliRun b = CliRun.of(resume.toArray(String[]::new));
        assertEquals(0, b.code(), b.toString());
        assertLosses(single, parts);

        CliRun even = CliRun.of(args(data, dir.resolve("even.csv"), "--pipeline-model-parallel-size", "2", "--world-size", "2",
                "--load", ckpt.toString()).toArray(String[]::new));
        assertEquals(1, even.code(), even.toString());
        assertTrue(even.err().contains("with [3, 1] layers per virtual stage") && even.err().contains("megatron checkpoint reshard"),
                even.err());
        CliRun otherSplit = CliRun.of(args(data, dir.resolve("other.csv"), "--pipeline-model-parallel-size", "2", "--world-size",
                "2", "--decoder-first-pipeline-num-layers", "1", "--load", ckpt.toString()).toArray(String[]::new));
        assertEquals(1, otherSplit.code(), otherSplit.toString());
        assertTrue(otherSplit.err().contains("--target-pipeline-model-parallel-layout \"Et|t*3L\""), otherSplit.err());

        Path resharded = dir.resolve("ckpt-layout");
        CliRun reshard = CliRun.of("checkpoint", "reshard", "--load", ckpt.toString(), "--save", resharded.toString(),
                "--target-tensor-parallel-size", "1", "--target-pipeline-parallel-size", "2",
                "--target-pipeline-model-parallel-layout", "Et|t*3L");
        assertEquals(0, reshard.code(), reshard.toString());
        List<String> third = args(data, after, "--pipeline-model-parallel-size", "2", "--world-size", "2",
                "--pipeline-model-parallel-layout", "Et|t*3L", "--load", resharded.toString());
        CliRun c = CliRun.of(third.toArray(String[]::new));
        assertEquals(0, c.code(), c.toString());
        assertTrue(c.out().contains("at iteration 2"), c.out());
        assertLosses(single, after);
        CliRun badTarget = CliRun.of("checkpoint", "reshard", "--load", ckpt.toString(), "--save",
                dir.resolve("bad").toString(), "--target-tensor-parallel-size", "1", "--target-pipeline-parallel-size", "2",
                "--target-pipeline-model-parallel-layout", "Et|t*2L");
        assertEquals(1, badTarget.code(), badTarget.toString());
        assertTrue(badTarget.err().contains("--target-pipeline-model-parallel-layout \"Et|t*2L\": Number of decoder layers 3"
                + " must match num_layers 4"), badTarget.err());
    }

    /**
     * {@code --log-params-norm} and {@code --log-num-zeros-in-grad} count each weight once over the world: tensor
     * shards, pipeline stages, the tied embedding's two copies, replicated norms and the distributed optimizer's shards
     * give one rank's norm and zeros (here the position embeddings past the sequence, which get no gradient).
     */
    @Test
    void paramsNormAndZerosAreTheWholeModelsOnEveryLayout() throws IOException {
        Path data = dataset();
        String[] logged = {"--log-params-norm", "--log-num-zeros-in-grad", "--max-position-embeddings", "24"};
        CliRun one = CliRun.of(args(data, dir.resolve("pn1.csv"), logged).toArray(String[]::new));
        assertEquals(0, one.code(), one.toString());
        List<String> wideArgs = args(data, dir.resolve("pn8.csv"), logged);
        wideArgs.addAll(List.of("--tensor-model-parallel-size", "2", "--pipeline-model-parallel-size", "2", "--world-size", "8",
                "--sequence-parallel", "--use-distributed-optimizer"));
        CliRun wide = CliRun.of(wideArgs.toArray(String[]::new));
        assertEquals(0, wide.code(), wide.toString());
        List<Double> expected = logged(one.out(), "params norm");
        assertEquals(4, expected.size(), one.out());
        List<Double> actual = logged(wide.out(), "params norm");
        assertEquals(expected.size(), actual.size(), wide.out());
        for (int i = 0; i < expected.size(); i++) {
            assertEquals(expected.get(i), actual.get(i), 2e-3, "params norm at iteration " + (i + 1));
        }
        List<Double> zeros = logged(one.out(), "num zeros");
        assertEquals(4, zeros.size(), one.out());
        assertTrue(zeros.stream().allMatch(z -> z >= 8 * 16), "8 position rows of 16 without gradient: " + zeros);
        assertEquals(zeros, logged(wide.out(), "num zeros"));
        // a collective on every rank at every iteration, whatever rank 0 writes where: TensorBoard every iteration,
        // log lines every other one
        Path tb = dir.resolve("pn-tb");
        List<String> tbArgs = args(data, dir.resolve("pn2.csv"), logged);
        tbArgs.addAll(List.of("--world-size", "2", "--tensorboard-dir", tb.toString(), "--log-interval", "2"));
        CliRun tensorboard = CliRun.of(tbArgs.toArray(String[]::new));
        assertEquals(0, tensorboard.code(), tensorboard.toString());
        java.util.Map<String, java.util.TreeMap<Long, Float>> scalars;
        try (var files = Files.list(tb)) {
            scalars = EventFiles.scalars(files.findFirst().orElseThrow());
        }
        assertEquals(java.util.Set.of(1L, 2L, 3L, 4L), scalars.get("params-norm").keySet());
        for (int i = 0; i < expected.size(); i++) {
            assertEquals(expected.get(i), scalars.get("params-norm").get((long) i + 1), 2e-3,
                    "TensorBoard params norm at iteration " + (i + 1));
            assertEquals(zeros.get(i), scalars.get("num-zeros").get((long) i + 1), 0, "TensorBoard zeros at " + (i + 1));
        }
    }

    /** {@code --add-qkv-bias} with {@code --disable-bias-linear}: the qkv bias splits with its rows over tensor ranks. */
    @Test
    void qkvBiasAloneMatchesOneRankUnderTensorParallelism() throws IOException {
        assertTensorParallelMatchesOneRank("qkv", "--disable-bias-linear", "--add-qkv-bias", "--group-query-attention",
                "--num-query-groups", "2");
    }

    /** {@code --squared-relu}: each tensor rank squares its columns of fc1's output and differentiates them locally. */
    @Test
    void squaredReluMatchesOneRankUnderTensorParallelism() throws IOException {
        assertTensorParallelMatchesOneRank("sq", "--squared-relu", "--disable-bias-linear");
    }

    /** {@code --rotary-interleaved} over half of each head: each tensor rank rotates its own heads' pairs. */
    @Test
    void rotaryInterleavedMatchesOneRankUnderTensorParallelism() throws IOException {
        assertTensorParallelMatchesOneRank("ri", "--position-embedding-type", "rope", "--rotary-interleaved", "--rotary-percent",
                "0.5", "--group-query-attention", "--num-query-groups", "2");
    }

    /** The model of {@code modelFlags} on one rank and on two tensor ranks with sequence parallelism: the same losses. */
    private void assertTensorParallelMatchesOneRank(String name, String... modelFlags) throws IOException {
        Path data = dataset();
        Path one = dir.resolve(name + "1.csv");
        Path two = dir.resolve(name + "2.csv");
        CliRun single = CliRun.of(args(data, one, modelFlags).toArray(String[]::new));
        assertEquals(0, single.code(), single.toString());
        List<String> tp = args(data, two, modelFlags);
        tp.addAll(List.of("--tensor-model-parallel-size", "2", "--world-size", "2", "--sequence-parallel"));
        CliRun parallel = CliRun.of(tp.toArray(String[]::new));
        assertEquals(0, parallel.code(), parallel.toString());
        assertLosses(one, two);
    }

    /**
     * {@code --qk-layernorm} (here with RMSNorm, rope and GQA): each tensor rank's head norms see only its heads, so their
     * weight gradients are summed over the tensor ranks, with and without sequence parallelism; a saved model generates.
     */
    @Test
    void qkLayernormMatchesOneRankUnderTensorParallelism() throws IOException {
        Path data = dataset();
        Path one = dir.resolve("qk1.csv");
        String[] model = {"--qk-layernorm", "--normalization", "RMSNorm", "--position-embedding-type", "rope",
                "--group-query-attention", "--num-query-groups", "2"};
        List<String> singleArgs = args(data, one, model);
        singleArgs.addAll(List.of("--save", dir.resolve("qk-ckpt").toString()));
        CliRun single = CliRun.of(singleArgs.toArray(String[]::new));
        assertEquals(0, single.code(), single.toString());
        for (boolean sp : new boolean[] {false, true}) {
            Path two = dir.resolve("qk2" + sp + ".csv");
            List<String> tp = args(data, two, model);
            tp.addAll(List.of("--tensor-model-parallel-size", "2", "--world-size", "4"));
            if (sp) {
                tp.add("--sequence-parallel");
            }
            CliRun parallel = CliRun.of(tp.toArray(String[]::new));
            assertEquals(0, parallel.code(), parallel.toString());
            assertLosses(one, two);
        }
        CliRun gen = CliRun.of("generate", "--load", dir.resolve("qk-ckpt").toString(), "--prompt", "1 2 3",
                "--tokens-to-generate", "4", "--temperature", "0");
        assertEquals(0, gen.code(), gen.toString());
    }

    /** {@code --calculate-per-token-loss} over data-parallel ranks and a pipeline: the single rank's token mean. */
    @Test
    void perTokenLossMatchesOneRankOnParallelLayouts() throws IOException {
        Path data = dataset();
        Path one = dir.resolve("pt1.csv");
        Path wide = dir.resolve("pt4.csv");
        CliRun single = CliRun.of(args(data, one, "--calculate-per-token-loss", "--eod-mask-loss").toArray(String[]::new));
        assertEquals(0, single.code(), single.toString());
        CliRun parallel = CliRun.of(args(data, wide, "--calculate-per-token-loss", "--eod-mask-loss",
                "--pipeline-model-parallel-size", "2", "--world-size", "4", "--use-distributed-optimizer").toArray(String[]::new));
        assertEquals(0, parallel.code(), parallel.toString());
        assertLosses(one, wide);
    }

    /** The values of a log-line field ({@code params norm}, {@code num zeros}) in order. */
    private static List<Double> logged(String out, String field) {
        java.util.regex.Pattern p = java.util.regex.Pattern.compile("\\| " + field + ": ([0-9.]+) \\|");
        return out.lines().map(p::matcher).filter(java.util.regex.Matcher::find).map(m -> Double.parseDouble(m.group(1))).toList();
    }

    /**
     * A parallel run's checkpoint is sharded per (TP, PP) rank: one rank refuses it, resumes it after
     * {@code checkpoint reshard} to 1 x 1 with the same losses; a parallel run resumes a single-rank one.
     */
    @Test
    void checkpointsResumeAcrossLayouts() throws IOException {
        Path data = dataset();
        Path single = dir.resolve("whole.csv");
        assertEquals(0, CliRun.of(args(data, single).toArray(String[]::new)).code());
        String[] wide = {"--tensor-model-parallel-size", "2", "--pipeline-model-parallel-size", "2", "--world-size", "8",
                "--sequence-parallel", "--use-distributed-optimizer"};

        Path parts = dir.resolve("parallel-then-single.csv");
        Path ckpt = dir.resolve("ckpt-parallel");
        List<String> first = args(data, parts, wide);
        first.addAll(List.of("--save", ckpt.toString(), "--exit-interval", "2"));
        CliRun a = CliRun.of(first.toArray(String[]::new));
        assertEquals(0, a.code(), a.toString());
        // Megatron's line names rank 0's place among the tensor and pipeline sizes
        assertTrue(a.out().contains("  successfully saved checkpoint from iteration       2 to " + ckpt + " [ t 1/2, p 1/2 ]\n"),
                a.out());
        for (String rank : List.of("mp_rank_00_000", "mp_rank_01_000", "mp_rank_00_001", "mp_rank_01_001")) {
            assertTrue(Files.exists(ckpt.resolve("iter_0000002/" + rank + "/model.safetensors")), rank + ": " + a.out());
            assertTrue(Files.exists(ckpt.resolve("iter_0000002/" + rank + "/distrib_optim_dp_001.safetensors")), rank);
        }
        CliRun refused = CliRun.of(args(data, dir.resolve("refused.csv"), "--load", ckpt.toString()).toArray(String[]::new));
        assertEquals(1, refused.code(), refused.toString());
        assertTrue(refused.err().contains("megatron checkpoint reshard"), refused.err());
        Path whole = dir.resolve("ckpt-resharded");
        CliRun reshard = CliRun.of("checkpoint", "reshard", "--load", ckpt.toString(), "--save", whole.toString(),
                "--target-tensor-parallel-size", "1", "--target-pipeline-parallel-size", "1");
        assertEquals(0, reshard.code(), reshard.toString());
        assertTrue(reshard.out().contains("optimizer state converted"), reshard.out());
        CliRun inspect = CliRun.of("checkpoint", "inspect", "--no-tensors", ckpt.toString());
        assertTrue(inspect.out().contains("layout:                 tensor-parallel 2, pipeline-parallel 2, saved at data-parallel 2"
                + " with the distributed optimizer"), inspect.out());
        assertTrue(inspect.out().contains("rank folders:           4 [mp_rank_00_000, mp_rank_00_001, mp_rank_01_000,"
                + " mp_rank_01_001]"), inspect.out());
        assertTrue(inspect.out().contains("distributed optimizer:  2 file(s)"), inspect.out());
        Path rankFolder = ckpt.resolve("iter_0000002/mp_rank_01_001");
        CliRun inspectRank = CliRun.of("checkpoint", "inspect", "--no-tensors", rankFolder.toString());
        assertEquals(0, inspectRank.code(), inspectRank.toString());
        assertTrue(inspectRank.out().startsWith("checkpoint: " + rankFolder + "\n"), inspectRank.out());
        assertTrue(inspectRank.out().contains("(tensors below: mp_rank_01_001)"), inspectRank.out());
        assertTrue(inspectRank.out().contains("  iteration:              2\n"), inspectRank.out());
        CliRun inspectWhole = CliRun.of("checkpoint", "inspect", "--no-tensors", whole.toString());
        assertTrue(inspectWhole.out().contains("resharded from:         tensor-parallel 2, pipeline-parallel 2"), inspectWhole.out());
        CliRun b = CliRun.of(args(data, parts, "--load", whole.toString()).toArray(String[]::new));
        assertEquals(0, b.code(), b.toString());
        assertTrue(b.out().contains("at iteration 2"), b.out());
        assertLosses(single, parts);

        Path parts2 = dir.resolve("single-then-parallel.csv");
        Path ckpt2 = dir.resolve("ckpt-single");
        CliRun c = CliRun.of(args(data, parts2, "--save", ckpt2.toString(), "--exit-interval", "2").toArray(String[]::new));
        assertEquals(0, c.code(), c.toString());
        List<String> resume = args(data, parts2, "--tensor-model-parallel-size", "2", "--world-size", "4",
                "--overlap-grad-reduce", "--load", ckpt2.toString());
        CliRun d = CliRun.of(resume.toArray(String[]::new));
        assertEquals(0, d.code(), d.toString());
        assertTrue(d.out().contains("  successfully loaded checkpoint from " + ckpt2 + " [ t 1/2, p 1/1 ] at iteration 2\n"),
                d.out());
        assertLosses(single, parts2);
    }

    private static void assertLosses(Path expectedCsv, Path actualCsv) throws IOException {
        List<Double> expected = column(expectedCsv, "train");
        List<Double> actual = column(actualCsv, "train");
        assertEquals(expected.size(), actual.size(), actualCsv + " rows");
        for (int i = 0; i < expected.size(); i++) {
            assertEquals(expected.get(i), actual.get(i), 1e-5 * expected.get(i), actualCsv + " iteration " + (i + 1));
        }
    }

    /**
     * {@code --bf16} on tensor, sequence, pipeline and data parallelism with the distributed
     * optimizer: the losses follow the single-rank bf16 run to bf16 rounding (the ranks reduce
     * 16-bit activations in another order than one rank adds them, so not bit for bit; the
     * relative loss error of bf16 is a few 1e-3, see MixedPrecisionTrainerTest).
     * {@code --fp16} over ranks: every rank skips the overflowing iterations together and halves
     * its scale alike (hysteresis 1).
     */
    @Test
    void mixedPrecisionRunsOnParallelLayouts() throws IOException {
        Path data = dataset();
        Path single = dir.resolve("single-bf16.csv");
        CliRun one = CliRun.of(args(data, single, "--bf16").toArray(String[]::new));
        assertEquals(0, one.code(), one.toString());
        Path csv = dir.resolve("parallel-bf16.csv");
        CliRun run = CliRun.of(args(data, csv, "--bf16", "--tensor-model-parallel-size", "2", "--pipeline-model-parallel-size",
                "2", "--world-size", "8", "--sequence-parallel", "--use-distributed-optimizer", "--overlap-grad-reduce")
                .toArray(String[]::new));
        assertEquals(0, run.code(), run.toString());
        assertTrue(run.out().contains(" | loss scale: 1.0 | grad norm: "), run.out());
        List<Double> expected = column(single, "train");
        List<Double> actual = column(csv, "train");
        assertEquals(expected.size(), actual.size());
        for (int i = 0; i < expected.size(); i++) {
            assertEquals(expected.get(i), actual.get(i), 1e-2 * expected.get(i), "bf16 loss " + (i + 1));
        }

        CliRun fp16 = CliRun.of(args(data, dir.resolve("fp16.csv"), "--fp16", "--initial-loss-scale", "1099511627776",
                "--hysteresis", "1", "--tensor-model-parallel-size", "2", "--world-size", "4").toArray(String[]::new));
        assertEquals(0, fp16.code(), fp16.toString());
        for (String scale : List.of("549755813888.0", "274877906944.0", "137438953472.0", "68719476736.0")) {
            assertTrue(fp16.out().contains("| loss scale: " + scale + " | number of skipped iterations:   1 |"), fp16.out());
        }
    }

    /**
     * A pipeline-parallel run prints Megatron's parameter count of every stage and {@code --profile}
     * records the ranks' training events; a checkpoint of another chunking is refused in one line
     * whose reshard command yields this run's chunks, and reshard names its own flags.
     */
    @Test
    void pipelineRunsCountEachStageProfileAndNameTheirReshard() throws IOException {
        Path data = dataset();
        Path jfr = dir.resolve("parallel.jfr");
        Path ckpt = dir.resolve("ckpt-pp2");
        CliRun a = CliRun.of(args(data, dir.resolve("pp2.csv"), "--pipeline-model-parallel-size", "2", "--world-size", "2",
                "--train-iters", "2", "--profile", jfr.toString(), "--save", ckpt.toString()).toArray(String[]::new));
        assertEquals(0, a.code(), a.toString());
        assertTrue(a.out().contains("profile written to " + jfr), a.out());
        // a layer of hidden 16 (ffn 64) holds 3280 parameters; stage 0 adds the 64 x 16 word and 16 x 16 position
        // embeddings, the last stage the final norm (32) and its copy of the (tied) word embeddings
        assertTrue(a.out().contains(" > number of parameters on (tensor, pipeline) model parallel rank (0, 0): 7840\n"
                + " > number of parameters on (tensor, pipeline) model parallel rank (0, 1): 7616\n"), a.out());
        try (RecordingFile recording = new RecordingFile(jfr)) {
            int steps = 0;
            while (recording.hasMoreEvents()) {
                if (recording.readEvent().getEventType().getName().equals("org.megatronj.TrainStep")) {
                    steps++;
                }
            }
            assertEquals(2 * 2, steps, "a TrainStep per iteration of each of the 2 ranks");
        }

        CliRun b = CliRun.of(args(data, dir.resolve("vp.csv"), "--pipeline-model-parallel-size", "2",
                "--num-layers-per-virtual-pipeline-stage", "1", "--world-size", "2", "--load", ckpt.toString())
                .toArray(String[]::new));
        assertEquals(1, b.code(), b.toString());
        assertTrue(b.err().contains("is a checkpoint of tensor-parallel 1, pipeline-parallel 2, saved at data-parallel 1, but"
                + " this run is tensor-parallel 1, pipeline-parallel 2 (2 chunks per stage)"), b.err());
        assertTrue(b.err().contains("--target-pipeline-parallel-size 2 --target-num-layers-per-virtual-pipeline-stage 1'"),
                b.err());
        assertFalse(b.err().contains("Exception"), b.err());
        assertEquals(1, b.err().lines().count(), b.err());

        CliRun heads = CliRun.of("checkpoint", "reshard", "--load", ckpt.toString(), "--save", dir.resolve("tp3").toString(),
                "--target-tensor-parallel-size", "3", "--target-pipeline-parallel-size", "1");
        assertEquals(1, heads.code(), heads.toString());
        assertTrue(heads.err().contains("its model's --num-attention-heads 4 is not divisible by --target-tensor-parallel-size 3"),
                heads.err());
        CliRun chunks = CliRun.of("checkpoint", "reshard", "--load", ckpt.toString(), "--save", dir.resolve("vp").toString(),
                "--target-tensor-parallel-size", "1", "--target-pipeline-parallel-size", "1",
                "--target-num-layers-per-virtual-pipeline-stage", "1");
        assertEquals(1, chunks.code(), chunks.toString());
        assertTrue(chunks.err().contains("--target-num-layers-per-virtual-pipeline-stage (interleaved schedule) needs"
                + " --target-pipeline-parallel-size >= 2, got 1"), chunks.err());
    }

    /**
     * Megatron's first line names the sizes; as Megatron, TP pads the vocabulary to a multiple of
     * --make-vocab-size-divisible-by x TP, and says so.
     */
    @Test
    void tensorParallelRunLogsItsSizesAndTheVocabItPadsTo() {
        CliRun r = CliRun.of(args(dataset(), dir.resolve("v.csv"), "--tensor-model-parallel-size", "2",
                "--make-vocab-size-divisible-by", "20", "--train-iters", "1", "--eval-iters", "0").toArray(String[]::new));
        assertEquals(0, r.code(), r.toString());
        assertTrue(r.out().contains("tokenizer (vocab 51, padded to 80) ..."), r.out());
        assertTrue(r.out().startsWith("using world size: 2, data-parallel size: 1, context-parallel size: 1, hierarchical"
                + " context-parallel sizes: None, tensor-model-parallel size: 2, pipeline-model-parallel size: 1\n"), r.out());
        // 80 / 2 rows of 16 in each rank's slice of the word embeddings, 16 x 16 positions, 4 layers of 1688 (half of
        // the split weights, all of the norms and the row-parallel biases), the final norm 32
        assertTrue(r.out().contains("model parallel rank (1, 0): " + (40 * 16 + 256 + 4 * 1688 + 32) + "\n"), r.out());
    }

    /** --exit-duration-in-mins: the ranks agree on the slowest clock, save together and exit at the same iteration. */
    @Test
    void exitDurationStopsEveryRankAtTheSameIteration() {
        Path ckpt = dir.resolve("ckpt-duration");
        CliRun r = CliRun.of(args(dataset(), dir.resolve("d.csv"), "--tensor-model-parallel-size", "2",
                "--pipeline-model-parallel-size", "2", "--world-size", "4", "--exit-duration-in-mins", "1e-9",
                "--save", ckpt.toString()).toArray(String[]::new));
        assertEquals(0, r.code(), r.toString());
        assertTrue(r.out().contains("[after training is done] iteration 1, consumed samples 8 (duration)"), r.out());
        assertTrue(r.out().contains("exiting program after "), r.out());
        for (String rank : List.of("mp_rank_00_000", "mp_rank_01_000", "mp_rank_00_001", "mp_rank_01_001")) {
            assertTrue(Files.exists(ckpt.resolve("iter_0000001/" + rank + "/model.safetensors")), rank + ": " + r.out());
        }
    }

    /**
     * --timing-log-level 2 adds Megatron's level-2 timers: the model's forward-compute and backward-compute and the
     * pipeline's receives and sends, each with the fastest and slowest rank; level 1 shows none of them, but the
     * gradient synchronisation (all-grads-sync).
     */
    @Test
    void levelTwoTimersShowComputeAndPipelineCommunication() {
        String timers = "(min, max) time across ranks (ms):";
        CliRun two = CliRun.of(args(dataset(), dir.resolve("t2.csv"), "--pipeline-model-parallel-size", "2", "--train-iters", "2",
                "--eval-iters", "0", "--timing-log-level", "2").toArray(String[]::new));
        assertEquals(0, two.code(), two.toString());
        String block = two.out().substring(two.out().indexOf(timers));
        List<String> expected = List.of("forward-backward", "all-grads-sync", "optimizer", "batch-generator", "forward-compute", "backward-compute",
                "forward-recv", "forward-send", "backward-recv", "backward-send");
        int last = -1;
        for (String name : expected) {
            int at = block.indexOf("\n    " + name + " .");
            assertTrue(at > last, name + " missing or out of Megatron's order in:\n" + block);
            last = at;
        }
        CliRun one = CliRun.of(args(dataset(), dir.resolve("t1.csv"), "--pipeline-model-parallel-size", "2", "--train-iters", "2",
                "--eval-iters", "0", "--timing-log-level", "1").toArray(String[]::new));
        assertEquals(0, one.code(), one.toString());
        assertTrue(one.out().contains(timers), one.out());
        assertTrue(one.out().contains("\n    all-grads-sync ."), one.out());   // level 1, as in Megatron
        assertFalse(one.out().contains("forward-compute") || one.out().contains("forward-recv"), one.out());
    }

    /** Without --global-batch-size a step takes one micro-batch per data-parallel rank, as Megatron's default. */
    @Test
    void theDefaultGlobalBatchIsMicroTimesDataParallel() {
        List<String> a = args(dataset(), dir.resolve("g.csv"), "--world-size", "2", "--train-iters", "1", "--eval-iters", "0");
        int at = a.indexOf("--global-batch-size");
        a.subList(at, at + 2).clear();
        CliRun r = CliRun.of(a.toArray(String[]::new));
        assertEquals(0, r.code(), r.toString());
        assertTrue(r.out().contains("| global batch size:     2 |"), r.out());
    }

    @Test
    void invalidLayoutsAreRefusedWithTheirNumbers() {
        Path data = dataset();
        Path csv = dir.resolve("x.csv");
        CliRun heads = CliRun.of(args(data, csv, "--tensor-model-parallel-size", "3").toArray(String[]::new));
        assertEquals(1, heads.code(), heads.toString());
        assertTrue(heads.err().contains("--num-attention-heads 4 is not divisible by --tensor-model-parallel-size 3"), heads.err());

        CliRun world = CliRun.of(args(data, csv, "--tensor-model-parallel-size", "2", "--world-size", "3").toArray(String[]::new));
        assertEquals(1, world.code(), world.toString());
        assertTrue(world.err().contains("world size 3 is not divisible by"), world.err());

        CliRun batch = CliRun.of(args(data, csv, "--world-size", "3").toArray(String[]::new));
        assertEquals(1, batch.code(), batch.toString());
        assertTrue(batch.err().contains("--global-batch-size 8 is not divisible by --micro-batch-size 1 x data-parallel size 3"),
                batch.err());

        // ramp-up steps must split over the data-parallel ranks (and the pipeline, interleaved) before training starts
        List<String> ramp = args(data, csv, "--world-size", "2", "--rampup-batch-size", "2", "3", "16");
        ramp.set(ramp.indexOf("--train-iters"), "--train-samples");
        CliRun rampDp = CliRun.of(ramp.toArray(String[]::new));
        assertEquals(1, rampDp.code(), rampDp.toString());
        assertTrue(rampDp.err().contains("--rampup-batch-size increment (3) must be a positive multiple of micro batch"
                + " x data-parallel size (2)"), rampDp.err());
        assertFalse(rampDp.out().contains(" iteration "), rampDp.out());
        List<String> rampVp = args(data, csv, "--pipeline-model-parallel-size", "2", "--num-layers-per-virtual-pipeline-stage",
                "1", "--world-size", "2", "--rampup-batch-size", "2", "1", "16");
        rampVp.set(rampVp.indexOf("--train-iters"), "--train-samples");
        CliRun vp = CliRun.of(rampVp.toArray(String[]::new));
        assertEquals(1, vp.code(), vp.toString());
        assertTrue(vp.err().contains("at every step of --rampup-batch-size 2 1 16: every global batch size must be a multiple"
                + " of --micro-batch-size 1 x data-parallel size 1 x 2 = 2"), vp.err());

        CliRun bucket = CliRun.of(args(data, csv, "--world-size", "2", "--overlap-grad-reduce", "--ddp-bucket-size", "-5")
                .toArray(String[]::new));
        assertEquals(1, bucket.code(), bucket.toString());
        assertTrue(bucket.err().contains("--ddp-bucket-size must be >= 1 element, got -5"), bucket.err());

        Path nowhere = dir.resolve("no-such-folder/run.jfr");
        CliRun profile = CliRun.of(args(data, csv, "--world-size", "2", "--profile", nowhere.toString()).toArray(String[]::new));
        assertEquals(1, profile.code(), profile.toString());
        assertTrue(profile.err().contains("--profile " + nowhere + ": folder " + nowhere.getParent() + " does not exist"),
                profile.err());
        assertFalse(profile.out().contains("arguments"), "refused before the run starts: " + profile.out());

        CliRun method = CliRun.of(args(data, csv, "--recompute-method", "uniform").toArray(String[]::new));
        assertEquals(1, method.code(), method.toString());
        assertTrue(method.err().contains("--recompute-method uniform needs --recompute-granularity full"), method.err());

        // as Megatron's TransformerConfig: full recompute names its layer count, selective takes none
        CliRun noLayers = CliRun.of(args(data, csv, "--recompute-granularity", "full", "--recompute-method", "uniform")
                .toArray(String[]::new));
        assertEquals(1, noLayers.code(), noLayers.toString());
        assertTrue(noLayers.err().contains("--recompute-granularity full needs --recompute-num-layers N"), noLayers.err());
        CliRun selective = CliRun.of(args(data, csv, "--recompute-activations", "--recompute-num-layers", "2")
                .toArray(String[]::new));
        assertEquals(1, selective.code(), selective.toString());
        assertTrue(selective.err().contains("--recompute-num-layers 2 goes with --recompute-granularity full"), selective.err());
    }

    /**
     * {@code --async-save} in a parallel run: every rank writes its shard (the distributed optimizer's too) in the
     * background, rank 0 publishes once all are done, and the files are those of a save in place. (And
     * {@code --timing-log-option all} prints every rank's times.)
     */
    @Test
    void asyncSaveWritesTheSameShards() throws IOException {
        Path data = dataset();
        Path sync = dir.resolve("sync-ckpt"), async = dir.resolve("async-ckpt");
        String[] layout = {"--tensor-model-parallel-size", "2", "--pipeline-model-parallel-size", "2", "--world-size", "8",
                "--use-distributed-optimizer", "--save-interval", "2"};
        CliRun inPlace = CliRun.of(args(data, dir.resolve("s.csv"), concat(layout, "--save", sync.toString())).toArray(String[]::new));
        assertEquals(0, inPlace.code(), inPlace.toString());
        CliRun background = CliRun.of(args(data, dir.resolve("a.csv"), concat(layout, "--save", async.toString(), "--async-save", "--use-persistent-ckpt-worker",
                "--timing-log-level", "1", "--timing-log-option", "all")).toArray(String[]::new));
        assertEquals(0, background.code(), background.toString());
        assertTrue(background.out().matches("(?s).*\ntimes across ranks \\(ms\\):\n  forward-backward:\n     rank  0: [0-9.]+\n"
                + "(     rank  [1-6]: [0-9.]+\n)*     rank  7: [0-9.]+\n.*"), background.out());   // --timing-log-option all
        assertTrue(background.out().contains("Unfinalized async checkpoint saves. Finalizing them synchronously now.\n"
                + "  successfully saved checkpoint from iteration       4 to " + async + " [ t 1/2, p 1/2 ]"), background.out());
        List<Path> files;
        try (var walk = Files.walk(sync)) {
            files = walk.filter(Files::isRegularFile).filter(f -> !f.getFileName().toString().equals("metadata.json")).toList();
        }
        assertTrue(files.size() > 10, files.toString());
        for (Path f : files) {
            assertEquals(-1L, Files.mismatch(f, async.resolve(sync.relativize(f))), sync.relativize(f).toString());
        }
    }

    private static String[] concat(String[] a, String... b) {
        String[] all = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        return all;
    }

    // ------------------------------------------------------------------ context parallelism

    /** Dropout off: context-parallel ranks draw masks of their own, so only dropout-free runs can match one rank. */
    private static final String[] NO_DROPOUT = {"--hidden-dropout", "0", "--attention-dropout", "0"};

    private static String[] concat(String[]... parts) {
        return java.util.Arrays.stream(parts).flatMap(java.util.Arrays::stream).toArray(String[]::new);
    }

    /**
     * Runs {@code model}'s flags on one rank, then on each layout, and compares the train and validation losses of
     * every iteration (the ranks add in another order, hence the relative tolerance of the other parallel tests).
     */
    private void assertLayoutsMatchOneRank(Path data, String name, String[] model, String[]... layouts) throws IOException {
        Path single = dir.resolve(name + "-single.csv");
        CliRun one = CliRun.of(args(data, single, model).toArray(String[]::new));
        assertEquals(0, one.code(), one.toString());
        for (int l = 0; l < layouts.length; l++) {
            Path csv = dir.resolve(name + "-layout" + l + ".csv");
            CliRun run = CliRun.of(args(data, csv, concat(model, layouts[l])).toArray(String[]::new));
            assertEquals(0, run.code(), run.toString());
            assertTrue(run.out().contains(" iteration        4/       4 |"), run.out());
            for (String kind : List.of("train", "valid")) {
                List<Double> expected = column(single, kind);
                List<Double> actual = column(csv, kind);
                assertEquals(expected.size(), actual.size(), kind + " rows of " + String.join(" ", layouts[l]));
                for (int i = 0; i < expected.size(); i++) {
                    assertEquals(expected.get(i), actual.get(i), 1e-5 * expected.get(i),
                            kind + " loss " + (i + 1) + " of " + name + " " + String.join(" ", layouts[l]));
                }
            }
        }
    }

    /**
     * {@code --multi-latent-attention} (query latent, latent norms, YaRN, hidden and attention dropout) from the command
     * line: tensor parallelism with and without sequence parallelism, two pipeline stages (interleaved, with full
     * recompute), data parallelism with the distributed optimizer, selective recompute: the losses of one rank.
     */
    @Test
    void multiLatentAttentionMatchesOneRankOnEveryLayout() throws IOException {
        Path data = dataset();
        String[] mla = {"--multi-latent-attention", "--q-lora-rank", "8", "--kv-lora-rank", "6", "--qk-head-dim", "4",
                "--qk-pos-emb-head-dim", "2", "--v-head-dim", "4", "--qk-layernorm", "--normalization", "RMSNorm",
                "--position-embedding-type", "rope", "--rope-type", "yarn", "--rotary-scaling-factor", "4", "--mscale-all-dim",
                "0.5"};
        assertLayoutsMatchOneRank(data, "mla", mla,
                new String[] {"--tensor-model-parallel-size", "2", "--world-size", "2", "--sequence-parallel"},
                new String[] {"--tensor-model-parallel-size", "2", "--world-size", "2"},
                new String[] {"--pipeline-model-parallel-size", "2", "--world-size", "2", "--num-layers-per-virtual-pipeline-stage",
                        "1", "--recompute-granularity", "full", "--recompute-method", "uniform", "--recompute-num-layers", "1"},
                new String[] {"--world-size", "2", "--use-distributed-optimizer"},
                new String[] {"--tensor-model-parallel-size", "2", "--world-size", "4", "--sequence-parallel",
                        "--recompute-activations"});
    }

    /**
     * {@code --context-parallel-size 2} with learned positions: alone (world 2), with tensor and sequence
     * parallelism (world 4), with two pipeline stages (world 4; also interleaved with full recompute), and with data
     * parallelism and the distributed optimizer (world 4): the losses of one rank. Megatron's first line gives the real sizes.
     */
    @Test
    void contextParallelMatchesOneRankOnEveryLayout() throws IOException {
        Path data = dataset();
        String[] cp = {"--context-parallel-size", "2"};
        assertLayoutsMatchOneRank(data, "cp-learned", NO_DROPOUT, cp,
                concat(cp, new String[] {"--tensor-model-parallel-size", "2", "--sequence-parallel"}),
                concat(cp, new String[] {"--pipeline-model-parallel-size", "2"}),
                concat(cp, new String[] {"--pipeline-model-parallel-size", "2", "--num-layers-per-virtual-pipeline-stage", "1",
                        "--recompute-granularity", "full", "--recompute-method", "uniform", "--recompute-num-layers", "1"}),
                concat(cp, new String[] {"--world-size", "4", "--use-distributed-optimizer", "--overlap-grad-reduce"}));
        CliRun sizes = CliRun.of(args(data, dir.resolve("cp-sizes.csv"), concat(NO_DROPOUT, cp, new String[] {"--world-size",
                "8", "--tensor-model-parallel-size", "2", "--train-iters", "1", "--cp-comm-type", "a2a"})).toArray(String[]::new));
        assertEquals(0, sizes.code(), sizes.toString());
        assertTrue(sizes.out().startsWith("using world size: 8, data-parallel size: 2, context-parallel size: 2, hierarchical"
                + " context-parallel sizes: None, tensor-model-parallel size: 2, pipeline-model-parallel size: 1\n"), sizes.out());
    }

    /**
     * Rope rotates each rank's chunks by their global positions; with grouped-query attention too. With
     * {@code --eod-mask-loss} the ranks hold different numbers of loss tokens, which their gradient scales weigh
     * (the mean over the whole sequence); {@code --calculate-per-token-loss} weighs the micro-batches by tokens.
     */
    @Test
    void contextParallelMatchesOneRankWithRopeAndGroupedQueries() throws IOException {
        Path data = dataset();
        String[] cp = {"--context-parallel-size", "2"};
        assertLayoutsMatchOneRank(data, "cp-rope", concat(NO_DROPOUT, new String[] {"--position-embedding-type", "rope"}), cp,
                concat(cp, new String[] {"--tensor-model-parallel-size", "2", "--sequence-parallel"}));
        assertLayoutsMatchOneRank(data, "cp-gqa", concat(NO_DROPOUT, new String[] {"--position-embedding-type", "rope",
                "--group-query-attention", "--num-query-groups", "2", "--eod-mask-loss"}), cp,
                concat(cp, new String[] {"--tensor-model-parallel-size", "2", "--world-size", "8"}));
        assertLayoutsMatchOneRank(data, "cp-per-token", concat(NO_DROPOUT, new String[] {"--eod-mask-loss",
                "--calculate-per-token-loss"}), concat(cp, new String[] {"--world-size", "4", "--use-distributed-optimizer"}));
    }

    /**
     * A checkpoint saved at context-parallel size 2 (CP rank 0 writes the weights, as DP rank 0 does) resumes on one
     * rank with the uninterrupted run's losses, and one rank's checkpoint resumes at CP 2; with the distributed
     * optimizer each CP rank writes its shard of the moments, and one rank resumes from them.
     */
    @Test
    void contextParallelCheckpointsResumeAtAnotherContextParallelSize() throws IOException {
        Path data = dataset();
        Path whole = dir.resolve("cp-whole.csv");
        assertEquals(0, CliRun.of(args(data, whole, NO_DROPOUT).toArray(String[]::new)).code());
        String[] cp = {"--context-parallel-size", "2"};

        Path parts = dir.resolve("cp-then-single.csv");
        Path ckpt = dir.resolve("ckpt-cp");
        CliRun a = CliRun.of(args(data, parts, concat(NO_DROPOUT, cp, new String[] {"--save", ckpt.toString(),
                "--exit-interval", "2"})).toArray(String[]::new));
        assertEquals(0, a.code(), a.toString());
        CliRun b = CliRun.of(args(data, parts, concat(NO_DROPOUT, new String[] {"--load", ckpt.toString()})).toArray(String[]::new));
        assertEquals(0, b.code(), b.toString());
        assertTrue(b.out().contains("at iteration 2"), b.out());
        assertLosses(whole, parts);

        Path parts2 = dir.resolve("single-then-cp.csv");
        Path ckpt2 = dir.resolve("ckpt-single-for-cp");
        CliRun c = CliRun.of(args(data, parts2, concat(NO_DROPOUT, new String[] {"--save", ckpt2.toString(),
                "--exit-interval", "2"})).toArray(String[]::new));
        assertEquals(0, c.code(), c.toString());
        CliRun d = CliRun.of(args(data, parts2, concat(NO_DROPOUT, cp, new String[] {"--load", ckpt2.toString()}))
                .toArray(String[]::new));
        assertEquals(0, d.code(), d.toString());
        assertTrue(d.out().contains("at iteration 2"), d.out());
        assertLosses(whole, parts2);

        // the distributed optimizer shards over DP x CP: one file per CP rank, re-split for one rank on load
        Path parts3 = dir.resolve("cp-distributed-then-single.csv");
        Path ckpt3 = dir.resolve("ckpt-cp-distributed");
        String[] distributed = {"--use-distributed-optimizer"};
        CliRun e = CliRun.of(args(data, parts3, concat(NO_DROPOUT, cp, distributed, new String[] {"--save", ckpt3.toString(),
                "--exit-interval", "2"})).toArray(String[]::new));
        assertEquals(0, e.code(), e.toString());
        for (String file : List.of("model.safetensors", "distrib_optim_dp_000.safetensors", "distrib_optim_dp_001.safetensors")) {
            assertTrue(Files.exists(ckpt3.resolve("iter_0000002/mp_rank_00/" + file)), file + ": " + e.out());
        }
        CliRun f = CliRun.of(args(data, parts3, concat(NO_DROPOUT, distributed, new String[] {"--load", ckpt3.toString()}))
                .toArray(String[]::new));
        assertEquals(0, f.code(), f.toString());
        assertLosses(whole, parts3);
    }

    /**
     * With hidden and attention dropout (0.1 each) every CP rank draws masks of its own (not one rank's masks): the
     * run is reproducible, and tensor parallelism with sequence parallelism inside each CP rank draws the masks of
     * the CP-only run (each TP rank its heads' and rows' share), so those two layouts give the same losses.
     */
    @Test
    void contextParallelDropoutIsReproducibleAndIndependentOfTensorParallelism() throws IOException {
        Path data = dataset();
        String[] dropout = {"--attention-dropout", "0.1", "--context-parallel-size", "2"};
        Path first = dir.resolve("cp-dropout-1.csv");
        Path again = dir.resolve("cp-dropout-2.csv");
        Path tensor = dir.resolve("cp-dropout-tp.csv");
        assertEquals(0, CliRun.of(args(data, first, dropout).toArray(String[]::new)).code());
        assertEquals(0, CliRun.of(args(data, again, dropout).toArray(String[]::new)).code());
        CliRun tp = CliRun.of(args(data, tensor, concat(dropout, new String[] {"--tensor-model-parallel-size", "2",
                "--sequence-parallel"})).toArray(String[]::new));
        assertEquals(0, tp.code(), tp.toString());
        assertEquals(column(first, "train"), column(again, "train"));
        assertEquals(4, column(first, "train").size());
        assertLosses(first, tensor);
        Path single = dir.resolve("cp-dropout-single.csv");
        assertEquals(0, CliRun.of(args(data, single, "--attention-dropout", "0.1").toArray(String[]::new)).code());
        assertFalse(column(single, "train").equals(column(first, "train")), "other masks than one rank's");
    }

    /**
     * {@code --bf16} under context parallelism (the gathered keys and values and their gradient sums in bf16, as the
     * layers compute): the losses follow one bf16 rank to bf16 rounding, as for the other layouts.
     */
    @Test
    void contextParallelRunsInMixedPrecision() throws IOException {
        Path data = dataset();
        Path csv = dir.resolve("cp-bf16.csv");
        CliRun run = CliRun.of(args(data, csv, concat(NO_DROPOUT, new String[] {"--bf16", "--context-parallel-size", "2",
                "--tensor-model-parallel-size", "2", "--sequence-parallel", "--position-embedding-type", "rope"}))
                .toArray(String[]::new));
        assertEquals(0, run.code(), run.toString());
        Path ropeSingle = dir.resolve("cp-bf16-rope-single.csv");
        assertEquals(0, CliRun.of(args(data, ropeSingle, concat(NO_DROPOUT, new String[] {"--bf16", "--position-embedding-type",
                "rope"})).toArray(String[]::new)).code());
        List<Double> expected = column(ropeSingle, "train");
        List<Double> actual = column(csv, "train");
        assertEquals(4, actual.size());
        for (int i = 0; i < expected.size(); i++) {
            assertEquals(expected.get(i), actual.get(i), 1e-2 * expected.get(i), "bf16 loss " + (i + 1));
        }
    }

    /** What context parallelism refuses, by name, before anything runs. */
    @Test
    void contextParallelRefusesWhatItDoesNotSupport() {
        Path data = dataset();
        assertRefused(args(data, dir.resolve("r1.csv"), "--context-parallel-size", "3"),
                "--context-parallel-size 3: --seq-length 16 is not divisible by 2 x context-parallel size = 6");
        assertRefused(args(data, dir.resolve("r2.csv"), "--context-parallel-size", "2", "--world-size", "3"),
                "world size 3 is not divisible by tensor-model-parallel size 1 x pipeline-model-parallel size 1"
                        + " x context-parallel size 2 = 2");
        assertRefused(args(data, dir.resolve("r3.csv"), "--context-parallel-size", "2", "--reset-attention-mask"),
                "--context-parallel-size 2 does not support document masks (--reset-attention-mask,"
                        + " --dataloader-inter-document-masking)");
        assertRefused(args(data, dir.resolve("r4.csv"), "--context-parallel-size", "2", "--dataloader-inter-document-masking"),
                "--context-parallel-size 2 does not support document masks");
        assertRefused(args(data, dir.resolve("r5.csv"), "--context-parallel-size", "2", "--device", "cuda"),
                "--context-parallel-size 2 runs on the CPU backend only; use --device cpu");
        assertRefused(args(data, dir.resolve("r6.csv"), "--context-parallel-size", "2", "--cp-comm-type", "ring"),
                "--cp-comm-type ring is not one of p2p, a2a, allgather, a2a+p2p");
        assertRefused(args(data, dir.resolve("r7.csv"), "--context-parallel-size", "2", "--cp-comm-type", "p2p", "a2a"),
                "--cp-comm-type takes one type for all layers or one per layer (--num-layers 4), got 2");
    }

    private static void assertRefused(List<String> args, String message) {
        CliRun run = CliRun.of(args.toArray(String[]::new));
        assertEquals(1, run.code(), run.toString());
        assertTrue(run.err().contains(message), run.err());
        assertFalse(run.err().contains("Exception"), run.err());
    }
}
