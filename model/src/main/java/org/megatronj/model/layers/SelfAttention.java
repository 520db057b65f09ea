package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;
import org.megatronj.model.TransformerConfig;

/**
 * Causal self-attention as Megatron-core's {@code SelfAttention}: fused {@code linear_qkv} in
 * the per-group interleaved layout ({@link QkvLayout}), rope on q and k, memory-efficient core
 * attention (MHA, GQA or MQA) in {@code [s, b, np, d]}, then {@code linear_proj}.
 *
 * <p>Gradients: {@code dx} (the gradient of the block's input) is written; parameter gradients
 * accumulate. The output is linear_proj's result including its bias; dropout and the residual
 * add belong to {@link TransformerLayer}.
 *
 * <p>{@code --attention-dropout} drops attention probabilities inside the attention op (as
 * Megatron's core attention and FlashAttention's {@code dropout_p}) when a dropout key is given
 * (training): the probabilities of global query head {@code firstHead + h} draw from the key's
 * counters as {@code Backend#attentionForward} defines, so a tensor-parallel rank draws the
 * single-rank masks of its heads.
 *
 * <p>{@code --qk-layernorm}: the query and key head vectors are normalised (one norm each, over d) between the
 * split and rope, as Megatron-core's {@code q_layernorm}/{@code k_layernorm}.
 *
 * <p>Documents ({@code --reset-attention-mask}): with {@code keyStarts} (I32 {@code [b, s]}) query t of
 * sample r attends only keys {@code [keyStarts[r, t], t]}, as {@code Backend#attentionForward} defines.
 *
 * <p>Context parallelism ({@code --context-parallel-size}): with a {@link ContextParallelAttention} the layer holds
 * two chunks of each sequence, and rope and the core attention go through it (never the fused-QKV path).
 */
public final class SelfAttention implements Attention {
    private final Backend backend;
    private final Linear linearQkv;        // [(np + 2ng) d, h]
    private final Linear linearProj;       // [h, np d]
    private final RotaryEmbedding rope;    // null with learned absolute positions
    private final Norm qNorm;              // --qk-layernorm, else null (both)
    private final Norm kNorm;
    private final int headDim;
    private final float softmaxScale;
    private final float attentionDropout;
    private final long firstHead;          // global index of this rank's first query head
    private final ContextParallelAttention contextParallel;   // null without context parallelism

    public SelfAttention(Backend backend, TransformerConfig config, Linear linearQkv, Linear linearProj, RotaryEmbedding rope) {
        this(backend, config, linearQkv, linearProj, rope, 0);
    }

    /** {@code config} is this rank's shard; {@code firstHead} the global index of its first query head (rank x np/t). */
    public SelfAttention(Backend backend, TransformerConfig config, Linear linearQkv, Linear linearProj, RotaryEmbedding rope,
                         int firstHead) {
        this(backend, config, linearQkv, linearProj, rope, null, null, firstHead);
    }

    /** With {@code --qk-layernorm}'s norms of the query and key heads ({@code qNorm}, {@code kNorm}: both or neither). */
    public SelfAttention(Backend backend, TransformerConfig config, Linear linearQkv, Linear linearProj, RotaryEmbedding rope,
                         Norm qNorm, Norm kNorm, int firstHead) {
        this(backend, config, linearQkv, linearProj, rope, qNorm, kNorm, firstHead, null);
    }

    /**
     * Under context parallelism: {@code contextParallel} is the exchange of keys and values over the CP group
     * (shared by the model's layers), null without.
     */
    public SelfAttention(Backend backend, TransformerConfig config, Linear linearQkv, Linear linearProj, RotaryEmbedding rope,
                         Norm qNorm, Norm kNorm, int firstHead, ContextParallelExchange contextParallel) {
        if ((qNorm == null) != (kNorm == null)) {
            throw new IllegalArgumentException("--qk-layernorm needs both the query and the key norm");
        }
        this.qNorm = qNorm;
        this.kNorm = kNorm;
        this.backend = backend;
        this.attentionDropout = config.attentionDropout();
        this.firstHead = firstHead;
        this.linearQkv = linearQkv;
        this.linearProj = linearProj;
        this.rope = rope;
        this.headDim = config.kvChannels();
        // --apply-query-key-layer-scaling divides the scores by the layer number and multiplies it back inside an
        // fp32 softmax: an fp16 overflow guard that changes nothing in exact arithmetic, so it is not applied here.
        this.softmaxScale = (float) (1.0 / Math.sqrt(config.kvChannels()));
        this.contextParallel = contextParallel == null ? null
                : new ContextParallelAttention(backend, contextParallel, softmaxScale, attentionDropout, firstHead);
    }

    public Linear linearQkv() {
        return linearQkv;
    }

    @Override
    public Linear linearProj() {
        return linearProj;
    }

    /**
     * x {@code [s, b, h]} (input_layernorm's output) -> out {@code [s, b, h]} (written). Saves q, k, v (or qkv),
     * attnOut and lse in {@code a}. With a {@code cache}, the new keys and values land in its rows
     * {@code [start, start + s)} and the queries attend to all rows {@code [0, start + s)}.
     * {@code probsKey}: the layer's attention-probabilities dropout key, null = no dropout (eval, generation).
     * {@code keyStarts}: documents, null = none.
     */
    public void forward(Tensor x, Tensor out, LayerActivations a, Workspace ws, KvSlot cache, int start,
                        DropoutKey probsKey, Tensor keyStarts) {
        forward(x, null, out, a, ws, cache, start, probsKey, keyStarts);
    }

    /**
     * As {@link #forward(Tensor, Tensor, LayerActivations, Workspace, KvSlot, int, DropoutKey, Tensor)}; with a
     * {@code residual} (not under sequence parallelism) {@code out = residual + attention(x)}, the add
     * folded into linear_proj.
     */
    @Override
    public void forward(Tensor x, Tensor residual, Tensor out, LayerActivations a, Workspace ws, KvSlot cache, int start,
                        DropoutKey probsKey, Tensor keyStarts) {
        if (readsFusedQkv(a, cache, probsKey)) {
            linearQkv.forward(x, a.qkv());                                // [s, b, (np + 2ng) d], kept for backward
            backend.attentionForwardFusedQkv(a.qkv(), (int) a.q().dim(2), (int) a.k().dim(2), a.attnOut(), a.lseShaped(),
                    softmaxScale, true, keyStarts);
        } else {
            separateQkvAndAttend(x, a, ws, cache, start, probsKey, keyStarts);
        }
        if (linearProj.sequenceParallel()) {
            ((RowParallelLinear) linearProj).forwardSequenceParallel(a.attnOut(), ws.hiddenB(), out);  // out [s/t, b, h]
        } else if (residual != null) {
            linearProj.forwardAdd(a.attnOut(), residual, out);          // [s, b, h] = residual + proj(attnOut)
        } else {
            linearProj.forward(a.attnOut(), out);                        // [s, b, h]
        }
    }

    /**
     * Whether the attention op reads q, k, v straight from linear_qkv's fused output (and writes their
     * gradient into it): when the backend does that in place, with no rope to apply to q and k, no KV
     * cache and no attention dropout. Otherwise they are gathered into a.q, a.k, a.v first.
     */
    private boolean readsFusedQkv(LayerActivations a, KvSlot cache, DropoutKey probsKey) {
        return cache == null && rope == null && qNorm == null && dropout(probsKey) == 0f && contextParallel == null
                && backend.readsFusedQkv(a.q().dtype(), headDim);
    }

    /** linear_qkv, then q, k, v gathered into a.q, a.k, a.v (or the cache), rope, and attention into a.attnOut. */
    private void separateQkvAndAttend(Tensor x, LayerActivations a, Workspace ws, KvSlot cache, int start,
                                      DropoutKey probsKey, Tensor keyStarts) {
        int s = (int) x.dim(0);
        if (contextParallel != null && (cache != null || keyStarts != null)) {
            throw new IllegalStateException("context parallelism splits whole causal sequences: it has no KV cache "
                    + "(generation) and no document masks");
        }
        linearQkv.forward(x, ws.qkv());                                   // [s, b, (np + 2ng) d]
        Tensor kNew = cache == null ? a.k() : cache.keys().view(start, start + s);     // [s, b, ng, d]
        Tensor vNew = cache == null ? a.v() : cache.values().view(start, start + s);
        Tensor headRows = ws.qkv().reshape(-1, headDim);                 // [s b (np + 2ng), d] in the fused order
        LayerActivations.QkNorm n = a.qkNorm();
        Tensor q = qNorm == null ? a.q() : n.qIn();                      // the norms' inputs first, with --qk-layernorm
        Tensor k = qNorm == null ? kNew : n.kIn();
        backend.embeddingForward(ws.queryRows(), headRows, q.reshape(-1, headDim));       // q [s, b, np, d]
        backend.embeddingForward(ws.keyRows(), headRows, k.reshape(-1, headDim));         // k [s, b, ng, d]
        backend.embeddingForward(ws.valueRows(), headRows, vNew.reshape(-1, headDim));    // v [s, b, ng, d]
        if (qNorm != null) {
            qNorm.forward(n.qIn(), a.q(), n.qMean(), n.qRstd());
            kNorm.forward(n.kIn(), kNew, n.kMean(), n.kRstd());
        }
        if (rope != null && contextParallel != null) {
            contextParallel.ropeForward(rope, a.q());
            contextParallel.ropeForward(rope, kNew);
        } else if (rope != null) {
            rope.forward(a.q(), start);
            rope.forward(kNew, start);
        }
        if (contextParallel != null) {
            contextParallel.forward(a.q(), kNew, vNew, a.attnOut(), a.lse(), probsKey);
            return;
        }
        Tensor kAll = cache == null ? kNew : cache.keys().view(0, start + s);          // [sk, b, ng, d]
        Tensor vAll = cache == null ? vNew : cache.values().view(0, start + s);
        backend.attentionForward(a.q(), kAll, vAll, a.attnOut(), a.lseShaped(), softmaxScale, true, null, keyStarts,
                dropout(probsKey), seed(probsKey), offset(probsKey, a.q(), kAll));
    }

    /**
     * dOut {@code [s, b, h]} -> dx {@code [s, b, h]} (written), from the saved activations. Under
     * sequence parallelism dOut and dx are this rank's {@code [s/t, b, h]} rows and x is the
     * gathered input; ws.hiddenB is the full-length scratch.
     */
    @Override
    public void backward(Tensor dOut, Tensor x, Tensor dx, LayerActivations a, Workspace ws, DropoutKey probsKey,
                         Tensor keyStarts) {
        if (linearProj.sequenceParallel()) {
            ((RowParallelLinear) linearProj).backwardSequenceParallel(dOut, ws.hiddenB(), a.attnOut(), ws.dAttn());
        } else {
            linearProj.backward(dOut, a.attnOut(), ws.dAttn());                             // dAttn [s, b, np, d]
        }
        if (readsFusedQkv(a, null, probsKey)) {
            backend.attentionBackwardFusedQkv(ws.dAttn(), a.qkv(), (int) a.q().dim(2), (int) a.k().dim(2), a.attnOut(),
                    a.lseShaped(), ws.qkv(), softmaxScale, true, keyStarts);                 // dqkv [s, b, (np + 2ng) d]
        } else {
            if (contextParallel != null) {
                contextParallel.backward(ws.dAttn(), a.q(), a.k(), a.v(), a.attnOut(), a.lse(), ws.dq(), ws.dk(), ws.dv(),
                        probsKey);
            } else {
                backend.attentionBackward(ws.dAttn(), a.q(), a.k(), a.v(), a.attnOut(), a.lseShaped(),
                        ws.dq(), ws.dk(), ws.dv(), softmaxScale, true, null, keyStarts,
                        dropout(probsKey), seed(probsKey), offset(probsKey, a.q(), a.k()));
            }
            if (rope != null && contextParallel != null) {
                contextParallel.ropeBackward(rope, ws.dq());
                contextParallel.ropeBackward(rope, ws.dk());
            } else if (rope != null) {
                rope.backward(ws.dq(), 0);
                rope.backward(ws.dk(), 0);
            }
            if (qNorm != null) {
                normBackward(qNorm, ws.dq(), a.qkNorm().qIn(), a.qkNorm().qMean(), a.qkNorm().qRstd(), ws);
                normBackward(kNorm, ws.dk(), a.qkNorm().kIn(), a.qkNorm().kMean(), a.qkNorm().kRstd(), ws);
            }
            backend.embeddingForward(ws.mergeRows(), ws.dqkvStack().reshape(-1, headDim),
                    ws.qkv().reshape(-1, headDim));                                          // dqkv [s, b, (np + 2ng) d]
        }
        if (linearQkv.sequenceParallel()) {
            ((ColumnParallelLinear) linearQkv).backwardSequenceParallel(ws.qkv(), x, ws.hiddenB(), dx);
        } else {
            linearQkv.backward(ws.qkv(), x, dx);
        }
    }

    /**
     * {@code dy} (a head norm's output gradient) becomes its input gradient in place, through dAttn's memory, free
     * once the attention's backward has run (it holds np heads, as many as dq and more than dk).
     */
    private void normBackward(Norm norm, Tensor dy, Tensor x, Tensor mean, Tensor rstd, Workspace ws) {
        Tensor dx = ws.dAttn().reshape(-1).view(0, dy.numel()).reshape(dy.shape());
        norm.backward(dy, x, mean, rstd, dx);
        backend.copy(dx, dy);
    }

    private float dropout(DropoutKey key) {
        return key == null ? 0f : attentionDropout;
    }

    private static long seed(DropoutKey key) {
        return key == null ? 0L : key.seed();
    }

    /** The counter of probability (head 0, batch 0, row 0, key 0) of this rank: its first head's, q {@code [s, b, np, d]}, k {@code [sk, ...]}. */
    private long offset(DropoutKey key, Tensor q, Tensor k) {
        return key == null ? 0L : key.offset() + firstHead * q.dim(1) * q.dim(0) * k.dim(0);
    }
}
