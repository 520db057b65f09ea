package org.megatronj.io.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * BERT WordPiece against expectations derived by hand from the documented algorithm (Google's
 * tokenization.py, which Megatron ships) on a small vocabulary built here.
 */
class BertWordPieceTokenizerTest {
    static final List<String> VOCAB = List.of(
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",                 // 0-4
            "the", "quick", "brown", "fox", "un", "##aff", "##able",       // 5-11
            ",", ".", "!", "hello", "world", "中", "国", "jump", "##ed",    // 12-20
            "cafe", "The", "Café", "ab", "##c", "a", "##bc", "'", "s", "##s", "$", "ʼ"); // 21-32

    static Path vocabFile;

    @BeforeAll
    static void writeVocab(@TempDir Path dir) throws Exception {
        vocabFile = dir.resolve("vocab.txt");
        Files.writeString(vocabFile, String.join("\n", VOCAB) + "\n");
    }

    private static List<String> tokens(BertWordPieceTokenizer tok, String text) {
        return Arrays.stream(tok.tokenize(text)).mapToObj(tok::token).toList();
    }

    /** Ids from Hugging Face tokenizers (Rust) configured as BERT, made by make_wordpiece_fixtures.js. */
    @Test
    void matchesHuggingFaceTokenizersFixtures(@TempDir Path dir) throws Exception {
        Path vocab = dir.resolve("bert-vocab.txt");
        try (var in = getClass().getResourceAsStream("bert-vocab.txt")) {
            Files.copy(in, vocab);
        }
        var json = new com.fasterxml.jackson.databind.ObjectMapper().readTree(getClass().getResourceAsStream("bert-fixtures.json"));
        for (String variant : List.of("lowerCase", "cased")) {
            var tok = BertWordPieceTokenizer.load(vocab, variant.equals("lowerCase"), 0);
            assertTrue(json.get(variant).size() > 10);
            for (var c : json.get(variant)) {
                String text = c.get("text").asText();
                int[] expected = new int[c.get("ids").size()];
                for (int i = 0; i < expected.length; i++) expected[i] = c.get("ids").get(i).asInt();
                assertArrayEquals(expected, tok.tokenize(text), () -> variant + ": " + text);
            }
        }
    }

    @Test
    void lowerCaseSplitsPunctuationAndStripsAccents() {
        var tok = BertWordPieceTokenizer.load(vocabFile, true, 0);
        assertEquals(List.of("the", "quick", "brown", "fox", "!"), tokens(tok, "The Quick BROWN fox!"));
        assertEquals(List.of("un", "##aff", "##able"), tokens(tok, "UNAFFABLE"));
        assertEquals(List.of("cafe", "cafe"), tokens(tok, "Café CAFE\u0301"));   // precomposed and combining accents
        assertEquals(List.of("hello", ",", "world", "."), tokens(tok, "hello,world."));
        assertEquals(List.of("jump", "##ed", "$", "'", "s"), tokens(tok, "jumped $'s"));
    }

    @Test
    void casedKeepsCaseAndAccents() {
        var tok = BertWordPieceTokenizer.load(vocabFile, false, 0);
        assertEquals("BertWordPieceCase", tok.typeName());
        assertEquals(List.of("The", "[UNK]", "Café"), tokens(tok, "The Quick Café"));
    }

    @Test
    void cjkCharactersAreWordsOfTheirOwn() {
        var tok = BertWordPieceTokenizer.load(vocabFile, true, 0);
        assertEquals(List.of("hello", "中", "国", "[UNK]", "world"), tokens(tok, "hello中国人world"));
    }

    @Test
    void controlAndFormatCharactersVanishWhitespaceSeparates() {
        var tok = BertWordPieceTokenizer.load(vocabFile, true, 0);
        assertEquals(List.of("hello", "world", "the"), tokens(tok, "hel\u200blo\u0000\u0007\u00a0world\tthe\ufffd"));
        assertEquals(List.of("hello", "world"), tokens(tok, "  hello\u2028world\r\n "));
        assertEquals(List.of(), tokens(tok, " \t\n "));
    }

    @Test
    void greedyLongestMatchFirstAndUnknownWords() {
        var tok = BertWordPieceTokenizer.load(vocabFile, true, 0);
        assertEquals(List.of("ab", "##c"), tokens(tok, "abc"));         // "ab" wins over "a" + "##bc"
        assertEquals(List.of("[UNK]"), tokens(tok, "abx"));             // no piece for "x": the whole word is [UNK]
        assertEquals(List.of("the", "[UNK]", "fox"), tokens(tok, "the " + "a".repeat(201) + " fox"));
        assertEquals(List.of("a", "##s", "##s"), tokens(tok, "ass"));
    }

    @Test
    void specialTokensAndExtraIds() {
        var tok = BertWordPieceTokenizer.load(vocabFile, true, 3);
        assertEquals(2, tok.cls());
        assertEquals(3, tok.sep());
        assertEquals(0, tok.pad());
        assertEquals(4, tok.mask());
        assertEquals(1, tok.unk());
        assertEquals(VOCAB.size(), tok.bos());          // [BOS] and [EOS] are appended, as in Megatron
        assertEquals(VOCAB.size() + 1, tok.eos());
        assertEquals(List.of(VOCAB.size() + 2, VOCAB.size() + 3, VOCAB.size() + 4), tok.additionalSpecialTokenIds());
        assertEquals(VOCAB.size() + 5, tok.vocabSize());
        assertEquals("<extra_id_2>", tok.token(VOCAB.size() + 4));
        var e = assertThrows(UnsupportedOperationException.class, tok::eod);
        assertTrue(e.getMessage().contains("--append-eod"), e.getMessage());
    }

    @Test
    void detokenizeGluesPiecesAndCleansSpacing() {
        var tok = BertWordPieceTokenizer.load(vocabFile, true, 0);
        assertEquals("unaffable, the fox!", tok.detokenize(tok.tokenize("unaffable, the fox!")));
        assertEquals("hello world.", tok.detokenize(new int[] {15, 16, 13}));
    }

    @Test
    void vocabularyWithoutSpecialTokensIsRejected(@TempDir Path dir) throws Exception {
        Path bad = dir.resolve("vocab.txt");
        Files.writeString(bad, "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n");
        var e = assertThrows(TokenizerException.class, () -> BertWordPieceTokenizer.load(bad, true, 0));
        assertTrue(e.getMessage().contains("[MASK]") && e.getMessage().contains(bad.toString()), e.getMessage());
        Files.write(bad, new byte[] {(byte) 0xff, (byte) 0xfe, 0});
        assertThrows(TokenizerException.class, () -> BertWordPieceTokenizer.load(bad, true, 0));
    }

    @Test
    void nullTokenizerParsesIds() {
        var tok = NullTokenizer.Form.TODAY.create(100);
        assertEquals(100, tok.vocabSize());
        assertEquals(99, tok.eod());
        assertThrows(UnsupportedOperationException.class, tok::pad);
        assertArrayEquals(new int[] {1, 22, 98, 99}, tok.tokenize("1 22 98 99"));
        assertEquals("1 22 99", tok.detokenize(new int[] {1, 22, 99}));
        assertThrows(TokenizerException.class, () -> tok.tokenize("1  2"));
        assertThrows(TokenizerException.class, () -> tok.tokenize("1 x"));
        var e = assertThrows(TokenizerException.class, () -> tok.tokenize("100"));
        assertTrue(e.getMessage().contains("outside the vocabulary 0..99"), e.getMessage());
    }

    @Test
    void nullTokenizerEodAndPadIdsAreSettable() {
        var tok = new NullTokenizer.Form(false, 0, 7).create(100);
        assertEquals(100, tok.vocabSize());
        assertEquals(0, tok.eod());
        assertEquals(7, tok.pad());
        var e = assertThrows(IllegalArgumentException.class, () -> new NullTokenizer.Form(false, 100, -1).create(100));
        assertTrue(e.getMessage().contains("--null-tokenizer-eod-id 100 is outside the vocabulary 0..99"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new NullTokenizer.Form(false, null, -2).create(100));
        assertTrue(e.getMessage().contains("--null-tokenizer-pad-id -2"), e.getMessage());
    }

    @Test
    void legacyNullTokenizerAppendsItsEod() {
        var tok = NullTokenizer.Form.LEGACY.create(100);
        assertEquals(101, tok.vocabSize());
        assertEquals(100, tok.eod());
        assertThrows(UnsupportedOperationException.class, tok::pad);
        assertArrayEquals(new int[] {99, 100}, tok.tokenize("99 100"));
        assertThrows(TokenizerException.class, () -> tok.tokenize("101"));
        var e = assertThrows(IllegalArgumentException.class, () -> new NullTokenizer.Form(true, 5, -1));
        assertTrue(e.getMessage().contains("legacy"), e.getMessage());
    }

    @Test
    void tokenizerTypesCheckTheirFlags() {
        var e = assertThrows(IllegalArgumentException.class, () -> TokenizerType.GPT2BPETokenizer.create(vocabFile, null, null, 0));
        assertTrue(e.getMessage().contains("--merge-file"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> TokenizerType.NullTokenizer.create(null, null, null, 0));
        assertEquals("BertWordPieceLowerCase", TokenizerType.BertWordPieceLowerCase.create(vocabFile, null, null, 0).typeName());
    }
}
