package org.megatronj.io.checkpoint;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CheckpointWriterTest {
    @TempDir
    Path root;

    private static CheckpointWriter.RankState state(TensorArena arena, float value, long iteration) {
        Tensor w = arena.allocate(DType.F32, 2, 3);
        for (int i = 0; i < 6; i++) {
            w.setFloat(i, value + i);
        }
        Tensor m = arena.allocate(DType.F32, 2, 3);
        ObjectNode meta = new ObjectMapper().createObjectNode();
        meta.put("iteration", iteration);
        meta.put("consumed_train_samples", iteration * 8);
        return new CheckpointWriter.RankState("mp_rank_00", Map.of("w", w), Map.of("w.exp_avg", m), meta);
    }

    @Test
    void savesMegatronLayoutAndTrackerLast() throws IOException {
        try (TensorArena arena = TensorArena.named("ckpt")) {
            CheckpointWriter.save(root, 100, state(arena, 1f, 100));
            assertEquals("100", Files.readString(root.resolve("latest_checkpointed_iteration.txt")).strip());
            Path rank = root.resolve("iter_0000100/mp_rank_00");
            assertTrue(Files.isRegularFile(rank.resolve("model.safetensors")));
            assertTrue(Files.isRegularFile(rank.resolve("optimizer.safetensors")));
            assertTrue(Files.isRegularFile(rank.resolve("metadata.json")));
            try (var stream = Files.list(root)) {
                assertEquals(2, stream.count(), "only the iteration folder and the tracker remain");
            }

            CheckpointWriter.save(root, 200, state(arena, 5f, 200));
            try (Checkpoint c = Checkpoint.openLatest(root, "mp_rank_00")) {
                assertEquals(200, c.iteration());
                assertEquals(1600, c.metadata().get("consumed_train_samples").asLong());
                assertEquals(6f, c.model().tensor("w").getFloat(1));
                assertTrue(c.optimizer().isPresent());
            }
            // The iteration folder itself can be loaded too.
            try (Checkpoint c = Checkpoint.openLatest(root.resolve("iter_0000100"), "mp_rank_00")) {
                assertEquals(100, c.iteration());
                assertEquals(2f, c.model().tensor("w").getFloat(1));
            }
        }
    }

    @Test
    void aSaveKilledHalfWayLeavesTheLatestCheckpointIntact() throws IOException {
        try (TensorArena arena = TensorArena.named("ckpt")) {
            CheckpointWriter.save(root, 10, state(arena, 1f, 10));
            // Simulate a kill while iteration 20 was being written: only its partial folder exists.
            Path partial = root.resolve(".iter_0000020.partial/mp_rank_00");
            Files.createDirectories(partial);
            Files.write(partial.resolve("model.safetensors.tmp"), new byte[]{1, 2, 3});
            try (Checkpoint c = Checkpoint.openLatest(root, "mp_rank_00")) {
                assertEquals(10, c.iteration());
            }
            // The next save of 20 clears the leftover and succeeds; a re-save of 20 replaces it.
            CheckpointWriter.save(root, 20, state(arena, 2f, 20));
            CheckpointWriter.save(root, 20, state(arena, 3f, 20));
            assertFalse(Files.exists(root.resolve(".iter_0000020.partial")));
            assertFalse(Files.exists(root.resolve(".iter_0000020.old")));
            try (Checkpoint c = Checkpoint.openLatest(root, "mp_rank_00")) {
                assertEquals(20, c.iteration());
                assertEquals(3f, c.model().tensor("w").getFloat(0));
            }
        }
    }

    @Test
    void missingAndCorruptPiecesAreNamed() throws IOException {
        var none = assertThrows(CheckpointException.class, () -> Checkpoint.openLatest(root, "mp_rank_00"));
        assertTrue(none.getMessage().contains("latest_checkpointed_iteration.txt is missing"), none.getMessage());

        Files.writeString(root.resolve("latest_checkpointed_iteration.txt"), "abc\n");
        var bad = assertThrows(CheckpointException.class, () -> Checkpoint.openLatest(root, "mp_rank_00"));
        assertTrue(bad.getMessage().contains("found 'abc'"), bad.getMessage());

        try (TensorArena arena = TensorArena.named("ckpt")) {
            CheckpointWriter.save(root, 30, state(arena, 1f, 30));
        }
        Path model = root.resolve("iter_0000030/mp_rank_00/model.safetensors");
        byte[] bytes = Files.readAllBytes(model);
        Files.write(model, java.util.Arrays.copyOf(bytes, bytes.length - 1));
        var corrupt = assertThrows(CheckpointException.class, () -> Checkpoint.openLatest(root, "mp_rank_00"));
        assertTrue(corrupt.getMessage().contains("corrupt") && corrupt.getMessage().contains("model.safetensors"), corrupt.getMessage());

        Files.delete(model);
        var missing = assertThrows(CheckpointException.class, () -> Checkpoint.openLatest(root, "mp_rank_00"));
        assertTrue(missing.getMessage().contains("model.safetensors is missing"), missing.getMessage());
    }
}
