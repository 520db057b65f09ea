package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.MlaConfig;
import org.megatronj.model.Normalization;
import org.megatronj.model.TransformerConfig;

/**
 * What one {@link MultiLatentAttention} keeps from its forward for its backward, beside the q, k, v, attnOut and lse of
 * {@link LayerActivations} (shaped {@code [s, b, np, qk_head_dim + qk_pos_emb_head_dim]}, the values padded). Under
 * sequence parallelism the latents and their norm statistics hold this rank's {@code sl = s/t} positions and the
 * normed latents the all-gathered {@code [s, b, .]} (the up projections' inputs).
 *
 * @param qCompressed  {@code [sl, b, q_lora_rank]} linear_q_down_proj's output (q_layernorm's input), null without a
 *                     query latent
 * @param qMean        F32 {@code [sl b]} (LayerNorm with --qk-layernorm only, else null)
 * @param qRstd        F32 {@code [sl b]} (--qk-layernorm only, else null)
 * @param qNormed      {@code [s, b, q_lora_rank]} linear_q_up_proj's input (qCompressed itself without norm or
 *                     sequence parallelism)
 * @param kvCompressed {@code [sl, b, kv_lora_rank]} the latent part of linear_kv_down_proj's output
 * @param kvMean       F32 {@code [sl b]} or null
 * @param kvRstd       F32 {@code [sl b]} or null
 * @param kvNormed     {@code [s, b, kv_lora_rank]} linear_kv_up_proj's input
 * @param attnTrim     {@code [s, b, np v_head_dim]} the attention output without the value padding (linear_proj's input)
 */
public record MlaActivations(Tensor qCompressed, Tensor qMean, Tensor qRstd, Tensor qNormed, Tensor kvCompressed,
                             Tensor kvMean, Tensor kvRstd, Tensor kvNormed, Tensor attnTrim) {

    /** c: this rank's shard config (np/t heads). */
    static MlaActivations allocate(Backend backend, TensorArena arena, TransformerConfig c, int s, int b, int sl, DType x) {
        MlaConfig m = c.mla();
        boolean norm = c.qkLayernorm();
        boolean ln = norm && c.normalization() == Normalization.LAYER_NORM;
        boolean same = !norm && sl == s;   // the normed latent is the latent itself
        Tensor qCompressed = null, qMean = null, qRstd = null, qNormed = null;
        if (m.hasQueryLatent()) {
            qCompressed = backend.allocate(arena, x, sl, b, m.qLoraRank());
            qMean = ln ? backend.allocate(arena, DType.F32, (long) sl * b) : null;
            qRstd = norm ? backend.allocate(arena, DType.F32, (long) sl * b) : null;
            qNormed = same ? qCompressed : backend.allocate(arena, x, s, b, m.qLoraRank());
        }
        Tensor kvCompressed = backend.allocate(arena, x, sl, b, m.kvLoraRank());
        return new MlaActivations(qCompressed, qMean, qRstd, qNormed, kvCompressed,
                ln ? backend.allocate(arena, DType.F32, (long) sl * b) : null,
                norm ? backend.allocate(arena, DType.F32, (long) sl * b) : null,
                same ? kvCompressed : backend.allocate(arena, x, s, b, m.kvLoraRank()),
                backend.allocate(arena, x, s, b, (long) c.numAttentionHeads() * m.vHeadDim()));
    }

    /** The first {@code s} positions (generation: one rank, no sequence parallelism). */
    MlaActivations firstPositions(int s) {
        long b = kvCompressed.dim(1);
        long rows = s * b;
        return new MlaActivations(view(qCompressed, s), view(qMean, rows), view(qRstd, rows), view(qNormed, s),
                kvCompressed.view(0, s), view(kvMean, rows), view(kvRstd, rows), kvNormed.view(0, s), attnTrim.view(0, s));
    }

    private static Tensor view(Tensor t, long to) {
        return t == null ? null : t.view(0, to);
    }
}
