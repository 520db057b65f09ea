package org.megatronj.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.io.indexed.IndexedDatasetBuilder;
import org.megatronj.io.indexed.IndexedDtype;
import picocli.CommandLine;

class DataIndicesCommandsTest {
    @TempDir
    Path dir;

    /** 50 documents of 5..24 tokens; ids count up, each ends with the NullTokenizer's EOD (= vocab size 100). */
    private Path corpus(String name, int documents) throws IOException {
        Path prefix = dir.resolve(name);
        try (IndexedDatasetBuilder b = new IndexedDatasetBuilder(prefix, IndexedDtype.UINT16)) {
            for (int d = 0; d < documents; d++) {
                int[] t = new int[5 + d % 20];
                for (int k = 0; k < t.length; k++) {
                    t[k] = k == t.length - 1 ? 100 : (d + k) % 100;
                }
                b.addSequence(t, 0, t.length);
                b.endDocument();
            }
            b.finish();
        }
        return prefix;
    }

    private record Result(int code, String out, String err) {
    }

    private static Result run(String... args) {
        CommandLine cli = Megatron.commandLine();
        StringWriter err = new StringWriter();
        cli.setErr(new PrintWriter(err));
        PrintStream saved = System.out;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
        try {
            int code = cli.execute(args);
            return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString());
        } finally {
            System.setOut(saved);
        }
    }

    /** {@code --mock-data} in the data commands: Megatron's MockGPTDataset cache names, and its first sequence (1, 2, 3, ...). */
    @Test
    void mockDataBuildsIndicesAndShowsSamples() throws IOException {
        Path cache = dir.resolve("cache");
        Result built = run("data", "build-indices", "--mock-data", "--seq-length", "16", "--train-samples", "10",
                "--data-cache-path", cache.toString(), "--tokenizer-type", "NullTokenizer", "--vocab-size", "100");
        assertEquals(0, built.code(), built.err());
        assertTrue(built.out().contains("mock data train: 10 requested"), built.out());
        try (Stream<Path> files = Files.list(cache)) {
            List<String> names = files.map(p -> p.getFileName().toString()).toList();
            assertEquals(12, names.size(), names.toString());
            assertTrue(names.stream().allMatch(n -> n.matches("[0-9a-f]{32}-MockGPTDataset-(train|valid|test)-.*")), names.toString());
        }
        Result sample = run("data", "sample", "--mock-data", "--seq-length", "16", "--index", "0", "--ids",
                "--tokenizer-type", "NullTokenizer", "--vocab-size", "100");
        assertEquals(0, sample.code(), sample.err());
        assertTrue(sample.out().contains("(train split): mock data train sample "), sample.out());

        Result both = run("data", "sample", "--mock-data", "--data-path", "x", "--seq-length", "16", "--index", "0",
                "--tokenizer-type", "NullTokenizer", "--vocab-size", "100");
        assertEquals(1, both.code(), both.out());
        assertTrue(both.err().contains("--mock-data generates its own data: drop --data-path"), both.err());
    }

    @Test
    void buildIndicesWritesMegatronCacheNamesAndReusesThem() throws IOException {
        Path prefix = corpus("corpus_text_document", 200);
        Path cache = dir.resolve("cache");
        String[] args = {"data", "build-indices", "--data-path", prefix.toString(), "--split", "90,10,0", "--seq-length", "16",
                "--train-samples", "500", "--valid-samples", "30", "--test-samples", "7", "--data-cache-path", cache.toString(),
                "--tokenizer-type", "NullTokenizer", "--vocab-size", "100"};
        Result r = run(args);
        assertEquals(0, r.code(), r.err());
        try (Stream<Path> files = Files.list(cache)) {
            List<String> names = files.map(p -> p.getFileName().toString()).sorted().toList();
            assertEquals(8, names.size(), names.toString());
            assertTrue(names.stream().allMatch(n -> n.matches("[0-9a-f]{32}-GPTDataset-(train|valid)-"
                    + "(description\\.txt|document_index\\.npy|sample_index\\.npy|shuffle_index\\.npy)")), names.toString());
        }
        assertTrue(r.out().contains("train: 500 requested"), r.out());
        assertTrue(r.out().contains("built"), r.out());
        Result again = run(args);
        assertEquals(0, again.code(), again.err());
        assertTrue(again.out().contains("found in the cache"), again.out());
    }

    /** Megatron warns when --data-path comes without --split, so that its legacy 969/30/1 default is never a surprise. */
    @Test
    void aMissingSplitIsWarnedAboutAsInMegatron() throws IOException {
        Path prefix = corpus("corpus_text_document", 2000);
        String[] common = {"data", "build-indices", "--data-path", prefix.toString(), "--seq-length", "8", "--train-samples", "10",
                "--valid-samples", "2", "--test-samples", "1", "--data-cache-path", dir.resolve("c").toString(),
                "--tokenizer-type", "NullTokenizer", "--vocab-size", "100"};
        Result defaulted = run(common);
        assertEquals(0, defaulted.code(), defaulted.err());
        assertTrue(defaulted.err().contains("WARNING: Please specify --split when using --data-path. Using legacy default value of \"969, 30, 1\""),
                defaulted.err());
        Result given = run(concat(common, new String[] {"--split", "969, 30, 1"}));
        assertEquals(0, given.code(), given.err());
        assertTrue(!given.err().contains("WARNING"), given.err());
    }

    @Test
    void emptySplitFailsWithAClearMessage() throws IOException {
        Path prefix = corpus("small", 50);
        Result r = run("data", "build-indices", "--data-path", prefix.toString(), "--split", "949,50,1", "--seq-length", "8",
                "--train-samples", "10", "--valid-samples", "1", "--test-samples", "1", "--data-cache-path", dir.resolve("c").toString(),
                "--tokenizer-type", "NullTokenizer", "--vocab-size", "100");
        assertEquals(1, r.code());
        assertTrue(r.err().contains("test split of " + prefix + " is empty") && r.err().contains("[50, 50) of 50"), r.err());
    }

    @Test
    void aCachePathThatIsAFileIsRejectedAsNotAFolder() throws IOException {
        Path prefix = corpus("corpus_text_document", 50);
        Path file = Files.writeString(dir.resolve("notes.txt"), "not a folder");
        for (Path cache : List.of(file, file.resolve("sub"))) {
            Result r = run("data", "build-indices", "--data-path", prefix.toString(), "--split", "1", "--seq-length", "8",
                    "--train-samples", "10", "--data-cache-path", cache.toString(), "--tokenizer-type", "NullTokenizer", "--vocab-size", "100");
            assertEquals(1, r.code(), r.err());
            assertTrue(r.err().startsWith("megatron data build-indices: error: --data-cache-path " + cache + ": ")
                    && r.err().contains(file + " is a file, not a folder") == !cache.equals(file)
                    && r.err().contains("is a file, not a folder") && r.err().lines().count() == 1, r.err());
        }
    }

    @Test
    void badSampleCountsAndAPrefixWithItsSuffixNameTheFlagOrTheFix() throws IOException {
        Path prefix = corpus("corpus_text_document", 50);
        String[] common = {"--split", "1", "--seq-length", "8", "--data-cache-path", dir.resolve("c").toString(),
                "--tokenizer-type", "NullTokenizer", "--vocab-size", "100"};
        Result negative = run(concat(new String[] {"data", "build-indices", "--data-path", prefix.toString(), "--train-samples", "-4"}, common));
        assertEquals(1, negative.code());
        assertEquals("megatron data build-indices: error: --train-samples must be >= 0, got -4", negative.err().strip());
        Result suffix = run(concat(new String[] {"data", "build-indices", "--data-path", prefix + ".bin", "--train-samples", "4"}, common));
        assertEquals(1, suffix.code());
        assertTrue(suffix.err().strip().endsWith("give the prefix without .bin/.idx: " + prefix + ")") && suffix.err().lines().count() == 1,
                suffix.err());
    }

    private static String[] concat(String[] a, String[] b) {
        String[] all = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        return all;
    }

    /** Megatron's --data-args-path and --per-split-data-args-path name the same datasets as the flags they stand for. */
    @Test
    void dataArgsFilesGiveTheSameIndicesAsTheFlags() throws IOException {
        Path a = corpus("a", 60);
        Path b = corpus("b", 40);
        String[] common = {"--seq-length", "8", "--train-samples", "50", "--valid-samples", "5", "--data-cache-path", dir.resolve("cache").toString(),
                "--tokenizer-type", "NullTokenizer", "--vocab-size", "100"};
        Result flags = run(concat(new String[] {"data", "build-indices", "--data-path", "0.3", a.toString(), "0.7", b.toString(), "--split", "90,10,0"}, common));
        assertEquals(0, flags.code(), flags.err());
        Path argsFile = Files.writeString(dir.resolve("data-args.txt"), "0.3 " + a + "\n0.7 " + b + "\n");
        Result file = run(concat(new String[] {"data", "build-indices", "--data-args-path", argsFile.toString(), "--split", "90,10,0"}, common));
        assertEquals(0, file.code(), file.err());
        assertEquals(flags.out().replace("built", "found in the cache"), file.out().replace("built", "found in the cache"));
        assertTrue(file.out().contains("found in the cache") && !file.out().contains(" built"), file.out());

        Result perSplitFlags = run(concat(new String[] {"data", "build-indices", "--train-data-path", a.toString(), "--valid-data-path", b.toString()}, common));
        assertEquals(0, perSplitFlags.code(), perSplitFlags.err());
        Path json = Files.writeString(dir.resolve("per-split.json"), "{\"train\": \"" + a + "\", \"valid\": [\"" + b + "\"], \"test\": null}");
        Result perSplitFile = run(concat(new String[] {"data", "build-indices", "--per-split-data-args-path", json.toString()}, common));
        assertEquals(0, perSplitFile.code(), perSplitFile.err());
        assertEquals(perSplitFlags.out().replace("built", "found in the cache"), perSplitFile.out());

        Path noTest = Files.writeString(dir.resolve("no-test.json"), "{\"train\": \"" + a + "\", \"valid\": null}");
        Result missing = run(concat(new String[] {"data", "build-indices", "--per-split-data-args-path", noTest.toString()}, common));
        assertEquals(1, missing.code());
        assertTrue(missing.err().contains("has no \"test\" key"), missing.err());
    }

    @Test
    void sampleShowsTextAndIds() throws IOException {
        Path a = corpus("a", 60);
        Path b = corpus("b", 40);
        Result r = run("data", "sample", "--data-path", "0.3", a.toString(), "0.7", b.toString(), "--split", "1", "--seq-length", "8",
                "--train-samples", "50", "--index", "3", "--ids", "--reset-position-ids", "--eod-mask-loss",
                "--data-cache-path", dir.resolve("cache").toString(), "--tokenizer-type", "NullTokenizer", "--vocab-size", "100");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().startsWith("sample 3 of 50 (train split): blend dataset"), r.out());
        assertTrue(r.out().contains("position ids: ["), r.out());
        String text = r.out().lines().skip(2).findFirst().orElseThrow();
        assertEquals(9, text.split(" ").length, "L + 1 token ids as NullTokenizer text: " + text);
        Result bad = run("data", "sample", "--data-path", a.toString(), "--split", "1", "--seq-length", "8", "--index", "100000",
                "--data-cache-path", dir.resolve("cache").toString(), "--tokenizer-type", "NullTokenizer", "--vocab-size", "100");
        assertEquals(1, bad.code());
        assertTrue(bad.err().contains("--index 100000 is outside"), bad.err());
    }
}
