package org.megatronj.io.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Against OpenAI's {@code tiktoken} 0.14.0 used as Megatron uses it (tiktoken/tiktoken-fixtures.json, made by
 * tiktoken/make_tiktoken_fixtures.py): today's TikTokenizer with both patterns, the legacy one, and decoding.
 */
class TikTokenizerTest {
    @TempDir
    Path dir;

    private static Path vocab() {
        try {
            return Path.of(TikTokenizerTest.class.getResource("tiktoken/vocab.json").toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    private static JsonNode fixtures() throws IOException {
        return new ObjectMapper().readTree(TikTokenizerTest.class.getResourceAsStream("tiktoken/tiktoken-fixtures.json"));
    }

    private static int[] ids(JsonNode array) {
        int[] ids = new int[array.size()];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = array.get(i).asInt();
        }
        return ids;
    }

    @Test
    void encodesAndDecodesAsTiktoken() throws IOException {
        JsonNode f = fixtures();
        int vocab = f.get("vocab_size").asInt(), special = f.get("num_special_tokens").asInt();
        TikTokenizer v2 = TikTokenizer.load(vocab(), false, "v2", vocab, special, null);
        TikTokenizer v1 = TikTokenizer.load(vocab(), false, "v1", vocab, special, null);
        TikTokenizer legacy = TikTokenizer.load(vocab(), true, "v2", vocab, special, null);
        int texts = 0;
        for (JsonNode c : f.get("cases")) {
            if (c.has("text")) {
                String text = c.get("text").asText();
                assertArrayEquals(ids(c.get("core_v2")), v2.tokenize(text), "v2: " + text);
                assertArrayEquals(ids(c.get("core_v1")), v1.tokenize(text), "v1: " + text);
                assertArrayEquals(ids(c.get("legacy_v2")), legacy.tokenize(text), "legacy: " + text);
                texts++;
            }
            assertEquals(c.get("decoded").asText(), v2.detokenize(ids(c.has("text") ? c.get("core_v2") : c.get("ids"))),
                    c.toString());
        }
        assertTrue(texts > 75, "cases: " + texts);
        assertEquals(vocab, v2.vocabSize());
        assertEquals(2, v2.eod());
        assertEquals(1, v2.bos());
        assertEquals(4, v2.pad());
        assertThrows(UnsupportedOperationException.class, legacy::pad);
    }

    @Test
    void badVocabulariesAndSettingsAreNamed() throws IOException {
        JsonNode f = fixtures();
        int special = f.get("num_special_tokens").asInt();
        var e = assertThrows(TokenizerException.class, () -> TikTokenizer.load(vocab(), false, "v2", 10_000, special, null));
        assertTrue(e.getMessage().contains("has 2000 tokens but --vocab-size 10000 less 1000 special tokens needs 9000"),
                e.getMessage());
        e = assertThrows(TokenizerException.class, () -> TikTokenizer.load(vocab(), false, "v3", 3000, special, null));
        assertTrue(e.getMessage().contains("--tiktoken-pattern v3: expected v1 or v2"), e.getMessage());
        e = assertThrows(TokenizerException.class, () -> TikTokenizer.load(vocab(), false, "v2", 3000, special, List.of("<s>")));
        assertTrue(e.getMessage().contains("must include [<unk>, <s>, </s>, <mask>, <pad>, <cls>, <sep>]"), e.getMessage());
        Path swapped = dir.resolve("swapped.json");
        Files.writeString(swapped, "[{\"rank\": 0, \"token_bytes\": \"AQ==\", \"token_str\": \"\\u0001\"}]");
        e = assertThrows(TokenizerException.class, () -> TikTokenizer.load(swapped, false, "v2", 1001, special, null));
        assertTrue(e.getMessage().contains("entry 0 must be the single byte 0"), e.getMessage());
    }
}
