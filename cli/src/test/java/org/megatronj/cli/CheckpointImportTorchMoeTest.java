package org.megatronj.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.io.safetensors.SafetensorsFile;
import org.megatronj.io.torch.Pickler;
import org.megatronj.io.torch.TorchFile;
import org.megatronj.io.torch.TorchWriter;
import org.megatronj.io.torch.Unpickler;

/**
 * {@code checkpoint import-torch} and {@code export-torch} on Megatron-LM mixture-of-experts checkpoints that PyTorch
 * wrote (io's make_torch_moe_fixtures.py: a 2-layer GPT whose layer 0 is a MoE layer of 4 SwiGLU experts, top-2, with a
 * shared expert, and layer 1 dense): every layout the script writes (SequentialMLP over 2 tensor x 2 expert-parallel
 * ranks, TEGroupedMLP over 2 pipeline x 2 expert ranks, the legacy GroupedMLP's transposed weight1/weight2 over 2 tensor
 * ranks, torch_dist's expert axis per layer and stacked) imports to the script's tensors with the run's MoE
 * configuration; generate runs from it; export-torch and import-torch give it back bit for bit; MoE arguments
 * Megatron-J does not build are named.
 */
class CheckpointImportTorchMoeTest {
    private static final Path FIXTURES = Path.of("..", "io", "src", "test", "resources", "org", "megatronj", "io", "torch");

    @TempDir
    Path dir;

    /** The script's tensors under Megatron-J's names: name -> values. */
    private static Map<String, float[]> expected() throws IOException {
        return expected("tensors");
    }

    /** The tensors of {@code entry} of expected-moe.json: the model's ("tensors") or those only one fixture has. */
    private static Map<String, float[]> expected(String entry) throws IOException {
        JsonNode tensors = new ObjectMapper().readTree(FIXTURES.resolve("expected-moe.json").toFile()).get(entry);
        Map<String, float[]> out = new LinkedHashMap<>();
        for (var it = tensors.properties().iterator(); it.hasNext(); ) {
            var e = it.next();
            JsonNode v = e.getValue().get("values_x64");
            float[] values = new float[v.size()];
            for (int i = 0; i < values.length; i++) {
                values[i] = v.get(i).asInt() / 64f;
            }
            out.put(e.getKey(), values);
        }
        return out;
    }

    private static CliRun importFixture(String fixture, Path to) {
        return importFrom(FIXTURES.resolve(fixture), to);
    }

    private static CliRun importFrom(Path megatron, Path to) {
        CliRun run = CliRun.of("checkpoint", "import-torch", "--load", megatron.toString(), "--save", to.toString());
        assertEquals(0, run.code(), run.toString());
        return run;
    }

    /** Every tensor of the imported checkpoint {@code ckpt} equals the script's, and it holds no others. */
    private static void assertTensors(Map<String, float[]> want, Path ckpt) throws IOException {
        try (SafetensorsFile model = SafetensorsFile.open(ckpt.resolve("release/mp_rank_00/model.safetensors"))) {
            assertEquals(new java.util.TreeSet<>(want.keySet()), new java.util.TreeSet<>(model.names()));
            for (var e : want.entrySet()) {
                assertArrayEquals(e.getValue(), model.tensor(e.getKey()).toFloatArray(), e.getKey());
            }
        }
    }

    private static JsonNode moeConfig(Path ckpt) throws IOException {
        return new ObjectMapper().readTree(ckpt.resolve("release/mp_rank_00/metadata.json").toFile()).path("model").path("moe");
    }

    @Test
    void sequentialExpertsOverTensorAndExpertRanksImportAsTheWholeModelThenGenerate() throws IOException {
        Path ckpt = dir.resolve("tp2ep2");
        CliRun run = importFixture("megatron-moe-tp2ep2", ckpt);
        assertTrue(run.out().contains("(iteration 30; 2 layers, hidden 16, padded vocab 32, merged from 2 tensor x 1 pipeline"
                + " x 2 expert-parallel ranks): "), run.out());
        assertTrue(run.out().contains("--num-experts 4 --moe-router-topk 2 --moe-ffn-hidden-size 16 --moe-layer-freq [1,0]"
                + " --moe-router-load-balancing-type aux_loss --moe-aux-loss-coeff 0.01 --moe-router-score-function softmax"
                + " --moe-shared-expert-intermediate-size 24 --moe-shared-expert-gate"), run.out());
        assertTensors(expected(), ckpt);
        JsonNode moe = moeConfig(ckpt);
        assertEquals(4, moe.path("numExperts").asInt());
        assertEquals(2, moe.path("routerTopk").asInt());
        assertEquals(16, moe.path("ffnHiddenSize").asInt());
        assertEquals("[1,0]", moe.path("layerFreq").asText());
        assertEquals(24, moe.path("sharedExpertIntermediateSize").asInt());
        assertTrue(moe.path("sharedExpertGate").asBoolean(), moe.toString());
        assertEquals(0, moe.path("routerNumGroups").asInt());
        assertEquals(0.01, moe.path("auxLossCoeff").asDouble(), 1e-7);

        CliRun gen = CliRun.of("generate", "--load", ckpt.toString(), "--prompt", "1 2 3", "--tokens-to-generate", "3",
                "--temperature", "0");
        assertEquals(0, gen.code(), gen.toString());
        assertTrue(gen.out().strip().matches("1 2 3( [0-9]+){3}"), gen.out());
    }

    @Test
    void groupedGemmExpertsOverPipelineAndExpertRanksImportAsTheWholeModel() throws IOException {
        Path ckpt = dir.resolve("grouped");
        CliRun run = importFixture("megatron-moe-pp2ep2-grouped", ckpt);
        assertTrue(run.out().contains("merged from 1 tensor x 2 pipeline x 2 expert-parallel ranks"), run.out());
        assertTensors(expected(), ckpt);
        JsonNode moe = moeConfig(ckpt);
        assertTrue(moe.path("routerPreSoftmax").asBoolean(), moe.toString());
        assertEquals(0.001, moe.path("zLossCoeff").asDouble(), 1e-9);
        assertEquals(0.0, moe.path("auxLossCoeff").asDouble());
        // moe_router_topk_limited_devices 1 over 2 expert ranks: 2 groups, 1 per token (Megatron's TransformerConfig)
        assertEquals(2, moe.path("routerNumGroups").asInt());
        assertEquals(1, moe.path("routerGroupTopk").asInt());
    }

    /** GroupedMLP's weight1/weight2 hold the transposed experts back to back; read as columns, the values would differ. */
    @Test
    void legacyGroupedMlpWeightsImportAsTheWholeModel() throws IOException {
        Path ckpt = dir.resolve("legacy");
        CliRun run = importFixture("megatron-moe-legacy-tp2", ckpt);
        assertTrue(run.out().contains("merged from 2 tensor x 1 pipeline ranks"), run.out());
        Map<String, float[]> want = expected();
        want.putAll(expected("megatron-moe-legacy-tp2"));   // the router's expert bias
        assertTensors(want, ckpt);
        JsonNode moe = moeConfig(ckpt);
        assertEquals("2", moe.path("layerFreq").asText());
        assertEquals("SEQ_AUX_LOSS", moe.path("loadBalancingType").asText());
        assertEquals("SIGMOID", moe.path("scoreFunction").asText());
        assertEquals(2.5, moe.path("topkScalingFactor").asDouble(), 1e-7);
        assertEquals(1.5, moe.path("expertCapacityFactor").asDouble(), 1e-7);
        assertEquals("POSITION", moe.path("tokenDropPolicy").asText());
        assertTrue(moe.path("padExpertInputToCapacity").asBoolean(), moe.toString());
        assertEquals(2, moe.path("routerNumGroups").asInt());
        assertEquals(1, moe.path("routerGroupTopk").asInt());
        assertTrue(moe.path("routerEnableExpertBias").asBoolean(), moe.toString());
        assertEquals(0.002, moe.path("routerBiasUpdateRate").asDouble(), 1e-9);

        Path exported = dir.resolve("exported"), again = dir.resolve("again");   // the bias goes out and back too
        assertEquals(0, CliRun.of("checkpoint", "export-torch", "--load", ckpt.toString(), "--save", exported.toString()).code());
        try (TorchFile torch = TorchFile.open(exported.resolve("release/mp_rank_00/model_optim_rng.pt"))) {
            Map<?, ?> state = (Map<?, ?>) torch.root();
            Map<?, ?> args = (Map<?, ?>) ((Unpickler.Instance) state.get("args")).state();
            assertEquals(Boolean.TRUE, args.get("moe_router_enable_expert_bias"));
            assertEquals(2L, args.get("moe_layer_freq"));
            assertEquals("sigmoid", args.get("moe_router_score_function"));
            assertEquals(1.5, args.get("moe_expert_capacity_factor"));
            assertEquals(2L, args.get("moe_router_num_groups"));
        }
        importFrom(exported, again);
        assertEquals(-1L, Files.mismatch(ckpt.resolve("release/mp_rank_00/model.safetensors"),
                again.resolve("release/mp_rank_00/model.safetensors")));
    }

    @Test
    void torchDistExpertAxesImportPerLayerAndStacked() throws IOException {
        Path ckpt = dir.resolve("dist");
        CliRun run = importFixture("megatron-moe-dist", ckpt);
        assertTrue(run.out().contains("torch_dist saved by 2 tensor x 1 pipeline ranks"), run.out());
        assertTensors(expected(), ckpt);
        assertEquals("[1,0]", moeConfig(ckpt).path("layerFreq").asText());

        Path stacked = dir.resolve("stacked");
        importFixture("megatron-moe-dist-stacked", stacked);
        Map<String, float[]> layer0 = new LinkedHashMap<>(expected());
        layer0.keySet().removeIf(name -> name.startsWith("decoder.layers.1."));
        assertTensors(layer0, stacked);
        assertEquals("1", moeConfig(stacked).path("layerFreq").asText());
        CliRun gen = CliRun.of("generate", "--load", stacked.toString(), "--prompt", "4 5", "--tokens-to-generate", "2",
                "--temperature", "0");
        assertEquals(0, gen.code(), gen.toString());
    }

    /**
     * export-torch writes the MoE model under Megatron's TE spec names (SequentialMLP's TE linears; the MoE layer's own
     * pre_mlp_layernorm) or the local spec's, with the MoE arguments; import-torch reads either back bit for bit.
     */
    @Test
    void exportsWhatImportReadsBack() throws IOException {
        Path imported = dir.resolve("imported");
        importFixture("megatron-moe-tp2ep2", imported);
        Map<String, float[]> want = expected();
        for (String impl : List.of("transformer_engine", "local")) {
            Path exported = dir.resolve("megatron-" + impl);
            CliRun exp = CliRun.of("checkpoint", "export-torch", "--load", imported.toString(), "--save", exported.toString(),
                    "--dtype", "bf16", "--transformer-impl", impl);
            assertEquals(0, exp.code(), exp.toString());
            try (TorchFile torch = TorchFile.open(exported.resolve("release/mp_rank_00/model_optim_rng.pt"))) {
                Map<?, ?> state = (Map<?, ?>) torch.root();
                Map<?, ?> model = (Map<?, ?>) state.get("model");
                boolean te = impl.equals("transformer_engine");
                List<String> names = new ArrayList<>();
                model.keySet().forEach(k -> names.add((String) k));
                for (var e : want.entrySet()) {
                    String name = te ? e.getKey().replace("layers.0.input_layernorm.", "layers.0.self_attention.linear_qkv.layer_norm_")
                            .replace("layers.1.input_layernorm.", "layers.1.self_attention.linear_qkv.layer_norm_")
                            .replace("layers.1.pre_mlp_layernorm.", "layers.1.mlp.linear_fc1.layer_norm_") : e.getKey();
                    var t = (TorchFile.TensorRef) model.get(name);
                    assertTrue(t != null, name + " in " + names);
                    assertEquals("torch.bfloat16", t.dtype(), name);
                    assertArrayEquals(e.getValue(), torch.floats(t), name);
                }
                assertEquals(te, names.contains("decoder.layers.0.pre_mlp_layernorm.weight") && names.contains(
                        "decoder.layers.0.mlp.experts.local_experts.3.linear_fc2._extra_state")
                        && names.contains("decoder.layers.0.mlp.shared_experts.linear_fc1._extra_state")
                        && !names.contains("decoder.layers.0.mlp.linear_fc1._extra_state"), names.toString());
                Map<?, ?> args = (Map<?, ?>) ((Unpickler.Instance) state.get("args")).state();
                assertEquals(4L, args.get("num_experts"));
                assertEquals(List.of(1L, 0L), args.get("moe_layer_freq"));
                assertEquals(16L, args.get("moe_ffn_hidden_size"));
                assertEquals(2L, args.get("moe_router_topk"));
                assertEquals(24L, args.get("moe_shared_expert_intermediate_size"));
                assertEquals("softmax", args.get("moe_router_score_function"));
                assertEquals(Boolean.TRUE, args.get("moe_shared_expert_gate"));
                assertEquals(Boolean.FALSE, args.get("moe_grouped_gemm"));
                assertEquals(Boolean.FALSE, args.get("add_bias_linear"));
            }
            Path again = dir.resolve("again-" + impl);
            importFrom(exported, again);
            assertEquals(-1L, Files.mismatch(imported.resolve("release/mp_rank_00/model.safetensors"),
                    again.resolve("release/mp_rank_00/model.safetensors")), impl);
            assertEquals(moeConfig(imported), moeConfig(again), impl);
        }
    }

    /** MoE arguments Megatron-J does not build are refused by name (the run's common.pt rewritten with each). */
    @Test
    void moeArgumentsItCannotBuildAreNamed() throws IOException {
        Path copy = dir.resolve("copy");
        TestTrees.copy(FIXTURES.resolve("megatron-moe-dist"), copy);
        Path common = copy.resolve("iter_0000030/common.pt");
        Map<String, Object> args = new LinkedHashMap<>();
        try (TorchFile torch = TorchFile.open(common)) {
            ((Map<?, ?>) ((Unpickler.Instance) ((Map<?, ?>) torch.root()).get("args")).state())
                    .forEach((k, v) -> args.put((String) k, v));
        }
        args.remove("params_dtype");   // a torch.dtype global: not needed here
        record Case(String name, Object value, String message) {
        }
        for (Case c : List.of(
                new Case("moe_apply_probs_on_input", true, "the run used routing probabilities applied to the experts' input"
                        + " (moe_apply_probs_on_input = true), which Megatron-J does not build"),
                new Case("moe_latent_size", 8L, "the run used MoE latent projections (moe_latent_size = 8)"),
                new Case("moe_router_score_function", "sqrtsoftplus", "the run routed with the score function sqrtsoftplus"),
                new Case("moe_router_load_balancing_type", List.of("aux_loss", "seq_aux_loss"), "the run combined several"
                        + " load-balancing losses (moe_router_load_balancing_type = [aux_loss, seq_aux_loss]"),
                new Case("moe_router_load_balancing_type", "global_aux_loss", "the run balanced its experts with global_aux_loss"),
                // MLA imports now (PretrainGptCommandTest exports and imports one); with this run's GQA, Megatron's refusal
                new Case("multi_latent_attention", true,
                        "Group query attention is mutually exclusive with multi latent attention."))) {
            Map<String, Object> changed = new LinkedHashMap<>(args);
            changed.put(c.name(), c.value());
            Files.delete(common);
            TorchWriter.write(common, Map.of("args", new Pickler.NewObject(new Unpickler.Global("argparse", "Namespace"),
                    changed), "iteration", 30L));
            CliRun run = CliRun.of("checkpoint", "import-torch", "--load", copy.toString(), "--save",
                    dir.resolve("out").toString());
            assertEquals(1, run.code(), run.toString());
            assertTrue(run.err().contains(c.message()), c + ": " + run.err());
            assertTrue(!Files.exists(dir.resolve("out")), "nothing written");
        }
    }

    /**
     * {@code --ckpt-format torch}: a missing expert-rank folder is named with the layout the run's arguments give; experts
     * split over another tensor-parallel size than the dense layers (expert_tensor_parallel_size) are refused.
     */
    @Test
    void expertRankFoldersItCannotTakeAreNamed() throws IOException {
        Path copy = dir.resolve("copy");
        TestTrees.copy(FIXTURES.resolve("megatron-moe-tp2ep2"), copy);
        Path iter = copy.resolve("iter_0000030");
        Path last = iter.resolve("mp_rank_01_001/model_optim_rng.pt");
        byte[] bytes = Files.readAllBytes(last);
        Files.delete(last);
        CliRun missing = CliRun.of("checkpoint", "import-torch", "--load", copy.toString(), "--save", dir.resolve("a").toString());
        assertEquals(1, missing.code(), missing.toString());
        assertTrue(missing.err().contains("but not mp_rank_01_001/model_optim_rng.pt: an incomplete checkpoint of 2 tensor, 1"
                + " pipeline and 2 expert-parallel ranks"), missing.err());
        Files.write(last, bytes);

        for (String rank : List.of("mp_rank_00_000", "mp_rank_00_001", "mp_rank_01_000", "mp_rank_01_001")) {
            Path file = iter.resolve(rank).resolve("model_optim_rng.pt");
            Map<String, Object> state = new LinkedHashMap<>();
            try (TorchFile torch = TorchFile.open(file)) {
                Map<?, ?> root = (Map<?, ?>) torch.root();
                Map<String, Object> args = new LinkedHashMap<>();
                ((Map<?, ?>) ((Unpickler.Instance) root.get("args")).state()).forEach((k, v) -> args.put((String) k, v));
                args.remove("params_dtype");
                args.put("expert_tensor_parallel_size", 1L);
                Map<String, Object> model = new LinkedHashMap<>();
                ((Map<?, ?>) root.get("model")).forEach((k, v) -> model.put((String) k, v instanceof TorchFile.TensorRef t
                        ? new TorchWriter.TensorData("torch.float32", t.shape(), torch.floats(t)) : null));
                state.put("args", new Pickler.NewObject(new Unpickler.Global("argparse", "Namespace"), args));
                state.put("iteration", 30L);
                state.put("model", new Pickler.OrderedDict(model));
            }
            Files.delete(file);
            TorchWriter.write(file, state);
        }
        CliRun etp = CliRun.of("checkpoint", "import-torch", "--load", copy.toString(), "--save", dir.resolve("b").toString());
        assertEquals(1, etp.code(), etp.toString());
        assertTrue(etp.err().contains("the run split its experts over expert_tensor_parallel_size = 1 ranks, not its 2 tensor"
                + " ranks"), etp.err());
    }
}
