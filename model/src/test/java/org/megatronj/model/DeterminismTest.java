package org.megatronj.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.megatronj.memory.Backend;
import org.megatronj.memory.cpu.CpuBackend;

/**
 * A GPT forward-backward on the vector CPU backend gives the same loss and gradients, bit for
 * bit, before and after the JIT has compiled its kernels: the first step runs largely
 * interpreted, then many steps warm the kernels up, then the first step is repeated on a fresh
 * model with the same seed. This is what lets a resumed run reproduce an uninterrupted one.
 */
class DeterminismTest {
    private static final int WARM_UP_STEPS = 150;
    private static CpuBackend backend;

    @BeforeAll
    static void start() {
        backend = new CpuBackend(2, true); // the vector kernels, work split over threads
    }

    @AfterAll
    static void stop() {
        backend.close();
    }

    private static TransformerConfig config(boolean llamaStyle) {
        // hidden 40 and head size 20: every vector loop has full vectors and a tail on any width
        TransformerConfig.Builder b = TransformerConfig.builder().numLayers(2).hiddenSize(40).numAttentionHeads(2)
                .seqLength(12).maxPositionEmbeddings(16).vocabSize(100).makeVocabSizeDivisibleBy(8)
                .attentionDropout(0).hiddenDropout(0.1f);
        if (llamaStyle) {
            b.normalization(Normalization.RMS_NORM).swiglu(true).positionEmbeddingType(PositionEmbeddingType.ROPE)
                    .numQueryGroups(1).ffnHiddenSize(72);
        }
        return b.build();
    }

    /** One forward-backward's loss and parameter gradients. */
    record Step(double loss, List<float[]> grads) {
    }

    private static Step step(TransformerConfig c, MicroBatch batch) {
        return step(c, backend, batch);
    }

    /** A fresh model (seed 1234) on {@code backend}: one forward-backward of {@code batch}. */
    static Step step(TransformerConfig c, Backend backend, MicroBatch batch) {
        try (GPTModel model = new GPTModel(c, backend, 1234)) {
            model.zeroGrad();
            double loss = model.forwardBackward(batch, 1f, 7).lossSum();
            List<float[]> grads = new ArrayList<>();
            for (Parameter p : model.parameters()) {
                grads.add(p.grad().toFloatArray());
            }
            return new Step(loss, grads);
        }
    }

    @ParameterizedTest(name = "llama-style={0}")
    @ValueSource(booleans = {false, true})
    void sameBitsBeforeAndAfterWarmUp(boolean llamaStyle) {
        TransformerConfig c = config(llamaStyle);
        MicroBatch batch = GPTModelTest.randomBatch(2, 12, c.vocabSize(), 5);
        Step cold = step(c, batch);
        try (GPTModel model = new GPTModel(c, backend, 99)) {
            // one sequence (12 rows: the few-rows gemm) and two (24 rows: the blocked gemm) in turn
            MicroBatch one = GPTModelTest.randomBatch(1, 12, c.vocabSize(), 6);
            MicroBatch two = GPTModelTest.randomBatch(2, 12, c.vocabSize(), 8);
            for (int i = 0; i < WARM_UP_STEPS; i++) {
                model.zeroGrad();
                model.forwardBackward(i % 2 == 0 ? one : two, 1f, i);
            }
        }
        Step warm = step(c, batch);
        assertSameBits(cold, warm, "before warm-up", "after");
    }

    /** Loss and every gradient element of {@code a} and {@code b} are the same bits. */
    static void assertSameBits(Step a, Step b, String aName, String bName) {
        assertEquals(Double.doubleToRawLongBits(a.loss()), Double.doubleToRawLongBits(b.loss()),
                "loss " + a.loss() + " " + aName + ", " + b.loss() + " " + bName);
        assertEquals(a.grads().size(), b.grads().size(), "parameter count");
        for (int p = 0; p < a.grads().size(); p++) {
            float[] x = a.grads().get(p);
            float[] y = b.grads().get(p);
            assertEquals(x.length, y.length, "size of gradient " + p);
            for (int i = 0; i < x.length; i++) {
                if (Float.floatToRawIntBits(x[i]) != Float.floatToRawIntBits(y[i])) {
                    fail("gradient of parameter " + p + " element " + i + ": " + x[i] + " " + aName + ", " + y[i] + " " + bName);
                }
            }
        }
    }
}
