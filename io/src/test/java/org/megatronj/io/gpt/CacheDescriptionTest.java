package org.megatronj.io.gpt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;

/** Description JSON and MD5 against Python's json.dumps(indent=4) + hashlib (reference fixtures). */
class CacheDescriptionTest {
    private static final TokenizerIdentity GPT2 = TokenizerIdentity.gpt2Bpe(TokenizerIdentity.Style.MAIN,
            "/data/gpt2-vocab.json", "/data/gpt2-merges.txt", List.of());

    @Test
    void gptDescriptionsMatchPython() throws IOException {
        for (JsonNode d : ReferenceFixtures.cases().get("descriptions")) {
            if (!d.get("kind").asText().equals("gpt")) {
                continue;
            }
            GptDatasetConfig config = GptDatasetConfig.of(d.get("seed").asLong(), d.get("seq_length").asInt(),
                    d.get("split").asText(), GPT2, 50256);
            Long samples = d.get("num_samples").isNull() ? null : d.get("num_samples").asLong();
            Split split = Split.valueOf(d.get("index_split").asText().toUpperCase(java.util.Locale.ROOT));
            CacheDescription ours = CacheDescription.gpt(d.get("path").asText(), samples, split, config);
            assertEquals(d.get("text").asText(), ours.text());
            assertEquals(d.get("md5").asText(), ours.md5());
        }
    }

    @Test
    void blendedDescriptionAndSizesMatchPython() throws IOException {
        JsonNode d = null;
        for (JsonNode x : ReferenceFixtures.cases().get("descriptions")) {
            if (x.get("kind").asText().equals("blend")) {
                d = x;
            }
        }
        double[] weights = Normalize.normalize(new double[] {0.3, 0.7});
        Long[] sizes = {1000L, 20L, 5L};
        DataBlend blend = DataBlend.parse(List.of("0.3", "/data/A", "0.7", "/data/B"));
        long[][] target = GptDatasetFactory.sizesPerDataset(weights, sizes, 0.0, blend);
        long[][] buffer = GptDatasetFactory.sizesPerDataset(weights, sizes, GptDatasetConfig.DEFAULT_SURPLUS, blend);
        for (int k = 0; k < 2; k++) {
            for (int s = 0; s < 3; s++) {
                assertEquals(d.get("sizes_target").get(k).get(s).asLong(), target[k][s]);
                assertEquals(d.get("sizes_buffer").get(k).get(s).asLong(), buffer[k][s]);
            }
        }
        GptDatasetConfig config = GptDatasetConfig.of(1234, 1024, "949,50,1", GPT2, 50256);
        List<CacheDescription> parts = new ArrayList<>();
        for (int k = 0; k < 2; k++) {
            parts.add(CacheDescription.gpt(blend.prefixes().get(k), buffer[k][0], Split.TRAIN, config));
        }
        double[] again = Normalize.normalize(weights);
        CacheDescription ours = CacheDescription.blended(parts, Split.TRAIN, Arrays.asList(again[0], again[1]), target[0][0] + target[1][0]);
        assertEquals(d.get("text").asText(), ours.text());
        assertEquals(d.get("md5").asText(), ours.md5());
    }

    @Test
    void pythonFloatRepr() {
        assertEquals("0.949", PythonJson.floatRepr(0.949));
        assertEquals("0.6666666666666666", PythonJson.floatRepr(1.0 / 3 + 1.0 / 3));
        assertEquals("1e+22", PythonJson.floatRepr(1e22));
        assertEquals("123456789.125", PythonJson.floatRepr(123456789.125));
        assertEquals("5e-324", PythonJson.floatRepr(Double.MIN_VALUE));
        assertEquals("1.0", PythonJson.floatRepr(1.0));
        assertEquals("0.0001", PythonJson.floatRepr(1e-4));
        assertEquals("1e-05", PythonJson.floatRepr(1e-5));
        assertEquals("1.5e-07", PythonJson.floatRepr(1.5e-7));
        assertEquals("1e+16", PythonJson.floatRepr(1e16));
        assertEquals("1234567890123456.0", PythonJson.floatRepr(1234567890123456.0));
        assertEquals("-2.5", PythonJson.floatRepr(-2.5));
        assertEquals("-0.0", PythonJson.floatRepr(-0.0));
        assertEquals("0.30000000000000004", PythonJson.floatRepr(0.1 + 0.2));
    }

    @Test
    void pythonJsonEscapesLikeEnsureAscii() {
        assertEquals("\"a\\\"b\\\\c\\n\\u00e9\\u0001\"", PythonJson.dumps("a\"b\\c\né\u0001"));
        assertEquals("[]", PythonJson.dumps(List.of()));
        assertEquals("{}", PythonJson.dumps(new java.util.LinkedHashMap<>()));
        assertEquals("[\n    null,\n    true,\n    3\n]", PythonJson.dumps(Arrays.asList(null, true, 3L)));
    }

    @Test
    void tokenizerIdentities() {
        assertEquals("['<a>', \"it's\"]", TokenizerIdentity.pythonListRepr(List.of("<a>", "it's")));
        var legacy = TokenizerIdentity.gpt2Bpe(TokenizerIdentity.Style.LEGACY, "v.json", "m.txt", List.of());
        assertEquals("{\n    \"class\": \"_GPT2BPETokenizer\",\n    \"tokenizer_path\": [\n        \"v.json\",\n        \"m.txt\"\n    ]\n}",
                PythonJson.dumps(legacy.value()));
        var v16 = TokenizerIdentity.gpt2Bpe(TokenizerIdentity.Style.CORE_V0_16, "v", "m", null);
        assertEquals("False", v16.value().get("use_fast"));
        assertEquals(8, v16.value().size());
        assertEquals("megatron.core.tokenizers.text.models.default_tokenizer.DefaultTokenizerText", v16.value().get("class"));
        var v17 = TokenizerIdentity.gpt2Bpe(TokenizerIdentity.Style.CORE_V0_17, "v", "m", null);
        assertEquals("True", v17.value().get("use_fast"));
        assertEquals(v16.value().get("class"), v17.value().get("class"));
        var main = TokenizerIdentity.gpt2Bpe(TokenizerIdentity.Style.MAIN, "v", "m", null);
        assertEquals("megatron.core.tokenizers.text.text_tokenizer.MegatronTokenizerText", main.value().get("class"));
        assertEquals("False", main.value().get("use_gigatoken"));

        // HuggingFaceTokenizer: _HuggingFaceTokenizer(--tokenizer-model) in legacy Megatron, the model folder as core's path
        var hfLegacy = TokenizerIdentity.huggingFace(TokenizerIdentity.Style.LEGACY, "/models/llama3", null, null, null, true);
        assertEquals("{\n    \"class\": \"_HuggingFaceTokenizer\",\n    \"tokenizer_path\": [\n        \"/models/llama3\"\n    ]\n}",
                PythonJson.dumps(hfLegacy.value()));
        var hfMain = TokenizerIdentity.huggingFace(TokenizerIdentity.Style.MAIN, "/models/llama3", null, null, null, false);
        assertEquals("/models/llama3", hfMain.value().get("tokenizer_path"));
        assertEquals("None", hfMain.value().get("vocab_file"));
        assertEquals("False", hfMain.value().get("include_special_tokens"), "--tokenizer-hf-no-include-special-tokens");
        assertEquals(List.of("class", "tokenizer_path", "chat_template", "vocab_file", "merges_file", "additional_special_tokens",
                "use_fast", "trust_remote_code", "include_special_tokens", "use_gigatoken"), List.copyOf(hfMain.value().keySet()));
        var spLegacy = TokenizerIdentity.sentencePiece(TokenizerIdentity.Style.LEGACY, "Llama2Tokenizer", "t.model", 0, null);
        assertEquals("{\n    \"class\": \"_Llama2Tokenizer\",\n    \"tokenizer_path\": [\n        \"t.model\"\n    ],\n"
                + "    \"vocab_extra_ids\": \"0\"\n}", PythonJson.dumps(spLegacy.value()));
        var spMain = TokenizerIdentity.sentencePiece(TokenizerIdentity.Style.MAIN, "SentencePieceTokenizer", "t.model", 0,
                List.of("<a>"));
        assertEquals(List.of("class", "tokenizer_path", "chat_template", "ignore_extra_whitespaces", "legacy", "special_tokens"),
                List.copyOf(spMain.value().keySet()));
        assertEquals("['<a>']", spMain.value().get("special_tokens"));
        var hfV16 = TokenizerIdentity.huggingFace(TokenizerIdentity.Style.CORE_V0_16, "m", null, null, null, true);
        assertEquals(List.of("class", "tokenizer_path", "vocab_file", "merges_file", "additional_special_tokens", "use_fast",
                "trust_remote_code", "include_special_tokens"), List.copyOf(hfV16.value().keySet()));
    }

    @Test
    void tikTokenizerIdentities() {
        var main = TokenizerIdentity.tikToken(TokenizerIdentity.Style.MAIN, "t.json", "v2", 4000, 1000, null);
        assertEquals(List.of("class", "tokenizer_path", "chat_template", "pattern", "vocab_size", "num_special_tokens",
                "special_tokens"), List.copyOf(main.value().keySet()));
        assertEquals("None", main.value().get("special_tokens"));
        var v16 = TokenizerIdentity.tikToken(TokenizerIdentity.Style.CORE_V0_16, "t.json", null, null, 1000, List.of("<s>"));
        assertEquals(List.of("class", "tokenizer_path", "num_special_tokens", "special_tokens"), List.copyOf(v16.value().keySet()));
        assertEquals("['<s>']", v16.value().get("special_tokens"));
        var legacy = TokenizerIdentity.tikToken(TokenizerIdentity.Style.LEGACY, "t.json", "v1", null, 1000, null);
        assertEquals("CustomTikTokenizer", legacy.value().get("class"));
        assertTrue(((String) legacy.value().get("pattern")).startsWith("[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+"), legacy.value().toString());
        assertEquals("None", legacy.value().get("vocab_size"));
    }

    @Test
    void nullTokenizerIdentities() {
        // build_tokenizer passes --null-tokenizer-eod-id only when given, --null-tokenizer-pad-id always (default -1)
        var main = TokenizerIdentity.nullTokenizer(TokenizerIdentity.Style.MAIN, 50304, null, -1);
        assertEquals("{\n    \"class\": \"megatron.core.tokenizers.text.text_tokenizer.MegatronTokenizerText\",\n"
                + "    \"tokenizer_path\": null,\n    \"vocab_size\": \"50304\",\n    \"pad_id\": \"-1\"\n}",
                PythonJson.dumps(main.value()));
        var v18 = TokenizerIdentity.nullTokenizer(TokenizerIdentity.Style.CORE_V0_17, 100, 0, 5);
        assertEquals(List.of("class", "tokenizer_path", "vocab_size", "eod_id", "pad_id"), List.copyOf(v18.value().keySet()));
        assertEquals("0", v18.value().get("eod_id"));
        assertEquals("5", v18.value().get("pad_id"));
        var v16 = TokenizerIdentity.nullTokenizer(TokenizerIdentity.Style.CORE_V0_16, 100, null, -1);
        assertEquals(List.of("class", "tokenizer_path", "vocab_size"), List.copyOf(v16.value().keySet()));
        var legacy = TokenizerIdentity.nullTokenizer(TokenizerIdentity.Style.LEGACY, 100, null, -1);
        assertEquals("{\n    \"class\": \"_NullTokenizer\",\n    \"tokenizer_path\": [\n        null\n    ],\n"
                + "    \"vocab_size\": \"100\"\n}", PythonJson.dumps(legacy.value()));
    }
}
