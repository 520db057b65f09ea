package org.megatronj.model.layers;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.megatronj.memory.Backend;
import org.megatronj.memory.Backends;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.GPTModel;
import org.megatronj.model.MlaConfig;
import org.megatronj.model.Normalization;
import org.megatronj.model.Parameter;
import org.megatronj.model.PositionEmbeddingType;
import org.megatronj.model.TransformerConfig;

/**
 * Multi-latent attention and YaRN against Megatron-LM's own functions run by PyTorch ({@code make_mla_fixtures.py}):
 * YaRN's frequencies, concentration factor and softmax-scale mscale; the MLA layer's output, input gradient and every
 * parameter gradient (float64 reference, F32 here) with and without a query latent, with RMSNorm/LayerNorm latent norms
 * or none, YaRN or plain rope, v_head_dim equal to or below qk_head_dim.
 */
class MultiLatentAttentionMegatronTest {
    private static Backend backend;
    private static JsonNode fixtures;

    @BeforeAll
    static void start() throws IOException {
        backend = Backends.create("cpu");
        fixtures = load();
    }

    @AfterAll
    static void stop() {
        backend.close();
    }

    private static JsonNode load() throws IOException {
        try (InputStream in = MultiLatentAttentionMegatronTest.class.getResourceAsStream("mla_fixtures.json")) {
            return new ObjectMapper().readTree(in);
        }
    }

    static List<JsonNode> yarnCases() throws IOException {
        List<JsonNode> out = new ArrayList<>();
        load().get("yarn").forEach(out::add);
        return out;
    }

    static List<JsonNode> mlaCases() throws IOException {
        List<JsonNode> out = new ArrayList<>();
        load().get("mla").forEach(out::add);
        return out;
    }

    @ParameterizedTest(name = "dim {0}")
    @MethodSource("yarnCases")
    void yarnFrequenciesAndFactorsEqualMegatrons(JsonNode c) {
        float[] inv = MlaConfig.Yarn.invFreq(c.get("dim").asInt(), (float) c.get("base").asDouble(),
                (float) c.get("scaling").asDouble(), c.get("orig").asInt(), (float) c.get("beta_fast").asDouble(),
                (float) c.get("beta_slow").asDouble());
        float[] expected = floats(c.get("inv_freq"));
        assertEquals(expected.length, inv.length);
        for (int i = 0; i < inv.length; i++) {
            assertEquals(expected[i], inv[i], 2e-7 * expected[i], "inv_freq[" + i + "]");
        }
        double scale = c.get("scaling").asDouble();
        assertEquals(c.get("concentration").asDouble(), MlaConfig.Yarn.concentrationFactor(scale,
                c.get("mscale").asDouble(), c.get("mscale_all_dim").asDouble()), 1e-12, "concentration factor");
        assertEquals(c.get("get_mscale").asDouble(), MlaConfig.Yarn.getMscale(scale, c.get("mscale_all_dim").asDouble()),
                1e-12, "yarn_get_mscale");
    }

    static TransformerConfig config(JsonNode c) {
        MlaConfig mla = MlaConfig.of(c.get("q_lora_rank").asInt(), c.get("kv_lora_rank").asInt(),
                        c.get("qk_head_dim").asInt(), c.get("qk_pos_emb_head_dim").asInt(), c.get("v_head_dim").asInt())
                .withRope(MlaConfig.RopeType.parse(c.get("rope_type").asText()), (float) c.get("rotary_scaling_factor").asDouble(),
                        (float) c.get("mscale").asDouble(), (float) c.get("mscale_all_dim").asDouble());
        return TransformerConfig.builder().numLayers(1).hiddenSize(c.get("h").asInt()).numAttentionHeads(c.get("heads").asInt())
                .ffnHiddenSize(16).seqLength(c.get("s").asInt()).positionEmbeddingType(PositionEmbeddingType.ROPE)
                .normalization(c.get("normalization").asText().equals("RMSNorm") ? Normalization.RMS_NORM
                        : Normalization.LAYER_NORM)
                .qkLayernorm(c.get("qk_layernorm").asBoolean()).addBiasLinear(c.get("bias").asBoolean())
                .layernormEpsilon((float) c.get("eps").asDouble()).attentionDropout(0).hiddenDropout(0)
                .vocabSize(20).makeVocabSizeDivisibleBy(8).mla(mla).build();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("mlaCases")
    void layerEqualsMegatronsForwardAndGradients(JsonNode c) {
        TransformerConfig config = config(c);
        assertEquals(c.get("softmax_scale").asDouble(), config.mla().softmaxScale(), 1e-7, "softmax scale (the knobs are F32 flags)");
        assertEquals(c.get("rope_mscale").asDouble(), config.mla().ropeMscale(), 1e-7, "rope mscale");
        int s = c.get("s").asInt(), b = c.get("b").asInt(), h = c.get("h").asInt();
        try (GPTModel model = new GPTModel(config, backend, 1); TensorArena arena = TensorArena.named("test")) {
            String prefix = "decoder.layers.0.self_attention.";
            Iterator<Map.Entry<String, JsonNode>> it = c.get("params").fields();
            int count = 0;
            while (it.hasNext()) {
                Map.Entry<String, JsonNode> e = it.next();
                Parameter p = model.parameter(prefix + e.getKey());
                p.data().copyFrom(floats(e.getValue()));
                p.compute().copyFrom(floats(e.getValue()));
                p.zeroGrad();
                count++;
            }
            long attentionParams = model.parameterSpecs().stream().filter(sp -> sp.name().startsWith(prefix)).count();
            assertEquals(attentionParams, count, "the fixture sets every attention parameter");
            Attention attention = model.layers().getFirst().selfAttention();
            assertTrue(attention instanceof MultiLatentAttention);
            LayerActivations a = LayerActivations.allocate(backend, arena, config, s, b);
            Workspace ws = Workspace.allocate(backend, arena, config, s, b);
            Tensor x = arena.allocate(DType.F32, s, b, h);
            x.copyFrom(floats(c.get("x")));
            Tensor out = arena.allocate(DType.F32, s, b, h);
            attention.forward(x, null, out, a, ws, null, 0, null, null);
            close(floats(c.get("out")), out.toFloatArray(), "output");
            Tensor dOut = arena.allocate(DType.F32, s, b, h);
            dOut.copyFrom(floats(c.get("dout")));
            Tensor dx = arena.allocate(DType.F32, s, b, h);
            attention.backward(dOut, x, dx, a, ws, null, null);
            close(floats(c.get("dx")), dx.toFloatArray(), "dx");
            it = c.get("grads").fields();
            while (it.hasNext()) {
                Map.Entry<String, JsonNode> e = it.next();
                close(floats(e.getValue()), model.parameter(prefix + e.getKey()).grad().toFloatArray(), e.getKey() + " grad");
            }
        }
    }

    /** Each element within 2e-5 of the largest expected magnitude (float64 reference against F32 arithmetic). */
    static void close(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + " size");
        double max = 0;
        for (float v : expected) {
            max = Math.max(max, Math.abs(v));
        }
        double tol = 2e-5 * Math.max(max, 1e-3);
        for (int i = 0; i < expected.length; i++) {
            if (!(Math.abs(expected[i] - actual[i]) <= tol)) {
                throw new AssertionError(what + "[" + i + "]: expected " + expected[i] + " got " + actual[i] + " (tolerance "
                        + tol + ")");
            }
        }
    }

    static float[] floats(JsonNode array) {
        float[] out = new float[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) array.get(i).asDouble();
        }
        return out;
    }
}
