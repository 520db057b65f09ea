package org.megatronj.model;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.FloatFormats;
import org.megatronj.memory.cpu.CpuBackend;
import org.megatronj.model.optim.DynamicLossScaler;
import org.megatronj.model.optim.LossScaler;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * BF16/F16 compute on the model level: the compute weights are one rounded copy of the F32 main
 * weights, gradients land in F32, and loss and gradients agree with the fp32 model to the
 * rounding of 16-bit activations.
 */
class MixedPrecisionTest {
    private static Backend backend;

    @BeforeAll
    static void start() {
        backend = new CpuBackend(2, true);
    }

    @AfterAll
    static void stop() {
        backend.close();
    }

    private static TransformerConfig config(boolean rope) {
        TransformerConfig.Builder b = TransformerConfig.builder().numLayers(2).hiddenSize(32).numAttentionHeads(4).seqLength(16)
                .maxPositionEmbeddings(16).vocabSize(60).makeVocabSizeDivisibleBy(8).hiddenDropout(0f).attentionDropout(0f);
        if (rope) {
            b.positionEmbeddingType(PositionEmbeddingType.ROPE).normalization(Normalization.RMS_NORM).swiglu(true)
                    .addBiasLinear(false);
        }
        return b.build();
    }

    @Test
    void fp32ComputesWithTheMainWeightsThemselves() {
        try (GPTModel m = new GPTModel(config(false), backend, 1)) {
            assertEquals(Precision.FP32, m.precision());
            for (Parameter p : m.parameters()) {
                assertSame(p.data(), p.compute());
            }
            assertSame(m.parameterStore().flatData(), m.parameterStore().flatCompute());
        }
    }

    @Test
    void computeWeightsAreTheRoundedMainWeightsAndFollowThem() {
        try (GPTModel m = new GPTModel(config(false), backend, 1, Precision.BF16)) {
            Parameter w = m.parameter("decoder.layers.0.mlp.linear_fc1.weight");
            assertEquals(DType.F32, w.data().dtype());
            assertEquals(DType.BF16, w.compute().dtype());
            assertEquals(DType.F32, w.grad().dtype());
            float[] main = w.data().toFloatArray();
            float[] compute = w.compute().toFloatArray();
            for (int i = 0; i < main.length; i++) {
                assertEquals(FloatFormats.bf16ToFloat(FloatFormats.floatToBf16(main[i])), compute[i], 0f, "element " + i);
            }
            w.data().setFloat(0, 0.123456f);
            assertEquals(compute[0], w.compute().getFloat(0), 0f, "the copy changes only on refresh");
            m.refreshComputeWeights();
            assertEquals(FloatFormats.bf16ToFloat(FloatFormats.floatToBf16(0.123456f)), w.compute().getFloat(0), 0f);
        }
    }

    /**
     * Loss and gradients of one micro-batch against the fp32 model on the same weights. bf16 keeps
     * 8 significant bits (relative rounding 2^-9 = 0.2%), fp16 11 bits (2^-12); the errors of the
     * rounded weights and activations add up over two layers and the logits, so the loss may differ
     * by about a percent in bf16 and a tenth of that in fp16, and each gradient tensor by a few
     * percent of its norm in bf16.
     */
    @Test
    void lossAndGradientsAgreeWithFp32ToSixteenBitRounding() {
        lossAndGradientsAgreeWithFp32(List.of(config(false), config(true)), 1f);
    }

    /**
     * Multi-latent attention (query latent, latent norms, YaRN with its factors) in bf16/fp16 tracks fp32 alike, with a
     * loss scale of 1024 as fp16 training uses: unscaled, the query latent's small gradients fall to fp16's subnormals.
     */
    @Test
    void multiLatentAttentionAgreesWithFp32ToSixteenBitRounding() {
        lossAndGradientsAgreeWithFp32(List.of(config(true).toBuilder().qkLayernorm(true)
                .mla(MlaConfig.of(16, 12, 8, 4, 8).withRope(MlaConfig.RopeType.YARN, 4f, 1f, 0.5f)).build()), 1024f);
    }

    /** {@code gradScale}: the loss scale of every run (the relative errors do not depend on it). */
    private static void lossAndGradientsAgreeWithFp32(List<TransformerConfig> configs, float gradScale) {
        for (TransformerConfig c : configs) {
            String rope = c.mla() != null ? "mla" : c.positionEmbeddingType().flagValue();
            MicroBatch batch = GPTModelTest.randomBatch(2, 16, 60, 7);
            LossResult reference;
            List<float[]> referenceGrads;
            try (GPTModel m = new GPTModel(c, backend, 5)) {
                reference = m.forwardBackward(batch, gradScale, 0);
                referenceGrads = GPTModelTest.grads(m);
            }
            for (Precision p : new Precision[] {Precision.BF16, Precision.FP16}) {
                double lossTolerance = p == Precision.BF16 ? 1e-2 : 2e-3;
                double gradTolerance = p == Precision.BF16 ? 5e-2 : 1e-2;
                try (GPTModel m = new GPTModel(c, backend, 5, p)) {
                    LossResult r = m.forwardBackward(batch, gradScale, 0);
                    assertEquals(reference.tokens(), r.tokens());
                    assertEquals(reference.meanLoss(), r.meanLoss(), lossTolerance * reference.meanLoss(),
                            p + " rope=" + rope + " loss");
                    List<float[]> grads = GPTModelTest.grads(m);
                    for (int i = 0; i < grads.size(); i++) {
                        double err = 0;
                        double norm = 0;
                        for (int j = 0; j < grads.get(i).length; j++) {
                            double d = grads.get(i)[j] - referenceGrads.get(i)[j];
                            err += d * d;
                            norm += (double) referenceGrads.get(i)[j] * referenceGrads.get(i)[j];
                        }
                        String name = m.parameters().get(i).name();
                        assertTrue(Math.sqrt(err) <= gradTolerance * Math.sqrt(norm) + 1e-7,
                                p + " rope=" + rope + " " + name + ": relative gradient error " + Math.sqrt(err / norm));
                    }
                }
            }
        }
    }

    /**
     * Multi-Token Prediction (two depths) in bf16/fp16 tracks fp32: the lm loss, each depth's loss and the gradients
     * (eh_proj, enorm, hnorm and the shared embedding's included) within 16-bit rounding.
     */
    @Test
    void multiTokenPredictionAgreesWithFp32ToSixteenBitRounding() {
        MicroBatch batch = GPTModelTest.randomBatch(2, 16, 60, 7);
        TransformerConfig c = config(true).toBuilder().mtp(new MtpConfig(2, 0.5f)).build();
        LossResult reference;
        double[] referenceMtp;
        List<float[]> referenceGrads;
        try (GPTModel m = new GPTModel(c, backend, 5)) {
            reference = m.forwardBackward(batch, 1f, 0);
            referenceMtp = m.takeMtpLossSums();
            referenceGrads = GPTModelTest.grads(m);
        }
        for (Precision p : new Precision[] {Precision.BF16, Precision.FP16}) {
            double tolerance = p == Precision.BF16 ? 1e-2 : 2e-3;
            try (GPTModel m = new GPTModel(c, backend, 5, p)) {
                LossResult r = m.forwardBackward(batch, 1f, 0);
                assertEquals(reference.meanLoss(), r.meanLoss(), tolerance * reference.meanLoss(), p + " loss");
                double[] mtp = m.takeMtpLossSums();
                for (int k = 0; k < mtp.length; k++) {
                    assertEquals(referenceMtp[k], mtp[k], tolerance * referenceMtp[k], p + " mtp_" + (k + 1) + " loss");
                }
                double error = relativeError(GPTModelTest.grads(m), referenceGrads);
                assertTrue(error < (p == Precision.BF16 ? 5e-2 : 1e-2), p + ": relative gradient error " + error);
            }
        }
    }

    /**
     * A mixture-of-experts model in bf16/fp16 tracks fp32: the same loss and gradients within 16-bit rounding (the
     * routing, here with an F32 router for bf16, takes the same experts on these inputs).
     */
    @Test
    void mixtureOfExpertsAgreesWithFp32ToSixteenBitRounding() {
        MicroBatch batch = GPTModelTest.randomBatch(2, 16, 60, 7);
        TransformerConfig c = config(true).toBuilder().moe(MoeConfig.of(4, 32).withLoadBalancing(
                MoeConfig.LoadBalancing.AUX_LOSS, 0.01f).withRouterDtypeFp32(true)).build();
        LossResult reference;
        List<float[]> referenceGrads;
        try (GPTModel m = new GPTModel(c, backend, 5)) {
            reference = m.forwardBackward(batch, 1f, 0);
            referenceGrads = GPTModelTest.grads(m);
        }
        for (Precision p : new Precision[] {Precision.BF16, Precision.FP16}) {
            try (GPTModel m = new GPTModel(c, backend, 5, p)) {
                LossResult r = m.forwardBackward(batch, 1f, 0);
                assertEquals(reference.meanLoss(), r.meanLoss(), (p == Precision.BF16 ? 1e-2 : 2e-3) * reference.meanLoss(),
                        p + " loss");
                double error = relativeError(GPTModelTest.grads(m), referenceGrads);
                assertTrue(error < (p == Precision.BF16 ? 5e-2 : 1e-2), p + ": relative gradient error " + error);
            }
        }
    }

    /** ||grads - reference|| / ||reference|| over all the parameters' gradients together. */
    static double relativeError(List<float[]> grads, List<float[]> reference) {
        double err = 0;
        double norm = 0;
        for (int i = 0; i < grads.size(); i++) {
            for (int j = 0; j < grads.get(i).length; j++) {
                double d = grads.get(i)[j] - reference.get(i)[j];
                err += d * d;
                norm += (double) reference.get(i)[j] * reference.get(i)[j];
            }
        }
        return Math.sqrt(err / norm);
    }

    @Test
    void precisionFlagsAndScalersAreChecked() {
        assertEquals(Precision.BF16, Precision.of(false, true));
        assertEquals(Precision.FP16, Precision.of(true, false));
        assertEquals(Precision.FP32, Precision.of(false, false));
        IllegalArgumentException both = assertThrows(IllegalArgumentException.class, () -> Precision.of(true, true));
        assertTrue(both.getMessage().contains("--fp16 and --bf16 are mutually exclusive"), both.getMessage());
        assertEquals(Precision.FP16, Precision.parse("fp16"));

        LossScaler constant = new LossScaler.Constant(1024);
        constant.update(true);
        assertEquals(1024, constant.scale());
        assertEquals(1f / 1024, constant.inverseScale());
        assertThrows(IllegalArgumentException.class, () -> new LossScaler.Constant(0));
        assertThrows(IllegalArgumentException.class, () -> new DynamicLossScaler(1, 2, 1000, 2));
        assertThrows(IllegalArgumentException.class, () -> new DynamicLossScaler(1024, 1, 0, 2));
        assertThrows(IllegalArgumentException.class, () -> new DynamicLossScaler(1024, 1, 10, 0));
    }
}
