package org.megatronj.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.megatronj.io.safetensors.SafetensorsFile;
import org.megatronj.model.MlaConfig;
import org.megatronj.model.TransformerConfig;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code checkpoint import-hf} for DeepSeek-V3 ({@code model_type} deepseek_v3), against tiny random models whose logits
 * an independent float64 torch implementation of transformers' modeling_deepseek_v3.py computed
 * (src/test/resources/org/megatronj/cli/hf/make_deepseek_fixtures.py): "deepseek_v3" (query latent, a dense layer then
 * sigmoid-routed group-limited experts with the correction bias, a shared expert, routed_scaling_factor, YaRN,
 * interleaved rope, untied, bf16, an MTP depth stored) and "deepseek_v3_lite" (no query latent, rotate-half rope,
 * no rope scaling, every layer MoE, two shared experts, tied, fp32). A wrong kv_b_proj split, rope layout, expert bias or
 * YaRN factor is caught; unsupported configs are refused naming the field.
 */
class CheckpointImportHfDeepseekTest {
    private static final Path FIXTURES = CheckpointImportHfLlamaTest.FIXTURES;
    private static final ObjectMapper JSON = new ObjectMapper();
    /** max |logit - reference| / max |reference|: fp32 against the float64 reference. */
    private static final double TOLERANCE = 1e-4;

    @TempDir
    Path dir;

    @ParameterizedTest
    @ValueSource(strings = {"deepseek_v3", "deepseek_v3_lite"})
    void importedModelsComputeTheReferenceLogits(String variant) throws Exception {
        Path hf = FIXTURES.resolve(variant);
        Path ckpt = dir.resolve("ckpt");
        CliRun imp = CliRun.of("checkpoint", "import-hf", "--hf-dir", hf.toString(), "--save", ckpt.toString());
        assertEquals(0, imp.code(), imp.toString());
        double err = CheckpointImportHfLlamaTest.logitError(ckpt, expected(variant), model -> { });
        System.out.printf("%s: relative logit error %.3g%n", variant, err);
        assertTrue(err < TOLERANCE, variant + ": relative logit error " + err);
    }

    /**
     * export-hf writes the imported tensors back bit for bit in the imported dtype (rope rows de-interleaved again for
     * the lite fixture) and the same config.json but num_nextn_predict_layers 0 (the MTP depth is not written); the
     * export imports again to the same logits.
     */
    @ParameterizedTest
    @ValueSource(strings = {"deepseek_v3", "deepseek_v3_lite"})
    void exportGivesTheImportedTensorsAndConfigBack(String variant) throws Exception {
        Path hf = FIXTURES.resolve(variant);
        Path ckpt = dir.resolve("ckpt");
        assertEquals(0, CliRun.of("checkpoint", "import-hf", "--hf-dir", hf.toString(), "--save", ckpt.toString()).code());
        Path back = dir.resolve("back");
        CliRun exp = CliRun.of("checkpoint", "export-hf", "--load", ckpt.toString(), "--hf-dir", back.toString());
        assertEquals(0, exp.code(), exp.toString());
        ObjectNode original = config(variant);
        int mtp = original.get("num_nextn_predict_layers").asInt();
        original.put("num_nextn_predict_layers", 0);
        assertEquals(original, JSON.readTree(back.resolve("config.json").toFile()), variant + " config.json");
        int layers = original.get("num_hidden_layers").asInt();
        try (SafetensorsFile a = SafetensorsFile.open(hf.resolve("model.safetensors"));
             SafetensorsFile b = SafetensorsFile.open(back.resolve("model.safetensors"))) {
            java.util.Set<String> kept = new java.util.TreeSet<>(a.names());
            kept.removeIf(n -> mtp > 0 && n.startsWith("model.layers." + layers + "."));
            assertEquals(kept, new java.util.TreeSet<>(b.names()), variant + " tensor names");
            for (String name : kept) {
                assertEquals(a.info(name).dtype(), b.info(name).dtype(), name);
                org.junit.jupiter.api.Assertions.assertArrayEquals(a.info(name).shape(), b.info(name).shape(), name);
                org.junit.jupiter.api.Assertions.assertArrayEquals(a.tensor(name).toFloatArray(), b.tensor(name).toFloatArray(),
                        variant + " " + name);
            }
        }
        Path again = dir.resolve("again");
        assertEquals(0, CliRun.of("checkpoint", "import-hf", "--hf-dir", back.toString(), "--save", again.toString()).code());
        assertTrue(CheckpointImportHfLlamaTest.logitError(again, expected(variant), model -> { }) < TOLERANCE);
    }

    /**
     * The same model as float16 shards with model.safetensors.index.json (bf16 values are exact in fp16 at these
     * magnitudes), and its YaRN given as transformers 5's rope_parameters (rope_theta inside), computes the same logits.
     */
    @Test
    void float16ShardsAndRopeParametersImportAlike() throws Exception {
        Path hf = dir.resolve("fp16-sharded");
        Files.createDirectories(hf);
        try (SafetensorsFile whole = SafetensorsFile.open(FIXTURES.resolve("deepseek_v3").resolve("model.safetensors"));
             org.megatronj.memory.TensorArena arena = org.megatronj.memory.TensorArena.named("fp16")) {
            java.util.Map<String, org.megatronj.memory.Tensor> half = new java.util.LinkedHashMap<>();
            for (String n : whole.names()) {
                half.put(n, arena.allocate(org.megatronj.memory.DType.F16, whole.info(n).shape())
                        .copyFrom(whole.tensor(n).toFloatArray()));
            }
            org.megatronj.io.safetensors.SafetensorsWriter.write(hf.resolve("model.safetensors"), half, java.util.Map.of("format", "pt"));
        }
        HfGpt2Fixture.shard(hf);
        ObjectNode config = config("deepseek_v3");
        ObjectNode rope = ((ObjectNode) config.remove("rope_scaling")).put("rope_theta", config.remove("rope_theta").asDouble());
        rope.set("rope_type", rope.remove("type"));
        config.set("rope_parameters", rope);
        config.put("torch_dtype", "float16");
        Files.writeString(hf.resolve("config.json"), config.toPrettyString());
        Path ckpt = dir.resolve("ckpt");
        CliRun imp = CliRun.of("checkpoint", "import-hf", "--hf-dir", hf.toString(), "--save", ckpt.toString());
        assertEquals(0, imp.code(), imp.toString());
        assertTrue(imp.out().contains("--rope-type yarn --rotary-scaling-factor 4"), imp.out());
        double err = CheckpointImportHfLlamaTest.logitError(ckpt, expected("deepseek_v3"), model -> { });
        System.out.printf("deepseek_v3 fp16 shards: relative logit error %.3g%n", err);
        assertTrue(err < TOLERANCE, "fp16 shards: relative logit error " + err);
    }

    /**
     * The released DeepSeek-V3's config.json (fields as published): refused for its FP8 quantization_config; without it
     * (a bf16 copy) it maps to DeepSeek-V3's Megatron shape.
     */
    @Test
    void theReleasedConfigMapsOnceDequantized() throws Exception {
        ObjectNode c = (ObjectNode) JSON.readTree("""
                {"architectures": ["DeepseekV3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
                 "aux_loss_alpha": 0.001, "bos_token_id": 0, "eos_token_id": 1, "ep_size": 1, "first_k_dense_replace": 3,
                 "hidden_act": "silu", "hidden_size": 7168, "initializer_range": 0.02, "intermediate_size": 18432,
                 "kv_lora_rank": 512, "max_position_embeddings": 163840, "model_type": "deepseek_v3",
                 "moe_intermediate_size": 2048, "moe_layer_freq": 1, "n_group": 8, "n_routed_experts": 256,
                 "n_shared_experts": 1, "norm_topk_prob": true, "num_attention_heads": 128, "num_experts_per_tok": 8,
                 "num_hidden_layers": 61, "num_key_value_heads": 128, "num_nextn_predict_layers": 1, "q_lora_rank": 1536,
                 "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
                 "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                         "weight_block_size": [128, 128]},
                 "rms_norm_eps": 1e-06,
                 "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                                  "original_max_position_embeddings": 4096, "type": "yarn"},
                 "rope_theta": 10000, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "seq_aux": true,
                 "tie_word_embeddings": false, "topk_group": 4, "topk_method": "noaux_tc", "torch_dtype": "bfloat16",
                 "transformers_version": "4.33.1", "use_cache": true, "v_head_dim": 128, "vocab_size": 129280}
                """);
        Path file = Path.of("config.json");
        var refused = org.junit.jupiter.api.Assertions.assertThrows(RuntimeException.class,
                () -> org.megatronj.parallel.checkpoint.DeepseekHfConfig.toTransformerConfig(c, file, 128));
        assertTrue(refused.getMessage().contains("quant_method 'fp8'") && refused.getMessage().contains("dequantize first"),
                refused.getMessage());
        c.remove("quantization_config");
        TransformerConfig t = org.megatronj.parallel.checkpoint.DeepseekHfConfig.toTransformerConfig(c, file, 128);
        String flags = org.megatronj.parallel.checkpoint.DeepseekHfConfig.megatronFlags(t);
        for (String expected : List.of("--num-layers 61 --hidden-size 7168 --ffn-hidden-size 18432 --num-attention-heads 128",
                "--max-position-embeddings 163840", "--num-experts 256 --moe-router-topk 8 --moe-ffn-hidden-size 2048"
                        + " --moe-layer-freq [0,0,0,1,", "--moe-shared-expert-intermediate-size 2048",
                "--multi-latent-attention --q-lora-rank 1536 --kv-lora-rank 512 --qk-head-dim 128 --qk-pos-emb-head-dim 64"
                        + " --v-head-dim 128 --rope-type yarn --rotary-scaling-factor 40 --mscale 1 --mscale-all-dim 1",
                "--moe-router-score-function sigmoid --moe-router-topk-scaling-factor 2.5 --moe-router-enable-expert-bias"
                        + " --moe-router-num-groups 8 --moe-router-group-topk 4")) {
            assertTrue(flags.contains(expected), expected + " in " + flags);
        }
        assertEquals(1, org.megatronj.parallel.checkpoint.DeepseekHfConfig.mtpDepths(c, file));
    }

    @Test
    void importPrintsTheEquivalentPretrainFlagsAndTheLeftOutMtpDepth() throws Exception {
        CliRun imp = CliRun.of("checkpoint", "import-hf", "--hf-dir", FIXTURES.resolve("deepseek_v3").toString(), "--save",
                dir.resolve("ckpt").toString());
        assertEquals(0, imp.code(), imp.toString());
        assertTrue(imp.out().contains("note: left out the 1 multi-token-prediction depth(s) stored as model.layers.3"), imp.out());
        String flags = imp.out().lines().filter(l -> l.startsWith("pretrain gpt model flags: ")).findFirst().orElseThrow()
                .substring("pretrain gpt model flags: ".length());
        for (String expected : List.of("--num-layers 3 ", "--hidden-size 32 ", "--ffn-hidden-size 48 ", "--num-attention-heads 4 ",
                "--max-position-embeddings 16384 ", "--rotary-base 10000 ", "--normalization RMSNorm --norm-epsilon 1.0E-6",
                "--swiglu", "--disable-bias-linear", "--qk-layernorm", "--untie-embeddings-and-output-weights",
                "--num-experts 8 --moe-router-topk 4 --moe-ffn-hidden-size 16 --moe-layer-freq [0,1,1]",
                "--moe-shared-expert-intermediate-size 16", "--multi-latent-attention --q-lora-rank 24 --kv-lora-rank 16"
                        + " --qk-head-dim 8 --qk-pos-emb-head-dim 8 --v-head-dim 12 --rope-type yarn --rotary-scaling-factor 4"
                        + " --mscale 1 --mscale-all-dim 0.8",
                "--moe-router-score-function sigmoid --moe-router-topk-scaling-factor 2.5 --moe-router-enable-expert-bias"
                        + " --moe-router-num-groups 4 --moe-router-group-topk 2")) {
            assertTrue(flags.contains(expected), expected + " in " + flags);
        }
        // The flags build the imported model: a short fine-tuning run loads the checkpoint with them.
        List<String> args = new java.util.ArrayList<>(List.of("pretrain", "gpt", "--mock-data", "--tokenizer-type",
                "NullTokenizer", "--vocab-size", "61", "--load", dir.resolve("ckpt").toString(), "--seq-length", "16",
                "--micro-batch-size", "1", "--global-batch-size", "1", "--train-iters", "1", "--lr", "1e-4",
                "--eval-iters", "0"));
        args.addAll(List.of(flags.split(" ")));
        CliRun run = CliRun.of(args.toArray(String[]::new));
        assertEquals(0, run.code(), run.toString());

        CliRun lite = CliRun.of("checkpoint", "import-hf", "--hf-dir", FIXTURES.resolve("deepseek_v3_lite").toString(), "--save",
                dir.resolve("lite").toString());
        assertEquals(0, lite.code(), lite.toString());
        assertTrue(lite.out().contains("--multi-latent-attention --kv-lora-rank 16 --qk-head-dim 8 --qk-pos-emb-head-dim 8"
                + " --v-head-dim 12 --rope-type rope --moe-router-score-function sigmoid"
                + " --moe-router-topk-scaling-factor 1.5 --moe-router-enable-expert-bias"), lite.out());
        assertTrue(!lite.out().contains("--untie-embeddings") && !lite.out().contains("--moe-router-num-groups")
                && !lite.out().contains("note: left out"), lite.out());
    }

    /**
     * The logit comparison fails for kv_b_proj split per head as [v; k_nope], the expert bias dropped, YaRN's factor
     * off, the group limit dropped, or the rotate-half rope rows not re-laid.
     */
    @Test
    void wrongKvSplitRopeLayoutBiasOrYarnFailTheComparison() throws Exception {
        Path ckpt = dir.resolve("ckpt");
        assertEquals(0, CliRun.of("checkpoint", "import-hf", "--hf-dir", FIXTURES.resolve("deepseek_v3").toString(), "--save",
                ckpt.toString()).code());
        JsonNode expected = expected("deepseek_v3");
        double kvSplit = CheckpointImportHfLlamaTest.logitError(ckpt, expected, model -> mutate(model,
                "self_attention.linear_kv_up_proj.weight", (w, c) -> {
                    // per head [k_nope; v] read as if it were [v; k_nope] of the same widths swapped
                    MlaConfig m = c.mla();
                    int cols = m.kvLoraRank(), nope = m.qkHeadDim(), v = m.vHeadDim(), per = (nope + v) * cols;
                    float[] out = new float[w.length];
                    for (int head = 0; head < c.numAttentionHeads(); head++) {
                        System.arraycopy(w, head * per + nope * cols, out, head * per, v * cols);
                        System.arraycopy(w, head * per, out, head * per + v * cols, nope * cols);
                    }
                    return out;
                }));
        System.out.printf("mutations: kv_b_proj split %.3g%n", kvSplit);
        assertTrue(kvSplit > 1e-2, "kv_b_proj as [v; k_nope] must change the logits: " + kvSplit);
        double bias = CheckpointImportHfLlamaTest.logitError(ckpt, expected, model -> mutate(model, "mlp.router.expert_bias",
                (w, c) -> new float[w.length]));
        System.out.printf("mutations: expert bias dropped %.3g%n", bias);
        assertTrue(bias > 1e-3, "the expert bias must change the choice: " + bias);
        double yarn = CheckpointImportHfLlamaTest.logitError(ckpt, expected, c -> c.toBuilder().mla(c.mla().withRope(
                c.mla().ropeType(), 2f, c.mla().mscale(), c.mla().mscaleAllDim())).build(), model -> { });
        System.out.printf("mutations: yarn factor 2 %.3g%n", yarn);
        assertTrue(yarn > 1e-3, "--rotary-scaling-factor 2 instead of 4 must change the logits: " + yarn);

        double ungrouped = CheckpointImportHfLlamaTest.logitError(ckpt, expected, c -> c.toBuilder().moe(
                c.moe().withGroupLimitedRouting(0, 0)).build(), model -> { });
        System.out.printf("mutations: no group limit %.3g%n", ungrouped);
        assertTrue(ungrouped > 1e-3, "n_group / topk_group must limit the choice: " + ungrouped);

        // The lite fixture's rotate-half rope: without the rows re-laid the scores change.
        Path lite = dir.resolve("lite");
        assertEquals(0, CliRun.of("checkpoint", "import-hf", "--hf-dir", FIXTURES.resolve("deepseek_v3_lite").toString(),
                "--save", lite.toString()).code());
        double rope = CheckpointImportHfLlamaTest.logitError(lite, expected("deepseek_v3_lite"), model -> {
            mutate(model, "self_attention.linear_q_proj.weight", (w, c) -> deinterleave(w, c, c.numAttentionHeads(),
                    c.mla().qHeadDim(), c.mla().qkHeadDim(), c.hiddenSize()));
            mutate(model, "self_attention.linear_kv_down_proj.weight", (w, c) -> deinterleave(w, c, 1, 0, c.mla().kvLoraRank(),
                    c.hiddenSize()));
        });
        System.out.printf("mutations: rope rows not re-laid %.3g%n", rope);
        assertTrue(rope > 1e-2, "rotate-half rows used as interleaved pairs must change the logits: " + rope);
    }

    /** Undoes the import's re-layout of the rotary rows (Megatron rows 2i, 2i+1 back to HF's i, i + d/2). */
    private static float[] deinterleave(float[] w, TransformerConfig c, int blocks, int blockRows, int first, int cols) {
        int d = c.mla().qkPosEmbHeadDim();
        float[] out = w.clone();
        for (int b = 0; b < blocks; b++) {
            int base = b * blockRows + first;
            for (int i = 0; i < d / 2; i++) {
                System.arraycopy(w, (base + 2 * i) * cols, out, (base + i) * cols, cols);
                System.arraycopy(w, (base + 2 * i + 1) * cols, out, (base + d / 2 + i) * cols, cols);
            }
        }
        return out;
    }

    @Test
    void unsupportedConfigsAreRefusedNamingTheField() throws Exception {
        record Case(String field, JsonNode value, String message) {
        }
        ObjectNode yarn = (ObjectNode) config("deepseek_v3").get("rope_scaling");
        var nodes = JSON.getNodeFactory();
        int n = 0;
        for (Case c : List.of(
                new Case("model_type", nodes.textNode("deepseek_v2"), "model_type 'deepseek_v2' is not supported"),
                new Case("quantization_config", JSON.createObjectNode().put("quant_method", "fp8"),
                        "quantization_config (quant_method 'fp8') declares quantized weights (FP8 with weight_scale_inv"
                                + " block scales, as the official DeepSeek-V3 release); import-hf reads float32, bfloat16 or"
                                + " float16 weights only: dequantize first"),
                new Case("topk_method", nodes.textNode("greedy"), "topk_method is 'greedy'"),
                new Case("scoring_func", nodes.textNode("softmax"), "scoring_func is 'softmax'"),
                new Case("norm_topk_prob", nodes.booleanNode(false), "norm_topk_prob is false; Megatron's sigmoid routing"),
                new Case("topk_group", nodes.numberNode(1), "num_experts_per_tok 4 / topk_group 1 is not 2"),
                new Case("rope_scaling", yarn.deepCopy().put("beta_fast", 16), "rope_scaling.beta_fast is 16;"
                        + " Megatron's multi-latent attention YaRN uses beta_fast 32 only"),
                new Case("rope_scaling", yarn.deepCopy().put("original_max_position_embeddings", 8192).put("factor", 2.0),
                        "rope_scaling.original_max_position_embeddings is 8192; Megatron's multi-latent attention YaRN uses"
                                + " 4096 only"),
                new Case("rope_scaling", yarn.deepCopy().put("factor", 8.0), "rope_scaling.factor 8.0 differs from"
                        + " max_position_embeddings / rope_scaling.original_max_position_embeddings"),
                new Case("rope_scaling", yarn.deepCopy().put("mscale", 0.0), "give transformers' cos/sin factor"),
                new Case("rope_scaling", JSON.createObjectNode().put("rope_type", "linear").put("factor", 2.0),
                        "rope_scaling.rope_type 'linear' is not supported with multi-latent attention"),
                new Case("attention_bias", nodes.booleanNode(true), "attention_bias is true"),
                new Case("rms_norm_eps", nodes.numberNode(1e-5), "rms_norm_eps is 1.0E-5; transformers builds q_a_layernorm"),
                new Case("num_key_value_heads", nodes.numberNode(2), "num_key_value_heads 2 differs from num_attention_heads 4"),
                new Case("moe_layer_freq", nodes.numberNode(2), "moe_layer_freq is 2"),
                new Case("num_nextn_predict_layers", nodes.numberNode(0),
                        "tensors have no meaning in this architecture, e.g. 'model.layers.3."))) {
            Path hf = dir.resolve(c.field() + "-" + n++);
            Files.createDirectories(hf);
            Files.copy(FIXTURES.resolve("deepseek_v3").resolve("model.safetensors"), hf.resolve("model.safetensors"));
            ObjectNode config = config("deepseek_v3");
            config.set(c.field(), c.value());
            Files.writeString(hf.resolve("config.json"), config.toPrettyString());
            CliRun bad = CliRun.of("checkpoint", "import-hf", "--hf-dir", hf.toString(), "--save", dir.resolve("x").toString());
            assertEquals(1, bad.code(), bad.toString());
            assertTrue(bad.err().contains(c.message()), c.message() + " in " + bad.err());
        }
    }

    private static ObjectNode config(String variant) throws java.io.IOException {
        return (ObjectNode) JSON.readTree(FIXTURES.resolve(variant).resolve("config.json").toFile());
    }

    private static JsonNode expected(String variant) throws java.io.IOException {
        return JSON.readTree(FIXTURES.resolve(variant).resolve("expected.json").toFile());
    }

    private static void mutate(org.megatronj.model.GPTModel model, String suffix, CheckpointImportHfLlamaTest.Mutation m) {
        for (var p : model.parameters()) {
            if (p.name().endsWith(suffix)) {
                p.data().copyFrom(m.apply(p.data().toFloatArray(), model.config()));
            }
        }
        model.refreshComputeWeights();
    }
}
