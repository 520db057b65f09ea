package org.megatronj.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

class ParallelStateTest {

    /** Megatron's documented example: 16 GPUs, TP 2, PP 4 -> DP 2. */
    @Test
    void megatronExampleLayout() {
        ParallelConfig config = ParallelConfig.of(2, 4);
        ParallelState s = ParallelState.of(config, 16, 0);
        assertEquals(2, s.dataParallelSize());
        List<int[]> tp = s.allTensorModelParallelGroups();
        assertEquals(8, tp.size());
        assertArrayEquals(new int[] {0, 1}, tp.get(0));
        assertArrayEquals(new int[] {14, 15}, tp.get(7));
        List<int[]> dp = s.allDataParallelGroups();
        assertArrayEquals(new int[] {0, 2}, dp.get(0));
        assertArrayEquals(new int[] {1, 3}, dp.get(1));
        assertArrayEquals(new int[] {4, 6}, dp.get(2));
        List<int[]> pp = s.allPipelineModelParallelGroups();
        assertEquals(4, pp.size());
        assertArrayEquals(new int[] {0, 4, 8, 12}, pp.get(0));
        assertArrayEquals(new int[] {3, 7, 11, 15}, pp.get(3));
        List<int[]> mp = s.allModelParallelGroups();
        assertEquals(2, mp.size());
        assertArrayEquals(new int[] {0, 1, 4, 5, 8, 9, 12, 13}, mp.get(0));
        assertArrayEquals(new int[] {0, 12}, s.allEmbeddingGroups().get(0));
    }

    /**
     * {@code --use-tp-pp-dp-mapping}: Megatron's "tp-cp-ep-pp-dp" order, 16 ranks at TP 2, PP 4 (DP 2):
     * {@code rank = tp + 2 * (pp + 4 * dp)}, so a pipeline's stages are neighbours and the replicas far apart.
     */
    @Test
    void tpPpDpMappingPutsPipelineStagesBeforeReplicas() {
        ParallelConfig config = ParallelConfig.of(2, 4).withTpPpDpMapping(true);
        ParallelState s = ParallelState.of(config, 16, 11);
        assertEquals(1, s.tensorModelParallelRank());
        assertEquals(1, s.pipelineModelParallelRank());
        assertEquals(1, s.dataParallelRank());
        assertArrayEquals(new int[] {10, 11}, s.tensorModelParallelGroup());
        assertArrayEquals(new int[] {9, 11, 13, 15}, s.pipelineModelParallelGroup());
        assertArrayEquals(new int[] {3, 11}, s.dataParallelGroup());
        List<int[]> pp = s.allPipelineModelParallelGroups();
        assertArrayEquals(new int[] {0, 2, 4, 6}, pp.get(0));
        assertArrayEquals(new int[] {1, 3, 5, 7}, pp.get(1));
        assertArrayEquals(new int[] {8, 10, 12, 14}, pp.get(2));
        List<int[]> dp = s.allDataParallelGroups();
        assertArrayEquals(new int[] {0, 8}, dp.get(0));
        assertArrayEquals(new int[] {1, 9}, dp.get(1));
        assertArrayEquals(new int[] {2, 10}, dp.get(2));
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 5, 6, 7}, s.allModelParallelGroups().get(0));
        assertEquals(11, s.globalRank(1, 1, 1, 0));
    }

    /**
     * Megatron's "tp-cp-ep-dp-pp" order with context parallelism, 8 ranks at TP 2, CP 2 (DP 2):
     * {@code rank = tp + 2 * (cp + 2 * dp)}; CP ranks are the nearest after TP ones, DP x CP holds every replica.
     */
    @Test
    void contextParallelRanksSitBetweenTensorAndDataParallelOnes() {
        ParallelConfig config = ParallelConfig.of(2, 1).withContextParallelSize(2);
        ParallelState s = ParallelState.of(config, 8, 6);
        assertEquals(2, s.dataParallelSize());
        assertEquals(2, s.contextParallelSize());
        assertEquals(0, s.tensorModelParallelRank());
        assertEquals(1, s.contextParallelRank());
        assertEquals(1, s.dataParallelRank());
        assertEquals("rank 6 (tp 0, pp 0, dp 1, cp 1)", s.describe());
        assertEquals(6, s.globalRank(0, 0, 1, 1));
        assertArrayEquals(new int[] {6, 7}, s.tensorModelParallelGroup());
        assertArrayEquals(new int[] {4, 6}, s.contextParallelGroup());
        assertArrayEquals(new int[] {2, 6}, s.dataParallelGroup());
        assertArrayEquals(new int[] {0, 2, 4, 6}, s.dataParallelGroupWithContext());
        assertArrayEquals(new int[] {6, 7}, s.modelParallelGroup());
        List<int[]> cp = s.allContextParallelGroups();
        assertEquals(4, cp.size());
        assertArrayEquals(new int[] {0, 2}, cp.get(0));
        assertArrayEquals(new int[] {1, 3}, cp.get(1));
        assertArrayEquals(new int[] {4, 6}, cp.get(2));
        assertArrayEquals(new int[] {5, 7}, cp.get(3));
        List<int[]> dp = s.allDataParallelGroups();
        assertArrayEquals(new int[] {0, 4}, dp.get(0));
        assertArrayEquals(new int[] {3, 7}, dp.get(3));
        List<int[]> dpCp = s.allDataParallelGroupsWithContext();
        assertEquals(2, dpCp.size());
        assertArrayEquals(new int[] {1, 3, 5, 7}, dpCp.get(1));
        // with PP the stages stay farthest apart: 16 ranks at CP 2, PP 2 (DP 4)
        ParallelState p = ParallelState.of(ParallelConfig.of(1, 2).withContextParallelSize(2), 16, 9);
        assertEquals(4, p.dataParallelSize());
        assertEquals(1, p.pipelineModelParallelRank());
        assertEquals(1, p.contextParallelRank());
        assertArrayEquals(new int[] {1, 9}, p.pipelineModelParallelGroup());
        assertArrayEquals(new int[] {8, 9}, p.contextParallelGroup());
        assertEquals(1, p.pipelineNextRank());
    }

    @Test
    void withoutContextParallelismTheLayoutIsUnchanged() {
        ParallelState plain = ParallelState.of(ParallelConfig.of(2, 2), 8, 5);
        ParallelState cp1 = ParallelState.of(ParallelConfig.of(2, 2).withContextParallelSize(1), 8, 5);
        assertArrayEquals(plain.dataParallelGroup(), cp1.dataParallelGroupWithContext());
        assertArrayEquals(new int[] {5}, cp1.contextParallelGroup());
        assertEquals(plain.describe(), cp1.describe());
    }

    @Test
    void coordinatesFollowTpDpPpOrder() {
        ParallelConfig config = ParallelConfig.of(2, 2);
        // world 8: rank = tp + 2 * (dp + 2 * pp)
        ParallelState s = ParallelState.of(config, 8, 7);
        assertEquals(1, s.tensorModelParallelRank());
        assertEquals(1, s.dataParallelRank());
        assertEquals(1, s.pipelineModelParallelRank());
        assertTrue(s.isPipelineLastStage());
        assertFalse(s.isPipelineFirstStage());
        assertEquals(3, s.pipelineNextRank());
        assertEquals(3, s.pipelinePrevRank());
        assertArrayEquals(new int[] {6, 7}, s.tensorModelParallelGroup());
        assertArrayEquals(new int[] {5, 7}, s.dataParallelGroup());
        assertArrayEquals(new int[] {3, 7}, s.pipelineModelParallelGroup());
        assertArrayEquals(new int[] {3, 7}, s.embeddingGroup());
        assertEquals(0, s.positionEmbeddingGroup().length);
        assertEquals("rank 7 (tp 1, pp 1, dp 1)", s.describe());
        assertEquals(7, s.globalRank(1, 1, 1));
    }

    @Test
    void everyRankIsInExactlyOneGroupOfEachKind() {
        ParallelState s = ParallelState.of(new ParallelConfig(2, 3, 0, false), 24, 0);
        for (List<int[]> groups : List.of(s.allTensorModelParallelGroups(), s.allDataParallelGroups(),
                s.allPipelineModelParallelGroups(), s.allModelParallelGroups())) {
            Set<Integer> seen = new HashSet<>();
            for (int[] g : groups) {
                for (int r : g) {
                    assertTrue(seen.add(r), "rank " + r + " in two groups");
                }
            }
            assertEquals(24, seen.size());
        }
        for (int r = 0; r < 24; r++) {
            ParallelState state = ParallelState.of(s.config(), 24, r);
            int[] tpGroup = state.tensorModelParallelGroup();
            assertEquals(r, tpGroup[state.tensorModelParallelRank()]);
            assertEquals(r, state.dataParallelGroup()[state.dataParallelRank()]);
            assertEquals(r, state.pipelineModelParallelGroup()[state.pipelineModelParallelRank()]);
        }
    }

    @Test
    void intermediateStageHasNoEmbeddingGroup() {
        ParallelState middle = ParallelState.of(ParallelConfig.of(1, 3), 3, 1);
        assertEquals(0, middle.embeddingGroup().length);
        ParallelState single = ParallelState.of(ParallelConfig.single(), 1, 0);
        assertArrayEquals(new int[] {0}, single.embeddingGroup());
        assertArrayEquals(new int[] {0}, single.positionEmbeddingGroup());
    }

    @Test
    void refusesWorldNotDivisibleByModelParallelSize() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ParallelState.of(ParallelConfig.of(2, 3), 8, 0));
        assertTrue(e.getMessage().contains("world size 8"), e.getMessage());
        assertTrue(e.getMessage().contains("= 6"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ParallelState.of(ParallelConfig.of(2, 1), 4, 4));
    }
}
