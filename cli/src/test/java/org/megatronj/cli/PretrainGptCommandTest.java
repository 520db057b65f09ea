package org.megatronj.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.io.indexed.IndexedDatasetBuilder;
import org.megatronj.io.indexed.IndexedDtype;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PretrainGptCommandTest {
    @TempDir
    Path dir;

    /** 40 documents of a learnable pattern over ids 0..49 (NullTokenizer --vocab-size 50, EOD 50). */
    private Path dataset() {
        Path prefix = dir.resolve("data/toy_text_document");
        try (IndexedDatasetBuilder b = new IndexedDatasetBuilder(prefix, IndexedDtype.UINT16)) {
            for (int d = 0; d < 40; d++) {
                int[] doc = new int[60];
                int cur = d % 50;
                for (int i = 0; i < doc.length - 1; i++) {
                    doc[i] = cur;
                    cur = (cur * 7 + 3) % 50;
                }
                doc[doc.length - 1] = 50;
                b.addSequence(doc, 0, doc.length);
                b.endDocument();
            }
            b.finish();
        }
        return prefix;
    }

    private List<String> args(Path data, String... extra) {
        List<String> a = new ArrayList<>(List.of("pretrain", "gpt", "--data-path", data.toString(), "--split", "90,10,0",
                "--data-cache-path", dir.resolve("cache").toString(), "--tokenizer-type", "NullTokenizer", "--vocab-size", "50",
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
        assertTrue(gen.out().startsWith("1 2 3"), gen.out());
        assertTrue(gen.err().contains("generated "), gen.err());

        // A checkpoint of another shape, then a corrupt one: clear errors naming the mismatch.
        CliRun wider = run(args(data, "--load", save.toString(), "--hidden-size", "32"));
        assertEquals(1, wider.code(), wider.toString());
        assertTrue(wider.err().contains("was saved from another model shape: hiddenSize 16 (this run: 32)"), wider.err());
        Path model = save.resolve("iter_0000006/mp_rank_00/model.safetensors");
        byte[] bytes = Files.readAllBytes(model);
        Files.write(model, Arrays.copyOf(bytes, bytes.length / 2));
        CliRun corrupt = run(args(data, "--load", save.toString()));
        assertEquals(1, corrupt.code(), corrupt.toString());
        assertTrue(corrupt.err().contains("checkpoint file is corrupt") && corrupt.err().contains("model.safetensors"), corrupt.err());
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

        CliRun style = run(args(data, "--lr-decay-style", "exponential"));
        assertEquals(1, style.code(), style.toString());
        assertTrue(style.err().contains("unknown --lr-decay-style 'exponential'"), style.err());
    }

    private static List<Double> trainLosses(Path csv) throws IOException {
        return Files.readAllLines(csv).stream().filter(l -> l.startsWith("train,")).map(l -> Double.parseDouble(l.split(",")[3])).toList();
    }
}
