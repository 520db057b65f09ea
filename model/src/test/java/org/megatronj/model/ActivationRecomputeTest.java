package org.megatronj.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.megatronj.memory.Backend;
import org.megatronj.memory.cpu.CpuBackend;
import org.megatronj.model.ActivationRecompute.Method;

/** Every recompute setting gives bitwise the gradients of the stored run (dropout on), with its memory. */
class ActivationRecomputeTest {
    private static Backend backend;

    @BeforeAll
    static void start() {
        backend = new CpuBackend(1, false);   // one thread: bitwise comparisons must not depend on scheduling
    }

    @AfterAll
    static void stop() {
        backend.close();
    }

    private static TransformerConfig fiveLayers() {
        return fiveLayers(0);
    }

    private static TransformerConfig fiveLayers(float attentionDropout) {
        return TransformerConfig.builder().numLayers(5).hiddenSize(16).numAttentionHeads(2).seqLength(5)
                .maxPositionEmbeddings(8).vocabSize(20).makeVocabSizeDivisibleBy(8)
                .attentionDropout(attentionDropout).hiddenDropout(0.2f).build();
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"selective", "uniform:1", "uniform:2", "uniform:5", "uniform:7", "block:1", "block:3", "block:5"})
    void recomputeKeepsGradientsBitwise(String setting) {
        recomputeKeepsGradientsBitwise(setting, fiveLayers());
    }

    /** The recomputed forward regenerates the attention-probability masks from the same keys. */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"selective", "uniform:2", "block:3"})
    void recomputeKeepsGradientsBitwiseWithAttentionDropout(String setting) {
        recomputeKeepsGradientsBitwise(setting, fiveLayers(0.3f));
    }

    private static void recomputeKeepsGradientsBitwise(String setting, TransformerConfig c) {
        ActivationRecompute recompute = parse(setting);
        MicroBatch batch = GPTModelTest.randomBatch(2, 5, c.vocabSize(), 21);
        try (GPTModel model = new GPTModel(c, backend, 5)) {
            model.zeroGrad();
            double stored = model.forwardBackward(batch, 0.5f, 9).lossSum();
            List<float[]> expected = grads(model);
            long storedBytes = model.activationBytes();
            model.setRecompute(recompute);
            model.zeroGrad();
            assertEquals(stored, model.forwardBackward(batch, 0.5f, 9).lossSum(), 0.0);
            List<float[]> actual = grads(model);
            for (int p = 0; p < expected.size(); p++) {
                assertArrayEquals(expected.get(p), actual.get(p), model.parameters().get(p).name());
            }
            // Fewer per-layer activation sets than layers (groups share one set) must show in the budget.
            if (recompute.activationSets(c.numLayers()) < c.numLayers()) {
                assertTrue(model.activationBytes() < storedBytes, model.activationBytes() + " vs " + storedBytes);
            } else {
                assertEquals(storedBytes, model.activationBytes());
            }
        }
    }

    @Test
    void refusesIncompleteFullRecompute() {
        assertThrows(IllegalArgumentException.class, () -> ActivationRecompute.full(null, 1));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ActivationRecompute.full(Method.BLOCK, 0));
        assertTrue(e.getMessage().contains("--recompute-num-layers"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Method.parse("blocks"));
        assertThrows(IllegalArgumentException.class, () -> ActivationRecompute.Granularity.parse("partial"));
    }

    static ActivationRecompute parse(String setting) {
        if (setting.equals("none")) {
            return ActivationRecompute.none();
        }
        if (setting.equals("selective")) {
            return ActivationRecompute.selective();
        }
        String[] parts = setting.split(":");
        return ActivationRecompute.full(Method.parse(parts[0]), Integer.parseInt(parts[1]));
    }

    private static List<float[]> grads(GPTModel model) {
        List<float[]> out = new ArrayList<>();
        for (Parameter p : model.parameters()) {
            out.add(p.grad().toFloatArray());
        }
        return out;
    }
}
