package org.megatronj.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.megatronj.io.safetensors.SafetensorsFile;
import org.megatronj.io.safetensors.SafetensorsWriter;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/** A small random Hugging Face GPT-2 folder (61 tokens, hidden 8, 2 heads, 2 layers, 16 positions), hub naming (no prefix). */
final class HfGpt2Fixture {
    static final String CONFIG = """
            {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 61, "n_positions": 16, "n_ctx": 16,
             "n_embd": 8, "n_layer": 2, "n_head": 2, "n_inner": null, "activation_function": "gelu_new",
             "layer_norm_epsilon": 1e-05, "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1}
            """;

    private static final ObjectMapper JSON = new ObjectMapper();

    private HfGpt2Fixture() {
    }

    static Map<String, float[]> write(Path dir) throws IOException {
        return write(dir, DType.F32, "", null);
    }

    /**
     * As {@link #write(Path)} with {@code dtype} weights, tensor names prefixed by {@code prefix}
     * ("transformer." as save_pretrained writes them) and config.json's torch_dtype (omitted when null).
     */
    static Map<String, float[]> write(Path dir, DType dtype, String prefix, String torchDtype) throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("config.json"),
                torchDtype == null ? CONFIG : CONFIG.replace("}", ", \"torch_dtype\": \"" + torchDtype + "\"}"));
        SplittableRandom rnd = new SplittableRandom(11);
        Map<String, long[]> shapes = new LinkedHashMap<>();
        shapes.put("wte.weight", new long[] {61, 8});
        shapes.put("wpe.weight", new long[] {16, 8});
        for (int l = 0; l < 2; l++) {
            String p = "h." + l + ".";
            shapes.put(p + "ln_1.weight", new long[] {8});
            shapes.put(p + "ln_1.bias", new long[] {8});
            shapes.put(p + "attn.c_attn.weight", new long[] {8, 24});
            shapes.put(p + "attn.c_attn.bias", new long[] {24});
            shapes.put(p + "attn.c_proj.weight", new long[] {8, 8});
            shapes.put(p + "attn.c_proj.bias", new long[] {8});
            shapes.put(p + "ln_2.weight", new long[] {8});
            shapes.put(p + "ln_2.bias", new long[] {8});
            shapes.put(p + "mlp.c_fc.weight", new long[] {8, 32});
            shapes.put(p + "mlp.c_fc.bias", new long[] {32});
            shapes.put(p + "mlp.c_proj.weight", new long[] {32, 8});
            shapes.put(p + "mlp.c_proj.bias", new long[] {8});
        }
        shapes.put("ln_f.weight", new long[] {8});
        shapes.put("ln_f.bias", new long[] {8});
        Map<String, float[]> values = new LinkedHashMap<>();
        try (TensorArena arena = TensorArena.named("fixture")) {
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            for (Map.Entry<String, long[]> e : shapes.entrySet()) {
                Tensor t = arena.allocate(dtype, e.getValue());
                boolean gain = e.getKey().contains("ln_") && e.getKey().endsWith("weight");
                for (long i = 0; i < t.numel(); i++) {
                    t.setFloat(i, (float) ((gain ? 1 : 0) + rnd.nextGaussian() * 0.3));
                }
                tensors.put(prefix + e.getKey(), t);
                values.put(e.getKey(), t.toFloatArray());
            }
            SafetensorsWriter.write(dir.resolve("model.safetensors"), tensors, Map.of("format", "pt"));
        }
        return values;
    }

    /** Splits {@code dir/model.safetensors} into two shards and model.safetensors.index.json, as save_pretrained does. */
    static void shard(Path dir) throws IOException {
        ObjectNode weightMap = JSON.createObjectNode();
        long total;
        try (SafetensorsFile whole = SafetensorsFile.open(dir.resolve("model.safetensors"))) {
            total = whole.dataBytes();
            List<String> names = whole.names();
            for (int part = 0; part < 2; part++) {
                String file = "model-0000" + (part + 1) + "-of-00002.safetensors";
                Map<String, Tensor> shard = new LinkedHashMap<>();
                for (String n : names.subList(part * names.size() / 2, (part + 1) * names.size() / 2)) {
                    shard.put(n, whole.tensor(n));
                    weightMap.put(n, file);
                }
                SafetensorsWriter.write(dir.resolve(file), shard, Map.of("format", "pt"));
            }
        }
        ObjectNode index = JSON.createObjectNode();
        index.putObject("metadata").put("total_size", total);
        index.set("weight_map", weightMap);
        Files.writeString(dir.resolve("model.safetensors.index.json"), index.toPrettyString());
        Files.delete(dir.resolve("model.safetensors"));
    }
}
