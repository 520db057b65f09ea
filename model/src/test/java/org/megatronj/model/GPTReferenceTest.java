package org.megatronj.model;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.megatronj.memory.Backend;
import org.megatronj.memory.cpu.CpuBackend;

import java.io.IOException;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The whole GPT against an independent PyTorch implementation (float64) on the same weights:
 * logits, the masked loss and every parameter gradient. See model/src/test/python/make_gpt_reference.py.
 */
class GPTReferenceTest {
    private static Backend backend;

    @BeforeAll
    static void start() {
        backend = new CpuBackend();
    }

    @AfterAll
    static void stop() {
        backend.close();
    }

    static TransformerConfig configOf(ReferenceFixture f) {
        boolean rope = f.flag("rope");
        return TransformerConfig.builder()
                .numLayers(f.integer("num_layers")).hiddenSize(f.integer("hidden")).numAttentionHeads(f.integer("heads"))
                .numQueryGroups(f.integer("groups")).ffnHiddenSize(f.integer("ffn"))
                .seqLength(f.integer("seq")).maxPositionEmbeddings(f.integer("seq"))
                .positionEmbeddingType(rope ? PositionEmbeddingType.ROPE : PositionEmbeddingType.LEARNED_ABSOLUTE)
                .normalization(f.flag("rms") ? Normalization.RMS_NORM : Normalization.LAYER_NORM)
                .swiglu(f.flag("swiglu")).addBiasLinear(f.flag("bias")).untieEmbeddingsAndOutputWeights(f.flag("untied"))
                .attentionDropout(0).hiddenDropout(0).geluTanh(true)
                .vocabSize(f.integer("vocab")).makeVocabSizeDivisibleBy(128)
                .build();
    }

    @ParameterizedTest
    @ValueSource(strings = {"gpt2", "llama"})
    void matchesPyTorch(String variant) throws IOException {
        ReferenceFixture f = new ReferenceFixture(variant);
        TransformerConfig config = configOf(f);
        assertEquals(f.integer("padded_vocab"), config.paddedVocabSize());
        int b = f.integer("batch");
        int s = f.integer("seq");
        try (GPTModel model = new GPTModel(config, backend, 7)) {
            assertEquals(new java.util.HashSet<>(f.weights.keySet()), names(model), "parameter names");
            for (Map.Entry<String, float[]> e : f.weights.entrySet()) {
                model.parameter(e.getKey()).data().copyFrom(e.getValue());
            }
            model.zeroGrad();
            MicroBatch batch = new MicroBatch(b, s, f.ints("tokens"), f.ints("labels"), f.floats("loss_mask"), null);
            LossResult result = model.forwardBackward(batch, 1f, 0);
            float[] expectedLogits = f.outputs.get("logits");
            float[] logits = model.forwardLogits(f.ints("tokens"), null, b, s);
            double logitError = maxAbsDiff(expectedLogits, logits);
            double expectedLoss = Double.parseDouble(f.config.get("loss_float64"));
            System.err.printf("%s: max |logit - ref| %.3g (max |logit| %.3g), |loss - ref| %.3g%n", variant, logitError,
                    maxAbs(expectedLogits), Math.abs(result.meanLoss() - expectedLoss));
            assertTrue(logitError <= 3e-6, variant + ": logits differ from PyTorch by " + logitError);
            assertEquals(expectedLoss, result.meanLoss(), 1e-6, variant + ": loss");
            for (Map.Entry<String, float[]> e : f.grads.entrySet()) {
                float[] expected = e.getValue();
                float[] actual = model.parameter(e.getKey()).grad().toFloatArray();
                double scale = maxAbs(expected);
                double error = maxAbsDiff(expected, actual);
                System.err.printf("  %-50s max|g| %.3g  rel err %.3g%n", e.getKey(), scale, error / scale);
                assertTrue(error <= 1e-5 * scale, variant + ": gradient of " + e.getKey() + " differs by " + error
                        + " (largest entry " + scale + ")");
            }
        }
    }

    private static java.util.Set<String> names(GPTModel model) {
        java.util.Set<String> names = new java.util.HashSet<>();
        model.parameters().forEach(p -> names.add(p.name()));
        return names;
    }

    static double maxAbsDiff(float[] a, float[] b) {
        assertEquals(a.length, b.length, "lengths");
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs((double) a[i] - b[i]));
        }
        return m;
    }

    static double maxAbs(float[] a) {
        double m = 0;
        for (float v : a) {
            m = Math.max(m, Math.abs(v));
        }
        return m;
    }
}
