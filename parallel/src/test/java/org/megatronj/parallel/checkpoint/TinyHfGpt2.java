package org.megatronj.parallel.checkpoint;

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

/** Writes a small random Hugging Face GPT-2 folder (config.json + model.safetensors) for tests. */
final class TinyHfGpt2 {
    static final int VOCAB = 61;
    static final int HIDDEN = 8;
    static final int HEADS = 2;
    static final int LAYERS = 2;
    static final int POSITIONS = 16;

    private TinyHfGpt2() {
    }

    static ObjectNode config() {
        ObjectNode c = new ObjectMapper().createObjectNode();
        c.putArray("architectures").add("GPT2LMHeadModel");
        c.put("model_type", "gpt2");
        c.put("vocab_size", VOCAB);
        c.put("n_positions", POSITIONS);
        c.put("n_ctx", POSITIONS);
        c.put("n_embd", HIDDEN);
        c.put("n_layer", LAYERS);
        c.put("n_head", HEADS);
        c.putNull("n_inner");
        c.put("activation_function", "gelu_new");
        c.put("layer_norm_epsilon", 1e-5);
        c.put("resid_pdrop", 0.1);
        c.put("attn_pdrop", 0.1);
        c.put("embd_pdrop", 0.1);
        return c;
    }

    /** Writes the folder; {@code prefix} is "transformer." (save_pretrained of the LM head model) or "" (the hub's gpt2). */
    static Map<String, Tensor> write(Path dir, TensorArena arena, String prefix, long seed) throws IOException {
        return write(dir, arena, prefix, seed, DType.F32);
    }

    /** As above with {@code dtype} weights, declared by config.json's torch_dtype as save_pretrained does. */
    static Map<String, Tensor> write(Path dir, TensorArena arena, String prefix, long seed, DType dtype) throws IOException {
        Files.createDirectories(dir);
        ObjectNode config = config();
        config.put("torch_dtype", switch (dtype) {
            case BF16 -> "bfloat16";
            case F16 -> "float16";
            default -> "float32";
        });
        Files.writeString(dir.resolve("config.json"), config.toPrettyString());
        SplittableRandom rnd = new SplittableRandom(seed);
        Map<String, Tensor> t = new LinkedHashMap<>();
        int h = HIDDEN;
        Adder add = (name, shape) -> put(t, arena, rnd, dtype, name, shape);
        add.add(prefix + "wte.weight", VOCAB, h);
        add.add(prefix + "wpe.weight", POSITIONS, h);
        for (int l = 0; l < LAYERS; l++) {
            String p = prefix + "h." + l + ".";
            add.add(p + "ln_1.weight", h);
            add.add(p + "ln_1.bias", h);
            add.add(p + "attn.c_attn.weight", h, 3 * h);
            add.add(p + "attn.c_attn.bias", 3 * h);
            add.add(p + "attn.c_proj.weight", h, h);
            add.add(p + "attn.c_proj.bias", h);
            add.add(p + "ln_2.weight", h);
            add.add(p + "ln_2.bias", h);
            add.add(p + "mlp.c_fc.weight", h, 4 * h);
            add.add(p + "mlp.c_fc.bias", 4 * h);
            add.add(p + "mlp.c_proj.weight", 4 * h, h);
            add.add(p + "mlp.c_proj.bias", h);
        }
        add.add(prefix + "ln_f.weight", h);
        add.add(prefix + "ln_f.bias", h);
        SafetensorsWriter.write(dir.resolve("model.safetensors"), t, Map.of("format", "pt"));
        return t;
    }

    private interface Adder {
        void add(String name, long... shape);
    }

    /**
     * Turns {@code dir/model.safetensors} into {@code parts} shards and model.safetensors.index.json,
     * as save_pretrained does past its max_shard_size; returns the index's weight_map.
     */
    static Map<String, String> shard(Path dir, int parts) throws IOException {
        Map<String, String> weightMap = new LinkedHashMap<>();
        ObjectNode index = new ObjectMapper().createObjectNode();
        try (SafetensorsFile whole = SafetensorsFile.open(dir.resolve("model.safetensors"))) {
            index.putObject("metadata").put("total_size", whole.dataBytes());
            List<String> names = whole.names();
            for (int p = 0; p < parts; p++) {
                String file = String.format("model-%05d-of-%05d.safetensors", p + 1, parts);
                Map<String, Tensor> shard = new LinkedHashMap<>();
                for (String n : names.subList(p * names.size() / parts, (p + 1) * names.size() / parts)) {
                    shard.put(n, whole.tensor(n));
                    weightMap.put(n, file);
                }
                SafetensorsWriter.write(dir.resolve(file), shard, Map.of("format", "pt"));
            }
        }
        weightMap.forEach(index.putObject("weight_map")::put);
        Files.writeString(dir.resolve("model.safetensors.index.json"), index.toPrettyString());
        Files.delete(dir.resolve("model.safetensors"));
        return weightMap;
    }

    private static void put(Map<String, Tensor> t, TensorArena arena, SplittableRandom rnd, DType dtype, String name, long... shape) {
        Tensor x = arena.allocate(dtype, shape);
        boolean norm = name.contains("ln_") && name.endsWith("weight");
        for (long i = 0; i < x.numel(); i++) {
            x.setFloat(i, (float) ((norm ? 1 : 0) + rnd.nextGaussian() * (norm ? 0.1 : 0.3)));
        }
        t.put(name, x);
    }
}
