package org.megatronj.io.preprocess;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.megatronj.io.indexed.IndexedDataset;
import org.megatronj.io.indexed.IndexedDtype;
import org.megatronj.io.tokenizer.BertWordPieceTokenizer;
import org.megatronj.io.tokenizer.Gpt2Files;
import org.megatronj.io.tokenizer.NullTokenizer;
import org.megatronj.io.tokenizer.Tokenizer;

class PreprocessorTest {
    @TempDir
    Path dir;

    private Path resource(String name) throws IOException {
        Path target = dir.resolve(name);
        try (InputStream in = PreprocessorTest.class.getResourceAsStream(name)) {
            Files.copy(in, target);
        }
        return target;
    }

    private PreprocessProgress run(Path input, String prefix, Tokenizer tok, boolean eod, int workers, int batchBytes, String... keys) {
        var config = new PreprocessConfig(input, dir.resolve(prefix).toString(), List.of(keys), eod, false, false, workers);
        return new Preprocessor(config, tok, null, batchBytes).run(p -> { });
    }

    /**
     * The expected files were written by make_preprocess_fixture.js from gpt-3-encoder's ids in
     * Megatron's layout; batches of 200 bytes and several workers exercise the ordered output.
     */
    @ParameterizedTest
    @ValueSource(ints = {1, 3})
    void gpt2WithAppendEodMatchesReferenceBytes(int workers) throws IOException {
        Path input = resource("corpus.jsonl");
        PreprocessProgress result = run(input, "out/gpt2", Gpt2Files.tokenizer(), true, workers, 200, "text", "title");
        assertEquals(48, result.documents());
        for (String key : List.of("text", "title")) {
            for (String ext : List.of(".bin", ".idx")) {
                String name = "gpt2_" + key + "_document" + ext;
                byte[] expected = Files.readAllBytes(resource(name));
                byte[] actual = Files.readAllBytes(dir.resolve("out").resolve(name));
                assertArrayEquals(expected, actual, name);
            }
        }
        try (Stream<Path> files = Files.list(dir.resolve("out"))) {
            assertEquals(4, files.count(), "only the four final files, no temporaries");
        }
    }

    /** Megatron reads .gz corpora; the outputs are those of the uncompressed file, and progress counts the compressed bytes. */
    @Test
    void gzipInputGivesTheSameBytesAsThePlainFile() throws IOException {
        Path plain = resource("corpus.jsonl");
        Path gz = dir.resolve("corpus.jsonl.gz");
        try (var out = new java.util.zip.GZIPOutputStream(Files.newOutputStream(gz))) {
            Files.copy(plain, out);
        }
        PreprocessProgress result = run(gz, "gz/gpt2", Gpt2Files.tokenizer(), true, 2, 200, "text", "title");
        assertEquals(48, result.documents());
        assertEquals(Files.size(gz), result.bytesRead());
        for (String name : List.of("gpt2_text_document.bin", "gpt2_text_document.idx", "gpt2_title_document.bin", "gpt2_title_document.idx")) {
            assertArrayEquals(Files.readAllBytes(resource(name)), Files.readAllBytes(dir.resolve("gz").resolve(name)), name);
        }
    }

    /** Megatron appends "_text_document.bin" to the prefix as typed, so "out/" writes inside out/, not next to it. */
    @Test
    void aPrefixEndingInASlashWritesInsideThatFolder() throws IOException {
        Path input = Files.writeString(dir.resolve("in.jsonl"), "{\"text\": \"Hello\"}\n");
        var config = new PreprocessConfig(input, dir.resolve("out") + "/", List.of("text"), false, false, false, 1);
        assertEquals(dir.resolve("out/_text_document"), config.outputPrefixFor("text"));
        new Preprocessor(config, Gpt2Files.tokenizer(), null).run(p -> { });
        assertTrue(Files.isRegularFile(dir.resolve("out/_text_document.bin")) && Files.isRegularFile(dir.resolve("out/_text_document.idx")));
        assertTrue(Files.notExists(dir.resolve("out_text_document.bin")));
    }

    /** Megatron's --partitions 3 deals lines 0, 3, 6, ... to partition 0, 1, 4, 7, ... to partition 1, and concatenates them. */
    @Test
    void partitionsReorderDocumentsAsMegatronsRoundRobin() throws IOException {
        Path input = resource("corpus.jsonl");
        run(input, "one/gpt2", Gpt2Files.tokenizer(), true, 2, 200, "text", "title");
        var config = new PreprocessConfig(input, dir.resolve("three/gpt2").toString(), List.of("text", "title"), true, false, false, 2, 3);
        new Preprocessor(config, Gpt2Files.tokenizer(), null, 200).run(p -> { });
        for (String key : List.of("text", "title")) {
            try (IndexedDataset one = IndexedDataset.open(dir.resolve("one/gpt2_" + key + "_document"));
                 IndexedDataset three = IndexedDataset.open(dir.resolve("three/gpt2_" + key + "_document"))) {
                assertEquals(48, three.documentCount());
                assertEquals(one.sequenceCount(), three.sequenceCount());
                int k = 0;
                for (int partition = 0; partition < 3; partition++) {
                    for (int line = partition; line < 48; line += 3, k++) {
                        assertEquals(documentText(one, line), documentText(three, k), key + " document " + k);
                    }
                }
            }
        }
        try (Stream<Path> files = Files.list(dir.resolve("three"))) {
            assertEquals(4, files.count(), "the partition datasets are deleted once merged");
        }
    }

    /** The sequences of document {@code d}, each as its token ids. */
    private static List<String> documentText(IndexedDataset ds, int d) {
        long[] docs = ds.documentIndex();
        List<String> sequences = new ArrayList<>();
        for (long s = docs[d]; s < docs[d + 1]; s++) {
            sequences.add(java.util.Arrays.toString(ds.sequenceTokens((int) s)));
        }
        return sequences;
    }

    @Test
    void aFolderAsInputIsNamedAsAFolder() {
        var e = assertThrows(PreprocessException.class, () -> run(dir, "x", Gpt2Files.tokenizer(), false, 1, 1 << 20, "text"));
        assertEquals("--input " + dir + " is a folder; expected a loose JSON file (one object per line)", e.getMessage());
    }

    @Test
    void wordPieceDocumentsAreOneSequenceEach(@TempDir Path vocabDir) throws IOException {
        Path vocab = vocabDir.resolve("vocab.txt");
        Files.writeString(vocab, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n,\n.\nthe\n");
        Path input = dir.resolve("in.jsonl");
        Files.writeString(input, "{\"text\": \"Hello, world.\"}\n\n{\"text\": \"\"}\n{\"text\": [\"the world\", \"\", \"HELLO\"]}\n");
        var tok = BertWordPieceTokenizer.load(vocab, true, 0);
        run(input, "bert", tok, false, 2, 1 << 20, "text");
        try (IndexedDataset ds = IndexedDataset.open(dir.resolve("bert_text_document"))) {
            assertEquals(IndexedDtype.UINT16, ds.dtype());
            assertEquals(3, ds.sequenceCount());
            assertArrayEquals(new int[] {5, 7, 6, 8}, ds.sequenceTokens(0));
            assertArrayEquals(new int[] {9, 6}, ds.sequenceTokens(1));   // a list value: one sequence per non-empty sentence
            assertArrayEquals(new int[] {5}, ds.sequenceTokens(2));
            assertArrayEquals(new long[] {0, 1, 1, 3}, ds.documentIndex());  // the blank line is skipped; "" is an empty document
        }
        var e = assertThrows(IllegalArgumentException.class,
                () -> new Preprocessor(new PreprocessConfig(input, dir.resolve("x").toString(), List.of("text"), true, false, false, 1), tok, null));
        assertTrue(e.getMessage().contains("--append-eod"), e.getMessage());
    }

    /** WordPiece preprocessing reproduces Hugging Face tokenizers' ids (tokenizer fixtures) as one sequence per document. */
    @Test
    void wordPieceMatchesIndependentIdsDocumentByDocument() throws IOException {
        Path vocab = dir.resolve("bert-vocab.txt");
        try (InputStream in = Tokenizer.class.getResourceAsStream("bert-vocab.txt")) {
            Files.copy(in, vocab);
        }
        var fixtures = new com.fasterxml.jackson.databind.ObjectMapper()
                .readTree(Tokenizer.class.getResourceAsStream("bert-fixtures.json")).get("lowerCase");
        var mapper = new com.fasterxml.jackson.databind.ObjectMapper();
        StringBuilder jsonl = new StringBuilder();
        for (var c : fixtures) jsonl.append(mapper.writeValueAsString(java.util.Map.of("text", c.get("text").asText()))).append('\n');
        Path input = dir.resolve("bert.jsonl");
        Files.writeString(input, jsonl);
        run(input, "wp", BertWordPieceTokenizer.load(vocab, true, 0), false, 3, 300, "text");
        try (IndexedDataset ds = IndexedDataset.open(dir.resolve("wp_text_document"))) {
            assertEquals(fixtures.size(), ds.documentCount());
            long[] docs = ds.documentIndex();
            for (int d = 0; d < fixtures.size(); d++) {
                var ids = fixtures.get(d).get("ids");
                assertEquals(ids.isEmpty() ? 0 : 1, docs[d + 1] - docs[d]);
                if (!ids.isEmpty()) {
                    int[] expected = new int[ids.size()];
                    for (int i = 0; i < expected.length; i++) expected[i] = ids.get(i).asInt();
                    assertArrayEquals(expected, ds.sequenceTokens((int) docs[d]));
                }
            }
        }
    }

    @Test
    void largeVocabularyGivesInt32AndSentencesBecomeSequences() throws IOException {
        Path input = dir.resolve("ids.jsonl");
        Files.writeString(input, "{\"text\": \"1 2 70000\"}\n{\"text\": \"5\"}");   // no newline at the end
        run(input, "null", NullTokenizer.Form.TODAY.create(100_000), true, 1, 1 << 20, "text");
        try (IndexedDataset ds = IndexedDataset.open(dir.resolve("null_text_document"))) {
            assertEquals(IndexedDtype.INT32, ds.dtype());
            assertArrayEquals(new int[] {1, 2, 70000, 99_999}, ds.sequenceTokens(0));
            assertArrayEquals(new int[] {5, 99_999}, ds.sequenceTokens(1));
        }
        var config = new PreprocessConfig(input, dir.resolve("split").toString(), List.of("text"), false, true, false, 1);
        assertEquals(dir.resolve("split_text_sentence"), config.outputPrefixFor("text"));
    }

    @Test
    void sentenceSplittingWritesOneSequencePerSentence() throws IOException {
        Path input = dir.resolve("s.jsonl");
        Files.writeString(input, "{\"text\": \"Hello world. Hello again! And a third one.\"}\n");
        var config = new PreprocessConfig(input, dir.resolve("ss").toString(), List.of("text"), true, true, false, 2);
        new Preprocessor(config, Gpt2Files.tokenizer(), new EnglishSentenceSplitter(false)).run(p -> { });
        try (IndexedDataset ds = IndexedDataset.open(dir.resolve("ss_text_sentence"))) {
            assertEquals(3, ds.sequenceCount());
            assertEquals(1, ds.documentCount());
            var tok = Gpt2Files.tokenizer();
            assertEquals("Hello world.", tok.detokenize(ds.sequenceTokens(0)));
            assertEquals("Hello again!", tok.detokenize(ds.sequenceTokens(1)));
            assertEquals("And a third one.<|endoftext|>", tok.detokenize(ds.sequenceTokens(2)));
        }
    }

    // ---- bad input: one clear error with file and line; nothing under the final names ----

    private PreprocessException failing(String content, String... keys) throws IOException {
        Path input = dir.resolve("bad.jsonl");
        Files.writeString(input, content);
        var e = assertThrows(PreprocessException.class, () -> run(input, "bad", Gpt2Files.tokenizer(), true, 2, 64, keys));
        assertTrue(e.getMessage().startsWith(input.toString()), e.getMessage());
        List<Path> left = new ArrayList<>();
        try (Stream<Path> files = Files.list(dir)) {
            files.filter(f -> !f.equals(input)).forEach(left::add);
        }
        assertEquals(List.of(), left, "no outputs or temporaries left behind");
        return e;
    }

    @Test
    void malformedJsonNamesTheLine() throws IOException {
        String good = "{\"text\": \"fine\"}\n".repeat(10);
        var e = failing(good + "{\"text\": \"broken\n" + good, "text");
        assertTrue(e.getMessage().contains("line 11") && e.getMessage().contains("invalid JSON"), e.getMessage());
    }

    /** Jackson's "[Source: REDACTED ...]" and its per-line "line 1" must not reach the user, nor a cause repeating the message. */
    @Test
    void unclosedObjectIsOneLineWithTheFilesLineAndNoJacksonSource() throws IOException {
        var e = failing("{\"text\": \"a\"}\n{\"text\": \"b\"", "text");
        assertEquals(dir.resolve("bad.jsonl") + " line 2, column 13: invalid JSON: Unexpected end-of-input: expected close marker"
                + " for Object (start marker at column 1)", e.getMessage());
        assertEquals(null, e.getCause());
    }

    @Test
    void missingKeyNonStringAndNonObject() throws IOException {
        assertTrue(failing("{\"text\": \"a\"}\n{\"body\": \"b\"}\n", "text").getMessage().contains("line 2: the object has no key \"text\""));
        assertTrue(failing("{\"text\": 12}\n", "text").getMessage().contains("\"text\" holds a number, expected a string"));
        assertTrue(failing("{\"text\": [\"a\", 1]}\n", "text").getMessage().contains("holds a number, expected only strings"));
        assertTrue(failing("[\"text\"]\n", "text").getMessage().contains("line 1: expected a JSON object"));
        assertTrue(failing("{\"text\": \"a\"} {\"text\": \"b\"}\n", "text").getMessage().contains("extra data"));
    }

    @Test
    void textTheTokenizerRejectsNamesTheLine() throws IOException {
        var e = failing("{\"text\": \"ok\"}\n{\"text\": \"bad \\ud800 surrogate\"}\n", "text");
        assertTrue(e.getMessage().contains("line 2") && e.getMessage().contains("U+D800"), e.getMessage());
    }

    @Test
    void invalidUtf8IsAnError() throws IOException {
        Path input = dir.resolve("latin1.jsonl");
        Files.write(input, new byte[] {'{', '"', 't', 'e', 'x', 't', '"', ':', '"', (byte) 0xE9, '"', '}', '\n'});
        var e = assertThrows(PreprocessException.class, () -> run(input, "l1", Gpt2Files.tokenizer(), false, 1, 1 << 20, "text"));
        assertTrue(e.getMessage().contains("line 1") && e.getMessage().contains("UTF-8"), e.getMessage());
    }

    @Test
    void newlineCountingIsExact() {
        byte[] b = "a\nb\n\n\u00e9\n\n\n\n\n\n\nzz\n".getBytes(java.nio.charset.StandardCharsets.UTF_8);
        for (int end = 0; end <= b.length; end++) {
            int expected = 0;
            for (int i = 0; i < end; i++) if (b[i] == '\n') expected++;
            assertEquals(expected, LineBatchReader.countNewlines(b, end));
        }
        byte[] tricky = {0x0B, 0x0A, 0x0B, 0x0A, 0x09, 0x0A, (byte) 0x8A, 0x0A, 0x0A};
        assertEquals(5, LineBatchReader.countNewlines(tricky, tricky.length));
    }
}
