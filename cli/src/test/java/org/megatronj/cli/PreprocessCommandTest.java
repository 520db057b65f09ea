package org.megatronj.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.io.indexed.IndexedDataset;
import picocli.CommandLine;

/** {@code megatron preprocess}, {@code merge-datasets} and {@code data inspect} end to end, in process. */
class PreprocessCommandTest {
    @TempDir
    Path dir;

    private record Result(int code, String out, String err) {
    }

    private static Result run(String... args) {
        CommandLine cli = Megatron.commandLine();
        StringWriter out = new StringWriter(), err = new StringWriter();
        cli.setOut(new PrintWriter(out, true));
        cli.setErr(new PrintWriter(err, true));
        int code = cli.execute(args);
        return new Result(code, out.toString(), err.toString());
    }

    private static Path gpt2() {
        for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
            for (Path c : new Path[] {p.resolve("shared/data/gpt2"), p.resolveSibling("shared").resolve("data/gpt2"), p.resolve("data/gpt2")}) {
                if (Files.isRegularFile(c.resolve("gpt2-vocab.json"))) return c;
            }
        }
        Assumptions.abort("shared/data/gpt2 not found");
        return null;
    }

    private Result preprocess(Path input, String prefix, String... extra) {
        String[] base = {"preprocess", "--input", input.toString(), "--output-prefix", dir.resolve(prefix).toString(),
                "--tokenizer-type", "GPT2BPETokenizer", "--vocab-file", gpt2().resolve("gpt2-vocab.json").toString(),
                "--merge-file", gpt2().resolve("gpt2-merges.txt").toString(), "--workers", "2"};
        String[] all = new String[base.length + extra.length];
        System.arraycopy(base, 0, all, 0, base.length);
        System.arraycopy(extra, 0, all, base.length, extra.length);
        return run(all);
    }

    @Test
    void preprocessMergeAndInspect() throws IOException {
        Path input = dir.resolve("in.jsonl");
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 30; i++) sb.append("{\"text\": \"Document number ").append(i).append(". Hello world!\"}\n");
        Files.writeString(input, sb);
        Result r = preprocess(input, "parts/a", "--append-eod", "--log-interval", "10");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("done: 30 documents"), r.err());
        assertTrue(r.err().contains("tokens/s"), r.err());
        assertEquals(0, preprocess(input, "parts/b").code());

        Result merged = run("merge-datasets", "--input", dir.resolve("parts").toString(), "--output-prefix", dir.resolve("merged").toString());
        assertEquals(0, merged.code(), merged.err());
        try (IndexedDataset a = IndexedDataset.open(dir.resolve("parts/a_text_document"));
             IndexedDataset b = IndexedDataset.open(dir.resolve("parts/b_text_document"));
             IndexedDataset m = IndexedDataset.open(dir.resolve("merged"))) {
            assertEquals(60, m.sequenceCount());
            assertEquals(a.totalTokens() + b.totalTokens(), m.totalTokens());
            assertArrayEquals(a.sequenceTokens(3), m.sequenceTokens(3));     // sorted order: a_... before b_...
            assertArrayEquals(b.sequenceTokens(3), m.sequenceTokens(33));
            assertEquals(a.totalTokens(), b.totalTokens() + 30);            // the EOD of each document
        }

        Result inspect = run("data", "inspect", dir.resolve("merged").toString(), "--show", "1", "--tokenizer-type", "GPT2BPETokenizer",
                "--vocab-file", gpt2().resolve("gpt2-vocab.json").toString(), "--merge-file", gpt2().resolve("gpt2-merges.txt").toString());
        assertEquals(0, inspect.code(), inspect.err());
        assertTrue(inspect.out().contains("dtype:      uint16 (code 8"), inspect.out());
        assertTrue(inspect.out().contains("sequences:  60"), inspect.out());
        assertTrue(inspect.out().contains("histogram"), inspect.out());
        assertTrue(inspect.out().contains("text: Document number 0. Hello world!<|endoftext|>"), inspect.out());
    }

    /** Megatron's flags: --partitions deals lines round-robin; with --keep-sequential-samples the input order stays. */
    @Test
    void partitionsAndKeepSequentialSamples() throws IOException {
        Path input = dir.resolve("in.jsonl");
        Files.writeString(input, "{\"text\": \"zero\"}\n{\"text\": \"one\"}\n{\"text\": \"two\"}\n{\"text\": \"three\"}\n{\"text\": \"four\"}\n");
        assertEquals(0, preprocess(input, "plain").code());
        assertEquals(0, preprocess(input, "sequential", "--partitions", "2", "--keep-sequential-samples").code());
        Result rr = preprocess(input, "rr", "--partitions", "2");
        assertEquals(0, rr.code(), rr.err());
        for (String ext : new String[] {".bin", ".idx"}) {
            assertArrayEquals(Files.readAllBytes(dir.resolve("plain_text_document" + ext)), Files.readAllBytes(dir.resolve("sequential_text_document" + ext)));
        }
        try (IndexedDataset plain = IndexedDataset.open(dir.resolve("plain_text_document"));
             IndexedDataset rrData = IndexedDataset.open(dir.resolve("rr_text_document"))) {
            int[] order = {0, 2, 4, 1, 3};
            for (int k = 0; k < order.length; k++) {
                assertArrayEquals(plain.sequenceTokens(order[k]), rrData.sequenceTokens(k));
            }
        }
    }

    @Test
    void mergeRefusesAnOutputThatIsAlsoAnInput() throws IOException {
        Path input = dir.resolve("in.jsonl");
        Files.writeString(input, "{\"text\": \"Hello world!\"}\n");
        assertEquals(0, preprocess(input, "parts/a").code());
        assertEquals(0, preprocess(input, "parts/b").code());
        String[] merge = {"merge-datasets", "--input", dir.resolve("parts").toString(), "--output-prefix", dir.resolve("parts/merged").toString()};
        assertEquals(0, run(merge).code());
        long sequences;
        try (IndexedDataset m = IndexedDataset.open(dir.resolve("parts/merged"))) {
            sequences = m.sequenceCount();
        }
        Result again = run(merge);
        assertEquals(1, again.code(), again.err());
        assertTrue(again.err().contains("--output-prefix " + dir.resolve("parts/merged") + " is one of the datasets in --input")
                && again.err().contains("merged into itself"), again.err());
        try (IndexedDataset m = IndexedDataset.open(dir.resolve("parts/merged"))) {
            assertEquals(sequences, m.sequenceCount(), "the first merge is left as it was");
        }
    }

    @Test
    void badInputExitsWithOneClearLineAndLeavesNoFiles() throws IOException {
        Path input = dir.resolve("bad.jsonl");
        Files.writeString(input, "{\"text\": \"ok\"}\n{\"txt\": \"missing key\"}\n");
        Result r = preprocess(input, "out/bad");
        assertEquals(1, r.code());
        assertTrue(r.err().contains("megatron preprocess: error: " + input + " line 2: the object has no key \"text\""), r.err());
        try (Stream<Path> files = Files.list(dir.resolve("out"))) {
            assertEquals(0, files.count());
        }
        Result noMerges = run("preprocess", "--input", input.toString(), "--output-prefix", dir.resolve("x").toString(),
                "--tokenizer-type", "GPT2BPETokenizer", "--vocab-file", gpt2().resolve("gpt2-vocab.json").toString());
        assertEquals(1, noMerges.code());
        assertTrue(noMerges.err().contains("needs --merge-file"), noMerges.err());
    }

    @Test
    void anOutputFolderBlockedByAFileIsOneLine() throws IOException {
        Path input = Files.writeString(dir.resolve("in.jsonl"), "{\"text\": \"Hello\"}\n");
        Files.writeString(dir.resolve("blocker"), "a file where the output folder should be");
        Result r = preprocess(input, "blocker/sub/x");
        assertEquals(1, r.code());
        List<String> lines = r.err().strip().lines().toList();
        assertEquals("megatron preprocess: error: cannot create the output folder " + dir.resolve("blocker/sub") + ": "
                + dir.resolve("blocker") + " is a file, not a folder", lines.getLast());
        assertTrue(lines.getFirst().startsWith("preprocess: ") && lines.size() == 2, r.err());
    }

    @Test
    void aMissingIndexIsOneLineNamingBothFiles() {
        Path prefix = dir.resolve("nothing_text_document");
        Result r = run("data", "inspect", prefix.toString());
        assertEquals(1, r.code());
        assertEquals("megatron data inspect: error: cannot open " + prefix + ".idx: no such file or directory (an indexed dataset needs both "
                + prefix + ".bin and " + prefix + ".idx)", r.err().strip());
    }

    /** Expected values from numpy: np.median and np.percentile(..., 99) of the same lengths. */
    @Test
    void inspectsMedianAndP99AreNumpys() {
        int[] lengths = new int[90];
        for (int i = 0; i < lengths.length; i++) lengths[i] = 10 * i + (i == 89 ? 1000 : 0);
        assertEquals(445.0, DataInspectCommand.percentile(lengths, 0.5), 1e-9);     // np.median: mean of the two middle values
        assertEquals(991.1, DataInspectCommand.percentile(lengths, 0.99), 1e-9);    // np.percentile(lengths, 99)
        assertEquals(7.0, DataInspectCommand.percentile(new int[] {7}, 0.99), 1e-9);
    }

    @Test
    void aFolderGivenAsPrefixSuggestsTheDatasetsInIt() throws IOException {
        Path input = Files.writeString(dir.resolve("in.jsonl"), "{\"text\": \"Hello\"}\n");
        assertEquals(0, preprocess(input, "corpus/kjv").code());
        Result r = run("data", "inspect", dir.resolve("corpus").toString());
        assertEquals(1, r.code());
        assertTrue(r.err().strip().endsWith("; " + dir.resolve("corpus") + " is a folder: give a dataset prefix such as "
                + dir.resolve("corpus/kjv_text_document") + ")") && r.err().lines().count() == 1, r.err());
    }

    @Test
    void inspectAndMergeRejectBrokenDatasets() throws IOException {
        Files.createDirectories(dir.resolve("parts"));
        Files.write(dir.resolve("parts/x.bin"), new byte[4]);
        Files.write(dir.resolve("parts/x.idx"), "MMIDIDX\0\0 not really".getBytes());
        Result inspect = run("data", "inspect", dir.resolve("parts/x.idx").toString());
        assertEquals(1, inspect.code());
        assertTrue(inspect.err().contains("x.idx") && inspect.err().contains("34-byte header"), inspect.err());
        Files.delete(dir.resolve("parts/x.bin"));
        Result merge = run("merge-datasets", "--input", dir.resolve("parts").toString(), "--output-prefix", dir.resolve("m").toString());
        assertEquals(1, merge.code());
        assertTrue(merge.err().contains("x.bin") && merge.err().contains("partner"), merge.err());
        assertFalse(Files.exists(dir.resolve("m.bin")));
    }
}
