package org.megatronj.io.torch;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Distributed checkpoints PyTorch's own DCP writer wrote (make_torch_dist_fixtures.py): four ranks' chunks of a
 * tensor- and pipeline-parallel save assembled into the global tensors, compared with the same model saved whole by
 * torch.save; a one-rank save pickled under torch 2.x's class names; and the folders it cannot read, named.
 */
class DistributedCheckpointTest {
    private static final String QKV = "decoder.layers.self_attention.linear_qkv.weight";
    private static final List<String> STACKED = List.of("self_attention.linear_qkv.layer_norm_weight",
            "self_attention.linear_qkv.weight", "self_attention.linear_proj.weight", "mlp.linear_fc1.layer_norm_weight",
            "mlp.linear_fc1.weight", "mlp.linear_fc2.weight");

    /** The fixtures' source folder: Maven's resource copy leaves out dot-files such as {@code .metadata}. */
    private static final Path FIXTURES = Path.of("src", "test", "resources", "org", "megatronj", "io", "torch");

    @TempDir
    Path dir;

    private static Path tp2pp2() {
        return FIXTURES.resolve("megatron-gpt-dist-tp2pp2").resolve("iter_0000020");
    }

    @Test
    void assemblesEveryRanksChunksIntoTheGlobalTensors() throws IOException {
        JsonNode expected = new ObjectMapper().readTree(TorchFileTest.fixture("expected-dist.json").toFile())
                .get("megatron-gpt-dist-tp2pp2");
        Path whole = TorchFileTest.fixture("megatron-gpt-whole").resolve("iter_0000020/mp_rank_00/model_optim_rng.pt");
        try (DistributedCheckpoint dcp = DistributedCheckpoint.open(tp2pp2()); TorchFile torch = TorchFile.open(whole)) {
            Map<?, ?> model = (Map<?, ?>) ((Map<?, ?>) torch.root()).get("model");
            for (var it = expected.properties().iterator(); it.hasNext(); ) {
                var e = it.next();
                DistributedCheckpoint.TensorItem t = dcp.tensor(e.getKey());
                assertEquals(e.getValue().get("dtype").asText(), t.dtype(), e.getKey());
                assertEquals(e.getValue().get("chunks").asInt(), t.chunks().size(), e.getKey());
                long[] shape = new long[e.getValue().get("shape").size()];
                Arrays.setAll(shape, i -> e.getValue().get("shape").get(i).asLong());
                assertArrayEquals(shape, t.shape(), e.getKey());
            }
            assertEquals(8, dcp.tensor("decoder.layers.mlp.linear_fc1.weight").chunks().size(), "gate and up, 2 ranks, 2 layers");
            for (String name : STACKED) {
                float[] global = dcp.floats("decoder.layers." + name);
                for (int layer = 0; layer < 2; layer++) {
                    TorchFile.TensorRef w = (TorchFile.TensorRef) model.get("decoder.layers." + layer + "." + name);
                    int n = (int) w.numel();
                    assertArrayEquals(torch.floats(w), Arrays.copyOfRange(global, layer * n, (layer + 1) * n), name + " " + layer);
                }
            }
            // a box: layer 1's rows 8..24 of linear_qkv, across both tensor ranks' chunks (rows 0..16 and 16..32)
            float[] qkv = dcp.floats(QKV);
            float[] box = dcp.floats(QKV, new long[] {1, 8, 0}, new long[] {1, 16, 16});
            assertArrayEquals(Arrays.copyOfRange(qkv, 32 * 16 + 8 * 16, 32 * 16 + 24 * 16), box);
            float[] columns = dcp.floats("decoder.layers.self_attention.linear_proj.weight", new long[] {0, 2, 6},
                    new long[] {2, 3, 4});   // across the column split at 8
            float[] proj = dcp.floats("decoder.layers.self_attention.linear_proj.weight");
            for (int l = 0; l < 2; l++) {
                for (int r = 0; r < 3; r++) {
                    for (int c = 0; c < 4; c++) {
                        assertEquals(proj[l * 256 + (2 + r) * 16 + 6 + c], columns[l * 12 + r * 4 + c]);
                    }
                }
            }
            for (String name : List.of("embedding.word_embeddings.weight", "decoder.final_layernorm.weight")) {
                assertArrayEquals(torch.floats((TorchFile.TensorRef) model.get(name)), dcp.floats(name), name);
            }
            assertEquals("torch.float32", dcp.tensor("optimizer.state.exp_avg." + QKV).dtype());

            assertInstanceOf(DistributedCheckpoint.BytesItem.class, dcp.items().get("rng_state/shard_1.1_2.2"));
            try (TorchFile rng = dcp.torchFile("rng_state/shard_1.1_2.2")) {
                Map<?, ?> state = (Map<?, ?>) ((List<?>) rng.root()).getFirst();
                assertEquals(List.of(1L, 1L), ((List<?>) state.get("random_rng_state")).get(1), "rank (pp 1, tp 1)'s");
            }
        }
    }

    /** torch 2.x's names (torch.distributed.checkpoint.metadata, Metadata.storage_meta/version) and Megatron's common_state. */
    @Test
    void readsTorch2NamesAndTheCommonStateItem() throws IOException {
        JsonNode expected = new ObjectMapper().readTree(TorchFileTest.fixture("expected.json").toFile()).get("tensors");
        Path folder = FIXTURES.resolve("megatron-gpt-dist").resolve("iter_0000010");
        assertTrue(new String(Files.readAllBytes(folder.resolve(".metadata")), java.nio.charset.StandardCharsets.ISO_8859_1)
                .contains("torch.distributed.checkpoint.metadata"));
        try (DistributedCheckpoint dcp = DistributedCheckpoint.open(folder)) {
            for (var it = expected.properties().iterator(); it.hasNext(); ) {
                var e = it.next();
                float[] want = new float[e.getValue().get("values").size()];
                for (int i = 0; i < want.length; i++) {
                    want[i] = (float) e.getValue().get("values").get(i).asDouble();
                }
                assertEquals(e.getValue().get("dtype").asText(), dcp.tensor(e.getKey()).dtype(), e.getKey());
                assertArrayEquals(want, dcp.floats(e.getKey()), e.getKey());
            }
            try (TorchFile common = dcp.torchFile("common_state/shard_0_1")) {
                Map<?, ?> state = (Map<?, ?>) ((List<?>) common.root()).getFirst();
                assertEquals(10L, state.get("iteration"));
                assertEquals("argparse.Namespace", ((Unpickler.Instance) state.get("args")).type().toString());
            }
            byte[] extra = dcp.bytes("decoder.layers.0.self_attention.linear_qkv._extra_state/shard_0_1");
            assertEquals("PK", new String(extra, 0, 2, java.nio.charset.StandardCharsets.US_ASCII), "a torch.save archive");
        }
    }

    @Test
    void aMissingOrTruncatedFileIsNamed() throws IOException {
        Path copy = dir.resolve("iter");
        copyTree(tp2pp2(), copy);
        Files.delete(copy.resolve("__1_0.distcp"));
        try (DistributedCheckpoint dcp = DistributedCheckpoint.open(copy)) {
            var e = assertThrows(IllegalArgumentException.class, () -> dcp.floats(QKV));
            assertTrue(e.getMessage().contains(".metadata puts " + QKV + " in __1_0.distcp, which is missing"), e.getMessage());
        }
        Files.copy(tp2pp2().resolve("__1_0.distcp"), copy.resolve("__1_0.distcp"));
        Path distcp = copy.resolve("__2_0.distcp");
        long size = Files.size(distcp);
        try (FileChannel ch = FileChannel.open(distcp, StandardOpenOption.WRITE)) {
            ch.truncate(size / 2);
        }
        try (DistributedCheckpoint dcp = DistributedCheckpoint.open(copy)) {
            String late = dcp.items().values().stream()
                    .filter(i -> i instanceof DistributedCheckpoint.TensorItem t && t.chunks().stream().anyMatch(c ->
                            c.location().file().equals("__2_0.distcp") && c.location().offset() + c.location().length() > size / 2))
                    .map(DistributedCheckpoint.Item::key).findFirst().orElseThrow();
            var e = assertThrows(IllegalArgumentException.class, () -> dcp.floats(late));
            assertTrue(e.getMessage().contains("__2_0.distcp has " + size / 2 + " bytes but .metadata puts " + late)
                    && e.getMessage().contains("the file is truncated"), e.getMessage());
        }
        Files.delete(copy.resolve(".metadata"));
        var e = assertThrows(IllegalArgumentException.class, () -> DistributedCheckpoint.open(copy));
        assertTrue(e.getMessage().contains("has no .metadata: not a PyTorch distributed checkpoint folder"), e.getMessage());
    }

    /** Chunks that leave a gap, an integer dtype and a transformed (e.g. compressed) item, in a .metadata written here. */
    @Test
    void refusesWhatItCannotAssemble() throws IOException {
        // one [2, 3] tensor "w" stored as one [1, 3] chunk at row 0: row 1 is missing
        TorchWriter.write(dir.resolve("chunk.pt"), new TorchWriter.TensorData("torch.float32", new long[] {1, 3},
                new float[] {1, 2, 3}));
        Files.copy(dir.resolve("chunk.pt"), dir.resolve("__0_0.distcp"));
        long length = Files.size(dir.resolve("chunk.pt"));
        writeMetadata(Map.of("w", tensorMetadata("float32", List.of(2L, 3L), List.of(List.of(0L, 0L))),
                        "i", tensorMetadata("int64", List.of(3L), List.of(List.of(0L)))),
                Map.of(index("w", List.of(0L, 0L)), storageInfo(length, null),
                        index("i", List.of(0L)), storageInfo(length, null)));
        try (DistributedCheckpoint dcp = DistributedCheckpoint.open(dir)) {
            var gap = assertThrows(IllegalArgumentException.class, () -> dcp.floats("w"));
            assertTrue(gap.getMessage().contains("the chunks of w (torch.float32, [2, 3], 1 chunks) cover 3 of its 6 elements"),
                    gap.getMessage());
            var integer = assertThrows(IllegalArgumentException.class, () -> dcp.floats("i"));
            assertTrue(integer.getMessage().contains("i (torch.int64, [3], 1 chunks) is not floating point"), integer.getMessage());
        }
        writeMetadata(Map.of("w", tensorMetadata("float32", List.of(1L, 3L), List.of(List.of(0L, 0L)))),
                Map.of(index("w", List.of(0L, 0L)), storageInfo(length, List.of("zstd"))));
        var transformed = assertThrows(IllegalArgumentException.class, () -> DistributedCheckpoint.open(dir));
        assertTrue(transformed.getMessage().contains("w is stored through the transforms [zstd]"), transformed.getMessage());

        writeMetadata(Map.of("w", tensorMetadata("float32", List.of(1L, 3L), List.of(List.of(0L, 0L)))),
                Map.of(index("w", List.of(0L, 0L)), storageInfo(length, null)));
        try (DistributedCheckpoint dcp = DistributedCheckpoint.open(dir)) {
            assertArrayEquals(new float[] {1, 2, 3}, dcp.floats("w"));
        }
    }

    private void writeMetadata(Map<String, Object> items, Map<Object, Object> storage) throws IOException {
        Map<String, Object> fields = new LinkedHashMap<>();
        fields.put("state_dict_metadata", items);
        fields.put("planner_data", null);
        fields.put("storage_data", storage);
        Files.write(dir.resolve(".metadata"), Pickler.dumps(new Pickler.NewObject(global("Metadata"), fields)));
    }

    private static Unpickler.Global global(String name) {
        return new Unpickler.Global("torch.distributed.checkpoint.metadata", name);
    }

    private static Object size(List<Long> dims) {
        return new Pickler.Call(new Unpickler.Global("torch", "Size"), List.of(new Pickler.Tuple(new ArrayList<>(dims))));
    }

    private static Object tensorMetadata(String dtype, List<Long> shape, List<List<Long>> chunkOffsets) {
        List<Object> chunks = new ArrayList<>();
        for (List<Long> offsets : chunkOffsets) {
            List<Long> sizes = new ArrayList<>(shape);
            sizes.set(0, 1L);
            chunks.add(new Pickler.NewObject(global("ChunkStorageMetadata"), Map.of("offsets", size(offsets),
                    "sizes", size(sizes))));
        }
        return new Pickler.NewObject(global("TensorStorageMetadata"), Map.of(
                "properties", new Pickler.NewObject(global("TensorProperties"), Map.of("dtype", new Unpickler.Global("torch", dtype))),
                "size", size(shape), "chunks", chunks));
    }

    private static Object index(String fqn, List<Long> offset) {
        return new Pickler.NewObject(global("MetadataIndex"), Map.of("fqn", fqn, "offset", size(offset), "index", 0L));
    }

    private static Object storageInfo(long length, List<String> transforms) {
        Map<String, Object> f = new LinkedHashMap<>(Map.of("relative_path", "__0_0.distcp", "offset", 0L, "length", length));
        if (transforms != null) {
            f.put("transform_descriptors", transforms);
        }
        return new Pickler.NewObject(new Unpickler.Global("torch.distributed.checkpoint.filesystem", "_StorageInfo"), f);
    }

    private static void copyTree(Path from, Path to) throws IOException {
        try (Stream<Path> walk = Files.walk(from)) {
            for (Path p : walk.sorted().toList()) {
                Path target = to.resolve(from.relativize(p).toString());
                if (Files.isDirectory(p)) {
                    Files.createDirectories(target);
                } else {
                    Files.copy(p, target);
                }
            }
        }
    }
}
