package org.megatronj.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.megatronj.memory.Backend;
import org.megatronj.memory.cpu.CpuBackend;
import org.megatronj.model.ActivationRecompute.Module;

/**
 * {@code --recompute-granularity selective --recompute-modules}: each module gives bitwise the losses and gradients of
 * the run that stores everything (dropout on and off, two micro-batches in flight as under a pipeline schedule), and the
 * activation budget drops by exactly the buffers the module leaves out of all layers but the first (and of all MTP
 * depths but the first).
 */
class SelectiveRecomputeModulesTest {
    private static final int S = 8;
    private static final int B = 2;
    private static final int LAYERS = 4;
    private static Backend backend;

    @BeforeAll
    static void start() {
        backend = new CpuBackend(1, false);   // one thread: bitwise comparisons must not depend on scheduling
    }

    @AfterAll
    static void stop() {
        backend.close();
    }

    private static TransformerConfig.Builder base() {
        return TransformerConfig.builder().numLayers(LAYERS).hiddenSize(16).numAttentionHeads(2).seqLength(S)
                .maxPositionEmbeddings(S).vocabSize(40).makeVocabSizeDivisibleBy(8).attentionDropout(0.3f)
                .hiddenDropout(0.2f);
    }

    /** The models under test by name: every FeedForward and Attention the layers can hold. */
    private static TransformerConfig config(String name) {
        return switch (name) {
            case "dense-gelu" -> base().build();
            case "dense-swiglu-rms" -> base().normalization(Normalization.RMS_NORM).swiglu(true).ffnHiddenSize(24)
                    .qkLayernorm(true).build();
            case "moe-mixed" -> base().addBiasLinear(false).normalization(Normalization.RMS_NORM).swiglu(true).ffnHiddenSize(24)
                    .moe(MoeConfig.of(4, 8).withLayerFreq("[0,1,0,1]").withSharedExperts(16, true)
                            .withLoadBalancing(MoeConfig.LoadBalancing.AUX_LOSS, 0.01f)).build();
            case "moe-gelu" -> base().addBiasLinear(false).moe(MoeConfig.of(4, 8).withRouterTopk(2)
                    .withSharedExperts(16, false)).build();
            // Without dropout the branch's residual add is folded into fc2 / the MoE combine: the other forward path.
            case "no-dropout-dense" -> base().hiddenDropout(0).attentionDropout(0).build();
            case "no-dropout-moe" -> base().hiddenDropout(0).attentionDropout(0).addBiasLinear(false)
                    .moe(MoeConfig.of(4, 8).withRouterTopk(2).withSharedExperts(16, true)).build();
            case "mtp-two-depths" -> base().positionEmbeddingType(PositionEmbeddingType.ROPE).mtp(MtpConfig.of(2))
                    .build();
            case "mtp-moe-mla" -> base().positionEmbeddingType(PositionEmbeddingType.ROPE).addBiasLinear(false)
                    .moe(MoeConfig.of(4, 8).withLayerFreq("[0,1,1,1]")).mla(MlaConfig.of(8, 12, 8, 4, 8))
                    .mtp(MtpConfig.of(2)).build();
            case "mla" -> base().qkLayernorm(true).mla(MlaConfig.of(8, 12, 8, 4, 8)).build();
            case "mla-no-query-latent" -> base().mla(MlaConfig.of(0, 12, 8, 4, 6)).build();
            default -> throw new IllegalArgumentException(name);
        };
    }

    @ParameterizedTest(name = "{0} {1} {2}")
    @CsvSource({
            "dense-gelu,mlp,FP32", "dense-gelu,layernorm,FP32", "dense-gelu,core_attn+layernorm+mlp,FP32",
            "dense-gelu,layernorm+mlp,BF16", "dense-gelu,layernorm+mlp,FP16",
            "dense-swiglu-rms,mlp,FP32", "dense-swiglu-rms,layernorm,FP32", "dense-swiglu-rms,layernorm+mlp,BF16",
            "moe-mixed,mlp,FP32", "moe-mixed,layernorm,FP32", "moe-mixed,layernorm+mlp,BF16",
            "moe-mixed,moe_act,FP32", "moe-mixed,shared_experts,FP32", "moe-mixed,moe_act+shared_experts,BF16",
            "moe-gelu,moe_act,FP32", "moe-gelu,moe_act+shared_experts+layernorm,BF16",
            "moe-mixed,moe,FP32", "moe-mixed,moe+layernorm+mlp,BF16", "moe-gelu,moe,FP32", "moe-gelu,moe+moe_act,FP16",
            "mla,layernorm,FP32", "mla,mlp+layernorm,BF16", "mla,mla_up_proj,FP32", "mla,mla_up_proj+layernorm+mlp,BF16",
            "mla-no-query-latent,mla_up_proj+layernorm,FP32", "mla-no-query-latent,mla_up_proj,FP16",
            "no-dropout-dense,layernorm+mlp,FP32", "no-dropout-moe,moe+layernorm,FP32",
            "no-dropout-moe,moe_act+shared_experts+layernorm,BF16",
            "mtp-two-depths,layernorm+mlp,FP32", "mtp-two-depths,mlp,BF16", "mtp-moe-mla,moe+mla_up_proj+layernorm,FP32"})
    void modulesKeepLossesAndGradientsBitwise(String model, String modules, Precision precision) {
        TransformerConfig c = config(model);
        ActivationRecompute recompute = ActivationRecompute.selective(Arrays.asList(modules.split("\\+")));
        MicroBatch first = GPTModelTest.randomBatch(B, S, c.vocabSize(), 21);
        MicroBatch second = GPTModelTest.randomBatch(B, S, c.vocabSize(), 22);
        try (GPTModel stored = new GPTModel(c, backend, 5, precision);
             GPTModel recomputed = new GPTModel(c, backend, 5, precision)) {
            recomputed.setRecompute(recompute);
            double[] expected = twoMicroBatches(stored, first, second);
            double[] actual = twoMicroBatches(recomputed, first, second);
            assertArrayEquals(expected, actual, 0.0, "losses");
            List<float[]> want = GPTModelTest.grads(stored);
            List<float[]> got = GPTModelTest.grads(recomputed);
            for (int p = 0; p < want.size(); p++) {
                assertArrayEquals(want.get(p), got.get(p), stored.parameters().get(p).name());
            }
            // Two slots (micro-batches in flight), each without the left-out buffers of layers 1..L-1.
            long saved = 2 * savedBytesPerMicroBatch(c, recompute, precision);
            assertEquals(stored.activationBytes() - saved, recomputed.activationBytes(),
                    "activation bytes: stored " + stored.activationBytes() + ", recomputed " + recomputed.activationBytes());
        }
    }

    /**
     * Both micro-batches' forwards before either backward (a pipeline's warm-up), so a module's shared buffers hold the
     * other micro-batch's or another layer's values when a backward starts; returns the two loss sums.
     */
    private static double[] twoMicroBatches(GPTModel model, MicroBatch first, MicroBatch second) {
        model.zeroGrad();
        double a = model.forwardStep(0, first, 9, true).lossSum();
        double b = model.forwardStep(1, second, 10, true).lossSum();
        model.backwardStep(0, 0.5f);
        model.backwardStep(1, 0.5f);
        return new double[] {a, b};
    }

    /**
     * What one micro-batch's activations shrink by, written out from the buffers' shapes (not from the code under
     * test): layernorm shares ln1Out/ln2Out {@code [s, b, h]} of all layers (2L buffers become 1); mlp shares the
     * dense fc1Out {@code [s, b, fc1]} and actOut {@code [s, b, ffn]} (L become 1).
     */
    static long savedBytesPerMicroBatch(TransformerConfig c, ActivationRecompute r, Precision precision) {
        long bytes = savedBytes(c, r, precision, LAYERS);
        if (c.mtp() != null) {   // the MTP depths share among themselves as the decoder's layers do
            bytes += savedBytes(c, r, precision, c.mtpNumLayers());
        }
        return bytes;
    }

    /** The bytes {@code layers} layers sharing one set save: {@code layers - 1} sets, and one more norm output. */
    private static long savedBytes(TransformerConfig c, ActivationRecompute r, Precision precision, int layers) {
        long e = precision.computeDtype().byteSize();
        long tokens = (long) S * B;
        long bytes = 0;
        if (r.recomputes(Module.LAYERNORM)) {
            bytes += (2L * layers - 1) * tokens * c.hiddenSize() * e;
        }
        boolean dense = false;   // some layer is dense: then every layer has the dense MLP's buffers
        for (int l = 0; l < c.numLayers(); l++) {
            dense |= !c.isMoeLayer(l);
        }
        if (r.recomputes(Module.MLP) && dense) {
            bytes += (layers - 1L) * tokens * (c.fc1Width() + c.ffnHiddenSize()) * e;
        }
        if (r.recomputes(Module.MLA_UP_PROJ)) {   // q, k, v: np heads each of qk_head_dim + qk_pos_emb_head_dim
            bytes += (layers - 1L) * tokens * 3 * c.numAttentionHeads() * (c.mla().qkHeadDim() + c.mla().qkPosEmbHeadDim())
                    * e;
        }
        if (c.moe() != null && r.recomputes(Module.MOE)) {   // every layer has the MoE buffers when some layer is MoE
            bytes += (layers - 1L) * moeBytes(c, precision, tokens);
        } else if (c.moe() != null) {
            long rows = new org.megatronj.model.layers.TopKRouter(c.moe(), precision.computeDtype()).maxRows(tokens, 1);
            if (r.recomputes(Module.MOE_ACT)) {
                bytes += (layers - 1L) * rows * c.moe().ffnHiddenSize() * e;
            }
            if (r.recomputes(Module.SHARED_EXPERTS)) {
                bytes += (layers - 1L) * tokens * (c.sharedExpertFc1Width() + c.moe().sharedExpertIntermediateSize()) * e;
            }
        }
        return bytes;
    }

    /**
     * One layer's MoeActivations: the permuted inputs [R, h], fc1 [R, fc1] and activation [R, ffn] outputs, the rows'
     * tokens (I32) and weights (F32) [R], the token rows (I32) [slots n], the shared experts' fc1 and activation outputs
     * [n, .], and with the shared gate its output [n, h] and scores (F32) [n].
     */
    private static long moeBytes(TransformerConfig c, Precision precision, long n) {
        long e = precision.computeDtype().byteSize();
        long rows = new org.megatronj.model.layers.TopKRouter(c.moe(), precision.computeDtype()).maxRows(n, 1);
        long bytes = rows * (c.hiddenSize() + c.expertFc1Width() + c.moe().ffnHiddenSize()) * e + rows * 4 + rows * 4
                + c.moe().routerTopk() * n * 4;
        int shared = c.moe().sharedExpertIntermediateSize();
        if (shared > 0) {
            bytes += n * (c.sharedExpertFc1Width() + shared) * e;
        }
        if (c.moe().sharedExpertGate()) {
            bytes += n * c.hiddenSize() * e + n * 4;
        }
        return bytes;
    }

    @Test
    void defaultIsCoreAttentionAndStoresAsBefore() {
        assertEquals(ActivationRecompute.DEFAULT_MODULES, ActivationRecompute.selective().modules());
        assertEquals(java.util.Set.of(Module.CORE_ATTN), ActivationRecompute.selective().modules());
        assertEquals(org.megatronj.model.layers.SelectiveRecompute.NONE, ActivationRecompute.selective().layerRecompute());
        assertEquals(org.megatronj.model.layers.SelectiveRecompute.NONE,
                ActivationRecompute.full(ActivationRecompute.Method.UNIFORM, 1).layerRecompute());
    }

    @Test
    void refusesUnknownModulesInMegatronsWords() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ActivationRecompute.selective(List.of("mlp", "attention")));
        assertEquals("Invalid choices for recompute_modules: {'attention'}. Allowed modules are: {'core_attn', 'moe_act',"
                + " 'layernorm', 'mla_up_proj', 'mlp', 'moe', 'shared_experts', 'gdn_norm_out', 'gdp_in_proj', 'gdp_qkv',"
                + " 'mhc'}", e.getMessage());
    }
}
