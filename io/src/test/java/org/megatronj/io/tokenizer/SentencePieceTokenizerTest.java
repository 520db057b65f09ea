package org.megatronj.io.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Against Google's {@code sentencepiece} 0.2.2 (sp/sp-fixtures.json, made by sp/make_sp_fixtures.py with the four
 * models beside it): a Llama 2 style BPE model with byte fallback, a Unigram model with the default whitespace
 * handling and {@code <unk>}, that Unigram model with the {@code nmt_nfkc} normalization map, and a BPE model with a
 * small map of its own; then Megatron's three tokenizers over them.
 */
class SentencePieceTokenizerTest {
    @TempDir
    Path dir;

    private Path model(String name) throws IOException {
        Path file = dir.resolve(name + ".model");
        if (!Files.exists(file)) {
            try (InputStream in = SentencePieceTokenizerTest.class.getResourceAsStream("sp/" + name + ".model")) {
                Files.copy(in, file);
            }
        }
        return file;
    }

    private static JsonNode fixtures(String name) throws IOException {
        try (InputStream in = SentencePieceTokenizerTest.class.getResourceAsStream("sp/sp-fixtures.json")) {
            return new ObjectMapper().readTree(in).path("models").path(name);
        }
    }

    private static int[] ids(JsonNode array) {
        return IntStream.range(0, array.size()).map(i -> array.get(i).asInt()).toArray();
    }

    @ParameterizedTest
    @ValueSource(strings = {"bpe", "unigram", "nfkc", "rules"})
    void matchesTheSentencePieceLibrary(String name) throws IOException {
        SentencePieceModel sp = SentencePieceModel.load(model(name));
        JsonNode expected = fixtures(name);
        assertEquals(expected.path("vocab_size").asInt(), sp.size());
        assertEquals(expected.path("bos").asInt(), sp.bosId());
        assertEquals(expected.path("eos").asInt(), sp.eosId());
        assertEquals(expected.path("pad").asInt(), sp.padId());
        assertEquals(expected.path("unk").asInt(), sp.unkId());
        assertTrue(expected.path("cases").size() > 70);
        for (JsonNode c : expected.path("cases")) {
            int[] ids = ids(c.path("ids"));
            if (c.has("text")) {
                String text = c.path("text").asText();
                IntList out = new IntList(16);
                sp.encode(text, out);
                assertArrayEquals(ids, out.toArray(), () -> name + ": ids of '" + text + "'");
            }
            assertEquals(c.path("decoded").asText(), sp.decode(ids), () -> name + ": decode of " + c.path("ids"));
        }
    }

    /** Megatron's three wrappers: BOS for Llama 2, EOD as </s> or an appended <EOD>, special tokens cut out of the text. */
    @Test
    void megatronsThreeTokenizers() throws IOException {
        SentencePieceModel sp = SentencePieceModel.load(model("bpe"));
        IntList plain = new IntList(16);
        sp.encode("In the beginning", plain);

        Tokenizer llama = TokenizerType.Llama2Tokenizer.create(null, null, null, 0, model("bpe"), true);
        assertEquals(600, llama.vocabSize());
        assertArrayEquals(IntStream.concat(IntStream.of(1), IntStream.of(plain.toArray())).toArray(), llama.tokenize("In the beginning"));
        assertEquals(2, llama.eod());
        assertEquals("In the beginning", llama.detokenize(llama.tokenize("In the beginning")));

        Tokenizer gpt = TokenizerType.GPTSentencePieceTokenizer.create(null, null, null, 0, model("bpe"), true);
        assertArrayEquals(plain.toArray(), gpt.tokenize("In the beginning"));
        assertEquals(2, gpt.eod());

        // <CLS> <SEP> <EOD> <MASK> <PAD> are new (600..604), <s> and </s> the model's, then two sentinels
        Tokenizer megatron = TokenizerType.SentencePieceTokenizer.create(null, null, null, 2, model("bpe"), true);
        assertEquals(607, megatron.vocabSize());
        assertEquals(602, megatron.eod());
        assertEquals(java.util.List.of(605, 606), megatron.additionalSpecialTokenIds());
        IntList a = new IntList(8), b = new IntList(8);
        sp.encode("a", a);
        sp.encode(" b", b);
        int[] expected = IntStream.concat(IntStream.concat(IntStream.of(a.toArray()), IntStream.of(602, 1)),
                IntStream.concat(IntStream.of(b.toArray()), IntStream.of(600))).toArray();
        assertArrayEquals(expected, megatron.tokenize("a<EOD><s> b<CLS>"));
        assertEquals("a <EOD>  <s>  b <CLS> ", megatron.detokenize(expected));
    }

    /** User-defined symbols (ﬁ, ①) stay as they are, the rest goes through the map; spaces it makes count as whitespace. */
    @Test
    void nfkcNormalization() throws IOException {
        SentencePieceModel sp = SentencePieceModel.load(model("nfkc"));
        assertEquals("\u2581ABC123\u2581\ufb01ne\u2581fl\u2581\u24602\u2581TM",
                sp.normalize("\uff21\uff22\uff23\uff11\uff12\uff13 \ufb01ne \ufb02 \u2460\u2461 \u2122"));
        assertEquals("\u2581a\u2581b\u2581\u00e9", sp.normalize("\u3000\u00a0 a\u3000\u00a0 b\u00a0 e\u0301\u3000"));
        assertEquals("", sp.normalize("\u3000\u00a0\u3000"));
        assertEquals("\u2581x\u2581\u0308", sp.normalize("x \u00a8"));   // ¨ is " \u0308": its space goes after a space
    }

    /** A normalizer_spec (field 3) whose precompiled_charsmap (field 2) is {@code map}, appended so that it wins. */
    private Path withCharsMap(byte[] map) throws IOException {
        byte[] field = concat(new byte[] {0x12, (byte) map.length}, map);
        Path file = dir.resolve("map.model");
        Files.write(file, concat(Files.readAllBytes(model("bpe")), concat(new byte[] {0x1a, (byte) field.length}, field)));
        return file;
    }

    @Test
    void malformedCharsMapsAreRefusedClearly() throws IOException {
        // a 4000-byte trie declared (little-endian 0xfa0) in 12 bytes
        Path cut = withCharsMap(new byte[] {(byte) 0xa0, 0x0f, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8});
        var e = assertThrows(TokenizerException.class, () -> SentencePieceModel.load(cut));
        assertEquals(cut + ": precompiled_charsmap of 12 bytes declares a 4000-byte trie", e.getMessage());
        e = assertThrows(TokenizerException.class, () -> PrecompiledCharsMap.parse(new byte[] {4, 0, 0}, "m"));
        assertEquals("m: precompiled_charsmap of 3 bytes is too short for its 4-byte trie size and a trie", e.getMessage());
        e = assertThrows(TokenizerException.class, () -> PrecompiledCharsMap.parse(new byte[] {3, 0, 0, 0, 1, 2, 3}, "m"));
        assertTrue(e.getMessage().contains("declares a 3-byte trie, not a whole number of 4-byte units"), e.getMessage());
        e = assertThrows(TokenizerException.class, () -> PrecompiledCharsMap.parse(new byte[] {4, 0, 0, 0, 0, 0, 0, 0, 'a'}, "m"));
        assertTrue(e.getMessage().contains("its normalized strings do not end in a NUL"), e.getMessage());
        // one unit whose offset leads out of the trie: found when the text is looked up
        PrecompiledCharsMap broken = PrecompiledCharsMap.parse(new byte[] {4, 0, 0, 0, 0, 0x10, 0, 0, 'a', 0}, "m");
        e = assertThrows(TokenizerException.class, () -> broken.longestMatch("x", 0, new int[1]));
        assertEquals("m: precompiled_charsmap is corrupt: its trie leads to unit 124 of 1", e.getMessage());
    }

    @Test
    void unsupportedModelsAreRefusedByName() throws IOException {
        byte[] bpe = Files.readAllBytes(model("bpe"));
        // a denormalizer_spec (field 5) with a map: decoding would normalize the text again
        byte[] spec = {0x2a, 4, 0x12, 2, 1, 2};
        Path denormalizing = dir.resolve("denormalizing.model");
        Files.write(denormalizing, concat(bpe, spec));
        var e = assertThrows(TokenizerException.class, () -> SentencePieceModel.load(denormalizing));
        assertTrue(e.getMessage().contains("a denormalizer_spec with a precompiled map (denormalization_rule_tsv) is not"
                + " supported"), e.getMessage());
        Path truncated = dir.resolve("cut.model");
        Files.write(truncated, java.util.Arrays.copyOf(bpe, bpe.length / 2));
        var cut = assertThrows(TokenizerException.class, () -> SentencePieceModel.load(truncated));
        assertTrue(cut.getMessage().contains("is not a valid SentencePiece model (malformed protobuf at byte"), cut.getMessage());
        var missing = assertThrows(IllegalArgumentException.class,
                () -> TokenizerType.Llama2Tokenizer.create(null, null, null, 0, null, true));
        assertTrue(missing.getMessage().contains("needs --tokenizer-model"), missing.getMessage());
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
