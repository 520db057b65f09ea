package org.megatronj.cli.serve;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.megatronj.model.generate.Sampler;

import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GenerationEngineTest {
    static final int VOCAB = 40;
    static final int EOD = 39;
    static TinyGpt gpt;

    @BeforeAll
    static void model() {
        gpt = new TinyGpt(VOCAB, 48, 7);
    }

    @AfterAll
    static void close() {
        gpt.close();
    }

    static GenerationEngine engine(SpecialTokens special) {
        return new GenerationEngine(gpt.model, special);
    }

    static SpecialTokens plain() {
        return new SpecialTokens(EOD, -1, -1, -1);
    }

    /** Megatron's request defaults with top_k=1 (greedy) and the given fields. */
    static GenerationRequest greedy(int n, boolean logprobs) {
        return new GenerationRequest(List.of("unused"), n, logprobs, 1.0, 1, 0.0, 0.0, 0.0, false, false, false, false,
                -1, true, null, null, 1.0);
    }

    static GenerationRequest sampling(int n, int topK, double topP, double decay, double bound, long seed) {
        return new GenerationRequest(List.of("unused"), n, false, 0.9, topK, topP, decay, bound, false, false, false,
                false, seed, true, null, null, 1.0);
    }

    static final int[][] PROMPTS = {{3, 14, 15, 9, 2, 6}, {5, 3}, {8, 9, 7, 9}};

    @Test
    void greedyBatchEqualsRepeatedFullForwardArgmax() {
        int n = 7;
        GenerationOutput out = engine(plain()).generate(List.of(new GenerationJob(greedy(n, false), PROMPTS, 1))).getFirst();
        int length = 6 + n;   // Megatron pads every prompt to the longest plus tokens_to_generate
        for (int i = 0; i < PROMPTS.length; i++) {
            assertArrayEquals(gpt.greedyReference(PROMPTS[i], length, EOD), out.tokens()[i], "prompt " + i);
        }
        assertNull(out.logprobs());
    }

    @Test
    void logprobsEqualLogSoftmaxOfFullForward() {
        GenerationOutput out = engine(plain()).generate(List.of(new GenerationJob(greedy(5, true), PROMPTS, 1))).getFirst();
        for (int i = 0; i < PROMPTS.length; i++) {
            int[] tokens = out.tokens()[i];
            double[] expected = gpt.logprobReference(tokens);
            assertEquals(tokens.length - 1, out.logprobs()[i].length);
            for (int j = 0; j < expected.length; j++) {
                assertEquals(expected[j], out.logprobs()[i][j], 2e-4, "prompt " + i + ", position " + j);
            }
        }
    }

    @Test
    void scoringOnlyReturnsPromptLogprobs() {
        GenerationOutput out = engine(plain()).generate(List.of(new GenerationJob(greedy(0, true), PROMPTS, 1))).getFirst();
        for (int i = 0; i < PROMPTS.length; i++) {
            assertArrayEquals(PROMPTS[i], out.tokens()[i]);
            double[] expected = gpt.logprobReference(PROMPTS[i]);
            assertEquals(expected.length, out.logprobs()[i].length);
            for (int j = 0; j < expected.length; j++) {
                assertEquals(expected[j], out.logprobs()[i][j], 2e-4);
            }
        }
    }

    @Test
    void longPromptsAreEncodedInChunks() {
        try (TinyGpt big = new TinyGpt(VOCAB, 2 * GenerationEngine.PREFILL_CHUNK + 16, 9)) {
            int[] prompt = new int[GenerationEngine.PREFILL_CHUNK + 20];   // two prefill chunks
            for (int i = 0; i < prompt.length; i++) {
                prompt[i] = (i * 7 + 3) % (VOCAB - 1);
            }
            GenerationOutput out = new GenerationEngine(big.model, plain())
                    .generate(List.of(new GenerationJob(greedy(4, true), new int[][] {prompt, {1, 2}}, 1))).getFirst();
            assertArrayEquals(big.greedyReference(prompt, prompt.length + 4, EOD), out.tokens()[0]);
            assertArrayEquals(big.greedyReference(new int[] {1, 2}, prompt.length + 4, EOD), out.tokens()[1]);
            for (int i = 0; i < 2; i++) {
                double[] expected = big.logprobReference(out.tokens()[i]);
                assertEquals(expected.length, out.logprobs()[i].length);
                for (int j = 0; j < expected.length; j++) {
                    assertEquals(expected[j], out.logprobs()[i][j], 2e-4, "sequence " + i + ", position " + j);
                }
            }
        }
    }

    @Test
    void aJobGetsTheSameTokensAloneOrBatchedWithOthers() {
        GenerationJob a = new GenerationJob(sampling(6, 0, 0.9, 0.8, 0.3, 11), PROMPTS, 11);
        GenerationJob b = new GenerationJob(sampling(3, 5, 0.0, 0.0, 0.0, 12), new int[][] {{1, 2, 3, 4, 5, 6, 7, 8}}, 12);
        GenerationOutput alone = engine(plain()).generate(List.of(a)).getFirst();
        List<GenerationOutput> together = engine(plain()).generate(List.of(b, a));
        for (int i = 0; i < PROMPTS.length; i++) {
            assertArrayEquals(alone.tokens()[i], together.get(1).tokens()[i]);
        }
        assertEquals(8 + 3, together.get(0).tokens()[0].length);
        GenerationOutput otherSeed = engine(plain()).generate(List.of(new GenerationJob(a.request(), PROMPTS, 99))).getFirst();
        assertTrue(!Arrays.deepEquals(alone.tokens(), otherSeed.tokens()), "a different seed should sample differently");
    }

    @Test
    void stopTokenEndsASequenceAndIsIncluded() {
        int[] prompt = {4, 5, 6};
        int first = gpt.greedyReference(prompt, 4, -1)[3];
        GenerationOutput eod = engine(new SpecialTokens(first, -1, -1, -1))
                .generate(List.of(new GenerationJob(greedy(5, false), new int[][] {prompt}, 1))).getFirst();
        assertArrayEquals(new int[] {4, 5, 6, first}, eod.tokens()[0]);
        GenerationRequest eol = new GenerationRequest(List.of("x"), 5, false, 1.0, 1, 0.0, 0.0, 0.0, false, true, false,
                false, -1, true, null, null, 1.0);
        GenerationOutput stopped = engine(new SpecialTokens(EOD, first, -1, -1))
                .generate(List.of(new GenerationJob(eol, new int[][] {prompt}, 1))).getFirst();
        assertArrayEquals(new int[] {4, 5, 6, first}, stopped.tokens()[0]);
        GenerationRequest doubleEol = new GenerationRequest(List.of("x"), 5, false, 1.0, 1, 0.0, 0.0, 0.0, false, false,
                true, false, -1, true, null, null, 1.0);
        GenerationOutput blankLine = engine(new SpecialTokens(EOD, -1, first, -1))
                .generate(List.of(new GenerationJob(doubleEol, new int[][] {prompt}, 1))).getFirst();
        assertArrayEquals(new int[] {4, 5, 6, first}, blankLine.tokens()[0]);
        // Two newline tokens in a row also end it: with "\n" = the prompt's last token, the first generated one is the second.
        int[] ending = {4, 5, first};
        int next = gpt.greedyReference(ending, 4, -1)[3];
        GenerationOutput twoNewlines = engine(new SpecialTokens(EOD, next, -1, -1))
                .generate(List.of(new GenerationJob(doubleEol, new int[][] {{4, 5, next}}, 1))).getFirst();
        int[] expected = gpt.greedyReference(new int[] {4, 5, next}, 4, -1);
        assertEquals(expected[3] == next ? 4 : 8, twoNewlines.tokens()[0].length);
    }

    @Test
    void noNewlineAfterColon() {
        int[] prompt = {4, 5, 6};
        int first = gpt.greedyReference(prompt, 4, -1)[3];
        GenerationRequest r = new GenerationRequest(List.of("x"), 1, false, 1.0, 1, 0.0, 0.0, 0.0, false, false, false,
                true, -1, true, null, null, 1.0);
        GenerationOutput out = engine(new SpecialTokens(EOD, first, -1, 6))   // ":" = 6, "\n" = the greedy choice
                .generate(List.of(new GenerationJob(r, new int[][] {prompt}, 1))).getFirst();
        assertNotEquals(first, out.tokens()[0][3]);
    }

    @Test
    void samplerFiltersFollowMegatron() {
        float[] logits = {0f, 3f, 1f, 2.5f, -1f};
        java.util.SplittableRandom random = new java.util.SplittableRandom(3);
        for (int i = 0; i < 200; i++) {
            int k2 = Sampler.sample(logits, 0, 5, 1.0, 2, 0.0, random);
            assertTrue(k2 == 1 || k2 == 3, "top-k 2 drew " + k2);
            assertEquals(1, Sampler.sample(logits, 0, 5, 1.0, 0, 0.05, random), "a tiny top-p keeps the best token only");
            int p = Sampler.sample(logits, 0, 5, 1.0, 0, 0.5, random);   // p(1) ~ 0.55 > 0.5: the shift keeps only it
            assertEquals(1, p);
            int p2 = Sampler.sample(logits, 0, 5, 1.0, 0, 0.6, random);
            assertTrue(p2 == 1 || p2 == 3, "top-p 0.6 drew " + p2);
        }
        assertEquals(1, Sampler.sample(logits, 0, 5, 50.0, 1, 0.0, random), "top_k 1 is greedy at any temperature");
    }
}
