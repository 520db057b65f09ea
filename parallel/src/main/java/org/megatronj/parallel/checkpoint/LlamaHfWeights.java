package org.megatronj.parallel.checkpoint;

import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.MoeConfig;
import org.megatronj.model.TransformerConfig;
import org.megatronj.parallel.checkpoint.LlamaHfConfig.Arch;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Renames and re-lays out Llama-family weights between Hugging Face and Megatron-core, as Megatron-LM's converters
 * (tools/checkpoint/loader_mixtral_hf.py, schema_hf.py) map them:
 * <pre>
 *   model.embed_tokens.weight                  [V, h]  <-> embedding.word_embeddings.weight [Vpad, h] (rows past V zero)
 *   model.layers.N.input_layernorm.weight              <-> decoder.layers.N.input_layernorm.weight
 *   model.layers.N.self_attn.{q,k,v}_proj.weight/bias  <-> decoder.layers.N.self_attention.linear_qkv.weight/bias
 *                                                          per query group g: [q heads of g; k_g; v_g], each d rows
 *   model.layers.N.self_attn.{q,k}_norm.weight  [d]    <-> decoder.layers.N.self_attention.{q,k}_layernorm.weight
 *   model.layers.N.self_attn.o_proj.weight             <-> decoder.layers.N.self_attention.linear_proj.weight
 *   model.layers.N.post_attention_layernorm.weight     <-> decoder.layers.N.pre_mlp_layernorm.weight
 *   model.layers.N.mlp.{gate,up}_proj.weight           <-> decoder.layers.N.mlp.linear_fc1.weight [gate; up]
 *   model.layers.N.mlp.down_proj.weight                <-> decoder.layers.N.mlp.linear_fc2.weight
 *   Mixtral  block_sparse_moe.gate.weight [E, h]       <-> mlp.router.weight
 *            block_sparse_moe.experts.e.{w1; w3}, w2   <-> mlp.experts.local_experts.e.linear_fc1 [w1; w3], linear_fc2
 *   Qwen-MoE mlp.gate.weight                           <-> mlp.router.weight
 *            mlp.experts.e.{gate,up,down}_proj         <-> mlp.experts.local_experts.e.linear_fc1 / linear_fc2
 *            mlp.shared_expert.{gate,up,down}_proj     <-> mlp.shared_experts.linear_fc1 / linear_fc2
 *            mlp.shared_expert_gate.weight [1, h]      <-> mlp.shared_experts.gate_weight
 *   model.norm.weight                                  <-> decoder.final_layernorm.weight
 *   lm_head.weight                              [V, h] <-> output_layer.weight [Vpad, h] (untied; tied: absent or = embed)
 * </pre>
 * Both sides store Linear weights {@code [out, in]}: nothing is transposed; rope is rotate-half on both sides, so q and
 * k need no permutation. Values are copied exactly (16-bit sources widen to F32, and export in the source dtype gives
 * the same bits back).
 */
public final class LlamaHfWeights {
    private LlamaHfWeights() {
    }

    /** The Megatron-named F32 weights of {@code hf}, an {@code arch} model of shape {@code c}, allocated in {@code arena}. */
    public static Map<String, Tensor> toMegatron(HfSafetensors hf, Arch arch, TransformerConfig c, TensorArena arena) {
        LlamaHfConfig.requireShape(arch, c);
        HfReader in = new HfReader(hf);
        int h = c.hiddenSize();
        int d = c.kvChannels();
        Map<String, Tensor> out = new LinkedHashMap<>();
        float[] embed = in.read("model.embed_tokens.weight", c.vocabSize(), h);
        out.put("embedding.word_embeddings.weight", arena.fromFloats(Arrays.copyOf(embed, c.paddedVocabSize() * h),
                c.paddedVocabSize(), h));
        for (int l = 0; l < c.numLayers(); l++) {
            String hp = "model.layers." + l + ".";
            String mp = "decoder.layers." + l + ".";
            out.put(mp + "input_layernorm.weight", arena.fromFloats(in.read(hp + "input_layernorm.weight", h), h));
            int qRows = c.numAttentionHeads() * d;
            int kvRows = c.numQueryGroups() * d;
            float[] q = in.read(hp + "self_attn.q_proj.weight", qRows, h);
            float[] k = in.read(hp + "self_attn.k_proj.weight", kvRows, h);
            float[] v = in.read(hp + "self_attn.v_proj.weight", kvRows, h);
            out.put(mp + "self_attention.linear_qkv.weight", arena.fromFloats(fuseQkv(q, k, v, c, h), c.qkvWidth(), h));
            if (c.addQkvBias()) {
                float[] bq = in.read(hp + "self_attn.q_proj.bias", qRows);
                float[] bk = in.read(hp + "self_attn.k_proj.bias", kvRows);
                float[] bv = in.read(hp + "self_attn.v_proj.bias", kvRows);
                out.put(mp + "self_attention.linear_qkv.bias", arena.fromFloats(fuseQkv(bq, bk, bv, c, 1), c.qkvWidth()));
            }
            if (c.qkLayernorm()) {
                out.put(mp + "self_attention.q_layernorm.weight", arena.fromFloats(in.read(hp + "self_attn.q_norm.weight", d), d));
                out.put(mp + "self_attention.k_layernorm.weight", arena.fromFloats(in.read(hp + "self_attn.k_norm.weight", d), d));
            }
            out.put(mp + "self_attention.linear_proj.weight", arena.fromFloats(in.read(hp + "self_attn.o_proj.weight", h, qRows),
                    h, qRows));
            out.put(mp + "pre_mlp_layernorm.weight", arena.fromFloats(in.read(hp + "post_attention_layernorm.weight", h), h));
            if (!c.isMoeLayer(l)) {
                mlpIn(in, out, arena, h, c.ffnHiddenSize(), hp + "mlp.", GATE_UP_DOWN, mp + "mlp.");
                continue;
            }
            MoeConfig m = c.moe();
            String moe = arch == Arch.MIXTRAL ? hp + "block_sparse_moe." : hp + "mlp.";
            out.put(mp + "mlp.router.weight", arena.fromFloats(in.read(moe + "gate.weight", m.numExperts(), h), m.numExperts(), h));
            for (int e = 0; e < m.numExperts(); e++) {
                mlpIn(in, out, arena, h, m.ffnHiddenSize(), moe + "experts." + e + ".", arch == Arch.MIXTRAL ? W1_W3_W2 : GATE_UP_DOWN,
                        mp + "mlp.experts.local_experts." + e + ".");
            }
            if (m.sharedExpertIntermediateSize() > 0) {
                mlpIn(in, out, arena, h, m.sharedExpertIntermediateSize(), moe + "shared_expert.", GATE_UP_DOWN,
                        mp + "mlp.shared_experts.");
                out.put(mp + "mlp.shared_experts.gate_weight", arena.fromFloats(in.read(moe + "shared_expert_gate.weight", 1, h), 1, h));
            }
        }
        out.put("decoder.final_layernorm.weight", arena.fromFloats(in.read("model.norm.weight", h), h));
        if (c.untieEmbeddingsAndOutputWeights()) {
            float[] head = in.read("lm_head.weight", c.vocabSize(), h);
            out.put("output_layer.weight", arena.fromFloats(Arrays.copyOf(head, c.paddedVocabSize() * h), c.paddedVocabSize(), h));
        } else {
            in.checkTiedHead(embed);
        }
        in.checkAllUsed();
        return out;
    }

    /**
     * HF-named weights of Megatron-named ones (the vocabulary cut back to its unpadded size, a tied head left out as
     * save_pretrained leaves it), rounded to {@code dtype} (nearest even; values widened at import come back bit for bit).
     */
    public static Map<String, Tensor> toHf(Map<String, Tensor> weights, Arch arch, TransformerConfig c, DType dtype,
                                           TensorArena arena) {
        LlamaHfConfig.requireShape(arch, c);
        MegatronReader in = new MegatronReader(weights);
        int h = c.hiddenSize();
        int d = c.kvChannels();
        Map<String, Tensor> out = new LinkedHashMap<>();
        float[] embed = in.read("embedding.word_embeddings.weight", c.paddedVocabSize(), h);
        out.put("model.embed_tokens.weight", arena.fromFloats(Arrays.copyOf(embed, c.vocabSize() * h), c.vocabSize(), h));
        int qRows = c.numAttentionHeads() * d;
        int kvRows = c.numQueryGroups() * d;
        for (int l = 0; l < c.numLayers(); l++) {
            String hp = "model.layers." + l + ".";
            String mp = "decoder.layers." + l + ".";
            float[][] qkv = splitQkv(in.read(mp + "self_attention.linear_qkv.weight", c.qkvWidth(), h), c, h);
            out.put(hp + "self_attn.q_proj.weight", arena.fromFloats(qkv[0], qRows, h));
            out.put(hp + "self_attn.k_proj.weight", arena.fromFloats(qkv[1], kvRows, h));
            out.put(hp + "self_attn.v_proj.weight", arena.fromFloats(qkv[2], kvRows, h));
            if (c.addQkvBias()) {
                float[][] b = splitQkv(in.read(mp + "self_attention.linear_qkv.bias", c.qkvWidth()), c, 1);
                out.put(hp + "self_attn.q_proj.bias", arena.fromFloats(b[0], qRows));
                out.put(hp + "self_attn.k_proj.bias", arena.fromFloats(b[1], kvRows));
                out.put(hp + "self_attn.v_proj.bias", arena.fromFloats(b[2], kvRows));
            }
            if (c.qkLayernorm()) {
                out.put(hp + "self_attn.q_norm.weight", arena.fromFloats(in.read(mp + "self_attention.q_layernorm.weight", d), d));
                out.put(hp + "self_attn.k_norm.weight", arena.fromFloats(in.read(mp + "self_attention.k_layernorm.weight", d), d));
            }
            out.put(hp + "self_attn.o_proj.weight", arena.fromFloats(in.read(mp + "self_attention.linear_proj.weight", h, qRows),
                    h, qRows));
            if (!c.isMoeLayer(l)) {
                mlpOut(in, out, arena, h, c.ffnHiddenSize(), mp + "mlp.", hp + "mlp.", GATE_UP_DOWN);
            } else {
                MoeConfig m = c.moe();
                String moe = arch == Arch.MIXTRAL ? hp + "block_sparse_moe." : hp + "mlp.";
                out.put(moe + "gate.weight", arena.fromFloats(in.read(mp + "mlp.router.weight", m.numExperts(), h), m.numExperts(), h));
                for (int e = 0; e < m.numExperts(); e++) {
                    mlpOut(in, out, arena, h, m.ffnHiddenSize(), mp + "mlp.experts.local_experts." + e + ".", moe + "experts." + e + ".",
                            arch == Arch.MIXTRAL ? W1_W3_W2 : GATE_UP_DOWN);
                }
                if (m.sharedExpertIntermediateSize() > 0) {
                    mlpOut(in, out, arena, h, m.sharedExpertIntermediateSize(), mp + "mlp.shared_experts.", moe + "shared_expert.",
                            GATE_UP_DOWN);
                    out.put(moe + "shared_expert_gate.weight", arena.fromFloats(in.read(mp + "mlp.shared_experts.gate_weight", 1, h), 1, h));
                }
            }
            out.put(hp + "input_layernorm.weight", arena.fromFloats(in.read(mp + "input_layernorm.weight", h), h));
            out.put(hp + "post_attention_layernorm.weight", arena.fromFloats(in.read(mp + "pre_mlp_layernorm.weight", h), h));
        }
        return finalNormAndHead(in, out, arena, c, dtype);
    }

    /**
     * The export's common end: the final norm, the untied output layer without the vocabulary's padding rows, and every
     * tensor cast to {@code dtype}. Returns {@code out}.
     */
    static Map<String, Tensor> finalNormAndHead(MegatronReader in, Map<String, Tensor> out, TensorArena arena,
                                                 TransformerConfig c, DType dtype) {
        int h = c.hiddenSize();
        out.put("model.norm.weight", arena.fromFloats(in.read("decoder.final_layernorm.weight", h), h));
        if (c.untieEmbeddingsAndOutputWeights()) {
            float[] head = in.read("output_layer.weight", c.paddedVocabSize(), h);
            out.put("lm_head.weight", arena.fromFloats(Arrays.copyOf(head, c.vocabSize() * h), c.vocabSize(), h));
        }
        if (dtype != DType.F32) {
            out.replaceAll((name, t) -> arena.allocate(dtype, t.shape()).copyFrom(t.toFloatArray()));
        }
        return out;
    }

    static final String[] GATE_UP_DOWN = {"gate_proj", "up_proj", "down_proj"};
    private static final String[] W1_W3_W2 = {"w1", "w3", "w2"};

    /** gate and up {@code [f, h]} stacked as fc1 {@code [2f, h]} (Megatron's swiglu: gate first); down as fc2. */
    static void mlpIn(HfReader in, Map<String, Tensor> out, TensorArena arena, int h, int f, String hfPrefix,
                              String[] names, String megatronPrefix) {
        float[] gate = in.read(hfPrefix + names[0] + ".weight", f, h);
        float[] up = in.read(hfPrefix + names[1] + ".weight", f, h);
        float[] fc1 = Arrays.copyOf(gate, 2 * f * h);
        System.arraycopy(up, 0, fc1, f * h, f * h);
        out.put(megatronPrefix + "linear_fc1.weight", arena.fromFloats(fc1, 2L * f, h));
        out.put(megatronPrefix + "linear_fc2.weight", arena.fromFloats(in.read(hfPrefix + names[2] + ".weight", h, f), h, f));
    }

    static void mlpOut(MegatronReader in, Map<String, Tensor> out, TensorArena arena, int h, int f, String megatronPrefix,
                               String hfPrefix, String[] names) {
        float[] fc1 = in.read(megatronPrefix + "linear_fc1.weight", 2L * f, h);
        out.put(hfPrefix + names[0] + ".weight", arena.fromFloats(Arrays.copyOfRange(fc1, 0, f * h), f, h));
        out.put(hfPrefix + names[1] + ".weight", arena.fromFloats(Arrays.copyOfRange(fc1, f * h, 2 * f * h), f, h));
        out.put(hfPrefix + names[2] + ".weight", arena.fromFloats(in.read(megatronPrefix + "linear_fc2.weight", h, f), h, f));
    }

    /**
     * q {@code [np d, cols]}, k and v {@code [ng d, cols]} -> Megatron's fused rows: for each query group g, its np/ng
     * query heads, then its key head, then its value head (Megatron-LM's loader: cat of q, k, v each reshaped to
     * {@code [ng, -1, h]} along dim 1).
     */
    static float[] fuseQkv(float[] q, float[] k, float[] v, TransformerConfig c, int cols) {
        int ng = c.numQueryGroups();
        int per = c.headsPerGroup();
        int block = c.kvChannels() * cols;                       // one head's rows
        float[] out = new float[(c.numAttentionHeads() + 2 * ng) * block];
        for (int g = 0; g < ng; g++) {
            int at = g * (per + 2) * block;
            System.arraycopy(q, g * per * block, out, at, per * block);
            System.arraycopy(k, g * block, out, at + per * block, block);
            System.arraycopy(v, g * block, out, at + (per + 1) * block, block);
        }
        return out;
    }

    /** The inverse of {@link #fuseQkv}: {q, k, v}. */
    static float[][] splitQkv(float[] fused, TransformerConfig c, int cols) {
        int ng = c.numQueryGroups();
        int per = c.headsPerGroup();
        int block = c.kvChannels() * cols;
        float[] q = new float[c.numAttentionHeads() * block];
        float[] k = new float[ng * block];
        float[] v = new float[ng * block];
        for (int g = 0; g < ng; g++) {
            int at = g * (per + 2) * block;
            System.arraycopy(fused, at, q, g * per * block, per * block);
            System.arraycopy(fused, at + per * block, k, g * block, block);
            System.arraycopy(fused, at + (per + 1) * block, v, g * block, block);
        }
        return new float[][] {q, k, v};
    }

    /** The HF name of a Megatron-core parameter name in {@code arch} (for messages and gradients); null for one it lacks. */
    public static String hfName(String n, Arch arch) {
        if (n.equals("embedding.word_embeddings.weight")) {
            return "model.embed_tokens.weight";
        }
        if (n.equals("output_layer.weight")) {
            return "lm_head.weight";
        }
        if (n.equals("decoder.final_layernorm.weight")) {
            return "model.norm.weight";
        }
        if (!n.startsWith("decoder.layers.")) {
            return null;
        }
        int dot = n.indexOf('.', "decoder.layers.".length());
        String layer = n.substring("decoder.layers.".length(), dot);
        String rest = n.substring(dot + 1);
        String moe = arch == Arch.MIXTRAL ? "block_sparse_moe." : "mlp.";
        String mapped = switch (rest) {
            case "input_layernorm.weight" -> rest;
            case "pre_mlp_layernorm.weight" -> "post_attention_layernorm.weight";
            case "self_attention.linear_qkv.weight" -> "self_attn.{q,k,v}_proj.weight";
            case "self_attention.linear_qkv.bias" -> "self_attn.{q,k,v}_proj.bias";
            case "self_attention.q_layernorm.weight" -> "self_attn.q_norm.weight";
            case "self_attention.k_layernorm.weight" -> "self_attn.k_norm.weight";
            case "self_attention.linear_proj.weight" -> "self_attn.o_proj.weight";
            case "mlp.linear_fc1.weight" -> "mlp.{gate,up}_proj.weight";
            case "mlp.linear_fc2.weight" -> "mlp.down_proj.weight";
            case "mlp.router.weight" -> moe + "gate.weight";
            case "mlp.shared_experts.linear_fc1.weight" -> "mlp.shared_expert.{gate,up}_proj.weight";
            case "mlp.shared_experts.linear_fc2.weight" -> "mlp.shared_expert.down_proj.weight";
            case "mlp.shared_experts.gate_weight" -> "mlp.shared_expert_gate.weight";
            default -> null;
        };
        if (mapped == null && rest.startsWith("mlp.experts.local_experts.")) {
            String[] parts = rest.substring("mlp.experts.local_experts.".length()).split("\\.", 2);
            boolean fc1 = parts[1].startsWith("linear_fc1");
            mapped = moe + "experts." + parts[0] + "." + (arch == Arch.MIXTRAL ? (fc1 ? "{w1,w3}" : "w2")
                    : (fc1 ? "{gate,up}_proj" : "down_proj")) + ".weight";
        }
        return mapped == null ? null : "model.layers." + layer + "." + mapped;
    }

    /** Reads HF tensors by name, checks shapes, and tracks which were used (DeepseekHfWeights reads through it too). */
    static final class HfReader {
        private final HfSafetensors file;
        private final List<String> unused;

        HfReader(HfSafetensors file) {
            this.file = file;
            this.unused = new ArrayList<>(file.names());
            // rope's inverse frequencies, which transformers before 4.31 saved as a buffer; they are not weights.
            unused.removeIf(n -> n.endsWith(".rotary_emb.inv_freq"));
        }

        float[] read(String name, long... shape) {
            float[] values = HfFiles.read(file, name, shape);
            unused.remove(name);
            return values;
        }

        /** Tensors the conversion leaves out on purpose (they are then not reported as unexplained). */
        void skip(java.util.function.Predicate<String> which) {
            unused.removeIf(which);
        }

        void checkTiedHead(float[] embed) {
            if (file.contains("lm_head.weight")) {
                unused.remove("lm_head.weight");
                if (!Arrays.equals(file.tensor("lm_head.weight").toFloatArray(), embed)) {
                    throw new HfConfigException(file.path() + ": lm_head.weight differs from model.embed_tokens.weight though"
                            + " config.json's tie_word_embeddings is true");
                }
            }
        }

        void checkAllUsed() {
            if (!unused.isEmpty()) {
                throw new HfConfigException(file.path() + ": " + unused.size() + " tensors have no meaning in this architecture,"
                        + " e.g. '" + unused.get(0) + "' (does config.json match the weights: num_hidden_layers,"
                        + " tie_word_embeddings, the MoE layers?)");
            }
        }
    }

    record MegatronReader(Map<String, Tensor> tensors) {
        float[] read(String name, long... shape) {
            Tensor t = tensors.get(name);
            if (t == null) {
                throw new HfConfigException("checkpoint tensor '" + name + "' is missing");
            }
            if (!Arrays.equals(t.shape(), shape) || !t.dtype().isFloatingPoint()) {
                throw new HfConfigException("checkpoint tensor '" + name + "' is " + t.dtype() + Tensor.shapeString(t.shape())
                        + ", expected " + Tensor.shapeString(shape));
            }
            return t.toFloatArray();
        }
    }
}
