package org.megatronj.parallel.checkpoint;

import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.MlaConfig;
import org.megatronj.model.MoeConfig;
import org.megatronj.model.TransformerConfig;
import org.megatronj.parallel.checkpoint.LlamaHfWeights.HfReader;
import org.megatronj.parallel.checkpoint.LlamaHfWeights.MegatronReader;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Renames DeepSeek-V3 weights between Hugging Face and Megatron-core (both store Linear weights {@code [out, in]}):
 * <pre>
 *   model.layers.N.self_attn.q_a_proj.weight          <-> decoder.layers.N.self_attention.linear_q_down_proj.weight
 *   model.layers.N.self_attn.q_a_layernorm.weight     <-> decoder.layers.N.self_attention.q_layernorm.weight
 *   model.layers.N.self_attn.q_b_proj.weight  (*)     <-> decoder.layers.N.self_attention.linear_q_up_proj.weight
 *   model.layers.N.self_attn.q_proj.weight    (*)     <-> decoder.layers.N.self_attention.linear_q_proj.weight (q_lora_rank null)
 *   model.layers.N.self_attn.kv_a_proj_with_mqa (*)   <-> decoder.layers.N.self_attention.linear_kv_down_proj.weight
 *   model.layers.N.self_attn.kv_a_layernorm.weight    <-> decoder.layers.N.self_attention.kv_layernorm.weight
 *   model.layers.N.self_attn.kv_b_proj.weight         <-> decoder.layers.N.self_attention.linear_kv_up_proj.weight
 *   model.layers.N.self_attn.o_proj.weight            <-> decoder.layers.N.self_attention.linear_proj.weight
 *   model.layers.N.mlp.{gate,up,down}_proj (dense)    <-> decoder.layers.N.mlp.linear_fc1 [gate; up] / linear_fc2
 *   model.layers.N.mlp.gate.weight                    <-> decoder.layers.N.mlp.router.weight
 *   model.layers.N.mlp.gate.e_score_correction_bias   <-> decoder.layers.N.mlp.router.expert_bias
 *   model.layers.N.mlp.experts.E.{gate,up,down}_proj  <-> decoder.layers.N.mlp.experts.local_experts.E.linear_fc1 / fc2
 *   model.layers.N.mlp.shared_experts.*               <-> decoder.layers.N.mlp.shared_experts.linear_fc1 / fc2
 *   embeddings, layer norms, model.norm and lm_head as the Llama family (LlamaHfWeights)
 * </pre>
 * The row layouts agree (q per head [nope; rope], the kv latent [kv_lora_rank; rope], kv_b_proj per head [k_nope; v]).
 * (*) With {@code rope_interleave} (the default) transformers rotates the rotary channels' pairs (2i, 2i+1), as
 * Megatron's MLA does; without it, pairs (i, i + d/2): those rows are interleaved on import (HF row i to 2i, row
 * i + d/2 to 2i + 1) and de-interleaved on export, which leaves every attention score unchanged.
 *
 * <p>The multi-token-prediction depths the release stores as {@code model.layers.<num_hidden_layers + k>} are left out:
 * transformers drops them at load too, so no reference forward checks them.
 */
public final class DeepseekHfWeights {
    private DeepseekHfWeights() {
    }

    /** The Megatron-named F32 weights of {@code hf}, a DeepSeek-V3 of shape {@code c}; {@code interleaved}: rope_interleave. */
    public static Map<String, Tensor> toMegatron(HfSafetensors hf, TransformerConfig c, boolean interleaved, int mtpDepths,
                                                 TensorArena arena) {
        HfReader in = new HfReader(hf);
        MlaConfig m = c.mla();
        int h = c.hiddenSize();
        int heads = c.numAttentionHeads();
        int qRows = heads * m.qHeadDim();
        Map<String, Tensor> out = new LinkedHashMap<>();
        float[] embed = in.read("model.embed_tokens.weight", c.vocabSize(), h);
        out.put("embedding.word_embeddings.weight", arena.fromFloats(Arrays.copyOf(embed, c.paddedVocabSize() * h),
                c.paddedVocabSize(), h));
        for (int l = 0; l < c.numLayers(); l++) {
            String hp = "model.layers." + l + ".";
            String a = hp + "self_attn.";
            String mp = "decoder.layers." + l + ".";
            String s = mp + "self_attention.";
            out.put(mp + "input_layernorm.weight", arena.fromFloats(in.read(hp + "input_layernorm.weight", h), h));
            if (m.hasQueryLatent()) {
                int r = m.qLoraRank();
                out.put(s + "linear_q_down_proj.weight", arena.fromFloats(in.read(a + "q_a_proj.weight", r, h), r, h));
                out.put(s + "q_layernorm.weight", arena.fromFloats(in.read(a + "q_a_layernorm.weight", r), r));
                float[] q = in.read(a + "q_b_proj.weight", qRows, r);
                out.put(s + "linear_q_up_proj.weight", arena.fromFloats(ropeRows(q, m, heads, r, interleaved, true), qRows, r));
            } else {
                float[] q = in.read(a + "q_proj.weight", qRows, h);
                out.put(s + "linear_q_proj.weight", arena.fromFloats(ropeRows(q, m, heads, h, interleaved, true), qRows, h));
            }
            int kvDown = m.kvLoraRank() + m.qkPosEmbHeadDim();
            float[] kv = in.read(a + "kv_a_proj_with_mqa.weight", kvDown, h);
            out.put(s + "linear_kv_down_proj.weight", arena.fromFloats(kvRopeRows(kv, m, h, interleaved, true), kvDown, h));
            out.put(s + "kv_layernorm.weight", arena.fromFloats(in.read(a + "kv_a_layernorm.weight", m.kvLoraRank()),
                    m.kvLoraRank()));
            int kvUp = heads * (m.qkHeadDim() + m.vHeadDim());
            out.put(s + "linear_kv_up_proj.weight", arena.fromFloats(in.read(a + "kv_b_proj.weight", kvUp, m.kvLoraRank()),
                    kvUp, m.kvLoraRank()));
            int vRows = heads * m.vHeadDim();
            out.put(s + "linear_proj.weight", arena.fromFloats(in.read(a + "o_proj.weight", h, vRows), h, vRows));
            out.put(mp + "pre_mlp_layernorm.weight", arena.fromFloats(in.read(hp + "post_attention_layernorm.weight", h), h));
            if (!c.isMoeLayer(l)) {
                LlamaHfWeights.mlpIn(in, out, arena, h, c.ffnHiddenSize(), hp + "mlp.", LlamaHfWeights.GATE_UP_DOWN, mp + "mlp.");
                continue;
            }
            MoeConfig moe = c.moe();
            int e = moe.numExperts();
            out.put(mp + "mlp.router.weight", arena.fromFloats(in.read(hp + "mlp.gate.weight", e, h), e, h));
            out.put(mp + "mlp.router.expert_bias", arena.fromFloats(in.read(hp + "mlp.gate.e_score_correction_bias", e), e));
            for (int x = 0; x < e; x++) {
                LlamaHfWeights.mlpIn(in, out, arena, h, moe.ffnHiddenSize(), hp + "mlp.experts." + x + ".",
                        LlamaHfWeights.GATE_UP_DOWN, mp + "mlp.experts.local_experts." + x + ".");
            }
            if (moe.sharedExpertIntermediateSize() > 0) {
                LlamaHfWeights.mlpIn(in, out, arena, h, moe.sharedExpertIntermediateSize(), hp + "mlp.shared_experts.",
                        LlamaHfWeights.GATE_UP_DOWN, mp + "mlp.shared_experts.");
            }
        }
        out.put("decoder.final_layernorm.weight", arena.fromFloats(in.read("model.norm.weight", h), h));
        if (c.untieEmbeddingsAndOutputWeights()) {
            float[] head = in.read("lm_head.weight", c.vocabSize(), h);
            out.put("output_layer.weight", arena.fromFloats(Arrays.copyOf(head, c.paddedVocabSize() * h), c.paddedVocabSize(), h));
        } else {
            in.checkTiedHead(embed);
        }
        for (int k = 0; k < mtpDepths; k++) {
            String depth = "model.layers." + (c.numLayers() + k) + ".";
            in.skip(n -> n.startsWith(depth));
        }
        in.checkAllUsed();
        return out;
    }

    /** HF-named weights of Megatron-named ones in {@code dtype}, the inverse of {@link #toMegatron}. */
    public static Map<String, Tensor> toHf(Map<String, Tensor> weights, TransformerConfig c, boolean interleaved, DType dtype,
                                           TensorArena arena) {
        MegatronReader in = new MegatronReader(weights);
        MlaConfig m = c.mla();
        int h = c.hiddenSize();
        int heads = c.numAttentionHeads();
        int qRows = heads * m.qHeadDim();
        Map<String, Tensor> out = new LinkedHashMap<>();
        float[] embed = in.read("embedding.word_embeddings.weight", c.paddedVocabSize(), h);
        out.put("model.embed_tokens.weight", arena.fromFloats(Arrays.copyOf(embed, c.vocabSize() * h), c.vocabSize(), h));
        for (int l = 0; l < c.numLayers(); l++) {
            String hp = "model.layers." + l + ".";
            String a = hp + "self_attn.";
            String mp = "decoder.layers." + l + ".";
            String s = mp + "self_attention.";
            out.put(hp + "input_layernorm.weight", arena.fromFloats(in.read(mp + "input_layernorm.weight", h), h));
            if (m.hasQueryLatent()) {
                int r = m.qLoraRank();
                out.put(a + "q_a_proj.weight", arena.fromFloats(in.read(s + "linear_q_down_proj.weight", r, h), r, h));
                out.put(a + "q_a_layernorm.weight", arena.fromFloats(in.read(s + "q_layernorm.weight", r), r));
                float[] q = in.read(s + "linear_q_up_proj.weight", qRows, r);
                out.put(a + "q_b_proj.weight", arena.fromFloats(ropeRows(q, m, heads, r, interleaved, false), qRows, r));
            } else {
                float[] q = in.read(s + "linear_q_proj.weight", qRows, h);
                out.put(a + "q_proj.weight", arena.fromFloats(ropeRows(q, m, heads, h, interleaved, false), qRows, h));
            }
            int kvDown = m.kvLoraRank() + m.qkPosEmbHeadDim();
            float[] kv = in.read(s + "linear_kv_down_proj.weight", kvDown, h);
            out.put(a + "kv_a_proj_with_mqa.weight", arena.fromFloats(kvRopeRows(kv, m, h, interleaved, false), kvDown, h));
            out.put(a + "kv_a_layernorm.weight", arena.fromFloats(in.read(s + "kv_layernorm.weight", m.kvLoraRank()),
                    m.kvLoraRank()));
            int kvUp = heads * (m.qkHeadDim() + m.vHeadDim());
            out.put(a + "kv_b_proj.weight", arena.fromFloats(in.read(s + "linear_kv_up_proj.weight", kvUp, m.kvLoraRank()),
                    kvUp, m.kvLoraRank()));
            int vRows = heads * m.vHeadDim();
            out.put(a + "o_proj.weight", arena.fromFloats(in.read(s + "linear_proj.weight", h, vRows), h, vRows));
            out.put(hp + "post_attention_layernorm.weight", arena.fromFloats(in.read(mp + "pre_mlp_layernorm.weight", h), h));
            if (!c.isMoeLayer(l)) {
                LlamaHfWeights.mlpOut(in, out, arena, h, c.ffnHiddenSize(), mp + "mlp.", hp + "mlp.", LlamaHfWeights.GATE_UP_DOWN);
                continue;
            }
            MoeConfig moe = c.moe();
            int e = moe.numExperts();
            out.put(hp + "mlp.gate.weight", arena.fromFloats(in.read(mp + "mlp.router.weight", e, h), e, h));
            out.put(hp + "mlp.gate.e_score_correction_bias", arena.fromFloats(in.read(mp + "mlp.router.expert_bias", e), e));
            for (int x = 0; x < e; x++) {
                LlamaHfWeights.mlpOut(in, out, arena, h, moe.ffnHiddenSize(), mp + "mlp.experts.local_experts." + x + ".",
                        hp + "mlp.experts." + x + ".", LlamaHfWeights.GATE_UP_DOWN);
            }
            if (moe.sharedExpertIntermediateSize() > 0) {
                LlamaHfWeights.mlpOut(in, out, arena, h, moe.sharedExpertIntermediateSize(), mp + "mlp.shared_experts.",
                        hp + "mlp.shared_experts.", LlamaHfWeights.GATE_UP_DOWN);
            }
        }
        return LlamaHfWeights.finalNormAndHead(in, out, arena, c, dtype);
    }

    /** The query projection's rows ({@code [heads, nope + rope]} rows of {@code cols}) with each head's rope rows re-laid. */
    static float[] ropeRows(float[] w, MlaConfig m, int heads, int cols, boolean interleaved, boolean toMegatron) {
        if (interleaved) {
            return w;
        }
        float[] out = w.clone();
        for (int head = 0; head < heads; head++) {
            permute(w, out, (head * m.qHeadDim() + m.qkHeadDim()), m.qkPosEmbHeadDim(), cols, toMegatron);
        }
        return out;
    }

    /** The kv down projection's rows ({@code [kv_lora_rank; rope]} of {@code cols}) with the rope rows re-laid. */
    static float[] kvRopeRows(float[] w, MlaConfig m, int cols, boolean interleaved, boolean toMegatron) {
        if (interleaved) {
            return w;
        }
        float[] out = w.clone();
        permute(w, out, m.kvLoraRank(), m.qkPosEmbHeadDim(), cols, toMegatron);
        return out;
    }

    /**
     * Rows {@code [first, first + d)}: rotate-half's row i and i + d/2 (one rotary pair) to rows 2i and 2i + 1, the pair
     * Megatron's MLA rotates ({@code toMegatron}), or back.
     */
    private static void permute(float[] from, float[] to, int first, int d, int cols, boolean toMegatron) {
        for (int i = 0; i < d / 2; i++) {
            int[][] pairs = {{first + i, first + 2 * i}, {first + d / 2 + i, first + 2 * i + 1}};
            for (int[] p : pairs) {
                int hfRow = p[0];
                int megatronRow = p[1];
                int src = toMegatron ? hfRow : megatronRow;
                int dst = toMegatron ? megatronRow : hfRow;
                System.arraycopy(from, src * cols, to, dst * cols, cols);
            }
        }
    }
}
