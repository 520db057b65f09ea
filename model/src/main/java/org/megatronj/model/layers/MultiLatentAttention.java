package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.Backend.Activation;
import org.megatronj.memory.Tensor;
import org.megatronj.model.MlaConfig;
import org.megatronj.model.Parameter;
import org.megatronj.model.TransformerConfig;
import org.megatronj.model.parallel.TensorParallelGroup;

/**
 * Multi-latent attention as Megatron-core's {@code MLASelfAttention} (DeepSeek-V2/V3), local spec:
 * <pre>
 *   q       = linear_q_up_proj(q_layernorm(linear_q_down_proj(x)))      or linear_q_proj(x) without --q-lora-rank
 *   [c, kpe] = linear_kv_down_proj(x)                                     c: kv_lora_rank, kpe: qk_pos_emb_head_dim
 *   [k_nope, v] = linear_kv_up_proj(kv_layernorm(c))                     per head
 *   query  = [q_nope, rope(q_pe)],  key = [k_nope, rope(kpe)] (kpe shared by the heads)
 *   out    = linear_proj(softmax(query key^T * mscale^2 / sqrt(qk + pe)) v)
 * </pre>
 * q_layernorm and kv_layernorm exist with {@code --qk-layernorm} (Megatron's local spec uses IdentityOp otherwise).
 *
 * <p>Rope: Megatron de-interleaves the rotary channels (evens, then odds) and rotates halves; the scores equal those of
 * rotating neighbouring pairs {@code (2i, 2i+1)} by theta_i, which is what runs here (the query and key channels come
 * out in another order than Megatron's, the attention and every gradient are the same). The factor on cos and sin
 * (YaRN's concentration factor) multiplies the rotary channels after the rotation. The rope table spans the whole
 * head with zero angles on the content channels, so q is rotated in place in its projection layout.
 *
 * <p>Values: the core attention takes one head dim for q, k and v, so v is padded with zeros to
 * {@code qk_head_dim + qk_pos_emb_head_dim} (as Megatron pads it for its THD kernels) and the output trimmed back to
 * {@code v_head_dim}; v_head_dim may therefore not exceed that width. The padding costs the PV product
 * {@code D / v_head_dim} times its work; the generation KV cache holds the per-head keys and padded values.
 *
 * <p>Tensor parallelism: the up projections are column parallel over the heads, linear_proj row parallel; the down
 * projections and the latent norms are replicated (Megatron's TE spec duplicates them; its local spec shards the down
 * projections' outputs and gathers them back, the same numbers). Without sequence parallelism each rank runs them on
 * the whole sequence and the shared rotary key's gradient (a sum over this rank's heads) is summed over the ranks;
 * with it each rank runs them on its own positions, gathers the normed latents and the rotary key along the sequence,
 * and reduce-scatters their gradients (their weight gradients are then partial sums, reduced with the norms').
 *
 * <p>Gradients: dx is written, parameter gradients accumulate.
 */
public final class MultiLatentAttention implements Attention {
    private final Backend backend;
    private final MlaConfig mla;
    private final Linear linearQDownProj;        // [q_lora_rank, h], replicated; null without a query latent
    private final Norm qLayernorm;               // null without --qk-layernorm or a query latent
    private final ColumnParallelLinear linearQUpProj;   // [np D, q_lora_rank] or linear_q_proj [np D, h]
    private final Parameter kvDownWeight;        // [kv_lora_rank + pe, h], replicated
    private final Norm kvLayernorm;              // null without --qk-layernorm
    private final ColumnParallelLinear linearKvUpProj;  // [np (qk + v), kv_lora_rank]
    private final Linear linearProj;             // [h, np v]
    private final RotaryEmbedding rope;          // angles over the whole head D, zero on the content channels
    private final TensorParallelGroup tp;
    private final boolean sequenceParallel;
    private final float softmaxScale;
    private final float attentionDropout;
    private final long firstHead;
    private final int g;

    /**
     * {@code config}: this rank's shard (np/t heads); {@code linearQDownProj} and {@code qLayernorm} null without a query
     * latent, in which case {@code linearQUpProj} is linear_q_proj; the norms null without --qk-layernorm;
     * {@code rope} built by {@link RotaryEmbedding#forMla}.
     */
    public MultiLatentAttention(Backend backend, TransformerConfig config, Linear linearQDownProj, Norm qLayernorm,
                                ColumnParallelLinear linearQUpProj, Parameter kvDownWeight, Norm kvLayernorm,
                                ColumnParallelLinear linearKvUpProj, Linear linearProj, RotaryEmbedding rope,
                                TensorParallelGroup tp, boolean sequenceParallel, int firstHead) {
        this.mla = config.mla();
        if (mla == null) {
            throw new IllegalArgumentException("MultiLatentAttention needs a config with --multi-latent-attention");
        }
        if (mla.hasQueryLatent() != (linearQDownProj != null)) {
            throw new IllegalArgumentException("linear_q_down_proj must be given exactly when --q-lora-rank is set");
        }
        this.backend = backend;
        this.linearQDownProj = linearQDownProj;
        this.qLayernorm = qLayernorm;
        this.linearQUpProj = linearQUpProj;
        this.kvDownWeight = kvDownWeight;
        this.kvLayernorm = kvLayernorm;
        this.linearKvUpProj = linearKvUpProj;
        this.linearProj = linearProj;
        this.rope = rope;
        this.tp = tp;
        this.sequenceParallel = sequenceParallel;
        this.softmaxScale = (float) mla.softmaxScale();
        this.attentionDropout = config.attentionDropout();
        this.firstHead = firstHead;
        this.g = mla.channelGranule();
    }

    @Override
    public Linear linearProj() {
        return linearProj;
    }

    /** This rank's rows of the gathered input under sequence parallelism, else x itself. */
    private Tensor localRows(Tensor x, MlaActivations m) {
        if (!sequenceParallel) {
            return x;
        }
        long sl = m.kvCompressed().dim(0);
        return x.view(tp.rank() * sl, (tp.rank() + 1) * sl);
    }

    @Override
    public void forward(Tensor x, Tensor residual, Tensor out, LayerActivations a, Workspace ws, KvSlot cache, int start,
                        DropoutKey probsKey, Tensor keyStarts) {
        MlaActivations m = a.mla();
        MlaWorkspace w = ws.mla();
        int s = (int) x.dim(0);
        Tensor xLocal = localRows(x, m);                                       // [sl, b, h]
        Tensor q = a.q();                                                      // [s, b, np, D]
        // Query: its latent, normed and gathered along the sequence, then the per-head up projection.
        if (linearQDownProj != null) {
            linearQDownProj.forward(xLocal, m.qCompressed());                  // [sl, b, q_lora_rank]
            latentNorm(qLayernorm, m.qCompressed(), m.qMean(), m.qRstd(), w.qNormShard(), m.qNormed());
        }
        queryUp(x, m, q);                                                      // [s, b, np D]
        // Keys and values: the latent and the shared rotary key from one down projection (two GEMMs on its row blocks).
        gemm(xLocal, kvDownWeight.compute().view(0, mla.kvLoraRank()), m.kvCompressed());   // [sl, b, kv_lora_rank]
        rotaryKey(xLocal, w);                                                  // [s, b, pe]
        latentNorm(kvLayernorm, m.kvCompressed(), m.kvMean(), m.kvRstd(), w.kvNormShard(), m.kvNormed());
        Tensor kNew = cache == null ? a.k() : cache.keys().view(start, start + s);      // [s, b, np, D]
        Tensor vNew = cache == null ? a.v() : cache.values().view(start, start + s);    // [s, b, np, D], padded
        keysAndValues(m, w, kNew, vNew);
        ropeForward(q, start, w);
        ropeForward(kNew, start, w);
        Tensor kAll = cache == null ? kNew : cache.keys().view(0, start + s);
        Tensor vAll = cache == null ? vNew : cache.values().view(0, start + s);
        backend.attentionForward(q, kAll, vAll, a.attnOut(), a.lseShaped(), softmaxScale, true, null, keyStarts,
                dropout(probsKey), seed(probsKey), offset(probsKey, q, kAll));
        backend.embeddingForward(w.trimRows(), a.attnOut().reshape(-1, g), m.attnTrim().reshape(-1, g));  // drop padding
        if (sequenceParallel) {
            ((RowParallelLinear) linearProj).forwardSequenceParallel(m.attnTrim(), ws.hiddenB(), out);
        } else if (residual != null) {
            linearProj.forwardAdd(m.attnTrim(), residual, out);
        } else {
            linearProj.forward(m.attnTrim(), out);
        }
    }

    /** linear_q_up_proj on the normed query latent, or linear_q_proj on x without one: q {@code [s, b, np D]}. */
    private void queryUp(Tensor x, MlaActivations m, Tensor q) {
        if (linearQDownProj != null) {
            linearQUpProj.forward(m.qNormed(), q);
        } else {
            linearQUpProj.forward(x, q);                                       // linear_q_proj
        }
    }

    /** The shared rotary key from the down projection's last rows into w.kPe {@code [s, b, pe]} (gathered under SP). */
    private void rotaryKey(Tensor xLocal, MlaWorkspace w) {
        int kvr = mla.kvLoraRank();
        Tensor kPeLocal = sequenceParallel ? w.kPeShard() : w.kPe();
        gemm(xLocal, kvDownWeight.compute().view(kvr, kvr + mla.qkPosEmbHeadDim()), kPeLocal);   // [sl, b, pe]
        if (sequenceParallel) {
            tp.allGatherFirstDim(kPeLocal, w.kPe());                            // [s, b, pe]
        }
    }

    /** linear_kv_up_proj on the normed latent, then k = [k_nope, kPe] and the padded v gathered per head (before rope). */
    private void keysAndValues(MlaActivations m, MlaWorkspace w, Tensor k, Tensor v) {
        linearKvUpProj.forward(m.kvNormed(), w.kvFull());                      // [s, b, np (qk + v)]
        backend.embeddingForward(w.keyRows(), w.kvStack(), k.reshape(-1, g));
        backend.embeddingForward(w.valueRows(), w.kvStack(), v.reshape(-1, g));
    }

    /**
     * Megatron's "mla_up_proj" recompute: q, k and v (the core attention's inputs) are one buffer per micro-batch shared
     * by the layers, so rerun what follows the kept latents: the up projections, the rotary key (one small GEMM on x,
     * gathered again under sequence parallelism) and rope. The same ops on the same inputs as forward's.
     */
    private void refillUpProjections(Tensor x, LayerActivations a, MlaActivations m, MlaWorkspace w) {
        queryUp(x, m, a.q());
        rotaryKey(localRows(x, m), w);
        keysAndValues(m, w, a.k(), a.v());
        ropeForward(a.q(), 0, w);
        ropeForward(a.k(), 0, w);
    }

    /** The latent's norm (or none) on this rank's rows, then the gather along the sequence into {@code normed}. */
    private void latentNorm(Norm norm, Tensor latent, Tensor mean, Tensor rstd, Tensor normShard, Tensor normed) {
        if (!sequenceParallel) {
            if (norm != null) {
                norm.forward(latent, normed, mean, rstd);
            }   // else normed is the latent itself
            return;
        }
        Tensor local = latent;
        if (norm != null) {
            norm.forward(latent, normShard, mean, rstd);
            local = normShard;
        }
        tp.allGatherFirstDim(local, normed);
    }

    /** Rope over the rotary channels of every head of x {@code [s, b, np, D]} at positions {@code start..}, then the factor. */
    private void ropeForward(Tensor x, int start, MlaWorkspace w) {
        rope.forward(x, start);
        if (w.ropeScales() != null) {
            Tensor rows = x.reshape(-1, g);
            backend.scaleRows(rows, w.ropeScales().view(0, rows.dim(0)), rows);
        }
    }

    private void ropeBackward(Tensor dx, MlaWorkspace w) {
        if (w.ropeScales() != null) {
            Tensor rows = dx.reshape(-1, g);
            backend.scaleRows(rows, w.ropeScales().view(0, rows.dim(0)), rows);
        }
        rope.backward(dx, 0);
    }

    /** y {@code [..., out]} = x {@code [..., in]} W^T for a block of a weight's rows. */
    private void gemm(Tensor x, Tensor weight, Tensor y) {
        backend.linearForward(x.reshape(-1, weight.dim(1)), weight, null, Activation.NONE, y.reshape(-1, weight.dim(0)), null);
    }

    @Override
    public void backward(Tensor dOut, Tensor x, Tensor dx, LayerActivations a, Workspace ws, DropoutKey probsKey,
                         Tensor keyStarts) {
        MlaActivations m = a.mla();
        MlaWorkspace w = ws.mla();
        if (a.recompute().mlaUpProj()) {
            refillUpProjections(x, a, m, w);
        }
        if (sequenceParallel) {
            ((RowParallelLinear) linearProj).backwardSequenceParallel(dOut, ws.hiddenB(), m.attnTrim(), w.dTrim());
        } else {
            linearProj.backward(dOut, m.attnTrim(), w.dTrim());                          // [s, b, np v]
        }
        backend.embeddingForward(w.padRows(), w.dTrimStack(), ws.dAttn().reshape(-1, g));   // [s, b, np, D], zero padding
        backend.attentionBackward(ws.dAttn(), a.q(), a.k(), a.v(), a.attnOut(), a.lseShaped(), ws.dq(), ws.dk(), ws.dv(),
                softmaxScale, true, null, keyStarts, dropout(probsKey), seed(probsKey), offset(probsKey, a.q(), a.k()));
        ropeBackward(ws.dq(), w);
        ropeBackward(ws.dk(), w);
        // The shared rotary key's gradient: dk's rotary rows summed over the heads (content rows to a discard row).
        backend.fill(w.dkPeTable(), 0f);
        backend.embeddingBackward(w.kPeSumRows(), ws.dk().reshape(-1, g), w.dkPeTable());
        long kPeRows = w.dkPeTable().dim(0) - 1;
        if (w.dkPe().dtype() != w.dkPeTable().dtype()) {
            backend.cast(w.dkPeTable().view(0, kPeRows).reshape(w.dkPe().shape()), w.dkPe());
        }
        Tensor dkPeLocal = w.dkPe();                                                     // [s, b, pe]
        if (sequenceParallel) {
            tp.reduceScatterFirstDim(w.dkPe(), w.dkPeShard());
            dkPeLocal = w.dkPeShard();                                                   // [sl, b, pe]
        } else if (tp.size() > 1) {
            tp.allReduceSum(w.dkPe());      // the other ranks' heads
        }
        // k_nope and v gradients back into linear_kv_up_proj's layout (kvFull's memory is free now).
        backend.embeddingForward(w.dkvRows(), ws.dqkvStack().reshape(-1, g), w.kvFull().reshape(-1, g));
        upBackward(linearKvUpProj, w.kvFull(), m.kvNormed(), w.dKvNormedFull(), w.dKvNormed(), ws);
        if (kvLayernorm != null) {
            kvLayernorm.backward(w.dKvNormed(), m.kvCompressed(), m.kvMean(), m.kvRstd(), w.dKvCompressed());
        }
        Tensor xLocal = localRows(x, m);
        int kvr = mla.kvLoraRank();
        int rows = (int) kvDownWeight.data().dim(0);
        Tensor x2 = xLocal.reshape(-1, xLocal.dim(2));
        Tensor dLatent = w.dKvCompressed().reshape(-1, kvr);
        Tensor dPe = dkPeLocal.reshape(-1, mla.qkPosEmbHeadDim());
        backend.linearWgrad(dLatent, x2, kvDownWeight.grad().view(0, kvr), null);
        backend.linearWgrad(dPe, x2, kvDownWeight.grad().view(kvr, rows), null);
        Tensor dx2 = dx.reshape(-1, dx.dim(2));
        Tensor part2 = w.dxPart().reshape(-1, dx.dim(2));
        backend.linearDgrad(dLatent, kvDownWeight.compute().view(0, kvr), Activation.NONE, null, dx2);
        backend.linearDgrad(dPe, kvDownWeight.compute().view(kvr, rows), Activation.NONE, null, part2);
        backend.add(dx, w.dxPart(), dx);
        // Query path.
        Tensor dq = ws.dq().reshape(ws.dq().dim(0), ws.dq().dim(1), -1);                 // [s, b, np D]
        if (linearQDownProj != null) {
            upBackward(linearQUpProj, dq, m.qNormed(), w.dqNormedFull(), w.dqNormed(), ws);
            if (qLayernorm != null) {
                qLayernorm.backward(w.dqNormed(), m.qCompressed(), m.qMean(), m.qRstd(), w.dqCompressed());
            }
            linearQDownProj.backward(w.dqCompressed(), xLocal, w.dxPart());
        } else if (sequenceParallel) {
            linearQUpProj.backwardSequenceParallel(dq, x, ws.hiddenB(), w.dxPart());
        } else {
            linearQUpProj.backward(dq, x, w.dxPart());
        }
        backend.add(dx, w.dxPart(), dx);
    }

    /** A column-parallel up projection's backward: its input gradient summed (or reduce-scattered) over the ranks. */
    private void upBackward(ColumnParallelLinear up, Tensor dy, Tensor input, Tensor dxFull, Tensor dx, Workspace ws) {
        if (sequenceParallel) {
            up.backwardSequenceParallel(dy, input, dxFull, dx);
        } else {
            up.backward(dy, input, dx);
        }
    }

    private float dropout(DropoutKey key) {
        return key == null ? 0f : attentionDropout;
    }

    private static long seed(DropoutKey key) {
        return key == null ? 0L : key.seed();
    }

    /** As {@link SelfAttention}: the counter of this rank's first head, q {@code [s, b, np, D]}, k {@code [sk, ...]}. */
    private long offset(DropoutKey key, Tensor q, Tensor k) {
        return key == null ? 0L : key.offset() + firstHead * q.dim(1) * q.dim(0) * k.dim(0);
    }
}
