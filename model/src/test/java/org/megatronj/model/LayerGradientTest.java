package org.megatronj.model;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.memory.cpu.CpuBackend;
import org.megatronj.model.GradientCheck.Wrt;
import org.megatronj.model.layers.DropoutKey;
import org.megatronj.model.layers.LanguageModelLoss;
import org.megatronj.model.layers.LayerActivations;
import org.megatronj.model.layers.Linear;
import org.megatronj.model.layers.Mlp;
import org.megatronj.model.layers.Norm;
import org.megatronj.model.layers.SelfAttention;
import org.megatronj.model.layers.TransformerLayer;
import org.megatronj.model.layers.Workspace;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** Every layer's backward against central finite differences, on both architecture families. */
class LayerGradientTest {
    static final int S = 5;
    private static final int B = 2;
    private static final double TOLERANCE = 2e-3;
    private static Backend backend;

    @BeforeAll
    static void start() {
        backend = new CpuBackend();
    }

    @AfterAll
    static void stop() {
        backend.close();
    }

    /** GPT-2 family: learned positions, LayerNorm, gelu, biases, MHA. */
    static TransformerConfig gpt2Like(float hiddenDropout) {
        return gpt2Like(hiddenDropout, 0);
    }

    static TransformerConfig gpt2Like(float hiddenDropout, float attentionDropout) {
        return TransformerConfig.builder().numLayers(2).hiddenSize(16).numAttentionHeads(2).seqLength(S)
                .maxPositionEmbeddings(8).vocabSize(20).makeVocabSizeDivisibleBy(8)
                .attentionDropout(attentionDropout).hiddenDropout(hiddenDropout).build();
    }

    /** Llama family: rope on half the head dim, RMSNorm, swiglu, no biases, GQA 4 heads / 2 groups, untied. */
    static TransformerConfig llamaLike(float hiddenDropout) {
        return llamaLike(hiddenDropout, 0);
    }

    static TransformerConfig llamaLike(float hiddenDropout, float attentionDropout) {
        return TransformerConfig.builder().numLayers(2).hiddenSize(16).numAttentionHeads(4).numQueryGroups(2)
                .ffnHiddenSize(24).seqLength(S).positionEmbeddingType(PositionEmbeddingType.ROPE).rotaryPercent(0.5f)
                .normalization(Normalization.RMS_NORM).swiglu(true).addBiasLinear(false)
                .untieEmbeddingsAndOutputWeights(true).vocabSize(20).makeVocabSizeDivisibleBy(8)
                .attentionDropout(attentionDropout).hiddenDropout(hiddenDropout).build();
    }

    /** Multi-query attention (one key/value head), rope on the whole head, exact-erf gelu, untied output. */
    static TransformerConfig mqaErfGelu(float hiddenDropout) {
        return mqaErfGelu(hiddenDropout, 0);
    }

    static TransformerConfig mqaErfGelu(float hiddenDropout, float attentionDropout) {
        return TransformerConfig.builder().numLayers(2).hiddenSize(16).numAttentionHeads(4).numQueryGroups(1)
                .seqLength(S).positionEmbeddingType(PositionEmbeddingType.ROPE).geluTanh(false)
                .untieEmbeddingsAndOutputWeights(true).vocabSize(20).makeVocabSizeDivisibleBy(8)
                .attentionDropout(attentionDropout).hiddenDropout(hiddenDropout).build();
    }

    /**
     * Multi-latent attention: 4 heads of 4 content + 2 rotary channels, values of 4, a query latent of 8 and a kv latent
     * of 6, RMSNorm latent norms, YaRN of scale 4 with a concentration factor and softmax mscale, swiglu, no biases.
     */
    static TransformerConfig mlaLike(float hiddenDropout, float attentionDropout) {
        return TransformerConfig.builder().numLayers(2).hiddenSize(16).numAttentionHeads(4).ffnHiddenSize(24).seqLength(S)
                .positionEmbeddingType(PositionEmbeddingType.ROPE).normalization(Normalization.RMS_NORM).swiglu(true)
                .addBiasLinear(false).qkLayernorm(true).vocabSize(20).makeVocabSizeDivisibleBy(8)
                .mla(MlaConfig.of(8, 6, 4, 2, 4).withRope(MlaConfig.RopeType.YARN, 4f, 1f, 0.5f))
                .attentionDropout(attentionDropout).hiddenDropout(hiddenDropout).build();
    }

    /** Non-trivial values everywhere (biases and norm weights too), so every term of every gradient shows. */
    static void randomize(GPTModel model, long seed) {
        Random r = new Random(seed);
        for (Parameter p : model.parameters()) {
            Tensor t = p.data();
            boolean matrix = t.rank() == 2;
            boolean normWeight = p.name().endsWith("layernorm.weight");
            double std = matrix ? 1.0 / Math.sqrt(t.dim(1)) : 0.2;
            for (long i = 0; i < t.numel(); i++) {
                t.setFloat(i, (float) ((normWeight ? 1 : 0) + std * r.nextGaussian()));
            }
        }
    }

    static Tensor random(TensorArena arena, long seed, long... shape) {
        Tensor t = arena.allocate(DType.F32, shape);
        Random r = new Random(seed);
        for (long i = 0; i < t.numel(); i++) {
            t.setFloat(i, (float) r.nextGaussian());
        }
        return t;
    }

    static List<Wrt> withParameters(List<Wrt> wrts, Parameter... params) {
        List<Wrt> all = new ArrayList<>(wrts);
        for (Parameter p : params) {
            if (p != null) {
                all.add(new Wrt(p.name(), p.data(), p.grad()));
            }
        }
        return all;
    }

    @Test
    void linearAndNorms() {
        for (TransformerConfig c : List.of(gpt2Like(0), llamaLike(0))) {
            try (GPTModel model = new GPTModel(c, backend, 1); TensorArena arena = TensorArena.named("test")) {
                randomize(model, 2);
                int h = c.hiddenSize();
                Linear fc1 = ((Mlp) model.layers().getFirst().mlp()).linearFc1();
                Tensor x = random(arena, 3, S, B, h);
                Tensor y = arena.allocate(DType.F32, S, B, c.fc1Width());
                Tensor dy = arena.allocate(DType.F32, S, B, c.fc1Width());
                Tensor dx = arena.allocate(DType.F32, S, B, h);
                double e1 = new GradientCheck(y, () -> fc1.forward(x, y), dy, model::zeroGrad,
                        () -> fc1.backward(dy, x, dx), 4)
                        .check(withParameters(List.of(new Wrt("x", x, dx)), fc1.weight(), fc1.bias()), 40, TOLERANCE);

                Norm norm = model.finalLayernorm();
                Tensor z = arena.allocate(DType.F32, S, B, h);
                Tensor mean = arena.allocate(DType.F32, S, B);
                Tensor rstd = arena.allocate(DType.F32, S, B);
                Tensor dz = arena.allocate(DType.F32, S, B, h);
                Parameter w = model.parameter("decoder.final_layernorm.weight");
                Parameter bias = c.normalization() == Normalization.LAYER_NORM ? model.parameter("decoder.final_layernorm.bias") : null;
                double e2 = new GradientCheck(z, () -> norm.forward(x, z, mean, rstd), dz, model::zeroGrad,
                        () -> norm.backward(dz, x, mean, rstd, dx), 5)
                        .check(withParameters(List.of(new Wrt("x", x, dx)), w, bias), 40, TOLERANCE);
                System.err.printf("%s: linear %.2e, %s %.2e%n", c.positionEmbeddingType(), e1, c.normalization(), e2);
            }
        }
    }

    @Test
    void embeddingWithDropout() {
        for (TransformerConfig c : List.of(gpt2Like(0.3f), llamaLike(0.3f))) {
            try (GPTModel model = new GPTModel(c, backend, 1); TensorArena arena = TensorArena.named("test")) {
                randomize(model, 2);
                Tensor tokens = arena.fromInts(new int[] {1, 5, 7, 1, 19, 3, 0, 2, 2, 9}, S, B);
                Tensor positions = arena.fromInts(new int[] {0, 0, 1, 1, 2, 2, 3, 3, 4, 4}, S, B);
                Tensor out = arena.allocate(DType.F32, S, B, c.hiddenSize());
                Tensor scratch = arena.allocate(DType.F32, S, B, c.hiddenSize());
                Tensor dOut = arena.allocate(DType.F32, S, B, c.hiddenSize());
                DropoutKey key = DropoutKey.forMicroBatch(3, 4);
                List<Wrt> wrts = withParameters(List.of(), model.parameter("embedding.word_embeddings.weight"),
                        c.positionEmbeddingType() == PositionEmbeddingType.LEARNED_ABSOLUTE
                                ? model.parameter("embedding.position_embeddings.weight") : null);
                double e = new GradientCheck(out, () -> model.embedding().forward(tokens, positions, out, scratch, key), dOut,
                        model::zeroGrad, () -> model.embedding().backward(tokens, positions, dOut, scratch, key), 6)
                        .check(wrts, 60, TOLERANCE);
                System.err.printf("embedding %s: %.2e%n", c.positionEmbeddingType(), e);
            }
        }
    }

    @Test
    void attentionAndMlp() {
        for (TransformerConfig c : List.of(gpt2Like(0), llamaLike(0), mqaErfGelu(0))) {
            try (GPTModel model = new GPTModel(c, backend, 1); TensorArena arena = TensorArena.named("test")) {
                randomize(model, 2);
                int h = c.hiddenSize();
                LayerActivations a = LayerActivations.allocate(backend, arena, c, S, B);
                Workspace ws = Workspace.allocate(backend, arena, c, S, B);
                Tensor x = random(arena, 3, S, B, h);
                Tensor out = arena.allocate(DType.F32, S, B, h);
                Tensor dOut = arena.allocate(DType.F32, S, B, h);
                Tensor dx = arena.allocate(DType.F32, S, B, h);
                SelfAttention attention = (SelfAttention) model.layers().getFirst().selfAttention();
                double e1 = new GradientCheck(out, () -> attention.forward(x, out, a, ws, null, 0, null, null), dOut, model::zeroGrad,
                        () -> attention.backward(dOut, x, dx, a, ws, null, null), 7)
                        .check(withParameters(List.of(new Wrt("x", x, dx)),
                                attention.linearQkv().weight(), attention.linearQkv().bias(),
                                attention.linearProj().weight(), attention.linearProj().bias()), 30, TOLERANCE);
                Mlp mlp = (Mlp) model.layers().getFirst().mlp();
                double e2 = new GradientCheck(out, () -> mlp.forward(x, out, a), dOut, model::zeroGrad,
                        () -> mlp.backward(dOut, x, dx, a, ws), 8)
                        .check(withParameters(List.of(new Wrt("x", x, dx)),
                                mlp.linearFc1().weight(), mlp.linearFc1().bias(),
                                mlp.linearFc2().weight(), mlp.linearFc2().bias()), 30, TOLERANCE);
                System.err.printf("%s: attention %.2e, mlp %.2e%n", c.positionEmbeddingType(), e1, e2);
            }
        }
    }

    @Test
    void transformerLayerWithDropout() {
        transformerLayerGradients(List.of(gpt2Like(0.2f), llamaLike(0.2f), mqaErfGelu(0.2f)));
    }

    /** Attention dropout (inside the attention op) as well as the hidden dropouts, MHA, GQA and MQA. */
    @Test
    void transformerLayerWithAttentionDropout() {
        transformerLayerGradients(List.of(gpt2Like(0.2f, 0.3f), llamaLike(0.2f, 0.3f), mqaErfGelu(0f, 0.3f)));
    }

    /**
     * {@code --qk-layernorm}: RMSNorm over rope'd GQA heads, LayerNorm with attention dropout over learned positions, and
     * zero-centred weights over MQA; the q/k norm weights are among the layer's parameters checked.
     */
    @Test
    void transformerLayerWithQkLayernorm() {
        transformerLayerGradients(List.of(llamaLike(0.1f).toBuilder().qkLayernorm(true).build(),
                gpt2Like(0f, 0.3f).toBuilder().qkLayernorm(true).build(),
                mqaErfGelu(0f).toBuilder().qkLayernorm(true).applyLayernorm1p(true).build()));
    }

    /**
     * {@code --squared-relu} in the MLP: with biases (GPT-2 family) and without them behind RMSNorm and rope (the Llama
     * family's layout with squared ReLU for SwiGLU, as Nemotron's), fc1 and fc2 among the parameters checked.
     */
    @Test
    void transformerLayerWithSquaredRelu() {
        transformerLayerGradients(List.of(gpt2Like(0f).toBuilder().squaredRelu(true).build(),
                llamaLike(0.1f).toBuilder().swiglu(false).squaredRelu(true).build()));
    }

    /** {@code --rotary-interleaved}: rope on neighbouring channel pairs, over half the head (GQA) and the whole head (MQA). */
    @Test
    void transformerLayerWithInterleavedRope() {
        transformerLayerGradients(List.of(llamaLike(0.1f).toBuilder().rotaryInterleaved(true).build(),
                mqaErfGelu(0f, 0.3f).toBuilder().rotaryInterleaved(true).build()));
    }

    /**
     * {@code --multi-latent-attention}: with a query latent, YaRN and RMSNorm latent norms; without a query latent or
     * norms, plain rope, values narrower than the query/key heads, LayerNorm, biases and attention dropout.
     */
    @Test
    void transformerLayerWithMultiLatentAttention() {
        transformerLayerGradients(List.of(mlaLike(0.1f, 0f),
                mlaLike(0f, 0.3f).toBuilder().normalization(Normalization.LAYER_NORM).qkLayernorm(false).addBiasLinear(true)
                        .mla(MlaConfig.of(0, 6, 4, 2, 2).withRope(MlaConfig.RopeType.ROPE, 1f, 1f, 0f)).build()));
    }

    private static void transformerLayerGradients(List<TransformerConfig> configs) {
        for (TransformerConfig c : configs) {
            try (GPTModel model = new GPTModel(c, backend, 1); TensorArena arena = TensorArena.named("test")) {
                randomize(model, 2);
                int h = c.hiddenSize();
                LayerActivations a = LayerActivations.allocate(backend, arena, c, S, B);
                Workspace ws = Workspace.allocate(backend, arena, c, S, B);
                Tensor input = random(arena, 3, S, B, h);
                Tensor output = arena.allocate(DType.F32, S, B, h);
                Tensor dx = arena.allocate(DType.F32, S, B, h);
                TransformerLayer layer = model.layers().get(1);
                DropoutKey k1 = DropoutKey.forMicroBatch(5, 0).site(3);
                DropoutKey k2 = DropoutKey.forMicroBatch(5, 0).site(4);
                DropoutKey probs = DropoutKey.forMicroBatch(5, 0).attentionProbabilities(1);
                List<Wrt> wrts = new ArrayList<>(List.of(new Wrt("input", input, dx)));
                for (Parameter p : model.parameters()) {
                    // a bias added to every key shifts a query's scores alike: softmax cancels it, its gradient is 0, and a
                    // finite difference measures only rounding there
                    if (p.name().startsWith("decoder.layers.1.") && !p.name().endsWith("k_layernorm.bias")) {
                        wrts.add(new Wrt(p.name(), p.data(), p.grad()));
                    }
                }
                double e = new GradientCheck(output, () -> layer.forward(input, output, a, ws, probs, k1, k2, null, null, 0), dx,
                        model::zeroGrad, () -> layer.backward(dx, input, a, ws, probs, k1, k2, null), 9).check(wrts, 25, TOLERANCE);
                System.err.printf("layer %s (attention dropout %s): %.2e%n", c.positionEmbeddingType(), c.attentionDropout(), e);
            }
        }
    }

    @Test
    void languageModelLoss() {
        int n = 6;
        int v = 10;
        try (TensorArena arena = TensorArena.named("test")) {
            Tensor logits = random(arena, 1, n, v);
            Tensor work = arena.allocate(DType.F32, n, v);
            Tensor targets = arena.fromInts(new int[] {0, 3, 9, 9, 4, 1}, n);
            float[] mask = {1, 0, 1, 1, 0, 1};
            Tensor rowMax = arena.allocate(DType.F32, n);
            Tensor sumExp = arena.allocate(DType.F32, n);
            Tensor target = arena.allocate(DType.F32, n);
            Tensor loss = arena.allocate(DType.F32, n);
            Tensor dLoss = arena.allocate(DType.F32, n);
            LanguageModelLoss lm = new LanguageModelLoss(backend);
            java.util.function.DoubleSupplier mean = () -> {
                backend.copy(logits, work);
                return lm.forward(work, targets, mask, rowMax, sumExp, target, loss).meanLoss();
            };
            mean.getAsDouble();
            float gradScale = 0.5f;
            lm.backward(work, targets, mask, gradScale, rowMax, sumExp, dLoss);
            float[] analytic = work.toFloatArray();
            for (int i = 0; i < n * v; i++) {
                float original = logits.getFloat(i);
                logits.setFloat(i, original + 1e-2f);
                double plus = mean.getAsDouble();
                logits.setFloat(i, original - 1e-2f);
                double minus = mean.getAsDouble();
                logits.setFloat(i, original);
                double numeric = gradScale * (plus - minus) / 2e-2;
                assertTrue(Math.abs(numeric - analytic[i]) < 1e-4, "dLogits[" + i + "]: analytic " + analytic[i]
                        + ", numeric " + numeric);
            }
        }
    }
}
