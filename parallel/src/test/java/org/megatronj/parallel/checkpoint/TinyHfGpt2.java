package org.megatronj.parallel.checkpoint;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.megatronj.io.safetensors.SafetensorsWriter;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
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
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("config.json"), config().toPrettyString());
        SplittableRandom rnd = new SplittableRandom(seed);
        Map<String, Tensor> t = new LinkedHashMap<>();
        int h = HIDDEN;
        put(t, arena, rnd, prefix + "wte.weight", VOCAB, h);
        put(t, arena, rnd, prefix + "wpe.weight", POSITIONS, h);
        for (int l = 0; l < LAYERS; l++) {
            String p = prefix + "h." + l + ".";
            put(t, arena, rnd, p + "ln_1.weight", h);
            put(t, arena, rnd, p + "ln_1.bias", h);
            put(t, arena, rnd, p + "attn.c_attn.weight", h, 3 * h);
            put(t, arena, rnd, p + "attn.c_attn.bias", 3 * h);
            put(t, arena, rnd, p + "attn.c_proj.weight", h, h);
            put(t, arena, rnd, p + "attn.c_proj.bias", h);
            put(t, arena, rnd, p + "ln_2.weight", h);
            put(t, arena, rnd, p + "ln_2.bias", h);
            put(t, arena, rnd, p + "mlp.c_fc.weight", h, 4 * h);
            put(t, arena, rnd, p + "mlp.c_fc.bias", 4 * h);
            put(t, arena, rnd, p + "mlp.c_proj.weight", 4 * h, h);
            put(t, arena, rnd, p + "mlp.c_proj.bias", h);
        }
        put(t, arena, rnd, prefix + "ln_f.weight", h);
        put(t, arena, rnd, prefix + "ln_f.bias", h);
        SafetensorsWriter.write(dir.resolve("model.safetensors"), t, Map.of("format", "pt"));
        return t;
    }

    private static void put(Map<String, Tensor> t, TensorArena arena, SplittableRandom rnd, String name, long... shape) {
        Tensor x = arena.allocate(org.megatronj.memory.DType.F32, shape);
        boolean norm = name.contains("ln_") && name.endsWith("weight");
        for (long i = 0; i < x.numel(); i++) {
            x.setFloat(i, (float) ((norm ? 1 : 0) + rnd.nextGaussian() * (norm ? 0.1 : 0.3)));
        }
        t.put(name, x);
    }
}
