package org.megatronj.parallel.checkpoint;

import org.megatronj.io.safetensors.SafetensorsFile;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.TransformerConfig;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Renames and re-lays out GPT-2 weights between Hugging Face and Megatron-core:
 * <pre>
 *   transformer.wte.weight           [V, h]     <-> embedding.word_embeddings.weight   [Vpad, h] (rows past V are zero)
 *   transformer.wpe.weight           [P, h]     <-> embedding.position_embeddings.weight
 *   transformer.h.N.ln_1.*                      <-> decoder.layers.N.input_layernorm.*
 *   transformer.h.N.attn.c_attn.*    [h, 3h]    <-> decoder.layers.N.self_attention.linear_qkv.* [3h, h]
 *   transformer.h.N.attn.c_proj.*    [h, h]     <-> decoder.layers.N.self_attention.linear_proj.*
 *   transformer.h.N.ln_2.*                      <-> decoder.layers.N.pre_mlp_layernorm.*
 *   transformer.h.N.mlp.c_fc.*       [h, 4h]    <-> decoder.layers.N.mlp.linear_fc1.*  [4h, h]
 *   transformer.h.N.mlp.c_proj.*     [4h, h]    <-> decoder.layers.N.mlp.linear_fc2.*  [h, 4h]
 *   transformer.ln_f.*                          <-> decoder.final_layernorm.*
 * </pre>
 * HF's Conv1D stores {@code [in, out]} (y = x W), Megatron's Linear {@code [out, in]}: weights are
 * transposed. HF's c_attn columns are {@code [q | k | v]}, each head-major; Megatron-core fuses
 * them per query group, {@code [q_g k_g v_g]} for each head g (see model's QkvLayout).
 * Values are copied exactly: F16/BF16 sources widen to F32 without rounding, and {@link #toHf}
 * in the source dtype narrows them back to the same bits.
 */
public final class Gpt2HfWeights {
    private static final String PREFIX = "transformer.";

    private Gpt2HfWeights() {
    }

    /** The Megatron-named weights of one safetensors file; see {@link #toMegatron(HfSafetensors, TransformerConfig, TensorArena)}. */
    public static Map<String, Tensor> toMegatron(SafetensorsFile hf, TransformerConfig c, TensorArena arena) {
        return toMegatron(HfSafetensors.of(hf), c, arena);
    }

    /** The Megatron-named F32 weights of {@code hf} (keys with or without the {@code transformer.} prefix), allocated in {@code arena}. */
    public static Map<String, Tensor> toMegatron(HfSafetensors hf, TransformerConfig c, TensorArena arena) {
        Gpt2HfConfig.requireGpt2Shape(c);
        HfReader in = new HfReader(hf);
        int h = c.hiddenSize();
        Map<String, Tensor> out = new LinkedHashMap<>();
        float[] wte = in.read("wte.weight", c.vocabSize(), h);
        out.put("embedding.word_embeddings.weight", arena.fromFloats(Arrays.copyOf(wte, c.paddedVocabSize() * h),
                c.paddedVocabSize(), h));
        out.put("embedding.position_embeddings.weight", arena.fromFloats(in.read("wpe.weight", c.maxPositionEmbeddings(), h),
                c.maxPositionEmbeddings(), h));
        for (int l = 0; l < c.numLayers(); l++) {
            String hfp = "h." + l + ".";
            String mp = "decoder.layers." + l + ".";
            out.put(mp + "input_layernorm.weight", arena.fromFloats(in.read(hfp + "ln_1.weight", h), h));
            out.put(mp + "input_layernorm.bias", arena.fromFloats(in.read(hfp + "ln_1.bias", h), h));
            float[] qkv = transpose(in.read(hfp + "attn.c_attn.weight", h, 3 * h), h, 3 * h);      // [3h, h] in [q|k|v] order
            out.put(mp + "self_attention.linear_qkv.weight", arena.fromFloats(qkvToGrouped(qkv, c, h), 3 * h, h));
            out.put(mp + "self_attention.linear_qkv.bias", arena.fromFloats(qkvToGrouped(in.read(hfp + "attn.c_attn.bias", 3 * h), c, 1), 3 * h));
            out.put(mp + "self_attention.linear_proj.weight", arena.fromFloats(transpose(in.read(hfp + "attn.c_proj.weight", h, h), h, h), h, h));
            out.put(mp + "self_attention.linear_proj.bias", arena.fromFloats(in.read(hfp + "attn.c_proj.bias", h), h));
            out.put(mp + "pre_mlp_layernorm.weight", arena.fromFloats(in.read(hfp + "ln_2.weight", h), h));
            out.put(mp + "pre_mlp_layernorm.bias", arena.fromFloats(in.read(hfp + "ln_2.bias", h), h));
            int f = c.ffnHiddenSize();
            out.put(mp + "mlp.linear_fc1.weight", arena.fromFloats(transpose(in.read(hfp + "mlp.c_fc.weight", h, f), h, f), f, h));
            out.put(mp + "mlp.linear_fc1.bias", arena.fromFloats(in.read(hfp + "mlp.c_fc.bias", f), f));
            out.put(mp + "mlp.linear_fc2.weight", arena.fromFloats(transpose(in.read(hfp + "mlp.c_proj.weight", f, h), f, h), h, f));
            out.put(mp + "mlp.linear_fc2.bias", arena.fromFloats(in.read(hfp + "mlp.c_proj.bias", h), h));
        }
        out.put("decoder.final_layernorm.weight", arena.fromFloats(in.read("ln_f.weight", h), h));
        out.put("decoder.final_layernorm.bias", arena.fromFloats(in.read("ln_f.bias", h), h));
        in.checkTiedHead(wte);
        in.checkAllUsed();
        return out;
    }

    /** HF-named F32 weights ({@code transformer.} prefix, Conv1D layout, wte cut to the unpadded vocabulary) of Megatron-named ones. */
    public static Map<String, Tensor> toHf(Map<String, Tensor> m, TransformerConfig c, TensorArena arena) {
        return toHf(m, c, DType.F32, arena);
    }

    /**
     * As {@link #toHf(Map, TransformerConfig, TensorArena)}, the values rounded to {@code dtype}
     * (nearest even, {@link Tensor#setFloat}); F16/BF16 values widened at import come back bit for bit.
     */
    public static Map<String, Tensor> toHf(Map<String, Tensor> m, TransformerConfig c, DType dtype, TensorArena arena) {
        Gpt2HfConfig.requireGpt2Shape(c);
        MegatronReader in = new MegatronReader(m);
        int h = c.hiddenSize();
        int f = c.ffnHiddenSize();
        Map<String, Tensor> out = new LinkedHashMap<>();
        float[] wte = in.read("embedding.word_embeddings.weight", c.paddedVocabSize(), h);
        out.put(PREFIX + "wte.weight", arena.fromFloats(Arrays.copyOf(wte, c.vocabSize() * h), c.vocabSize(), h));
        out.put(PREFIX + "wpe.weight", arena.fromFloats(in.read("embedding.position_embeddings.weight", c.maxPositionEmbeddings(), h),
                c.maxPositionEmbeddings(), h));
        for (int l = 0; l < c.numLayers(); l++) {
            String hfp = PREFIX + "h." + l + ".";
            String mp = "decoder.layers." + l + ".";
            out.put(hfp + "ln_1.weight", arena.fromFloats(in.read(mp + "input_layernorm.weight", h), h));
            out.put(hfp + "ln_1.bias", arena.fromFloats(in.read(mp + "input_layernorm.bias", h), h));
            float[] qkv = groupedToQkv(in.read(mp + "self_attention.linear_qkv.weight", 3 * h, h), c, h);   // [3h, h] [q|k|v]
            out.put(hfp + "attn.c_attn.weight", arena.fromFloats(transpose(qkv, 3 * h, h), h, 3 * h));
            out.put(hfp + "attn.c_attn.bias", arena.fromFloats(groupedToQkv(in.read(mp + "self_attention.linear_qkv.bias", 3 * h), c, 1), 3 * h));
            out.put(hfp + "attn.c_proj.weight", arena.fromFloats(transpose(in.read(mp + "self_attention.linear_proj.weight", h, h), h, h), h, h));
            out.put(hfp + "attn.c_proj.bias", arena.fromFloats(in.read(mp + "self_attention.linear_proj.bias", h), h));
            out.put(hfp + "ln_2.weight", arena.fromFloats(in.read(mp + "pre_mlp_layernorm.weight", h), h));
            out.put(hfp + "ln_2.bias", arena.fromFloats(in.read(mp + "pre_mlp_layernorm.bias", h), h));
            out.put(hfp + "mlp.c_fc.weight", arena.fromFloats(transpose(in.read(mp + "mlp.linear_fc1.weight", f, h), f, h), h, f));
            out.put(hfp + "mlp.c_fc.bias", arena.fromFloats(in.read(mp + "mlp.linear_fc1.bias", f), f));
            out.put(hfp + "mlp.c_proj.weight", arena.fromFloats(transpose(in.read(mp + "mlp.linear_fc2.weight", h, f), h, f), f, h));
            out.put(hfp + "mlp.c_proj.bias", arena.fromFloats(in.read(mp + "mlp.linear_fc2.bias", h), h));
        }
        out.put(PREFIX + "ln_f.weight", arena.fromFloats(in.read("decoder.final_layernorm.weight", h), h));
        out.put(PREFIX + "ln_f.bias", arena.fromFloats(in.read("decoder.final_layernorm.bias", h), h));
        if (dtype != DType.F32) {
            out.replaceAll((name, t) -> arena.allocate(dtype, t.shape()).copyFrom(t.toFloatArray()));
        }
        return out;
    }

    /** The HF name of a Megatron-core parameter name (for gradients under HF names); null for names GPT-2 lacks. */
    public static String hfName(String megatronName) {
        String n = megatronName;
        if (n.equals("embedding.word_embeddings.weight")) {
            return PREFIX + "wte.weight";
        }
        if (n.equals("embedding.position_embeddings.weight")) {
            return PREFIX + "wpe.weight";
        }
        if (n.startsWith("decoder.final_layernorm.")) {
            return PREFIX + "ln_f." + n.substring("decoder.final_layernorm.".length());
        }
        if (n.startsWith("decoder.layers.")) {
            int dot = n.indexOf('.', "decoder.layers.".length());
            String layer = n.substring("decoder.layers.".length(), dot);
            String rest = n.substring(dot + 1)
                    .replace("input_layernorm.", "ln_1.")
                    .replace("self_attention.linear_qkv.", "attn.c_attn.")
                    .replace("self_attention.linear_proj.", "attn.c_proj.")
                    .replace("pre_mlp_layernorm.", "ln_2.")
                    .replace("mlp.linear_fc1.", "mlp.c_fc.")
                    .replace("mlp.linear_fc2.", "mlp.c_proj.");
            return PREFIX + "h." + layer + "." + rest;
        }
        return null;
    }

    /** [3h, cols] rows in HF order [q(all heads) | k | v] -> Megatron's per-head [q_i k_i v_i]. */
    static float[] qkvToGrouped(float[] qkv, TransformerConfig c, int cols) {
        return permuteQkv(qkv, c, cols, true);
    }

    static float[] groupedToQkv(float[] grouped, TransformerConfig c, int cols) {
        return permuteQkv(grouped, c, cols, false);
    }

    private static float[] permuteQkv(float[] src, TransformerConfig c, int cols, boolean toGrouped) {
        int heads = c.numAttentionHeads();
        int d = c.kvChannels();
        int h = heads * d;
        float[] out = new float[src.length];
        for (int i = 0; i < heads; i++) {
            for (int part = 0; part < 3; part++) {            // 0 q, 1 k, 2 v
                int hfRow = part * h + i * d;
                int groupedRow = i * 3 * d + part * d;
                int from = (toGrouped ? hfRow : groupedRow) * cols;
                int to = (toGrouped ? groupedRow : hfRow) * cols;
                System.arraycopy(src, from, out, to, d * cols);
            }
        }
        return out;
    }

    /** {@code [rows, cols]} -> {@code [cols, rows]}. */
    static float[] transpose(float[] a, int rows, int cols) {
        float[] t = new float[a.length];
        for (int r = 0; r < rows; r++) {
            for (int col = 0; col < cols; col++) {
                t[col * rows + r] = a[r * cols + col];
            }
        }
        return t;
    }

    /** Reads HF tensors by name (prefix optional), checks shapes, and tracks which were used. */
    private static final class HfReader {
        private final HfSafetensors file;
        private final List<String> unused;

        HfReader(HfSafetensors file) {
            this.file = file;
            this.unused = new ArrayList<>(file.names());
            // Causal-mask buffers that older transformers versions saved; they are not weights.
            unused.removeIf(n -> n.endsWith(".attn.bias") || n.endsWith(".attn.masked_bias"));
        }

        float[] read(String name, long... shape) {
            String key = file.contains(name) && !file.contains(PREFIX + name) ? name : PREFIX + name;
            float[] values = HfFiles.read(file, key, shape);
            unused.remove(key);
            return values;
        }

        void checkTiedHead(float[] wte) {
            if (file.contains("lm_head.weight")) {
                unused.remove("lm_head.weight");
                float[] head = file.tensor("lm_head.weight").toFloatArray();
                if (!Arrays.equals(head, wte)) {
                    throw new HfConfigException(file.path() + ": lm_head.weight differs from wte.weight; GPT-2 ties them");
                }
            }
        }

        void checkAllUsed() {
            if (!unused.isEmpty()) {
                throw new HfConfigException(file.path() + ": " + unused.size() + " tensors have no GPT-2 meaning, e.g. '"
                        + unused.get(0) + "' (does config.json's n_layer match the weights?)");
            }
        }
    }

    private record MegatronReader(Map<String, Tensor> tensors) {
        float[] read(String name, long... shape) {
            Tensor t = tensors.get(name);
            if (t == null) {
                throw new HfConfigException("checkpoint tensor '" + name + "' is missing");
            }
            if (!Arrays.equals(t.shape(), shape) || t.dtype() != DType.F32 && !t.dtype().isFloatingPoint()) {
                throw new HfConfigException("checkpoint tensor '" + name + "' is " + t.dtype() + Tensor.shapeString(t.shape())
                        + ", expected " + Tensor.shapeString(shape));
            }
            return t.toFloatArray();
        }
    }
}
