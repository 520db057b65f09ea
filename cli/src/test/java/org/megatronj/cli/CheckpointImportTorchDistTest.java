package org.megatronj.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.io.safetensors.SafetensorsFile;
import org.megatronj.io.torch.Pickler;
import org.megatronj.io.torch.TorchFile;
import org.megatronj.io.torch.TorchWriter;
import org.megatronj.io.torch.Unpickler;

/**
 * {@code checkpoint import-torch} on Megatron-LM {@code --ckpt-format torch_dist} checkpoints that PyTorch's own
 * distributed-checkpoint writer wrote (io's make_torch_dist_fixtures.py): a 2 tensor x 2 pipeline rank save in the
 * stacked-layer layout imports to the weights of the same model saved whole as {@code --ckpt-format torch}; a one-rank
 * save in the per-layer layout with its common state inside the DCP imports to the same file as its torch-format twin;
 * and the folders it cannot take are named.
 */
class CheckpointImportTorchDistTest {
    private static final Path FIXTURES = Path.of("..", "io", "src", "test", "resources", "org", "megatronj", "io", "torch");
    private static final Path TP2PP2 = FIXTURES.resolve("megatron-gpt-dist-tp2pp2");

    @TempDir
    Path dir;

    @Test
    void importsATensorAndPipelineParallelSaveAsTheWholeModel() throws IOException {
        Path whole = dir.resolve("whole"), dist = dir.resolve("dist");
        assertEquals(0, CliRun.of("checkpoint", "import-torch", "--load", FIXTURES.resolve("megatron-gpt-whole").toString(),
                "--save", whole.toString()).code());
        CliRun imp = CliRun.of("checkpoint", "import-torch", "--load", TP2PP2.toString(), "--save", dist.toString());
        assertEquals(0, imp.code(), imp.toString());
        assertTrue(imp.out().contains("(iteration 20; 2 layers, hidden 16, padded vocab 28, torch_dist saved by 2 tensor x 2"
                + " pipeline ranks): "), imp.out());
        try (SafetensorsFile a = SafetensorsFile.open(whole.resolve("release/mp_rank_00/model.safetensors"));
             SafetensorsFile b = SafetensorsFile.open(dist.resolve("release/mp_rank_00/model.safetensors"))) {
            assertEquals(a.names(), b.names());
            assertEquals(14, b.names().size());
            for (String name : a.names()) {
                float[] want = a.tensor(name).toFloatArray(), got = b.tensor(name).toFloatArray();
                if (name.equals("embedding.word_embeddings.weight")) {
                    // saved padded for 2 tensor ranks (32 rows), imported padded for one (28): the same first 28 rows
                    assertEquals(28 * 16, got.length);
                    want = Arrays.copyOf(want, got.length);
                }
                assertArrayEquals(want, got, name);
            }
        }
        JsonNode meta = new ObjectMapper().readTree(dist.resolve("release/mp_rank_00/metadata.json").toFile());
        assertEquals(2, meta.path("model").path("numQueryGroups").asInt());
        assertEquals(26, meta.path("model").path("vocabSize").asInt(), "NullTokenizer --vocab-size 26, padded to 28 rows");
        assertEquals(20, meta.path("imported_iteration").asInt());
        assertEquals("true", meta.path("args").path("swiglu").asText());

        CliRun gen = CliRun.of("generate", "--load", dist.toString(), "--prompt", "1 2 3", "--tokens-to-generate", "3",
                "--temperature", "0");
        assertEquals(0, gen.code(), gen.toString());
        assertTrue(gen.out().strip().matches("1 2 3( [0-9]+){3}"), gen.out());
        try (Stream<Path> left = Files.list(dir)) {
            assertEquals(java.util.List.of(), left.filter(p -> p.getFileName().toString().startsWith(".")).toList());
        }
    }

    /** Per-layer keys (decoder.layers.0.*), bf16/fp16/fp32 tensors, the args in the common_state item: as the torch-format import. */
    @Test
    void importsAOneRankSaveToTheSameFileAsItsTorchFormatTwin() throws IOException {
        Path torch = dir.resolve("torch"), dist = dir.resolve("dist");
        assertEquals(0, CliRun.of("checkpoint", "import-torch", "--load", FIXTURES.resolve("megatron-gpt").toString(),
                "--save", torch.toString()).code());
        CliRun imp = CliRun.of("checkpoint", "import-torch", "--load", FIXTURES.resolve("megatron-gpt-dist").toString(),
                "--save", dist.toString());
        assertEquals(0, imp.code(), imp.toString());
        assertTrue(imp.out().contains("(iteration 10; 1 layers, hidden 8, padded vocab 16, torch_dist saved by 1 tensor x 1"
                + " pipeline ranks): "), imp.out());
        assertEquals(-1L, Files.mismatch(torch.resolve("release/mp_rank_00/model.safetensors"),
                dist.resolve("release/mp_rank_00/model.safetensors")));
        JsonNode expected = new ObjectMapper().readTree(FIXTURES.resolve("expected.json").toFile()).get("tensors");
        try (SafetensorsFile model = SafetensorsFile.open(dist.resolve("release/mp_rank_00/model.safetensors"))) {
            assertEquals(16, model.names().size());
            for (var it = expected.properties().iterator(); it.hasNext(); ) {
                var e = it.next();
                float[] want = new float[e.getValue().get("values").size()];
                for (int i = 0; i < want.length; i++) {
                    want[i] = (float) e.getValue().get("values").get(i).asDouble();
                }
                String name = MegatronTorchCheckpoint.localSpecName(e.getKey());
                assertArrayEquals(want, model.tensor(name).toFloatArray(), name);
            }
        }
        CliRun gen = CliRun.of("generate", "--load", dist.toString(), "--prompt", "1 2 3", "--tokens-to-generate", "2",
                "--temperature", "0");
        assertEquals(0, gen.code(), gen.toString());
    }

    @Test
    void foldersItCannotTakeAreNamed() throws IOException {
        Path copy = dir.resolve("copy");
        TestTrees.copy(TP2PP2, copy);
        Path iter = copy.resolve("iter_0000020");
        Path distcp = iter.resolve("__3_0.distcp");
        byte[] bytes = Files.readAllBytes(distcp);
        Files.delete(distcp);
        CliRun missing = CliRun.of("checkpoint", "import-torch", "--load", copy.toString(), "--save", dir.resolve("a").toString());
        assertEquals(1, missing.code(), missing.toString());
        assertTrue(missing.err().contains("in __3_0.distcp, which is missing (copy every rank's .distcp file)"), missing.err());
        assertTrue(!Files.exists(dir.resolve("a")), "no checkpoint left behind");

        Files.write(distcp, Arrays.copyOf(bytes, bytes.length - 100));
        CliRun truncated = CliRun.of("checkpoint", "import-torch", "--load", copy.toString(), "--save", dir.resolve("b").toString());
        assertEquals(1, truncated.code(), truncated.toString());
        assertTrue(truncated.err().contains("__3_0.distcp has " + (bytes.length - 100) + " bytes but .metadata puts ")
                && truncated.err().contains("the file is truncated"), truncated.err());
        Files.write(distcp, bytes);

        Path common = iter.resolve("common.pt");
        Map<?, ?> state;
        try (TorchFile torch = TorchFile.open(common)) {
            state = (Map<?, ?>) torch.root();
        }
        Map<String, Object> args = new LinkedHashMap<>();
        ((Map<?, ?>) ((Unpickler.Instance) state.get("args")).state()).forEach((k, v) -> args.put((String) k, v));
        args.put("mtp_num_layers", 1L);
        args.put("mtp_use_repeated_layer", Boolean.TRUE);   // MTP is imported; this variant of it is not built
        Files.delete(common);
        TorchWriter.write(common, Map.of("args", new Pickler.NewObject(new Unpickler.Global("argparse", "Namespace"), args),
                "iteration", 20L));
        CliRun mtp = CliRun.of("checkpoint", "import-torch", "--load", copy.toString(), "--save", dir.resolve("c").toString());
        assertEquals(1, mtp.code(), mtp.toString());
        assertTrue(mtp.err().contains("the run used one multi-token prediction layer repeated over the depths"
                + " (mtp_use_repeated_layer = true), which Megatron-J does not build"), mtp.err());

        Files.writeString(iter.resolve("metadata.json"), "{\"sharded_backend\": \"zarr\", \"sharded_backend_version\": 1}");
        CliRun zarr = CliRun.of("checkpoint", "import-torch", "--load", copy.toString(), "--save", dir.resolve("d").toString());
        assertEquals(1, zarr.code(), zarr.toString());
        assertTrue(zarr.err().contains("names the sharded backend 'zarr'; import-torch reads torch_dist"), zarr.err());
    }
}
