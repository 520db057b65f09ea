package org.megatronj.io.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Against ids and decoded texts of Hugging Face's {@code tokenizers} library (hf/hf-fixtures.json, made by
 * hf/make_hf_fixtures.py) for three tokenizer.json layouts over GPT-2's vocabulary: GPT-2's own, a Llama 3 style
 * one (Split regex, NFC, ignore_merges, a BOS template, added tokens with lstrip/rstrip/single_word/normalized) and
 * one with Digits, a MergedWithNext split, add_prefix_space, Lowercase and RobertaProcessing.
 */
class HuggingFaceTokenizerTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private static JsonNode resource(String name) throws IOException {
        try (InputStream in = HuggingFaceTokenizerTest.class.getResourceAsStream("hf/" + name)) {
            return JSON.readTree(in);
        }
    }

    /** {@code layout}'s template with GPT-2's vocabulary and merges filled in, as make_hf_fixtures.py does. */
    static ObjectNode tokenizerJson(String layout) throws IOException {
        ObjectNode root = (ObjectNode) resource(layout + ".template.json");
        ObjectNode model = (ObjectNode) root.get("model");
        model.set("vocab", JSON.readTree(Gpt2Files.vocab().toFile()));
        ArrayNode merges = model.putArray("merges");
        List<String> lines = Files.readAllLines(Gpt2Files.merges(), StandardCharsets.UTF_8);
        for (int i = 0; i < lines.size(); i++) {
            if (!lines.get(i).isBlank() && !(i == 0 && lines.get(i).startsWith("#version"))) {
                merges.add(lines.get(i));
            }
        }
        return root;
    }

    /** A folder with {@code tokenizer.json} (changed by {@code edit}) and, when given, {@code tokenizer_config.json}. */
    private Path folder(String layout, String config, Consumer<ObjectNode> edit) throws IOException {
        Path folder = Files.createDirectories(dir.resolve(layout + "-" + System.nanoTime()));
        ObjectNode root = tokenizerJson(layout);
        edit.accept(root);
        JSON.writeValue(folder.resolve("tokenizer.json").toFile(), root);
        if (config != null) {
            Files.writeString(folder.resolve("tokenizer_config.json"), config);
        }
        return folder;
    }

    private static int[] ids(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asInt();
        }
        return out;
    }

    @ParameterizedTest
    @ValueSource(strings = {"gpt2", "llama3-style", "digits-roberta"})
    void matchesTheTokenizersLibrary(String layout) throws Exception {
        HuggingFaceTokenizer tok = HuggingFaceTokenizer.load(folder(layout, null, r -> { }), true);
        JsonNode expected = resource("hf-fixtures.json").path("layouts").path(layout);
        assertEquals(expected.path("vocab_size").asInt(), tok.vocabSize());
        assertTrue(expected.path("cases").size() > 90);
        for (JsonNode c : expected.path("cases")) {
            int[] ids = ids(c.path("ids"));
            if (c.has("text")) {
                String text = c.path("text").asText();
                assertArrayEquals(ids, tok.tokenize(text), () -> layout + ": tokens of '" + text + "'");
            }
            assertEquals(c.path("decoded").asText(), tok.detokenize(ids), () -> layout + ": decode of " + c.path("ids"));
        }
    }

    /** Where GPT-2's tokenizer.json and Megatron's GPT2BPETokenizer meet, they agree (the latter has no added tokens). */
    @Test
    void gpt2LayoutEqualsGpt2BpeTokenizer() throws Exception {
        HuggingFaceTokenizer hf = HuggingFaceTokenizer.load(folder("gpt2", "{\"eos_token\": \"<|endoftext|>\"}", r -> { }), true);
        Gpt2BpeTokenizer gpt2 = Gpt2Files.tokenizer();
        for (JsonNode c : resource("hf-fixtures.json").path("layouts").path("llama3-style").path("cases")) {
            String text = c.path("text").asText("");
            if (!text.contains("<|endoftext|>")) {
                assertArrayEquals(gpt2.tokenize(text), hf.tokenize(text), () -> "tokens of '" + text + "'");
            }
        }
        assertEquals(gpt2.eod(), hf.eod());
        assertEquals(gpt2.vocabSize(), hf.vocabSize());
    }

    /** tokenizer_config.json names the special tokens (a string or an AddedToken object); without it they are missing. */
    @Test
    void specialTokensComeFromTheConfig() throws Exception {
        Path llama = folder("llama3-style", "{\"bos_token\": \"<|begin_of_text|>\", \"eos_token\": {\"content\": \"<|eot_id|>\","
                + " \"__type\": \"AddedToken\"}, \"clean_up_tokenization_spaces\": true}", r -> { });
        HuggingFaceTokenizer tok = HuggingFaceTokenizer.load(llama, true);
        assertEquals(50258, tok.eod());
        assertEquals(50257, tok.bos());
        assertThrows(UnsupportedOperationException.class, tok::pad);
        assertEquals("<|begin_of_text|>Hello, world. It's", tok.detokenize(tok.tokenize("Hello , world . It 's")),
                "clean_up_tokenization_spaces");
        HuggingFaceTokenizer bare = HuggingFaceTokenizer.load(folder("digits-roberta", null, r -> { }), true);
        var e = assertThrows(UnsupportedOperationException.class, bare::eod);
        assertTrue(e.getMessage().contains("has no end-of-document (eos_token)"), e.getMessage());
        // --tokenizer-hf-no-include-special-tokens: no template around the text
        HuggingFaceTokenizer plain = HuggingFaceTokenizer.load(llama.resolve("tokenizer.json"), false);
        assertArrayEquals(new int[] {15496, 50258}, plain.tokenize("Hello<|eot_id|>"));
    }

    /** {@code ignore_merges} (Llama 3): a piece that is a vocabulary entry is that entry, though no merges reach it. */
    @Test
    void ignoreMergesTakesWholeVocabularyPieces() throws Exception {
        Consumer<ObjectNode> unreachable = r -> ((ObjectNode) r.get("model").get("vocab")).put("zzqzzq", 50262);
        HuggingFaceTokenizer llama = HuggingFaceTokenizer.load(folder("llama3-style", null, unreachable), true);
        assertArrayEquals(new int[] {50257, 50262}, llama.tokenize("zzqzzq"));
        HuggingFaceTokenizer gpt2 = HuggingFaceTokenizer.load(folder("gpt2", null, unreachable), true);
        assertArrayEquals(Gpt2Files.tokenizer().tokenize("zzqzzq"), gpt2.tokenize("zzqzzq"));
    }

    @Test
    void otherTokenizerKindsAndMissingFilesAreRefusedByName() throws Exception {
        var sentencePiece = assertThrows(TokenizerException.class, () -> HuggingFaceTokenizer.load(folder("gpt2", null,
                r -> r.set("pre_tokenizer", JSON.createObjectNode().put("type", "Metaspace").put("replacement", "▁"))), true));
        assertTrue(sentencePiece.getMessage().contains("pre-tokenizer 'Metaspace' is not supported"), sentencePiece.getMessage());
        var wordPiece = assertThrows(TokenizerException.class, () -> HuggingFaceTokenizer.load(folder("gpt2", null,
                r -> ((ObjectNode) r.get("model")).put("type", "WordPiece")), true));
        assertTrue(wordPiece.getMessage().contains("model type 'WordPiece' is not supported"), wordPiece.getMessage());
        var fallback = assertThrows(TokenizerException.class, () -> HuggingFaceTokenizer.load(folder("gpt2", null,
                r -> ((ObjectNode) r.get("model")).put("byte_fallback", true)), true));
        assertTrue(fallback.getMessage().contains("byte_fallback is SentencePiece's"), fallback.getMessage());
        var hub = assertThrows(TokenizerException.class, () -> HuggingFaceTokenizer.load(Path.of("meta-llama/Meta-Llama-3-8B"), true));
        assertTrue(hub.getMessage().contains("no such folder or file; give a local folder"), hub.getMessage());
        var empty = assertThrows(TokenizerException.class, () -> HuggingFaceTokenizer.load(Files.createDirectories(dir.resolve("e")), true));
        assertTrue(empty.getMessage().contains("the folder holds no tokenizer.json"), empty.getMessage());
        var badEos = assertThrows(TokenizerException.class, () -> HuggingFaceTokenizer.load(folder("gpt2",
                "{\"eos_token\": \"</s>\"}", r -> { }), true));
        assertTrue(badEos.getMessage().contains("its eos_token '</s>' is not a token of"), badEos.getMessage());
    }
}
