package org.megatronj.parallel.checkpoint;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.memory.DType;
import org.megatronj.model.TransformerConfig;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class Gpt2HfConfigTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private TransformerConfig read(String key, String jsonValue) throws Exception {
        ObjectNode c = TinyHfGpt2.config();
        c.set(key, JSON.readTree(jsonValue));
        Files.writeString(dir.resolve("config.json"), c.toString());
        return Gpt2HfConfig.read(dir, 128);
    }

    private void assertRefused(String key, String jsonValue, String expected) {
        var e = assertThrows(HfConfigException.class, () -> read(key, jsonValue), key + "=" + jsonValue);
        assertEquals(dir.resolve("config.json") + ": " + key + " is " + jsonValue + "; expected " + expected, e.getMessage());
    }

    @Test
    void malformedValuesAreRefusedWithKeyValueAndExpectation() {
        assertRefused("layer_norm_epsilon", "\"abc\"", "a positive number");
        assertRefused("layer_norm_epsilon", "0", "a positive number");
        assertRefused("layer_norm_epsilon", "null", "a positive number");
        assertRefused("n_inner", "\"abc\"", "null (4 * n_embd) or a positive integer");
        assertRefused("n_inner", "0", "null (4 * n_embd) or a positive integer");
        assertRefused("n_inner", "-32", "null (4 * n_embd) or a positive integer");
        assertRefused("n_inner", "32.5", "null (4 * n_embd) or a positive integer");
        for (String key : new String[] {"n_embd", "n_layer", "n_head", "n_positions", "vocab_size"}) {
            assertRefused(key, "\"8\"", "a positive integer");
            assertRefused(key, "0", "a positive integer");
            assertRefused(key, "4294967304", "a positive integer");   // 2^32 + 8: asInt() would wrap it to 8
        }
        assertRefused("initializer_range", "\"0.02\"", "a non-negative number");
        assertRefused("resid_pdrop", "1.5", "a probability in [0, 1)");
        assertRefused("resid_pdrop", "\"abc\"", "a probability in [0, 1)");
        assertRefused("scale_attn_weights", "\"abc\"", "true or false");
        assertRefused("tie_word_embeddings", "\"yes\"", "true or false");
        assertRefused("add_cross_attention", "\"true\"", "true or false");
        assertRefused("activation_function", "5", "a string");
        assertRefused("model_type", "2", "a string");

        ObjectNode c = TinyHfGpt2.config();
        c.remove("n_head");
        var e = assertThrows(HfConfigException.class, () -> {
            Files.writeString(dir.resolve("config.json"), c.toString());
            Gpt2HfConfig.read(dir, 128);
        });
        assertEquals(dir.resolve("config.json") + ": n_head is missing; expected a positive integer", e.getMessage());
    }

    @Test
    void wellFormedValuesAndDefaultsStillMap() throws Exception {
        assertEquals(4 * TinyHfGpt2.HIDDEN, read("n_inner", "null").ffnHiddenSize());
        assertEquals(20, read("n_inner", "20").ffnHiddenSize());
        assertEquals(1e-6f, read("layer_norm_epsilon", "1e-06").layernormEpsilon());
        assertEquals(0f, read("resid_pdrop", "0").hiddenDropout());
        ObjectNode c = TinyHfGpt2.config();
        c.remove("layer_norm_epsilon");
        Files.writeString(dir.resolve("config.json"), c.toString());
        assertEquals(1e-5f, Gpt2HfConfig.read(dir, 128).layernormEpsilon());
    }

    @Test
    void declaredDtypeAndExportedConfigAgree() throws Exception {
        assertEquals(DType.F32, Gpt2HfConfig.declaredDtype(null));
        assertEquals(DType.F32, Gpt2HfConfig.declaredDtype(TinyHfGpt2.config()));
        assertEquals(DType.BF16, Gpt2HfConfig.declaredDtype(JSON.readTree("{\"torch_dtype\": \"bfloat16\"}")));
        assertEquals(DType.F16, Gpt2HfConfig.declaredDtype(JSON.readTree("{\"dtype\": \"float16\"}")));
        var e = assertThrows(HfConfigException.class, () -> Gpt2HfConfig.declaredDtype(JSON.readTree("{\"torch_dtype\": \"float64\"}")));
        assertEquals("the imported config.json's torch_dtype is \"float64\"; expected \"float32\", \"bfloat16\" or \"float16\""
                + " (or choose with --dtype)", e.getMessage());

        Files.writeString(dir.resolve("config.json"), TinyHfGpt2.config().toString());
        TransformerConfig config = Gpt2HfConfig.read(dir, 128);
        ObjectNode bf16 = TinyHfGpt2.config().put("torch_dtype", "bfloat16");
        assertEquals("float16", Gpt2HfConfig.toJson(config, bf16, DType.F16).get("torch_dtype").asText());
        assertEquals(bf16, Gpt2HfConfig.toJson(config, bf16, DType.BF16), "an import exported in its own dtype gives the file back");
        ObjectNode newer = TinyHfGpt2.config().put("dtype", "bfloat16");    // transformers >= 4.56 writes "dtype"
        ObjectNode out = Gpt2HfConfig.toJson(config, newer, DType.F32);
        assertEquals("float32", out.get("dtype").asText());
        assertEquals(false, out.has("torch_dtype"));
        assertEquals("float32", Gpt2HfConfig.toJson(config, null, DType.F32).get("torch_dtype").asText());
    }

    /**
     * transformers' {@code relu2} (ReLUSquaredActivation, the GPT-2 MLP's {@code ACT2FN} entry) is Megatron's
     * {@code --squared-relu}: imported as such (without the tanh GeLU, as a run with biases must be, with
     * --no-bias-gelu-fusion) and exported under that name; the gelu names keep theirs.
     */
    @Test
    void squaredReluIsRelu2BothWays() throws Exception {
        TransformerConfig relu2 = read("activation_function", "\"relu2\"");
        assertEquals(true, relu2.squaredRelu());
        assertEquals(false, relu2.geluTanh());
        ObjectNode imported = TinyHfGpt2.config().put("activation_function", "relu2").put("torch_dtype", "float32");
        assertEquals(imported, Gpt2HfConfig.toJson(relu2, imported, DType.F32), "an import exports as it came");
        assertEquals("relu2", Gpt2HfConfig.toJson(relu2, null, DType.F32).get("activation_function").asText());
        TransformerConfig tanh = read("activation_function", "\"gelu_pytorch_tanh\"");
        assertEquals(false, tanh.squaredRelu());
        assertEquals("gelu_pytorch_tanh", Gpt2HfConfig.toJson(tanh, TinyHfGpt2.config().put("activation_function",
                "gelu_pytorch_tanh"), DType.F32).get("activation_function").asText());
        assertEquals("gelu_new", Gpt2HfConfig.toJson(tanh, imported, DType.F32).get("activation_function").asText());
        assertEquals("relu2", Gpt2HfConfig.toJson(relu2, TinyHfGpt2.config(), DType.F32).get("activation_function").asText());
    }
}
