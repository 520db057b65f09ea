package org.megatronj.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.io.safetensors.SafetensorsFile;

/**
 * {@code checkpoint import-torch} on a Megatron-LM {@code --ckpt-format torch} checkpoint that PyTorch wrote
 * (io's make_torch_fixtures.py: a 1-layer Megatron-core GPT with TransformerEngine's fused layer norms): the weights
 * under Megatron-J's names with the same values, the model flags of the run's arguments, then generate and a finetune
 * from it; and the checkpoints it cannot take, named.
 */
class CheckpointImportTorchTest {
    private static final Path FIXTURES = Path.of("..", "io", "src", "test", "resources", "org", "megatronj", "io", "torch");
    private static final Path MEGATRON = FIXTURES.resolve("megatron-gpt");

    @TempDir
    Path dir;

    @Test
    void importsTheWeightsAndTheRunsModelThenGeneratesAndTrains() throws IOException {
        Path ckpt = dir.resolve("imported");
        CliRun imp = CliRun.of("checkpoint", "import-torch", "--load", MEGATRON.toString(), "--save", ckpt.toString());
        assertEquals(0, imp.code(), imp.toString());
        assertTrue(imp.out().contains("(iteration 10; 1 layers, hidden 8, padded vocab 16): "), imp.out());

        JsonNode expected = new ObjectMapper().readTree(FIXTURES.resolve("expected.json").toFile()).get("tensors");
        Path rank = ckpt.resolve("release").resolve("mp_rank_00");
        try (SafetensorsFile model = SafetensorsFile.open(rank.resolve("model.safetensors"))) {
            assertEquals(16, model.names().size());
            for (var it = expected.properties().iterator(); it.hasNext(); ) {
                var e = it.next();
                String name = MegatronTorchCheckpoint.localSpecName(e.getKey());
                float[] want = new float[e.getValue().get("values").size()];
                for (int i = 0; i < want.length; i++) {
                    want[i] = (float) e.getValue().get("values").get(i).asDouble();
                }
                assertArrayEquals(want, model.tensor(name).toFloatArray(), name);
            }
            assertTrue(model.names().contains("decoder.layers.0.input_layernorm.bias"), model.names().toString());
        }
        JsonNode meta = new ObjectMapper().readTree(rank.resolve("metadata.json").toFile());
        assertEquals(2, meta.path("model").path("numQueryGroups").asInt(), "no --group-query-attention: one group per head");
        assertEquals(16, meta.path("model").path("vocabSize").asInt() + 1, "NullTokenizer --vocab-size 15");
        assertTrue(meta.path("model").path("geluTanh").asBoolean(), "bias_gelu_fusion: the tanh GeLU");
        assertEquals("NullTokenizer", meta.path("args").path("tokenizer-type").asText());
        assertEquals(10, meta.path("imported_iteration").asInt());

        CliRun gen = CliRun.of("generate", "--load", ckpt.toString(), "--prompt", "1 2 3", "--tokens-to-generate", "3",
                "--temperature", "0");
        assertEquals(0, gen.code(), gen.toString());
        assertTrue(gen.out().strip().matches("1 2 3( [0-9]+){3}"), gen.out());

        CliRun tune = CliRun.of("pretrain", "gpt", "--load", ckpt.toString(), "--use-checkpoint-args", "--mock-data",
                "--seq-length", "8", "--micro-batch-size", "2", "--global-batch-size", "2", "--train-iters", "2", "--lr", "1e-3",
                "--log-interval", "1", "--eval-iters", "0");
        assertEquals(0, tune.code(), tune.toString());
        assertTrue(tune.out().contains("Setting hidden_size to 8 from checkpoint")
                && tune.out().contains(" iteration        2/       2 |"), tune.out());
    }

    /**
     * export-torch writes what PyTorch and import-torch read: Megatron's TE names (or the local spec's), the tensors of
     * the original file, and the arguments; exported and imported again, the weights come back bit for bit.
     */
    @Test
    void exportsWhatImportReadsBack() throws IOException {
        Path imported = dir.resolve("imported");
        assertEquals(0, CliRun.of("checkpoint", "import-torch", "--load", MEGATRON.toString(), "--save", imported.toString()).code());
        Path exported = dir.resolve("megatron");
        CliRun exp = CliRun.of("checkpoint", "export-torch", "--load", imported.toString(), "--save", exported.toString(),
                "--dtype", "bf16");
        assertEquals(0, exp.code(), exp.toString());
        assertEquals("release", Files.readString(exported.resolve("latest_checkpointed_iteration.txt")));
        Path file = exported.resolve("release/mp_rank_00/model_optim_rng.pt");
        JsonNode expected = new ObjectMapper().readTree(FIXTURES.resolve("expected.json").toFile()).get("tensors");
        try (org.megatronj.io.torch.TorchFile torch = org.megatronj.io.torch.TorchFile.open(file)) {
            var state = (java.util.Map<?, ?>) torch.root();
            assertEquals(3.0, state.get("checkpoint_version"));
            var model = (java.util.Map<?, ?>) state.get("model");
            for (var it = expected.properties().iterator(); it.hasNext(); ) {
                var e = it.next();
                var t = (org.megatronj.io.torch.TorchFile.TensorRef) model.get(e.getKey());
                assertEquals("torch.bfloat16", t.dtype(), e.getKey());
                float[] want = new float[e.getValue().get("values").size()];
                for (int i = 0; i < want.length; i++) {
                    want[i] = (float) e.getValue().get("values").get(i).asDouble();
                }
                assertArrayEquals(want, torch.floats(t), e.getKey());
            }
            assertTrue(model.containsKey("decoder.layers.0.self_attention.core_attention._extra_state"), model.keySet().toString());
            var args = (java.util.Map<?, ?>) ((org.megatronj.io.torch.Unpickler.Instance) state.get("args")).state();
            assertEquals(16L, args.get("padded_vocab_size"));
            assertEquals("NullTokenizer", args.get("tokenizer_type"));
            assertEquals(0.1, args.get("hidden_dropout"));
            assertEquals(Boolean.TRUE, args.get("bias_gelu_fusion"));
        }
        Path again = dir.resolve("again");
        assertEquals(0, CliRun.of("checkpoint", "import-torch", "--load", exported.toString(), "--save", again.toString()).code());
        assertEquals(-1L, Files.mismatch(imported.resolve("release/mp_rank_00/model.safetensors"),
                again.resolve("release/mp_rank_00/model.safetensors")));

        Path local = dir.resolve("local");
        assertEquals(0, CliRun.of("checkpoint", "export-torch", "--load", imported.toString(), "--save", local.toString(),
                "--transformer-impl", "local").code());
        try (var torch = org.megatronj.io.torch.TorchFile.open(local.resolve("release/mp_rank_00/model_optim_rng.pt"))) {
            var model = (java.util.Map<?, ?>) ((java.util.Map<?, ?>) torch.root()).get("model");
            assertTrue(model.containsKey("decoder.layers.0.input_layernorm.weight") && model.size() == 16, model.keySet().toString());
        }
        CliRun twice = CliRun.of("checkpoint", "export-torch", "--load", imported.toString(), "--save", local.toString());
        assertEquals(1, twice.code(), twice.toString());
        assertTrue(twice.err().contains("already holds a checkpoint"), twice.err());
    }

    /**
     * A checkpoint of 2 tensor x 2 pipeline ranks (SwiGLU, GQA, rope, RMSNorm, tied embeddings; make_torch_fixtures.py
     * partitions it as Megatron-core does) imports to the same weights as the same model saved whole.
     */
    @Test
    void mergesTensorAndPipelineShards() throws IOException {
        Path whole = dir.resolve("whole"), sharded = dir.resolve("sharded");
        CliRun one = CliRun.of("checkpoint", "import-torch", "--load", FIXTURES.resolve("megatron-gpt-whole").toString(),
                "--save", whole.toString());
        assertEquals(0, one.code(), one.toString());
        CliRun four = CliRun.of("checkpoint", "import-torch", "--load", FIXTURES.resolve("megatron-gpt-tp2pp2").toString(),
                "--save", sharded.toString());
        assertEquals(0, four.code(), four.toString());
        assertTrue(four.out().contains(", merged from 2 tensor x 2 pipeline ranks)"), four.out());
        try (SafetensorsFile a = SafetensorsFile.open(whole.resolve("release/mp_rank_00/model.safetensors"));
             SafetensorsFile b = SafetensorsFile.open(sharded.resolve("release/mp_rank_00/model.safetensors"))) {
            assertEquals(a.names(), b.names());
            for (String name : a.names()) {
                assertArrayEquals(a.tensor(name).toFloatArray(), b.tensor(name).toFloatArray(), name);
            }
        }
        try (var left = Files.list(dir)) {
            assertEquals(java.util.List.of(), left.filter(p -> p.getFileName().toString().startsWith(".")).toList());
        }
        CliRun gen = CliRun.of("generate", "--load", sharded.toString(), "--prompt", "1 2 3", "--tokens-to-generate", "2",
                "--temperature", "0");
        assertEquals(0, gen.code(), gen.toString());
    }

    /**
     * The same model split over 2 pipeline ranks by {@code --pipeline-model-parallel-layout "Ett|L"} (the second stage
     * holds no layer, only the final norm and the tied output layer's copy) imports to the weights of the whole.
     */
    @Test
    void mergesAnUnevenPipelineSplit() throws IOException {
        Path whole = dir.resolve("whole"), split = dir.resolve("split");
        CliRun one = CliRun.of("checkpoint", "import-torch", "--load", FIXTURES.resolve("megatron-gpt-whole").toString(),
                "--save", whole.toString());
        assertEquals(0, one.code(), one.toString());
        CliRun two = CliRun.of("checkpoint", "import-torch", "--load", FIXTURES.resolve("megatron-gpt-layout").toString(),
                "--save", split.toString());
        assertEquals(0, two.code(), two.toString());
        assertTrue(two.out().contains(", merged from 1 tensor x 2 pipeline ranks)"), two.out());
        try (SafetensorsFile a = SafetensorsFile.open(whole.resolve("release/mp_rank_00/model.safetensors"));
             SafetensorsFile b = SafetensorsFile.open(split.resolve("release/mp_rank_00/model.safetensors"))) {
            assertEquals(a.names(), b.names());
            for (String name : a.names()) {
                assertArrayEquals(a.tensor(name).toFloatArray(), b.tensor(name).toFloatArray(), name);
            }
        }
    }

    @Test
    void checkpointsItCannotTakeAreNamed() throws IOException {
        CliRun vocab = CliRun.of("checkpoint", "import-torch", "--load", MEGATRON.toString(), "--save", dir.resolve("v").toString(),
                "--tokenizer-type", "NullTokenizer", "--vocab-size", "100");
        assertEquals(1, vocab.code(), vocab.toString());
        assertTrue(vocab.err().contains("the tokenizer's 100 tokens pad to 104 (--make-vocab-size-divisible-by 8) but ")
                && vocab.err().contains("'s embedding has 16 rows"), vocab.err());

        Path tp2 = dir.resolve("tp2");
        copy(MEGATRON, tp2);
        Path iter = tp2.resolve("iter_0000010");
        copy(iter.resolve("mp_rank_00"), iter.resolve("mp_rank_01"));
        CliRun sharded = CliRun.of("checkpoint", "import-torch", "--load", tp2.toString(), "--save", dir.resolve("s").toString());
        assertEquals(1, sharded.code(), sharded.toString());
        assertTrue(sharded.err().contains("the run's tensor_model_parallel_size is 1 but its folder holds 2 such ranks"),
                sharded.err());

        CliRun none = CliRun.of("checkpoint", "import-torch", "--load", dir.toString(), "--save", dir.resolve("n").toString());
        assertEquals(1, none.code(), none.toString());
        assertTrue(none.err().contains("has no latest_checkpointed_iteration.txt: not a Megatron-LM checkpoint folder"),
                none.err());
    }

    private static void copy(Path from, Path to) throws IOException {
        try (Stream<Path> walk = Files.walk(from)) {
            for (Path p : walk.sorted(Comparator.naturalOrder()).toList()) {
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
