package org.megatronj.model;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.megatronj.memory.Backend;
import org.megatronj.memory.cpu.CpuBackend;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Whole-model behaviour: initialisation, gradient accumulation, dropout reproducibility, input checks. */
class GPTModelTest {
    private static Backend backend;

    @BeforeAll
    static void start() {
        backend = new CpuBackend();
    }

    @AfterAll
    static void stop() {
        backend.close();
    }

    static MicroBatch randomBatch(int b, int s, int vocab, long seed) {
        Random r = new Random(seed);
        int[] tokens = new int[b * s];
        int[] labels = new int[b * s];
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = r.nextInt(vocab);
            labels[i] = r.nextInt(vocab);
        }
        return MicroBatch.of(b, s, tokens, labels);
    }

    static MicroBatch rows(MicroBatch m, int from, int to) {
        int s = m.seqLength();
        return new MicroBatch(to - from, s, java.util.Arrays.copyOfRange(m.tokens(), from * s, to * s),
                java.util.Arrays.copyOfRange(m.labels(), from * s, to * s),
                java.util.Arrays.copyOfRange(m.lossMask(), from * s, to * s), null);
    }

    static List<float[]> grads(GPTModel model) {
        List<float[]> out = new ArrayList<>();
        model.parameters().forEach(p -> out.add(p.grad().toFloatArray()));
        return out;
    }

    @Test
    void initialisationFollowsMegatron() {
        TransformerConfig c = TransformerConfig.builder().numLayers(4).hiddenSize(64).numAttentionHeads(4).seqLength(16)
                .vocabSize(1000).build();
        try (GPTModel model = new GPTModel(c, backend, 42)) {
            assertEquals(1024, c.paddedVocabSize());
            assertEquals(std(model.parameter("embedding.word_embeddings.weight").data().toFloatArray()), 0.02, 0.001);
            assertEquals(std(model.parameter("decoder.layers.0.mlp.linear_fc1.weight").data().toFloatArray()), 0.02, 0.001);
            double scaled = 0.02 / Math.sqrt(2 * 4);
            assertEquals(std(model.parameter("decoder.layers.3.mlp.linear_fc2.weight").data().toFloatArray()), scaled, 0.0005);
            assertEquals(std(model.parameter("decoder.layers.1.self_attention.linear_proj.weight").data().toFloatArray()),
                    scaled, 0.0005);
            for (float v : model.parameter("decoder.layers.0.input_layernorm.weight").data().toFloatArray()) {
                assertEquals(1f, v);
            }
            for (float v : model.parameter("decoder.layers.0.self_attention.linear_qkv.bias").data().toFloatArray()) {
                assertEquals(0f, v);
            }
            assertTrue(!model.parameter("decoder.layers.0.mlp.linear_fc1.bias").weightDecay());
            assertTrue(model.parameter("decoder.layers.0.mlp.linear_fc1.weight").weightDecay());
            // Same seed, same weights; the loss of an untrained model is about ln(V).
            try (GPTModel twin = new GPTModel(c, backend, 42)) {
                assertArrayEquals(model.parameter("decoder.layers.2.mlp.linear_fc2.weight").data().toFloatArray(),
                        twin.parameter("decoder.layers.2.mlp.linear_fc2.weight").data().toFloatArray());
            }
            LossResult loss = model.forwardLoss(randomBatch(2, 16, 1000, 1));
            assertEquals(Math.log(1024), loss.meanLoss(), 0.1);
            assertEquals(32, loss.tokens());
        }
    }

    private static double std(float[] v) {
        double sum = 0;
        double sq = 0;
        for (float x : v) {
            sum += x;
            sq += (double) x * x;
        }
        double mean = sum / v.length;
        return Math.sqrt(sq / v.length - mean * mean);
    }

    @Test
    void gradientAccumulationEqualsOneLargeBatch() {
        for (TransformerConfig c : List.of(LayerGradientTest.gpt2Like(0), LayerGradientTest.llamaLike(0))) {
            MicroBatch whole = randomBatch(4, 5, c.vocabSize(), 3);
            try (GPTModel model = new GPTModel(c, backend, 5)) {
                LayerGradientTest.randomize(model, 6);
                model.zeroGrad();
                LossResult big = model.forwardBackward(whole, 1f, 0);
                List<float[]> expected = grads(model);
                model.zeroGrad();
                int k = 2;
                LossResult sum = new LossResult(0, 0);
                for (int i = 0; i < k; i++) {
                    sum = sum.plus(model.forwardBackward(rows(whole, i * 2, i * 2 + 2), 1f / k, i));
                }
                assertEquals(big.meanLoss(), sum.meanLoss(), 1e-6);
                assertEquals(big.tokens(), sum.tokens());
                List<float[]> actual = grads(model);
                for (int p = 0; p < expected.size(); p++) {
                    double scale = GPTReferenceTest.maxAbs(expected.get(p));
                    double error = GPTReferenceTest.maxAbsDiff(expected.get(p), actual.get(p));
                    assertTrue(error <= 1e-5 * scale + 1e-7, model.parameters().get(p).name() + " differs by " + error);
                }
            }
        }
    }

    /**
     * Documents ({@code --reset-attention-mask} with {@code --reset-position-ids}): one sample holding two
     * documents has the loss and gradients of two samples each holding one of them (the rest of their
     * rows masked out of the loss). With rope the positions are not reset, and the scores of a document
     * still match, since rope's scores depend only on the distance between query and key.
     */
    @Test
    void documentsInOneSampleTrainAsSeparateSamples() {
        int s = LayerGradientTest.S, first = 2;   // documents [0, 2) and [2, s)
        for (TransformerConfig c : List.of(LayerGradientTest.gpt2Like(0), LayerGradientTest.llamaLike(0))) {
            MicroBatch random = randomBatch(2, s, c.vocabSize(), 8);
            int[] tokens = java.util.Arrays.copyOf(random.tokens(), s);
            int[] labels = java.util.Arrays.copyOf(random.labels(), s);
            int[] positions = new int[s];
            int[] starts = new int[s];
            for (int t = 0; t < s; t++) {
                positions[t] = t < first ? t : t - first;
                starts[t] = t < first ? 0 : first;
            }
            float[] all = new float[s];
            java.util.Arrays.fill(all, 1f);
            MicroBatch together = new MicroBatch(1, s, tokens, labels, all, positions, starts);
            // apart: row 0 holds document 0, row 1 document 1, each from position 0, other rows' tokens random
            int[] apartTokens = random.tokens().clone();
            int[] apartLabels = random.labels().clone();
            float[] apartMask = new float[2 * s];
            for (int t = 0; t < s; t++) {
                int row = t < first ? 0 : 1;
                int at = row * s + positions[t];
                apartTokens[at] = tokens[t];
                apartLabels[at] = labels[t];
                apartMask[at] = 1f;
            }
            MicroBatch apart = new MicroBatch(2, s, apartTokens, apartLabels, apartMask, null);
            try (GPTModel model = new GPTModel(c, backend, 21)) {
                LayerGradientTest.randomize(model, 22);
                model.zeroGrad();
                LossResult one = model.forwardBackward(together, 1f, 0);
                List<float[]> expected = grads(model);
                model.zeroGrad();
                LossResult two = model.forwardBackward(apart, 1f, 0);
                assertEquals(two.tokens(), one.tokens());
                assertEquals(two.lossSum(), one.lossSum(), 1e-5 * Math.abs(two.lossSum()));
                List<float[]> actual = grads(model);
                for (int p = 0; p < expected.size(); p++) {
                    double scale = GPTReferenceTest.maxAbs(expected.get(p));
                    double error = GPTReferenceTest.maxAbsDiff(expected.get(p), actual.get(p));
                    assertTrue(error <= 1e-5 * scale + 1e-7, model.parameters().get(p).name() + " differs by " + error);
                }
                // without the documents' masks the second document attends the first: another loss
                MicroBatch unmasked = new MicroBatch(1, s, tokens, labels, all, positions);
                assertNotEquals(one.lossSum(), model.forwardLoss(unmasked).lossSum(), 1e-4 * Math.abs(one.lossSum()));
            }
        }
    }

    /**
     * {@code --apply-layernorm-1p}: the norm weights start at 0, and a model whose norm weights are w computes
     * the loss and gradients of the plain model with norm weights 1 + w (LayerNorm and RMSNorm).
     */
    @Test
    void zeroCenteredNormWeightsAreOnePlusTheWeight() {
        for (TransformerConfig plain : List.of(LayerGradientTest.gpt2Like(0), LayerGradientTest.llamaLike(0))) {
            TransformerConfig onePlus = plain.withLayernorm1p(true);
            MicroBatch batch = randomBatch(2, LayerGradientTest.S, plain.vocabSize(), 31);
            try (GPTModel centred = new GPTModel(onePlus, backend, 7); GPTModel reference = new GPTModel(plain, backend, 7)) {
                for (float v : centred.parameter("decoder.final_layernorm.weight").data().toFloatArray()) {
                    assertEquals(0f, v);
                }
                LayerGradientTest.randomize(centred, 8);
                for (Parameter p : centred.parameters()) {
                    float[] values = p.data().toFloatArray();
                    if (p.name().endsWith("layernorm.weight")) {
                        for (int i = 0; i < values.length; i++) {
                            values[i] += 1f;
                        }
                    }
                    reference.parameter(p.name()).data().copyFrom(values);
                }
                assertSameLossAndGradients(centred, reference, batch, 1e-5, 1e-7);
            }
        }
    }

    /**
     * {@code --add-qkv-bias} (Qwen2): with the other biases off, only linear_qkv has one, and the model computes exactly
     * the all-bias model whose other biases are zero (loss and every shared gradient).
     */
    @Test
    void qkvBiasAloneIsTheFullBiasModelWithTheOthersZero() {
        TransformerConfig full = LayerGradientTest.llamaLike(0).toBuilder().addBiasLinear(true).build();
        TransformerConfig qkvOnly = full.toBuilder().addBiasLinear(false).addQkvBias(true).build();
        MicroBatch batch = randomBatch(2, LayerGradientTest.S, full.vocabSize(), 41);
        try (GPTModel qkv = new GPTModel(qkvOnly, backend, 7); GPTModel reference = new GPTModel(full, backend, 7)) {
            List<String> biases = qkv.parameters().stream().map(Parameter::name).filter(n -> n.endsWith("linear_qkv.bias")
                    || n.endsWith("linear_proj.bias") || n.endsWith("linear_fc1.bias") || n.endsWith("linear_fc2.bias")).toList();
            assertTrue(!biases.isEmpty() && biases.stream().allMatch(n -> n.endsWith("linear_qkv.bias")), biases.toString());
            LayerGradientTest.randomize(qkv, 9);
            for (Parameter p : reference.parameters()) {
                p.data().copyFrom(qkv.parameters().stream().anyMatch(q -> q.name().equals(p.name()))
                        ? qkv.parameter(p.name()).data().toFloatArray() : new float[(int) p.numel()]);
            }
            assertSameLossAndGradients(qkv, reference, batch, 1e-6, 1e-8);
        }
    }

    /**
     * One forward-backward of each model on {@code batch}: the same loss and, for every parameter of {@code model}, the
     * reference's gradient of that name, to {@code relative} of its largest element plus {@code absolute}.
     */
    private static void assertSameLossAndGradients(GPTModel model, GPTModel reference, MicroBatch batch, double relative,
                                                   double absolute) {
        model.refreshComputeWeights();
        reference.refreshComputeWeights();
        model.zeroGrad();
        reference.zeroGrad();
        double a = model.forwardBackward(batch, 1f, 0).lossSum();
        double b = reference.forwardBackward(batch, 1f, 0).lossSum();
        assertEquals(b, a, relative * Math.abs(b));
        for (Parameter p : model.parameters()) {
            float[] expected = reference.parameter(p.name()).grad().toFloatArray();
            double error = GPTReferenceTest.maxAbsDiff(expected, p.grad().toFloatArray());
            assertTrue(error <= relative * GPTReferenceTest.maxAbs(expected) + absolute, p.name() + " differs by " + error);
        }
    }

    @Test
    void keyStartsOutsideTheirRowAreRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new MicroBatch(1, 3,
                new int[3], new int[3], new float[3], null, new int[] {0, 0, 3}));
        assertTrue(e.getMessage().contains("keyStarts[2] (sample 0, position 2) is 3; expected a start in [0, 2]"),
                e.getMessage());
    }

    @Test
    void dropoutMasksAreReproducibleFromTheRngOffset() {
        TransformerConfig c = LayerGradientTest.gpt2Like(0.3f);
        MicroBatch batch = randomBatch(2, 5, c.vocabSize(), 4);
        try (GPTModel model = new GPTModel(c, backend, 9)) {
            model.zeroGrad();
            double first = model.forwardBackward(batch, 1f, 17).lossSum();
            List<float[]> g1 = grads(model);
            model.zeroGrad();
            double again = model.forwardBackward(batch, 1f, 17).lossSum();
            List<float[]> g2 = grads(model);
            assertEquals(first, again, 0.0, "same rngOffset, same masks, same loss");
            for (int p = 0; p < g1.size(); p++) {
                assertArrayEquals(g1.get(p), g2.get(p));
            }
            double other = model.forwardBackward(batch, 1f, 18).lossSum();
            assertNotEquals(first, other, "another rngOffset draws other masks");
            double eval = model.forwardLoss(batch).lossSum();
            assertNotEquals(first, eval, "evaluation runs without dropout");
            assertEquals(eval, model.forwardLoss(batch).lossSum(), 0.0);
        }
    }

    @Test
    void fullRecomputeGivesTheSameGradientsWithLessMemory() {
        for (TransformerConfig c : List.of(LayerGradientTest.gpt2Like(0.2f), LayerGradientTest.llamaLike(0.2f))) {
            MicroBatch batch = randomBatch(2, 5, c.vocabSize(), 12);
            try (GPTModel model = new GPTModel(c, backend, 13)) {
                LayerGradientTest.randomize(model, 14);
                model.zeroGrad();
                double stored = model.forwardBackward(batch, 0.5f, 3).lossSum();
                List<float[]> expected = grads(model);
                long storedBytes = model.activationBytes();
                model.setRecomputeActivations(true);
                model.zeroGrad();
                double recomputed = model.forwardBackward(batch, 0.5f, 3).lossSum();
                assertEquals(stored, recomputed, 0.0);
                List<float[]> actual = grads(model);
                for (int p = 0; p < expected.size(); p++) {
                    assertArrayEquals(expected.get(p), actual.get(p), model.parameters().get(p).name());
                }
                assertTrue(model.activationBytes() < storedBytes, model.activationBytes() + " vs " + storedBytes);
            }
        }
    }

    @Test
    void adamWTrainingMemorisesABatch() {
        TransformerConfig c = LayerGradientTest.llamaLike(0.1f);
        MicroBatch batch = randomBatch(2, 5, c.vocabSize(), 8);
        try (GPTModel model = new GPTModel(c, backend, 2);
             org.megatronj.model.optim.AdamW adam = new org.megatronj.model.optim.AdamW(model.parameters(), backend,
                     0.9f, 0.95f, 1e-8f, 0.01f)) {
            var schedule = new org.megatronj.model.optim.OptimizerParamScheduler(1e-2, 1e-3, 5, 60,
                    org.megatronj.model.optim.DecayStyle.COSINE);
            double first = model.forwardLoss(batch).meanLoss();
            for (int iteration = 1; iteration <= 60; iteration++) {
                model.zeroGrad();
                model.forwardBackward(batch, 1f, iteration);
                org.megatronj.model.optim.GradClipping.clip(model.parameters(), backend, 1.0);
                adam.step((float) schedule.currentLr());
                schedule.step(1);
            }
            double last = model.forwardLoss(batch).meanLoss();
            assertTrue(first > 2.5 && last < 0.5, "loss " + first + " -> " + last);
        }
    }

    @Test
    void badInputsAreRejectedWithReasons() {
        TransformerConfig c = LayerGradientTest.gpt2Like(0);
        try (GPTModel model = new GPTModel(c, backend, 1)) {
            int[] tokens = new int[10];
            tokens[7] = 500;
            var e = assertThrows(IllegalArgumentException.class,
                    () -> model.forwardLoss(MicroBatch.of(2, 5, tokens, new int[10])));
            assertTrue(e.getMessage().contains("token id 500 at sample 1, position 2"), e.getMessage());
            var tooLong = assertThrows(IllegalArgumentException.class,
                    () -> model.forwardLoss(randomBatch(1, 9, 20, 1)));
            assertTrue(tooLong.getMessage().contains("max-position-embeddings"), tooLong.getMessage());
            assertThrows(IllegalArgumentException.class,
                    () -> new MicroBatch(2, 5, new int[10], new int[10], new float[] {0.5f, 0, 0, 0, 0, 0, 0, 0, 0, 0}, null));
        }
    }

    /**
     * Megatron's default --attention-dropout 0.1 trains: the masks follow (seed, rngOffset), so the same
     * micro-batch gives the same bits twice and another loss at another offset; evaluation has no dropout.
     */
    @Test
    void attentionDropoutTrainsWithReproducibleMasks() {
        TransformerConfig withAttentionDropout = TransformerConfig.builder().numLayers(2).hiddenSize(16).numAttentionHeads(2)
                .seqLength(5).vocabSize(20).hiddenDropout(0).build();
        TransformerConfig without = TransformerConfig.builder().numLayers(2).hiddenSize(16).numAttentionHeads(2)
                .seqLength(5).vocabSize(20).hiddenDropout(0).attentionDropout(0).build();
        assertEquals(0.1f, withAttentionDropout.attentionDropout(), "Megatron's default");
        MicroBatch batch = randomBatch(2, 5, 20, 1);
        try (GPTModel model = new GPTModel(withAttentionDropout, backend, 1);
             GPTModel plain = new GPTModel(without, backend, 1)) {
            double first = model.forwardBackward(batch, 1f, 3).lossSum();
            double again = model.forwardBackward(batch, 1f, 3).lossSum();
            double other = model.forwardBackward(batch, 1f, 4).lossSum();
            double eval = model.forwardLoss(batch).lossSum();
            assertEquals(Double.doubleToRawLongBits(first), Double.doubleToRawLongBits(again), first + " vs " + again);
            assertNotEquals(first, other);
            assertNotEquals(first, eval);
            assertEquals(plain.forwardLoss(batch).lossSum(), eval, 0.0, "evaluation runs without dropout");
            assertEquals(plain.forwardBackward(batch, 1f, 3).lossSum(), eval, 0.0, "p = 0 trains without dropout");
        }
    }
}
