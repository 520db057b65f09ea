package org.megatronj.model;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.megatronj.memory.Backend;
import org.megatronj.memory.cpu.CpuBackend;

import java.io.IOException;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Multi-Token Prediction against an independent PyTorch implementation of Megatron-core's code path (float64; see
 * model/src/test/python/make_mtp_reference.py): the lm loss, each depth's loss and the gradient of
 * {@code lm + factor / N * sum(mtp)} for every parameter (enorm, hnorm, eh_proj, the depths' layers and the shared
 * embedding included); then central finite differences of that objective, and what the config refuses.
 */
class MultiTokenPredictionTest {
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
        return TransformerConfig.builder()
                .numLayers(f.integer("num_layers")).hiddenSize(f.integer("hidden")).numAttentionHeads(f.integer("heads"))
                .numQueryGroups(f.integer("groups")).ffnHiddenSize(f.integer("ffn"))
                .seqLength(f.integer("seq")).maxPositionEmbeddings(f.integer("seq"))
                .positionEmbeddingType(PositionEmbeddingType.ROPE)
                .normalization(f.flag("rms") ? Normalization.RMS_NORM : Normalization.LAYER_NORM)
                .swiglu(f.flag("swiglu")).addBiasLinear(f.flag("bias")).untieEmbeddingsAndOutputWeights(f.flag("untied"))
                .attentionDropout(0).hiddenDropout(0).geluTanh(true)
                .vocabSize(f.integer("vocab")).makeVocabSizeDivisibleBy(f.integer("divisible_by"))
                .mtp(new MtpConfig(f.integer("mtp_layers"), Float.parseFloat(f.config.get("mtp_factor"))))
                .build();
    }

    @ParameterizedTest
    @ValueSource(strings = {"mtp1", "mtp2"})
    void matchesPyTorch(String variant) throws IOException {
        ReferenceFixture f = new ReferenceFixture(variant);
        TransformerConfig config = configOf(f);
        assertEquals(f.integer("padded_vocab"), config.paddedVocabSize());
        try (GPTModel model = new GPTModel(config, backend, 7)) {
            Set<String> names = new HashSet<>();
            model.parameters().forEach(p -> names.add(p.name()));
            assertEquals(new HashSet<>(f.weights.keySet()), names, "parameter names");
            load(model, f);
            model.zeroGrad();
            LossResult result = model.forwardBackward(batchOf(f), 1f, 0);
            assertEquals(Double.parseDouble(f.config.get("loss_float64")), result.meanLoss(), 2e-6, variant + ": lm loss");
            double[] mtp = model.takeMtpLossSums();
            String[] expected = f.config.get("mtp_losses_float64").trim().split(" ");
            assertEquals(expected.length, mtp.length, "depths");
            for (int k = 0; k < mtp.length; k++) {
                assertEquals(Double.parseDouble(expected[k]), mtp[k], 2e-6, variant + ": mtp_" + (k + 1) + " loss");
            }
            assertArrayEquals(new double[mtp.length], model.takeMtpLossSums(), "the sums reset once taken");
            // Megatron's acceptance counts: counted positions whose argmax is the rolled label (the fixture makes depth 1
            // right at its even positions)
            double[] counts = model.takeMtpAcceptanceCounts();
            String[] accepted = f.config.get("mtp_accepted").trim().split(" ");
            for (int k = 0; k < mtp.length; k++) {
                String[] ratio = accepted[k].split("/");
                assertEquals(Double.parseDouble(ratio[0]), counts[k], variant + ": mtp_" + (k + 1) + " accepted");
                assertEquals(Double.parseDouble(ratio[1]), counts[mtp.length + k], variant + ": mtp_" + (k + 1) + " counted");
            }
            assertTrue(counts[0] > 0, "some positions accepted");
            assertArrayEquals(new double[2 * mtp.length], model.takeMtpAcceptanceCounts(), "the counts reset once taken");
            for (Map.Entry<String, float[]> e : f.grads.entrySet()) {
                float[] want = e.getValue();
                float[] got = model.parameter(e.getKey()).grad().toFloatArray();
                double scale = GPTReferenceTest.maxAbs(want);
                double error = GPTReferenceTest.maxAbsDiff(want, got);
                assertTrue(error <= 1e-5 * scale + 1e-9, variant + ": gradient of " + e.getKey() + " differs by " + error
                        + " (largest entry " + scale + ")");
            }
            // Evaluation is the decoder's loss alone, as Megatron's validation loss; MTP leaves no sums behind there.
            LossResult eval = model.forwardLoss(batchOf(f));
            assertEquals(result.meanLoss(), eval.meanLoss(), 1e-6, "evaluation loss");
            assertArrayEquals(new double[mtp.length], model.takeMtpLossSums(), "evaluation tracks no MTP loss");
        }
    }

    /** Central differences of lm + factor / N * sum(mtp) (fp32 forward) along single weights of the MTP path. */
    @Test
    void finiteDifferences() throws IOException {
        ReferenceFixture f = new ReferenceFixture("mtp2");
        TransformerConfig config = configOf(f);
        MicroBatch batch = batchOf(f);
        try (GPTModel model = new GPTModel(config, backend, 7)) {
            load(model, f);
            model.zeroGrad();
            model.forwardBackward(batch, 1f, 0);
            model.takeMtpLossSums();
            List<String> names = List.of("mtp.layers.0.enorm.weight", "mtp.layers.1.hnorm.weight", "mtp.layers.0.eh_proj.weight",
                    "mtp.layers.1.eh_proj.weight", "mtp.layers.0.transformer_layer.mlp.linear_fc2.weight",
                    "embedding.word_embeddings.weight", "decoder.final_layernorm.weight", "output_layer.weight");
            java.util.Random random = new java.util.Random(3);
            for (String name : names) {
                Parameter p = model.parameter(name);
                float[] grad = p.grad().toFloatArray();
                double scale = GPTReferenceTest.maxAbs(grad);
                for (int sample = 0; sample < 4; sample++) {
                    int i = largestOr(grad, random, sample);
                    float original = p.data().getFloat(i);
                    float step = 1e-2f;
                    p.data().setFloat(i, original + step);
                    model.refreshComputeWeights();
                    double plus = objective(model, batch, config);
                    p.data().setFloat(i, original - step);
                    model.refreshComputeWeights();
                    double minus = objective(model, batch, config);
                    p.data().setFloat(i, original);
                    model.refreshComputeWeights();
                    double numeric = (plus - minus) / (2 * step);
                    assertEquals(numeric, grad[i], 2e-3 * scale + 1e-6, name + "[" + i + "]: finite difference");
                }
            }
        }
    }

    private static int largestOr(float[] grad, java.util.Random random, int sample) {
        if (sample > 0) {
            return random.nextInt(grad.length);
        }
        int best = 0;
        for (int i = 1; i < grad.length; i++) {
            best = Math.abs(grad[i]) > Math.abs(grad[best]) ? i : best;
        }
        return best;
    }

    /** The training objective's value: the lm loss plus the depths' losses at factor / N (their gradients are discarded). */
    private static double objective(GPTModel model, MicroBatch batch, TransformerConfig config) {
        LossResult r = model.forwardBackward(batch, 0f, 0);
        double total = r.meanLoss();
        for (double loss : model.takeMtpLossSums()) {
            total += config.mtp().depthLossScale() * loss;
        }
        return total;
    }

    /**
     * The depths' layers are built as the decoder's last layer: MoE here (Megatron's get_gpt_mtp_block_spec), with
     * their routers trained, their auxiliary losses tracked after the decoder's layers and counted in the average.
     */
    @Test
    void depthsOfAMixtureOfExpertsModelAreMoeLayers() {
        MoeConfig moe = MoeConfig.of(4, 24).withLayerFreq("[0,1]").withLoadBalancing(MoeConfig.LoadBalancing.AUX_LOSS, 0.01f);
        TransformerConfig c = TransformerConfig.builder().numLayers(2).hiddenSize(32).numAttentionHeads(4).seqLength(8)
                .vocabSize(60).makeVocabSizeDivisibleBy(8).positionEmbeddingType(PositionEmbeddingType.ROPE)
                .addBiasLinear(false).hiddenDropout(0).attentionDropout(0).moe(moe).mtp(MtpConfig.of(1)).build();
        assertTrue(c.mtpLayersAreMoe());
        try (GPTModel model = new GPTModel(c, backend, 3)) {
            model.forwardBackward(GPTModelTest.randomBatch(2, 8, 60, 1), 1f, 0);
            float[] router = model.parameter("mtp.layers.0.transformer_layer.mlp.router.weight").grad().toFloatArray();
            assertTrue(GPTReferenceTest.maxAbs(router) > 0, "the depth's router trains");
            assertEquals(2, model.moeLayers().size(), "decoder layer 1 and the depth's layer");
            MoeMetrics.Report report = MoeMetrics.report(MoeMetrics.take(List.of(model)), c, 1);
            double[] perLayer = report.perLayer().get("load_balancing_loss");
            assertEquals(3, perLayer.length, "two decoder layers and one depth");
            assertTrue(perLayer[0] == 0 && perLayer[1] > 0 && perLayer[2] > 0, java.util.Arrays.toString(perLayer));
            assertEquals((perLayer[1] + perLayer[2]) / 2, report.averaged().get("load_balancing_loss"), 1e-12);
        }
        TransformerConfig denseLast = c.toBuilder().moe(moe.withLayerFreq("[1,0]")).build();
        assertTrue(!denseLast.mtpLayersAreMoe());
        assertTrue(ParameterSpec.forGpt(denseLast).stream().anyMatch(p -> p.name().equals(
                "mtp.layers.0.transformer_layer.mlp.linear_fc1.weight")));
    }

    /**
     * A multi-latent-attention model's depths use MLA too (DeepSeek-V3's combination): the depth's MLA weights get the
     * gradient of the objective (central differences on its latent down projection and its query up projection).
     */
    @Test
    void depthsOfAMultiLatentAttentionModelUseMla() {
        TransformerConfig c = TransformerConfig.builder().numLayers(2).hiddenSize(32).numAttentionHeads(4).seqLength(8)
                .vocabSize(60).makeVocabSizeDivisibleBy(8).positionEmbeddingType(PositionEmbeddingType.ROPE)
                .normalization(Normalization.RMS_NORM).qkLayernorm(true).addBiasLinear(false).hiddenDropout(0)
                .attentionDropout(0).mla(MlaConfig.of(16, 16, 8, 4, 8)).mtp(MtpConfig.of(1)).build();
        MicroBatch batch = GPTModelTest.randomBatch(2, 8, 60, 5);
        try (GPTModel model = new GPTModel(c, backend, 3)) {
            model.zeroGrad();
            model.forwardBackward(batch, 1f, 0);
            model.takeMtpLossSums();
            for (String name : List.of("mtp.layers.0.transformer_layer.self_attention.linear_kv_down_proj.weight",
                    "mtp.layers.0.transformer_layer.self_attention.linear_q_up_proj.weight")) {
                Parameter p = model.parameter(name);
                float[] grad = p.grad().toFloatArray();
                double scale = GPTReferenceTest.maxAbs(grad);
                assertTrue(scale > 0, name + " gets a gradient");
                int i = largestOr(grad, null, 0);
                float original = p.data().getFloat(i);
                float step = 1e-2f;
                p.data().setFloat(i, original + step);
                model.refreshComputeWeights();
                double plus = objective(model, batch, c);
                p.data().setFloat(i, original - step);
                model.refreshComputeWeights();
                double minus = objective(model, batch, c);
                p.data().setFloat(i, original);
                model.refreshComputeWeights();
                assertEquals((plus - minus) / (2 * step), grad[i], 2e-3 * scale + 1e-6, name + "[" + i + "]: finite difference");
            }
        }
    }

    @Test
    void rollsLeftWithZerosRolledIn() {
        int[] rows = {1, 2, 3, 4, 5, 6, 7, 8};   // two rows of 4
        assertArrayEquals(new int[] {3, 4, 0, 0, 7, 8, 0, 0}, MultiTokenPrediction.rollLeft(rows, 2, 4, 2));
        assertArrayEquals(new int[8], MultiTokenPrediction.rollLeft(rows, 2, 4, 4));
    }

    @Test
    void refusesWhatItDoesNotBuild() {
        TransformerConfig.Builder base = TransformerConfig.builder().numLayers(2).hiddenSize(32).numAttentionHeads(4)
                .seqLength(8).vocabSize(60).positionEmbeddingType(PositionEmbeddingType.ROPE);
        IllegalArgumentException learned = assertThrows(IllegalArgumentException.class,
                () -> base.positionEmbeddingType(PositionEmbeddingType.LEARNED_ABSOLUTE).mtp(MtpConfig.of(1)).build());
        assertTrue(learned.getMessage().contains("--position-embedding-type rope or none"), learned.getMessage());
        base.positionEmbeddingType(PositionEmbeddingType.ROPE);
        IllegalArgumentException zero = assertThrows(IllegalArgumentException.class, () -> base.mtp(MtpConfig.of(0)).build());
        assertTrue(zero.getMessage().contains("--mtp-num-layers must be positive"), zero.getMessage());
        IllegalArgumentException factor = assertThrows(IllegalArgumentException.class,
                () -> base.mtp(new MtpConfig(1, -1f)).build());
        assertTrue(factor.getMessage().contains("--mtp-loss-scaling-factor"), factor.getMessage());
        assertEquals(0.1f, MtpConfig.of(2).lossScalingFactor());
        assertEquals(0.05f, MtpConfig.of(2).depthLossScale());
    }

    static MicroBatch batchOf(ReferenceFixture f) {
        return new MicroBatch(f.integer("batch"), f.integer("seq"), f.ints("tokens"), f.ints("labels"), f.floats("loss_mask"),
                null);
    }

    static void load(GPTModel model, ReferenceFixture f) {
        for (Map.Entry<String, float[]> e : f.weights.entrySet()) {
            model.parameter(e.getKey()).data().copyFrom(e.getValue());
        }
        model.refreshComputeWeights();
    }
}
