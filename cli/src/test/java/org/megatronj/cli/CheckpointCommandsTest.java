package org.megatronj.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.io.npy.NpyArray;
import org.megatronj.io.npy.NpyFile;
import org.megatronj.io.safetensors.SafetensorsFile;
import org.megatronj.memory.DType;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CheckpointCommandsTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    @Test
    void importThenExportGivesBackTheSameTensorsAndConfig() throws Exception {
        Path hf = dir.resolve("hf");
        Map<String, float[]> original = HfGpt2Fixture.write(hf);
        Path ckpt = dir.resolve("ckpt");
        CliRun imp = CliRun.of("checkpoint", "import-hf", "--hf-dir", hf.toString(), "--save", ckpt.toString());
        assertEquals(0, imp.code(), imp.toString());
        assertTrue(imp.out().contains("vocab 61 padded to 128"), imp.out());
        assertEquals("release", Files.readString(ckpt.resolve("latest_checkpointed_iteration.txt")).strip());
        CliRun again = CliRun.of("checkpoint", "import-hf", "--hf-dir", hf.toString(), "--save", ckpt.toString());
        assertEquals(1, again.code(), again.toString());   // would move the folder's latest pointer
        assertTrue(again.err().contains("--save " + ckpt + " already holds a checkpoint (latest: release)"), again.err());

        CliRun inspect = CliRun.of("checkpoint", "inspect", ckpt.toString());
        assertTrue(inspect.out().contains("release (weights only)"), inspect.out());
        assertTrue(inspect.out().contains("embedding.word_embeddings.weight"), inspect.out());

        Path back = dir.resolve("back");
        CliRun exp = CliRun.of("checkpoint", "export-hf", "--load", ckpt.toString(), "--hf-dir", back.toString());
        assertEquals(0, exp.code(), exp.toString());
        try (SafetensorsFile f = SafetensorsFile.open(back.resolve("model.safetensors"))) {
            assertEquals(original.size(), f.names().size());
            for (Map.Entry<String, float[]> e : original.entrySet()) {
                float[] got = f.tensor("transformer." + e.getKey()).toFloatArray();
                assertEquals(e.getValue().length, got.length, e.getKey());
                for (int i = 0; i < got.length; i++) {
                    assertEquals(Float.floatToRawIntBits(e.getValue()[i]), Float.floatToRawIntBits(got[i]), e.getKey() + "[" + i + "]");
                }
            }
        }
        String config = Files.readString(back.resolve("config.json"));
        assertTrue(config.contains("\"vocab_size\" : 61") && config.contains("\"n_layer\" : 2")
                && config.contains("\"activation_function\" : \"gelu_new\""), config);
    }

    @Test
    void halfPrecisionModelsExportInTheirDtypeByteForByte() throws Exception {
        for (String[] d : new String[][] {{"bfloat16", "BF16"}, {"float16", "F16"}}) {
            Path hf = dir.resolve(d[0]);
            Map<String, float[]> original = HfGpt2Fixture.write(hf, DType.valueOf(d[1]), "transformer.", d[0]);
            Path ckpt = dir.resolve(d[0] + "-ckpt");
            CliRun imp = CliRun.of("checkpoint", "import-hf", "--hf-dir", hf.toString(), "--save", ckpt.toString());
            assertEquals(0, imp.code(), imp.toString());

            Path back = dir.resolve(d[0] + "-back");
            CliRun exp = CliRun.of("checkpoint", "export-hf", "--load", ckpt.toString(), "--hf-dir", back.toString());
            assertEquals(0, exp.code(), exp.toString());
            assertArrayEquals(Files.readAllBytes(hf.resolve("model.safetensors")), Files.readAllBytes(back.resolve("model.safetensors")), d[0]);
            assertTrue(exp.out().contains("28 " + d[1] + " tensors"), exp.out());
            assertEquals(d[0], JSON.readTree(back.resolve("config.json").toFile()).get("torch_dtype").asText());

            // --dtype fp32 widens exactly, and config.json says so
            Path wide = dir.resolve(d[0] + "-fp32");
            exp = CliRun.of("checkpoint", "export-hf", "--load", ckpt.toString(), "--hf-dir", wide.toString(), "--dtype", "fp32");
            assertEquals(0, exp.code(), exp.toString());
            assertEquals("float32", JSON.readTree(wide.resolve("config.json").toFile()).get("torch_dtype").asText());
            try (SafetensorsFile f = SafetensorsFile.open(wide.resolve("model.safetensors"))) {
                assertEquals(DType.F32, f.info("transformer.h.1.mlp.c_fc.weight").dtype());
                assertArrayEquals(original.get("h.1.mlp.c_fc.weight"), f.tensor("transformer.h.1.mlp.c_fc.weight").toFloatArray());
            }
        }
        Path ckpt = dir.resolve("float16-ckpt");
        CliRun bad = CliRun.of("checkpoint", "export-hf", "--load", ckpt.toString(), "--hf-dir", dir.resolve("x").toString(), "--dtype", "fp8");
        assertEquals(1, bad.code(), bad.toString());
        assertTrue(bad.err().contains("--dtype fp8: expected fp32, bf16 or fp16"), bad.err());
    }

    @Test
    void shardedHfWeightsImportAndRunLikeOneFile() throws Exception {
        Path hf = dir.resolve("hf");
        HfGpt2Fixture.write(hf);
        Path sharded = dir.resolve("hfShard");
        HfGpt2Fixture.write(sharded);
        HfGpt2Fixture.shard(sharded);
        for (Path p : new Path[] {hf, sharded}) {
            CliRun imp = CliRun.of("checkpoint", "import-hf", "--hf-dir", p.toString(), "--save", p + "-ckpt");
            assertEquals(0, imp.code(), imp.toString());
            CliRun exp = CliRun.of("checkpoint", "export-hf", "--load", p + "-ckpt", "--hf-dir", p + "-back");
            assertEquals(0, exp.code(), exp.toString());
        }
        assertArrayEquals(Files.readAllBytes(dir.resolve("hf-back/model.safetensors")), Files.readAllBytes(dir.resolve("hfShard-back/model.safetensors")));

        NpyFile.write(dir.resolve("ids.npy"), NpyArray.ofInt64(new long[] {1, 5, 9, 60, 0, 33}).reshape(1, 6));
        String[] losses = new String[2];
        for (int i = 0; i < 2; i++) {
            CliRun run = CliRun.of("debug", "forward-backward", "--hf-dir", (i == 0 ? hf : sharded).toString(),
                    "--input-ids", dir.resolve("ids.npy").toString(), "--labels", dir.resolve("ids.npy").toString());
            assertEquals(0, run.code(), run.toString());
            losses[i] = run.out();
        }
        assertEquals(losses[0], losses[1]);

        Files.delete(sharded.resolve("model-00002-of-00002.safetensors"));
        CliRun missing = CliRun.of("checkpoint", "import-hf", "--hf-dir", sharded.toString(), "--save", dir.resolve("x").toString());
        assertEquals(1, missing.code(), missing.toString());
        assertTrue(missing.err().contains("model-00002-of-00002.safetensors is missing: " + sharded.resolve("model.safetensors.index.json")
                + " maps tensor 'h.1."), missing.err());
    }

    @Test
    void malformedHfConfigValuesAreNamed() throws Exception {
        Path hf = dir.resolve("hf");
        HfGpt2Fixture.write(hf);
        Files.writeString(hf.resolve("config.json"), HfGpt2Fixture.CONFIG.replace("\"n_inner\": null", "\"n_inner\": \"abc\""));
        CliRun bad = CliRun.of("checkpoint", "import-hf", "--hf-dir", hf.toString(), "--save", dir.resolve("x").toString());
        assertEquals(1, bad.code(), bad.toString());
        assertTrue(bad.err().contains("config.json: n_inner is \"abc\"; expected null (4 * n_embd) or a positive integer"), bad.err());
    }

    @Test
    void unsupportedHfConfigAndMissingWeightsAreNamed() throws Exception {
        Path hf = dir.resolve("hf");
        HfGpt2Fixture.write(hf);
        Files.writeString(hf.resolve("config.json"), HfGpt2Fixture.CONFIG.replace("gelu_new", "swish"));
        CliRun bad = CliRun.of("checkpoint", "import-hf", "--hf-dir", hf.toString(), "--save", dir.resolve("x").toString());
        assertEquals(1, bad.code(), bad.toString());
        assertTrue(bad.err().contains("activation_function 'swish' is not supported"), bad.err());

        Files.writeString(hf.resolve("config.json"), HfGpt2Fixture.CONFIG);
        Files.delete(hf.resolve("model.safetensors"));
        CliRun missing = CliRun.of("checkpoint", "import-hf", "--hf-dir", hf.toString(), "--save", dir.resolve("x").toString());
        assertEquals(1, missing.code(), missing.toString());
        assertTrue(missing.err().contains("model.safetensors is missing and so is model.safetensors.index.json"), missing.err());
    }

    @Test
    void debugForwardBackwardWritesLossLogitsAndHfGradients() throws Exception {
        Path hf = dir.resolve("hf");
        HfGpt2Fixture.write(hf);
        long[] ids = {1, 5, 9, 60, 0, 33, 2, 7, 7, 7, 12, 40};
        long[] labels = {5, 9, 60, 0, 33, 2, 7, 7, 7, 12, 40, 3};
        NpyFile.write(dir.resolve("ids.npy"), NpyArray.ofInt64(ids).reshape(2, 6));
        NpyFile.write(dir.resolve("labels.npy"), NpyArray.ofInt64(labels).reshape(2, 6));
        CliRun run = CliRun.of("debug", "forward-backward", "--hf-dir", hf.toString(),
                "--input-ids", dir.resolve("ids.npy").toString(), "--labels", dir.resolve("labels.npy").toString(),
                "--logits-out", dir.resolve("logits.npy").toString(), "--grads-out", dir.resolve("grads.safetensors").toString());
        assertEquals(0, run.code(), run.toString());
        Matcher m = Pattern.compile("lm loss: (\\d+\\.\\d+)").matcher(run.out());
        assertTrue(m.find(), run.out());
        assertEquals(10, m.group(1).replace(".", "").replaceFirst("^0+", "").length(), "10 significant digits: " + m.group(1));
        double loss = Double.parseDouble(m.group(1));

        NpyArray logits = NpyFile.readCopy(dir.resolve("logits.npy"));
        assertArrayEquals(new long[] {2, 6, 61}, logits.shape());
        // the loss is the mean cross-entropy of these logits
        double sum = 0;
        for (int t = 0; t < 12; t++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int v = 0; v < 61; v++) {
                max = Math.max(max, logits.getDouble(t * 61L + v));
            }
            double z = 0;
            for (int v = 0; v < 61; v++) {
                z += Math.exp(logits.getDouble(t * 61L + v) - max);
            }
            sum += Math.log(z) + max - logits.getDouble(t * 61L + labels[t]);
        }
        assertEquals(sum / 12, loss, 1e-5);
        try (SafetensorsFile g = SafetensorsFile.open(dir.resolve("grads.safetensors"))) {
            assertArrayEquals(new long[] {61, 8}, g.info("transformer.wte.weight").shape());
            assertArrayEquals(new long[] {8, 24}, g.info("transformer.h.1.attn.c_attn.weight").shape());
            assertEquals(28, g.names().size());
        }

        NpyFile.write(dir.resolve("bad.npy"), NpyArray.ofInt64(new long[] {1, 2, 61}).reshape(1, 3));
        CliRun bad = CliRun.of("debug", "forward-backward", "--hf-dir", hf.toString(),
                "--input-ids", dir.resolve("bad.npy").toString(), "--labels", dir.resolve("bad.npy").toString());
        assertEquals(1, bad.code(), bad.toString());
        assertTrue(bad.err().contains("is 61, outside the vocabulary [0, 61)"), bad.err());
    }
}
