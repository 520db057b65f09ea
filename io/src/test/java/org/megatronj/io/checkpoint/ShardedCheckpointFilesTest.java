package org.megatronj.io.checkpoint;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The multi-rank save steps, the layout record, the distributed-optimizer pieces and the single-rank readers' refusal. */
class ShardedCheckpointFilesTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path root;

    private static ObjectNode meta(ShardLayout layout, int t, int p) {
        ObjectNode meta = JSON.createObjectNode();
        meta.put("iteration", 7);
        layout.writeTo(meta, t, p);
        return meta;
    }

    /** Writes a TP2/PP2 checkpoint whose DP ranks 0 and 1 each hold half of state "w.exp_avg" (6 elements). */
    private void saveTp2Pp2() {
        ShardLayout layout = new ShardLayout(2, 2, 1, 2, true);
        try (TensorArena arena = TensorArena.named("test")) {
            Path partial = CheckpointWriter.preparePartial(root, 7);
            for (int p = 0; p < 2; p++) {
                for (int t = 0; t < 2; t++) {
                    String dir = layout.rankDirName(t, p);
                    Map<String, Tensor> weights = Map.of("w", arena.fromFloats(new float[] {t, p}, 2));
                    Map<String, Map<String, Tensor>> dp0 = Map.of(OptimizerStateFiles.distribFileName(0),
                            Map.of(OptimizerStateFiles.pieceName("w.exp_avg", 0), arena.fromFloats(new float[] {1, 2, 3}, 3)));
                    CheckpointWriter.writeRankFiles(partial, new CheckpointWriter.RankState(dir, weights, Map.of(), meta(layout, t, p)),
                            dp0);
                    Map<String, Map<String, Tensor>> dp1 = Map.of(OptimizerStateFiles.distribFileName(1),
                            Map.of(OptimizerStateFiles.pieceName("w.exp_avg", 3), arena.fromFloats(new float[] {4, 5, 6}, 3)));
                    CheckpointWriter.writeRankFiles(partial, new CheckpointWriter.RankState(dir, null, Map.of(), null), dp1);
                }
            }
            assertFalse(Files.exists(CheckpointLayout.trackerFile(root)), "the tracker comes last");
            CheckpointWriter.commit(root, 7);
        }
    }

    @Test
    void ranksWriteTheirFoldersAndTheDistributedPiecesReassemble() {
        saveTp2Pp2();
        Path iter = root.resolve("iter_0000007");
        assertEquals(List.of("mp_rank_00_000", "mp_rank_00_001", "mp_rank_01_000", "mp_rank_01_001"),
                CheckpointLayout.rankDirNames(iter));
        assertFalse(Files.exists(CheckpointWriter.partialDir(root, 7)));
        assertEquals(7, CheckpointLayout.latestIteration(root));
        Map<String, float[]> state = OptimizerStateFiles.readAll(iter.resolve("mp_rank_01_001"));
        assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, state.get("w.exp_avg"));
        try (Checkpoint c = Checkpoint.openLatestShard(root, "mp_rank_01_001")) {
            assertEquals(new ShardLayout(2, 2, 1, 2, true), ShardLayout.fromMetadata(c.metadata()));
            assertEquals(7, c.iteration());
        }
        try (Checkpoint any = Checkpoint.openLatestAnyRank(root)) {
            assertEquals("mp_rank_00_000", any.rankDir().getFileName().toString());
        }
    }

    /** Without DP rank 1's file the pieces of rank 0 still start at 0: only the saved DP size shows the loss. */
    @Test
    void aMissingLastDataParallelFileIsNamed() throws Exception {
        saveTp2Pp2();
        Path rankDir = root.resolve("iter_0000007/mp_rank_01_001");
        Files.delete(rankDir.resolve(OptimizerStateFiles.distribFileName(1)));
        CheckpointException e = assertThrows(CheckpointException.class, () -> OptimizerStateFiles.readAll(rankDir));
        assertEquals(rankDir + " lacks distrib_optim_dp_001.safetensors: it was saved at data-parallel 2 with the distributed"
                + " optimizer, one file per data-parallel rank (pass --no-load-optim to load the weights only)", e.getMessage());
    }

    @Test
    void aGapBetweenPiecesIsNamed() {
        try (TensorArena arena = TensorArena.named("test")) {
            Path partial = CheckpointWriter.preparePartial(root, 1);
            Map<String, Tensor> pieces = new LinkedHashMap<>();
            pieces.put(OptimizerStateFiles.pieceName("w.exp_avg", 0), arena.fromFloats(new float[] {1, 2}, 2));
            pieces.put(OptimizerStateFiles.pieceName("w.exp_avg", 3), arena.fromFloats(new float[] {4}, 1));
            CheckpointWriter.writeRankFiles(partial, new CheckpointWriter.RankState("mp_rank_00", null, Map.of(), null),
                    Map.of(OptimizerStateFiles.distribFileName(0), pieces));
            CheckpointWriter.commit(root, 1);
        }
        CheckpointException e = assertThrows(CheckpointException.class,
                () -> OptimizerStateFiles.readAll(root.resolve("iter_0000001/mp_rank_00")));
        assertTrue(e.getMessage().contains("a piece starts at element 3") && e.getMessage().contains("where 2 was expected"),
                e.getMessage());
    }

    @Test
    void singleRankReadersRefuseShardedCheckpointsWithAPointerToReshard() {
        saveTp2Pp2();
        CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoint.openLatest(root, "mp_rank_00"));
        assertTrue(e.getMessage().contains("sharded checkpoint") && e.getMessage().contains("megatron checkpoint reshard"),
                e.getMessage());
        assertEquals(ShardLayout.SINGLE, ShardLayout.fromMetadata(JSON.createObjectNode()));
    }
}
