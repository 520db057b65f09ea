package org.megatronj.model;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.megatronj.memory.Backend;
import org.megatronj.memory.cpu.CpuBackend;
import org.megatronj.model.generate.GenerationParams;
import org.megatronj.model.generate.GenerationResult;
import org.megatronj.model.generate.TextGenerator;

import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** KV-cached generation against full-sequence forwards, batching, sampling filters and stop rules. */
class TextGeneratorTest {
    private static Backend backend;

    @BeforeAll
    static void start() {
        backend = new CpuBackend();
    }

    @AfterAll
    static void stop() {
        backend.close();
    }

    private static TransformerConfig withMaxPositions(TransformerConfig c, int maxPositions) {
        return c.toBuilder().seqLength(Math.min(c.seqLength(), maxPositions)).maxPositionEmbeddings(maxPositions).build();
    }

    @Test
    void greedyEqualsArgmaxOfFullForwards() {
        for (TransformerConfig base : List.of(LayerGradientTest.gpt2Like(0.1f), LayerGradientTest.llamaLike(0.1f),
                LayerGradientTest.mqaErfGelu(0.1f), LayerGradientTest.llamaLike(0.1f).toBuilder().qkLayernorm(true).build(),
                LayerGradientTest.llamaLike(0.1f).toBuilder().moe(MoeConfig.of(4, 16).withLayerFreq("[0,1]")
                        .withSharedExperts(8, false)).build(), LayerGradientTest.mlaLike(0.1f, 0f),
                LayerGradientTest.mlaLike(0.1f, 0f).toBuilder().qkLayernorm(false)
                        .mla(MlaConfig.of(0, 6, 4, 2, 2).withRope(MlaConfig.RopeType.ROPE, 1f, 1f, 0f)).build())) {
            TransformerConfig c = withMaxPositions(base, 16);
            try (GPTModel model = new GPTModel(c, backend, 3)) {
                LayerGradientTest.randomize(model, 4);
                int[] prompt = {3, 17, 5};
                GenerationResult result = new TextGenerator(model).generate(prompt, GenerationParams.greedy(8));
                assertEquals(8, result.tokens().length);
                assertEquals(GenerationResult.StopReason.MAX_TOKENS, result.reason());
                int[] sequence = Arrays.copyOf(prompt, prompt.length + result.tokens().length);
                int v = c.paddedVocabSize();
                for (int k = 0; k < result.tokens().length; k++) {
                    int length = prompt.length + k;
                    float[] logits = model.forwardLogits(Arrays.copyOf(sequence, length), null, 1, length);
                    int offset = (length - 1) * v;
                    int best = 0;
                    double max = Double.NEGATIVE_INFINITY;
                    for (int i = 0; i < c.vocabSize(); i++) {
                        if (logits[offset + i] > max) {
                            max = logits[offset + i];
                            best = i;
                        }
                    }
                    assertEquals(best, result.tokens()[k], c.positionEmbeddingType() + ": token " + k);
                    double sum = 0;
                    for (int i = 0; i < v; i++) {
                        sum += Math.exp(logits[offset + i] - max);
                    }
                    assertEquals(-Math.log(sum), result.logProbs()[k], 2e-5, "log-prob of token " + k);
                    sequence[length] = best;
                }
            }
        }
    }

    @Test
    void bf16GreedyEqualsArgmaxOfBf16FullForwards() {
        // Wide enough (h 64, ffn 256, vocab 200) for the vector bf16 paths of the small-rows gemm; the decoder
        // computes with the same bf16 weights, activations and KV cache as the full forward, F32 logits.
        TransformerConfig c = TransformerConfig.builder().numLayers(2).hiddenSize(64).numAttentionHeads(4).seqLength(24)
                .maxPositionEmbeddings(24).vocabSize(200).makeVocabSizeDivisibleBy(8).attentionDropout(0).hiddenDropout(0)
                .build();
        try (GPTModel model = new GPTModel(c, backend, 3, Precision.BF16)) {
            LayerGradientTest.randomize(model, 4);
            model.refreshComputeWeights();
            int[] prompt = {3, 17, 5, 190, 42};
            GenerationResult result = new TextGenerator(model).generate(prompt, GenerationParams.greedy(10));
            int[] sequence = Arrays.copyOf(prompt, prompt.length + result.tokens().length);
            int v = c.paddedVocabSize();
            for (int k = 0; k < result.tokens().length; k++) {
                int length = prompt.length + k;
                float[] logits = model.forwardLogits(Arrays.copyOf(sequence, length), null, 1, length);
                int offset = (length - 1) * v;
                int best = 0;
                for (int i = 1; i < c.vocabSize(); i++) {
                    if (logits[offset + i] > logits[offset + best]) {
                        best = i;
                    }
                }
                assertEquals(best, result.tokens()[k], "bf16 token " + k);
                sequence[length] = best;
            }
        }
    }

    @Test
    void batchOfPromptsOfDifferentLengthsMatchesOneByOne() {
        TransformerConfig c = withMaxPositions(LayerGradientTest.llamaLike(0), 24);
        try (GPTModel model = new GPTModel(c, backend, 3)) {
            LayerGradientTest.randomize(model, 5);
            TextGenerator generator = new TextGenerator(model);
            int[][] prompts = {{1, 2, 3, 4, 5, 6}, {7}, {9, 9, 9}};
            GenerationParams params = GenerationParams.sampling(6, 0.8f, 5, 0.9f, 11);
            GenerationResult[] together = generator.generate(prompts, params);
            GenerationResult[] greedyTogether = generator.generate(prompts, GenerationParams.greedy(6));
            for (int i = 0; i < prompts.length; i++) {
                assertEquals(6, together[i].tokens().length);
                GenerationResult greedyAlone = generator.generate(prompts[i], GenerationParams.greedy(6));
                assertArrayEquals(greedyAlone.tokens(), greedyTogether[i].tokens(), "prompt " + i);
                for (int k = 0; k < greedyAlone.logProbs().length; k++) {
                    assertEquals(greedyAlone.logProbs()[k], greedyTogether[i].logProbs()[k], 1e-5);
                }
            }
            // Sequence i samples from a stream seeded by (seed, i): the first prompt alone draws the same tokens.
            assertArrayEquals(generator.generate(prompts[0], params).tokens(), together[0].tokens());
            assertArrayEquals(together[1].tokens(), generator.generate(prompts, params)[1].tokens(), "seeded: reproducible");
        }
    }

    @Test
    void filtersAndStopRules() {
        TransformerConfig c = withMaxPositions(LayerGradientTest.gpt2Like(0), 8);
        try (GPTModel model = new GPTModel(c, backend, 3)) {
            LayerGradientTest.randomize(model, 6);
            TextGenerator generator = new TextGenerator(model);
            int[] prompt = {4, 2};
            int[] greedy = generator.generate(prompt, GenerationParams.greedy(4)).tokens();
            assertArrayEquals(greedy, generator.generate(prompt, GenerationParams.sampling(4, 1.5f, 1, 1f, 7)).tokens(),
                    "top-k 1 is greedy");
            assertArrayEquals(greedy, generator.generate(prompt, GenerationParams.sampling(4, 1f, 0, 1e-6f, 7)).tokens(),
                    "a tiny nucleus keeps only the most likely token");
            for (long seed = 0; seed < 5; seed++) {
                for (int t : generator.generate(prompt, GenerationParams.sampling(4, 2f, 0, 1f, seed)).tokens()) {
                    assertTrue(t < c.vocabSize(), "padded vocabulary entries are never sampled");
                }
            }
            int stop = greedy[1];
            int firstStop = greedy[0] == stop ? 0 : 1;
            GenerationResult stopped = generator.generate(prompt, GenerationParams.greedy(4, stop));
            assertArrayEquals(Arrays.copyOf(greedy, firstStop + 1), stopped.tokens(), "ends with the stop token");
            assertEquals(GenerationResult.StopReason.STOP_TOKEN, stopped.reason());
            GenerationResult full = generator.generate(prompt, GenerationParams.greedy(100));
            assertEquals(6, full.tokens().length, "8 positions hold 2 prompt tokens and 6 new ones");
            assertEquals(GenerationResult.StopReason.MAX_SEQUENCE_LENGTH, full.reason());
            assertEquals(0, generator.generate(prompt, GenerationParams.greedy(0)).tokens().length);
            var e = assertThrows(IllegalArgumentException.class,
                    () -> generator.generate(new int[] {1, 99}, GenerationParams.greedy(1)));
            assertTrue(e.getMessage().contains("position 1: token id 99"), e.getMessage());
        }
    }
}
