package org.megatronj.io.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class Gpt2BpeTokenizerTest {

    private static JsonNode fixture(String name) throws Exception {
        try (InputStream in = Gpt2BpeTokenizerTest.class.getResourceAsStream(name)) {
            return new ObjectMapper().readTree(in);
        }
    }

    @Test
    void matchesGpt3EncoderFixtures() throws Exception {
        Gpt2BpeTokenizer tok = Gpt2Files.tokenizer();
        JsonNode cases = fixture("gpt2-fixtures.json").get("cases");
        assertTrue(cases.size() > 100);
        for (JsonNode c : cases) {
            String text = c.get("text").asText();
            int[] expected = new int[c.get("ids").size()];
            for (int i = 0; i < expected.length; i++) expected[i] = c.get("ids").get(i).asInt();
            assertArrayEquals(expected, tok.tokenize(text), () -> "tokens of " + text);
            assertEquals(text, tok.detokenize(expected), "decode of the reference ids");
        }
    }

    @Test
    void preTokenizerMatchesPythonRegexModule() throws Exception {
        JsonNode cases = fixture("gpt2-pretokenizer-fixtures.json").get("cases");
        for (JsonNode c : cases) {
            String text = c.get("text").asText();
            List<String> expected = new ArrayList<>();
            c.get("pieces").forEach(p -> expected.add(p.asText()));
            List<String> actual = new ArrayList<>();
            Gpt2PreTokenizer.split(text, (t, s, e) -> actual.add(t.substring(s, e)));
            assertEquals(expected, actual, () -> "pieces of " + text.codePoints().mapToObj(cp -> String.format("U+%04X", cp)).toList());
        }
    }

    @Test
    void knownIdsAndSpecialTokens() {
        Gpt2BpeTokenizer tok = Gpt2Files.tokenizer();
        assertEquals(50257, tok.vocabSize());
        assertEquals(50256, tok.eod());
        assertArrayEquals(new int[] {15496, 995}, tok.tokenize("Hello world"));
        assertEquals("<|endoftext|>", tok.detokenize(new int[] {50256}));
        assertThrows(UnsupportedOperationException.class, tok::cls);
    }

    @Test
    void roundTripsTextInManyScripts() {
        Gpt2BpeTokenizer tok = Gpt2Files.tokenizer();
        String[] texts = {
                "The quick brown fox jumps over the lazy dog.\n\n  Indented line\twith tab.",
                "Füße über Öl – „Anführungszeichen“ und ‚einfache‘.",
                "Широкая электрификация южных губерний даст мощный толчок подъёму сельского хозяйства.",
                "天地玄黄，宇宙洪荒。日月盈昃，辰宿列张。",
                "いろはにほへと ちりぬるを わかよたれそ つねならむ",
                "다람쥐 헌 쳇바퀴에 타고파", "صِف خَلقَ خَودِ كَمِثلِ الشَمسِ إِذ بَزَغَت", "ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले विष्णुवतार भगवान श्रीराम",
                "Emoji: 🧑🏽‍💻 🏳️‍🌈 \u0085 \ufeff \u0000 \u001f end",
        };
        for (String t : texts) {
            assertEquals(t, tok.detokenize(tok.tokenize(t)));
        }
    }

    @Test
    void loneSurrogateIsAClearError() {
        var e = assertThrows(TokenizerException.class, () -> Gpt2Files.tokenizer().tokenize("ok \ud800 bad"));
        assertTrue(e.getMessage().contains("U+D800"), e.getMessage());
    }

    @Test
    void longPiecesAreNotCachedButStillExact() {
        Gpt2BpeTokenizer tok = Gpt2Files.tokenizer();
        String word = "ab".repeat(500);
        int[] ids = tok.tokenize(word);
        assertEquals(word, tok.detokenize(ids));
        assertArrayEquals(ids, tok.tokenize(word));
    }

    @Test
    void badVocabAndMergesFilesNameFileAndPlace(@TempDir Path dir) throws Exception {
        Path vocab = dir.resolve("vocab.json");
        Path merges = dir.resolve("merges.txt");
        Files.writeString(merges, "#version: 0.2\na b\n");
        Files.writeString(vocab, "{\"a\": 0,\n \"b\": \"x\"}");
        var e1 = assertThrows(TokenizerException.class, () -> Gpt2BpeTokenizer.load(vocab, merges));
        assertTrue(e1.getMessage().contains("vocab.json") && e1.getMessage().contains("line 2"), e1.getMessage());
        Files.writeString(vocab, "{\"a\": 0, \"b\": 1,");
        var e2 = assertThrows(TokenizerException.class, () -> Gpt2BpeTokenizer.load(vocab, merges));
        assertTrue(e2.getMessage().contains("not valid JSON"), e2.getMessage());
        Files.writeString(vocab, "{\"a\": 0, \"b\": 1, \"ab\": 2, \"<|endoftext|>\": 3}");
        Files.writeString(merges, "#version: 0.2\na b\nabc\n");
        var e3 = assertThrows(TokenizerException.class, () -> Gpt2BpeTokenizer.load(vocab, merges));
        assertTrue(e3.getMessage().contains("merges.txt line 3"), e3.getMessage());
    }
}
