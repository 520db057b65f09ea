package org.megatronj.parallel.optim;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.megatronj.model.Normalization;
import org.megatronj.model.PositionEmbeddingType;
import org.megatronj.model.TransformerConfig;
import org.megatronj.parallel.optim.ParallelGptHarness.Layout;
import org.megatronj.parallel.optim.ParallelGptHarness.Trace;

/**
 * The full matrix: 20 iterations at (TP, PP, DP) = (1,1,1), (2,1,1), (1,2,1), (1,1,2),
 * (2,2,2) and (4,2,1) interleaved, each with and without sequence parallelism (TP &gt; 1) and the
 * distributed optimizer, and each recompute mode, against the single-rank run (1e-5 relative).
 */
@Tag("slow")
class ParallelGptMatrixTest {
    private static final int ITERATIONS = 20;
    private static final String[] RECOMPUTE = {"none", "selective", "uniform:1", "uniform:2", "block:1", "block:2"};
    private static TransformerConfig config;
    private static Trace expected;

    @BeforeAll
    static void reference() {
        config = ParallelGptHarness.config(Normalization.LAYER_NORM, PositionEmbeddingType.LEARNED_ABSOLUTE, false, 4);
        expected = ParallelGptHarness.single(config, ITERATIONS, false);
    }

    static Stream<Arguments> layouts() {
        int[][] shapes = {{1, 1, 1, 0}, {2, 1, 1, 0}, {1, 2, 1, 0}, {1, 1, 2, 0}, {2, 2, 2, 0}, {4, 2, 1, 1}};
        List<Arguments> out = new ArrayList<>();
        for (int[] s : shapes) {
            for (boolean sp : s[0] > 1 ? new boolean[] {false, true} : new boolean[] {false}) {
                for (boolean distOpt : new boolean[] {false, true}) {
                    for (String recompute : RECOMPUTE) {
                        out.add(Arguments.of(s[0], s[1], s[2], s[3], sp, distOpt, recompute));
                    }
                }
            }
        }
        return out.stream();
    }

    @ParameterizedTest(name = "tp={0} pp={1} dp={2} vpLayers={3} sp={4} distOpt={5} recompute={6}")
    @MethodSource("layouts")
    void matchesSingleRank(int tp, int pp, int dp, int vpLayers, boolean sp, boolean distOpt, String recompute) {
        Trace actual = ParallelGptHarness.parallel(config, ITERATIONS,
                new Layout(tp, pp, dp, vpLayers, sp, distOpt, ParallelGptHarness.recompute(recompute)));
        ParallelGptEquivalenceTest.assertMatches(expected, actual);
    }
}
