package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.Normalization;
import org.megatronj.model.TransformerConfig;

/**
 * What one transformer layer keeps from its forward for its backward, for a fixed
 * {@code [s, b]}. Everything is sequence-first so that {@link #firstPositions} can take the
 * leading positions as views (the generator runs prompts and single tokens in one set).
 *
 * Activations are in the model's compute dtype (F32, or BF16/F16 with mixed precision); the
 * statistics (mean, rstd, lse) are always F32.
 *
 * @param ln1Out  {@code [s, b, h]} input_layernorm output (linear_qkv's input)
 * @param ln1Mean {@code [s, b]} F32 (LayerNorm only, else null)
 * @param ln1Rstd {@code [s, b]} F32
 * @param qkv     {@code [s, b, (np + 2ng) d]} linear_qkv's output in its fused layout, when the backend's
 *                attention reads that in place ({@link SelfAttention}); the same memory as q, k, v, which
 *                are used otherwise
 * @param q       {@code [s, b, np, d]} queries after rope
 * @param k       {@code [s, b, ng, d]} keys after rope
 * @param v       {@code [s, b, ng, d]}
 * @param attnOut {@code [s, b, np, d]} core attention output (linear_proj's input)
 * @param lse     {@code [b * np * s]} F32 flat: log-sum-exp per query row, viewed as {@code [b, np, s]}
 * @param afterAttention {@code [s, b, h]} residual stream after the attention block (pre_mlp_layernorm's input)
 * @param ln2Out  {@code [s, b, h]} pre_mlp_layernorm output (linear_fc1's input)
 * @param ln2Mean {@code [s, b]} F32 or null
 * @param ln2Rstd {@code [s, b]} F32
 * @param fc1Out  {@code [s, b, ffn]} or {@code [s, b, 2 ffn]} with swiglu (the activation's input)
 * @param actOut  {@code [s, b, ffn]} activation output (linear_fc2's input)
 * @param qkNorm  with {@code --qk-layernorm} the q and k norms' inputs and statistics, else null
 * @param moe     the mixture-of-experts layer's buffers when the model has MoE layers, else null (fc1Out and actOut are
 *                null when it has no dense layer)
 * @param mla     the multi-latent attention's latents and trimmed output with {@code --multi-latent-attention}, else
 *                null (q, k, v, attnOut then have MLA's head dim and np key/value heads: {@link TransformerConfig#attentionHeadDim})
 * @param recompute which of these buffers are shared with the micro-batch's other layers and refilled by this layer's
 *                  backward ({@link SelectiveRecompute}; {@link SelectiveRecompute#NONE}: all are this layer's own)
 */
public record LayerActivations(
        Tensor ln1Out, Tensor ln1Mean, Tensor ln1Rstd,
        Tensor qkv, Tensor q, Tensor k, Tensor v, Tensor attnOut, Tensor lse,
        Tensor afterAttention,
        Tensor ln2Out, Tensor ln2Mean, Tensor ln2Rstd,
        Tensor fc1Out, Tensor actOut, QkNorm qkNorm, MoeActivations moe, MlaActivations mla,
        SelectiveRecompute recompute) {

    /**
     * The q/k layernorms' saved inputs and F32 statistics, one row per head vector in q's and k's order.
     *
     * @param qIn   {@code [s, b, np, d]} queries before their norm
     * @param qMean {@code [s b np]} (LayerNorm only, else null)
     * @param qRstd {@code [s b np]}
     * @param kIn   {@code [s, b, ng, d]} keys before their norm
     * @param kMean {@code [s b ng]} or null
     * @param kRstd {@code [s b ng]}
     */
    public record QkNorm(Tensor qIn, Tensor qMean, Tensor qRstd, Tensor kIn, Tensor kMean, Tensor kRstd) {
        static QkNorm allocate(Backend backend, TensorArena arena, DType dtype, boolean ln, int s, int b, int np, int ng, int d) {
            long qRows = (long) s * b * np;
            long kRows = (long) s * b * ng;
            return new QkNorm(backend.allocate(arena, dtype, s, b, np, d), ln ? backend.allocate(arena, DType.F32, qRows) : null,
                    backend.allocate(arena, DType.F32, qRows), backend.allocate(arena, dtype, s, b, ng, d),
                    ln ? backend.allocate(arena, DType.F32, kRows) : null, backend.allocate(arena, DType.F32, kRows));
        }

        QkNorm firstPositions(int s) {
            long qRows = s * qIn.dim(1) * qIn.dim(2);
            long kRows = s * kIn.dim(1) * kIn.dim(2);
            return new QkNorm(qIn.view(0, s), qMean == null ? null : qMean.view(0, qRows), qRstd.view(0, qRows),
                    kIn.view(0, s), kMean == null ? null : kMean.view(0, kRows), kRstd.view(0, kRows));
        }
    }

    public static LayerActivations allocate(Backend backend, TensorArena arena, TransformerConfig c, int s, int b) {
        return allocate(backend, arena, c, s, b, s);
    }

    /**
     * With sequence parallelism the norms' statistics and the residual stream hold this rank's
     * {@code sl = s/t} positions, while ln1Out/ln2Out hold the all-gathered {@code [s, b, h]}
     * inputs of the column-parallel layers (kept for their weight gradients).
     */
    public static LayerActivations allocate(Backend backend, TensorArena arena, TransformerConfig c, int s, int b, int sl) {
        return allocate(backend, arena, c, s, b, sl, DType.F32);
    }

    /**
     * As {@link #allocate(Backend, TensorArena, TransformerConfig, int, int, int)} with the
     * activations in {@code dtype} (BF16/F16 with mixed precision); the norm statistics and the
     * log-sum-exp stay F32.
     */
    public static LayerActivations allocate(Backend backend, TensorArena arena, TransformerConfig c, int s, int b, int sl,
                                            DType dtype) {
        return allocate(backend, arena, c, s, b, sl, dtype, SelectiveRecompute.NONE, null);
    }

    /**
     * As {@link #allocate(Backend, TensorArena, TransformerConfig, int, int, int, DType)} for one layer of a micro-batch
     * under selective recompute: the buffers {@code recompute} leaves out are {@code first}'s (the micro-batch's first
     * layer's), and allocated here when {@code first} is null. The two norm outputs share one buffer: the layer's
     * forward is done with ln1Out before it writes ln2Out, and its backward refills each just before reading it.
     */
    public static LayerActivations allocate(Backend backend, TensorArena arena, TransformerConfig c, int s, int b, int sl,
                                            DType dtype, SelectiveRecompute recompute, LayerActivations first) {
        int h = c.hiddenSize();
        int d = c.attentionHeadDim();
        boolean ln = c.normalization() == Normalization.LAYER_NORM;
        DType x = dtype;
        DType f = DType.F32;
        int np = c.numAttentionHeads();
        int ng = c.attentionKeyValueHeads();
        long qEnd = (long) s * b * np * d;
        long kEnd = qEnd + (long) s * b * ng * d;
        boolean dense = c.moe() == null || hasDenseLayer(c);
        Tensor qkv = recompute.mlaUpProj() && c.mla() != null && first != null ? first.qkv
                : backend.allocate(arena, x, s, b, (long) (np + 2 * ng) * d);   // q, k, v are views of it
        Tensor flat = qkv.reshape(-1);
        Tensor ln1Out = recompute.layernorm() && first != null ? first.ln1Out : backend.allocate(arena, x, s, b, h);
        Tensor fc1Out = null;
        Tensor actOut = null;
        if (dense && recompute.mlp() && first != null) {
            fc1Out = first.fc1Out;
            actOut = first.actOut;
        } else if (dense) {
            fc1Out = backend.allocate(arena, x, s, b, c.fc1Width());
            actOut = backend.allocate(arena, x, s, b, c.ffnHiddenSize());
        }
        return new LayerActivations(
                ln1Out,
                ln ? backend.allocate(arena, f, sl, b) : null,
                backend.allocate(arena, f, sl, b),
                qkv,
                flat.view(0, qEnd).reshape(s, b, np, d),
                flat.view(qEnd, kEnd).reshape(s, b, ng, d),
                flat.view(kEnd, flat.numel()).reshape(s, b, ng, d),
                backend.allocate(arena, x, s, b, c.numAttentionHeads(), d),
                backend.allocate(arena, f, (long) b * c.numAttentionHeads() * s),
                backend.allocate(arena, x, sl, b, h),
                recompute.layernorm() ? ln1Out : backend.allocate(arena, x, s, b, h),
                ln ? backend.allocate(arena, f, sl, b) : null,
                backend.allocate(arena, f, sl, b),
                fc1Out,
                actOut,
                c.qkLayernorm() && c.mla() == null ? QkNorm.allocate(backend, arena, x, ln, s, b, np, ng, d) : null,
                c.moe() == null ? null : MoeActivations.allocate(backend, arena, c, s, b, s / sl, x, recompute,
                        first == null ? null : first.moe),
                c.mla() == null ? null : MlaActivations.allocate(backend, arena, c, s, b, sl, x),
                recompute);
    }

    /** Whether some layer of {@code c} is a dense MLP layer. */
    static boolean hasDenseLayer(TransformerConfig c) {
        for (int l = 0; l < c.numLayers(); l++) {
            if (!c.isMoeLayer(l)) {
                return true;
            }
        }
        return false;
    }

    /** These buffers with another MLP's fc1 and activation outputs (the shared experts'). */
    LayerActivations withMlp(Tensor fc1Out, Tensor actOut) {
        return new LayerActivations(ln1Out, ln1Mean, ln1Rstd, qkv, q, k, v, attnOut, lse, afterAttention, ln2Out, ln2Mean,
                ln2Rstd, fc1Out, actOut, qkNorm, moe, mla, recompute);
    }

    /** The same buffers restricted to the first {@code s} positions (views, no copies). */
    public LayerActivations firstPositions(int s) {
        long b = ln1Out.dim(1);
        long np = q.dim(2);
        return new LayerActivations(
                ln1Out.view(0, s), ln1Mean == null ? null : ln1Mean.view(0, s), ln1Rstd.view(0, s),
                qkv.view(0, s), q.view(0, s), k.view(0, s), v.view(0, s), attnOut.view(0, s), lse.view(0, b * np * s),
                afterAttention.view(0, s), ln2Out.view(0, s), ln2Mean == null ? null : ln2Mean.view(0, s),
                ln2Rstd.view(0, s), fc1Out == null ? null : fc1Out.view(0, s), actOut == null ? null : actOut.view(0, s),
                qkNorm == null ? null : qkNorm.firstPositions(s), moe, mla == null ? null : mla.firstPositions(s),
                recompute);
    }

    /** The log-sum-exp in the attention op's {@code [b, np, s]} shape. */
    public Tensor lseShaped() {
        return lse.reshape(q.dim(1), q.dim(2), q.dim(0));
    }
}
