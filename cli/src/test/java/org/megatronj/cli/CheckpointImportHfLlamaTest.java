package org.megatronj.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.megatronj.io.checkpoint.Checkpoint;
import org.megatronj.io.safetensors.SafetensorsFile;
import org.megatronj.memory.cpu.CpuBackend;
import org.megatronj.model.GPTModel;
import org.megatronj.model.TransformerConfig;
import org.megatronj.parallel.train.TrainingCheckpointer;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import java.util.function.UnaryOperator;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code checkpoint import-hf} / {@code export-hf} for the Llama family and its mixtures of experts, against tiny random
 * models whose logits an independent torch implementation of each transformers architecture computed
 * (src/test/resources/org/megatronj/cli/hf/make_hf_fixtures.py): the imported model's {@code GPTModel.forwardLogits}
 * match them; export-hf gives the same tensors (names, dtypes, shapes, bits) and the same config.json back; a wrong
 * QKV interleave or gate/up order is caught; unsupported configs are refused naming the field.
 */
class CheckpointImportHfLlamaTest {
    static final Path FIXTURES = Path.of("src", "test", "resources", "org", "megatronj", "cli", "hf");
    private static final ObjectMapper JSON = new ObjectMapper();
    /** max |logit - reference| / max |reference|: fp32 against the float64 reference. */
    private static final double TOLERANCE = 1e-4;

    @TempDir
    Path dir;

    @ParameterizedTest
    @ValueSource(strings = {"llama3", "llama2_tied", "mistral", "qwen2", "qwen3", "mixtral", "qwen2_moe", "qwen3_moe"})
    void importedModelsComputeTheReferenceLogitsAndExportBack(String variant) throws Exception {
        Path hf = FIXTURES.resolve(variant);
        Path ckpt = dir.resolve("ckpt");
        CliRun imp = CliRun.of("checkpoint", "import-hf", "--hf-dir", hf.toString(), "--save", ckpt.toString());
        assertEquals(0, imp.code(), imp.toString());
        JsonNode expected = JSON.readTree(hf.resolve("expected.json").toFile());
        double err = logitError(ckpt, expected, model -> { });
        System.out.printf("%s: relative logit error %.3g%n", variant, err);
        assertTrue(err < TOLERANCE, variant + ": relative logit error " + err);

        // generate (its KV-cache path) continues the sequence with the reference's argmax.
        StringBuilder prompt = new StringBuilder();
        expected.get("tokens").forEach(t -> prompt.append(prompt.isEmpty() ? "" : " ").append(t.asInt()));
        JsonNode last = expected.get("logits").get(expected.get("tokens").size() - 1);
        int argmax = 0;
        for (int v = 1; v < last.size(); v++) {
            argmax = last.get(v).asDouble() > last.get(argmax).asDouble() ? v : argmax;
        }
        CliRun gen = CliRun.of("generate", "--load", ckpt.toString(), "--prompt", prompt.toString(), "--tokens-to-generate", "1",
                "--tokenizer-type", "NullTokenizer", "--vocab-size", "61",
                "--temperature", "0");
        assertEquals(0, gen.code(), gen.toString());
        assertEquals(prompt + " " + argmax, gen.out().strip(), variant);

        Path back = dir.resolve("back");
        CliRun exp = CliRun.of("checkpoint", "export-hf", "--load", ckpt.toString(), "--hf-dir", back.toString());
        assertEquals(0, exp.code(), exp.toString());
        assertEquals(JSON.readTree(hf.resolve("config.json").toFile()), JSON.readTree(back.resolve("config.json").toFile()),
                variant + " config.json");
        try (SafetensorsFile a = SafetensorsFile.open(hf.resolve("model.safetensors"));
             SafetensorsFile b = SafetensorsFile.open(back.resolve("model.safetensors"))) {
            assertEquals(new java.util.TreeSet<>(a.names()), new java.util.TreeSet<>(b.names()), variant + " tensor names");
            for (String name : a.names()) {
                assertEquals(a.info(name).dtype(), b.info(name).dtype(), name);
                assertArrayEquals(a.info(name).shape(), b.info(name).shape(), name);
                assertArrayEquals(a.tensor(name).toFloatArray(), b.tensor(name).toFloatArray(), variant + " " + name);
            }
        }
        // The export imports again to the same checkpoint tensors.
        Path again = dir.resolve("again");
        assertEquals(0, CliRun.of("checkpoint", "import-hf", "--hf-dir", back.toString(), "--save", again.toString()).code());
        assertTrue(logitError(again, expected, model -> { }) < TOLERANCE);
    }

    /**
     * An imported model fine-tunes with the flags import-hf prints (or --use-checkpoint-args and the flags Megatron's
     * does not take), and its checkpoints export as the imported architecture.
     */
    @ParameterizedTest
    @ValueSource(strings = {"llama3", "qwen2_moe"})
    void importedModelsFineTuneAndExportAgain(String variant) throws Exception {
        Path ckpt = dir.resolve("ckpt");
        CliRun imp = CliRun.of("checkpoint", "import-hf", "--hf-dir", FIXTURES.resolve(variant).toString(), "--save",
                ckpt.toString());
        assertEquals(0, imp.code(), imp.toString());
        String flags = imp.out().lines().filter(l -> l.startsWith("pretrain gpt model flags: ")).findFirst().orElseThrow()
                .substring("pretrain gpt model flags: ".length());
        Path tuned = dir.resolve("tuned");
        List<String> args = new ArrayList<>(List.of("pretrain", "gpt", "--mock-data", "--tokenizer-type", "NullTokenizer",
                "--vocab-size", "61", "--load", ckpt.toString(), "--save", tuned.toString(), "--seq-length", "16",
                "--micro-batch-size", "2", "--global-batch-size", "2", "--train-iters", "2", "--lr", "1e-3", "--log-interval", "1",
                "--eval-iters", "0", "--seed", "3"));
        args.addAll(List.of(flags.split(" ")));
        CliRun run = CliRun.of(args.toArray(String[]::new));
        assertEquals(0, run.code(), run.toString());
        if (variant.equals("llama3")) {   // --use-checkpoint-args takes the rest, as Megatron's
            CliRun withArgs = CliRun.of("pretrain", "gpt", "--mock-data", "--tokenizer-type", "NullTokenizer", "--vocab-size", "61",
                    "--load", ckpt.toString(), "--use-checkpoint-args", "--norm-epsilon", "1e-6", "--use-rope-scaling",
                    "--rope-scaling-factor", "8", "--seq-length", "16", "--micro-batch-size", "2",
                    "--global-batch-size", "2", "--train-iters", "1", "--lr", "1e-3", "--eval-iters", "0");
            assertEquals(0, withArgs.code(), withArgs.toString());
        }
        Path back = dir.resolve("back");
        CliRun exp = CliRun.of("checkpoint", "export-hf", "--load", tuned.toString(), "--hf-dir", back.toString());
        assertEquals(0, exp.code(), exp.toString());
        JsonNode original = JSON.readTree(FIXTURES.resolve(variant).resolve("config.json").toFile());
        assertEquals(original, JSON.readTree(back.resolve("config.json").toFile()), variant + " config.json after fine-tuning");
        try (SafetensorsFile a = SafetensorsFile.open(FIXTURES.resolve(variant).resolve("model.safetensors"));
             SafetensorsFile b = SafetensorsFile.open(back.resolve("model.safetensors"))) {
            assertEquals(new java.util.TreeSet<>(a.names()), new java.util.TreeSet<>(b.names()));
            String name = "model.layers.0.self_attn.q_proj.weight";
            assertTrue(!java.util.Arrays.equals(a.tensor(name).toFloatArray(), b.tensor(name).toFloatArray()), "trained: " + name);
        }
    }

    /** The logit comparison fails for Megatron's fused QKV rows in HF's [q | k | v] order, or fc1 as [up; gate]. */
    @Test
    void wrongQkvInterleaveOrGateUpOrderFailsTheComparison() throws Exception {
        Path hf = FIXTURES.resolve("llama3");
        Path ckpt = dir.resolve("ckpt");
        assertEquals(0, CliRun.of("checkpoint", "import-hf", "--hf-dir", hf.toString(), "--save", ckpt.toString()).code());
        JsonNode expected = JSON.readTree(hf.resolve("expected.json").toFile());
        double qkv = logitError(ckpt, expected, model -> mutate(model, "self_attention.linear_qkv.weight", (w, c) -> {
            // undo the grouping: [q_g0 k_g0 v_g0 q_g1 ...] read as if it were HF's concatenation [q | k | v]
            int d = c.kvChannels(), h = c.hiddenSize(), per = c.headsPerGroup(), ng = c.numQueryGroups();
            float[] out = new float[w.length];
            int row = 0;
            for (int part = 0; part < 3; part++) {
                for (int g = 0; g < ng; g++) {
                    int heads = part == 0 ? per : 1;
                    int from = (g * (per + 2) + (part == 0 ? 0 : per + part - 1)) * d;
                    System.arraycopy(w, from * h, out, row * h, heads * d * h);
                    row += heads * d;
                }
            }
            return out;
        }));
        System.out.printf("mutations: qkv %.3g%n", qkv);
        assertTrue(qkv > 1e-2, "QKV in [q | k | v] order must change the logits: " + qkv);
        double gateUp = logitError(ckpt, expected, model -> mutate(model, "mlp.linear_fc1.weight", (w, c) -> {
            float[] out = new float[w.length];
            System.arraycopy(w, w.length / 2, out, 0, w.length / 2);
            System.arraycopy(w, 0, out, w.length / 2, w.length / 2);
            return out;
        }));
        System.out.printf("mutations: gate/up %.3g%n", gateUp);
        assertTrue(gateUp > 1e-2, "fc1 as [up; gate] must change the logits: " + gateUp);
        // Llama 3.x's rope scaling with another factor, and Qwen2-MoE's routing renormalised, are caught too.
        double factor = logitError(ckpt, expected, c -> c.toBuilder().ropeScalingFactor(4f).build(), model -> { });
        System.out.printf("mutations: rope scaling factor %.3g%n", factor);
        assertTrue(factor > 5e-4, "--rope-scaling-factor 4 instead of 8 must change the logits: " + factor);
        Path moe = dir.resolve("moe");
        assertEquals(0, CliRun.of("checkpoint", "import-hf", "--hf-dir", FIXTURES.resolve("qwen2_moe").toString(), "--save",
                moe.toString()).code());
        double renormalised = logitError(moe, JSON.readTree(FIXTURES.resolve("qwen2_moe").resolve("expected.json").toFile()),
                c -> c.toBuilder().moe(c.moe().withRouting(false, c.moe().scoreFunction(), 0f)).build(), model -> { });
        System.out.printf("mutations: qwen2_moe renormalised %.3g%n", renormalised);
        assertTrue(renormalised > 1e-2, "norm_topk_prob false is --moe-router-pre-softmax: " + renormalised);
    }

    @Test
    void unsupportedConfigsAreRefusedNamingTheField() throws Exception {
        record Case(String variant, String field, JsonNode value, String message) {
        }
        ObjectNode yarn = JSON.createObjectNode().put("rope_type", "yarn").put("factor", 4.0);
        ObjectNode llama3 = (ObjectNode) JSON.readTree(FIXTURES.resolve("llama3").resolve("config.json").toFile()).get("rope_scaling");
        int n = 0;
        for (Case c : List.of(
                new Case("llama3", "model_type", JSON.getNodeFactory().textNode("falcon"),
                        "model_type is 'falcon'; supported: 'gpt2', 'llama', 'mistral', 'qwen2', 'qwen3', 'mixtral', 'qwen2_moe', 'qwen3_moe'"),
                new Case("mistral", "sliding_window", JSON.getNodeFactory().numberNode(16),
                        "sliding_window 16 is smaller than max_position_embeddings 64; sliding-window attention is not supported"),
                new Case("qwen2", "use_sliding_window", JSON.getNodeFactory().booleanNode(true),
                        "sliding_window 32 is smaller than max_position_embeddings 64 with use_sliding_window true"),
                new Case("llama3", "rope_scaling", yarn, "rope_scaling.rope_type 'yarn' is not supported (null, 'default', 'llama3' or 'linear')"),
                new Case("llama3", "rope_scaling", llama3.deepCopy().put("high_freq_factor", 2.0),
                        "rope_scaling.high_freq_factor is 2.0; Megatron's --use-rope-scaling computes Llama 3.x's scaling with high_freq_factor 4 only"),
                new Case("llama3", "attention_bias", JSON.getNodeFactory().booleanNode(true), "attention_bias is true"),
                new Case("llama3", "hidden_act", JSON.getNodeFactory().textNode("gelu"), "hidden_act is 'gelu'; only 'silu'"),
                new Case("mixtral", "router_jitter_noise", JSON.getNodeFactory().numberNode(0.1), "router_jitter_noise 0.1 is not supported"))) {
            Path hf = dir.resolve(c.variant() + "-" + c.field() + "-" + n++);
            Files.createDirectories(hf);
            Files.copy(FIXTURES.resolve(c.variant()).resolve("model.safetensors"), hf.resolve("model.safetensors"));
            ObjectNode config = (ObjectNode) JSON.readTree(FIXTURES.resolve(c.variant()).resolve("config.json").toFile());
            config.set(c.field(), c.value());
            Files.writeString(hf.resolve("config.json"), config.toPrettyString());
            CliRun bad = CliRun.of("checkpoint", "import-hf", "--hf-dir", hf.toString(), "--save", dir.resolve("x").toString());
            assertEquals(1, bad.code(), bad.toString());
            assertTrue(bad.err().contains(c.message()), c.message() + " in " + bad.err());
        }
        // A tied config with an lm_head that differs from the embedding, and weights the config does not explain.
        Path hf = dir.resolve("tied");
        Files.createDirectories(hf);
        Files.copy(FIXTURES.resolve("llama3").resolve("model.safetensors"), hf.resolve("model.safetensors"));
        ObjectNode config = (ObjectNode) JSON.readTree(FIXTURES.resolve("llama3").resolve("config.json").toFile());
        Files.writeString(hf.resolve("config.json"), config.put("tie_word_embeddings", true).toPrettyString());
        CliRun bad = CliRun.of("checkpoint", "import-hf", "--hf-dir", hf.toString(), "--save", dir.resolve("x").toString());
        assertEquals(1, bad.code(), bad.toString());
        assertTrue(bad.err().contains("lm_head.weight differs from model.embed_tokens.weight"), bad.err());
        Files.writeString(hf.resolve("config.json"), config.put("tie_word_embeddings", false).put("num_hidden_layers", 1).toPrettyString());
        bad = CliRun.of("checkpoint", "import-hf", "--hf-dir", hf.toString(), "--save", dir.resolve("x").toString());
        assertEquals(1, bad.code(), bad.toString());
        assertTrue(bad.err().contains("tensors have no meaning in this architecture, e.g. 'model.layers.1."), bad.err());
    }

    interface Mutation {
        float[] apply(float[] weight, TransformerConfig config);
    }

    private static void mutate(GPTModel model, String suffix, Mutation m) {
        for (var p : model.parameters()) {
            if (p.name().endsWith(suffix)) {
                p.data().copyFrom(m.apply(p.data().toFloatArray(), model.config()));
            }
        }
        model.refreshComputeWeights();
    }

    /** max |logits - expected| / max |expected| over the real vocabulary, for the checkpoint's model after {@code edit}. */
    static double logitError(Path ckpt, JsonNode expected, Consumer<GPTModel> edit) throws IOException {
        return logitError(ckpt, expected, c -> c, edit);
    }

    /** As {@link #logitError(Path, JsonNode, Consumer)} with the model built from {@code reconfigure} of the checkpoint's config. */
    static double logitError(Path ckpt, JsonNode expected, UnaryOperator<TransformerConfig> reconfigure, Consumer<GPTModel> edit)
            throws IOException {
        List<Integer> tokenList = new ArrayList<>();
        expected.get("tokens").forEach(t -> tokenList.add(t.asInt()));
        int[] tokens = tokenList.stream().mapToInt(Integer::intValue).toArray();
        try (Checkpoint c = Checkpoint.openLatest(ckpt, TrainingCheckpointer.RANK_DIR)) {
            TransformerConfig config = reconfigure.apply(JSON.treeToValue(c.metadata().get("model"), TransformerConfig.class));
            try (GPTModel model = new GPTModel(config, new CpuBackend(), 1)) {
                TrainingCheckpointer.loadWeights(c, model.parameters());
                model.refreshComputeWeights();
                edit.accept(model);
                float[] logits = model.forwardLogits(tokens, null, 1, tokens.length);
                int padded = config.paddedVocabSize();
                double maxErr = 0;
                double maxRef = 0;
                for (int t = 0; t < tokens.length; t++) {
                    JsonNode row = expected.get("logits").get(t);
                    assertEquals(config.vocabSize(), row.size());
                    for (int v = 0; v < row.size(); v++) {
                        double ref = row.get(v).asDouble();
                        maxRef = Math.max(maxRef, Math.abs(ref));
                        maxErr = Math.max(maxErr, Math.abs(logits[t * padded + v] - ref));
                    }
                }
                return maxErr / maxRef;
            }
        }
    }
}
