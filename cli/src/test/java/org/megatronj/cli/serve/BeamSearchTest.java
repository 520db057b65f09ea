package org.megatronj.cli.serve;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BeamSearchTest {
    static final int EOD = 29;
    static TinyGpt gpt;

    @BeforeAll
    static void model() {
        gpt = new TinyGpt(30, 32, 5);
    }

    @AfterAll
    static void close() {
        gpt.close();
    }

    static GenerationJob job(int[] prompt, int n, int width, int stopToken, double lengthPenalty) {
        GenerationRequest r = new GenerationRequest(List.of("x"), n, false, 1.0, 0, 0.0, 0.0, 0.0, false, false, false,
                false, -1, true, width, stopToken, lengthPenalty);
        return new GenerationJob(r, new int[][] {prompt}, 0);
    }

    @Test
    void widthOneIsGreedy() {
        int[] prompt = {3, 1, 4, 1, 5};
        GenerationOutput out = new BeamSearch(gpt.model, new SpecialTokens(EOD, -1, -1, -1)).search(job(prompt, 6, 1, -7, 1.0));
        int[] greedy = gpt.greedyReference(prompt, prompt.length + 6, -1);
        assertArrayEquals(greedy, out.tokens()[0]);
        double sum = Arrays.stream(gpt.logprobReference(greedy)).skip(prompt.length - 1).sum();
        assertEquals(sum / 6, out.scores()[0], 1e-4);
    }

    @Test
    void hypothesesScoreTheirOwnTokensAndComeBestFirst() {
        int[] prompt = {2, 7, 1, 8};
        int n = 5;
        double penalty = 0.7;
        GenerationOutput out = new BeamSearch(gpt.model, new SpecialTokens(EOD, -1, -1, -1))
                .search(job(prompt, n, 4, -7, penalty));
        assertEquals(4, out.tokens().length);
        for (int h = 0; h < out.tokens().length; h++) {
            int[] tokens = out.tokens()[h];
            assertEquals(prompt.length + n, tokens.length);
            assertArrayEquals(prompt, Arrays.copyOf(tokens, prompt.length));
            // The score is recomputed from a full forward of the hypothesis: this checks the cache reordering.
            double sum = Arrays.stream(gpt.logprobReference(tokens)).skip(prompt.length - 1).sum();
            assertEquals(sum / Math.pow(n, penalty), out.scores()[h], 1e-4, "hypothesis " + h);
            if (h > 0) {
                assertTrue(out.scores()[h] <= out.scores()[h - 1]);
            }
        }
        double greedy = Arrays.stream(gpt.logprobReference(gpt.greedyReference(prompt, prompt.length + n, -1)))
                .skip(prompt.length - 1).sum() / Math.pow(n, penalty);
        assertTrue(out.scores()[0] >= greedy - 1e-6, "beam search should find at least the greedy path here");
    }

    @Test
    void aStopTokenRetiresTheHypothesisWithoutItAsMegatron() {
        int[] prompt = {3, 1, 4};
        int first = gpt.greedyReference(prompt, 4, -1)[3];
        // Width 1: the best candidate is the stop token, so the hypothesis (the row before it, eod-padded) is kept
        // and no open beam can beat it any more: the search ends after one step.
        GenerationOutput out = new BeamSearch(gpt.model, new SpecialTokens(EOD, -1, -1, -1))
                .search(job(prompt, 6, 1, first, 1.0));
        int[] expected = {3, 1, 4, EOD, EOD, EOD, EOD, EOD, EOD};
        assertArrayEquals(expected, out.tokens()[0]);
        double lp = gpt.logprobReference(new int[] {3, 1, 4, first})[2];
        assertEquals(lp, out.scores()[0], 1e-4);
    }
}
