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
 * Against Google's {@code sentencepiece} 0.2.2 (sp/sp-fixtures.json, made by sp/make_sp_fixtures.py with the two
 * models beside it): a Llama 2 style BPE model with byte fallback and a Unigram model with the default whitespace
 * handling and {@code <unk>}; then Megatron's three tokenizers over them.
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
    @ValueSource(strings = {"bpe", "unigram"})
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

    @Test
    void unsupportedModelsAreRefusedByName() throws IOException {
        byte[] bpe = Files.readAllBytes(model("bpe"));
        // normalizer_spec (field 3) with a non-empty precompiled_charsmap (field 2), as nmt_nfkc models have
        byte[] spec = {0x1a, 14, 0x0a, 8, 'n', 'm', 't', '_', 'n', 'f', 'k', 'c', 0x12, 2, 1, 2};
        Path nfkc = dir.resolve("nfkc.model");
        Files.write(nfkc, concat(bpe, spec));
        var e = assertThrows(TokenizerException.class, () -> SentencePieceModel.load(nfkc));
        assertTrue(e.getMessage().contains("normalization rule 'nmt_nfkc' (a precompiled character map) is not supported"),
                e.getMessage());
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
