package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;
import org.megatronj.model.parallel.TensorParallelGroup;

/**
 * One pre-norm decoder layer, as Megatron-core's {@code TransformerLayer}:
 * <pre>
 *   h   = x + dropout(self_attention(input_layernorm(x)))     (attention dropout inside self_attention)
 *   out = h + dropout(mlp(pre_mlp_layernorm(h)))
 * </pre>
 * Gradients: the gradient of the layer input is written (in place over the output's gradient);
 * parameter gradients accumulate.
 *
 * <p>Under sequence parallelism the layer's input, output, residual stream, norms and dropouts
 * hold this TP rank's {@code s/t} positions; each norm's output is all-gathered into the full
 * {@code [s, b, h]} input of the column-parallel layer after it (and its gradient reduce-scattered
 * there), and the row-parallel layers reduce-scatter their outputs. Dropout draws the single-rank
 * mask of the rank's rows.
 */
public final class TransformerLayer {
    private final Backend backend;
    private final Norm inputLayernorm;
    private final Attention selfAttention;
    private final Norm preMlpLayernorm;
    private final FeedForward mlp;
    private final float hiddenDropout;
    private final TensorParallelGroup tp;
    private final boolean sequenceParallel;

    public TransformerLayer(Backend backend, Norm inputLayernorm, Attention selfAttention, Norm preMlpLayernorm,
                            FeedForward mlp, float hiddenDropout) {
        this(backend, inputLayernorm, selfAttention, preMlpLayernorm, mlp, hiddenDropout, TensorParallelGroup.single(), false);
    }

    public TransformerLayer(Backend backend, Norm inputLayernorm, Attention selfAttention, Norm preMlpLayernorm,
                            FeedForward mlp, float hiddenDropout, TensorParallelGroup tp, boolean sequenceParallel) {
        this.tp = tp;
        this.sequenceParallel = sequenceParallel;
        this.backend = backend;
        this.inputLayernorm = inputLayernorm;
        this.selfAttention = selfAttention;
        this.preMlpLayernorm = preMlpLayernorm;
        this.mlp = mlp;
        this.hiddenDropout = hiddenDropout;
    }

    /** The standard {@link SelfAttention} or the {@link MultiLatentAttention}. */
    public Attention selfAttention() {
        return selfAttention;
    }

    /** The dense {@link Mlp} or the {@link MoeLayer}. */
    public FeedForward mlp() {
        return mlp;
    }

    /**
     * input {@code [s, b, h]} -> output {@code [s, b, h]} (written, distinct from input). Dropout keys
     * (of the attention probabilities, the attention branch and the MLP branch) null = no dropout
     * (eval, generation). {@code keyStarts}: documents, see {@link SelfAttention#forward}; null = none.
     * {@code cache}/{@code start}: see {@link SelfAttention#forward}.
     */
    public void forward(Tensor input, Tensor output, LayerActivations a, Workspace ws, DropoutKey probsKey,
                        DropoutKey attentionKey, DropoutKey mlpKey, Tensor keyStarts, KvSlot cache, int start) {
        if (sequenceParallel) {
            forwardSequenceParallel(input, output, a, ws, probsKey, shard(attentionKey, input), shard(mlpKey, input),
                    keyStarts);
            return;
        }
        inputLayernorm.forward(input, a.ln1Out(), a.ln1Mean(), a.ln1Rstd());
        if (drops(attentionKey)) {
            selfAttention.forward(a.ln1Out(), null, ws.hiddenA(), a, ws, cache, start, probsKey, keyStarts);  // [s, b, h]
            dropoutAdd(ws.hiddenA(), input, a.afterAttention(), attentionKey);
        } else {                                                                  // the residual add in linear_proj
            selfAttention.forward(a.ln1Out(), input, a.afterAttention(), a, ws, cache, start, probsKey, keyStarts);
        }
        preMlpLayernorm.forward(a.afterAttention(), a.ln2Out(), a.ln2Mean(), a.ln2Rstd());
        if (drops(mlpKey)) {
            mlp.forward(a.ln2Out(), null, ws.hiddenA(), a, ws, true);              // [s, b, h]
            dropoutAdd(ws.hiddenA(), a.afterAttention(), output, mlpKey);
        } else {                                                                  // the residual add in linear_fc2
            mlp.forward(a.ln2Out(), a.afterAttention(), output, a, ws, mlpKey != null);
        }
    }

    /** Whether a branch output is dropped out before its residual add (training with --hidden-dropout > 0). */
    private boolean drops(DropoutKey key) {
        return key != null && hiddenDropout > 0;
    }

    /** input, output {@code [s/t, b, h]}; ws.shardA/B are shard scratch, ws.hiddenB full-length scratch. */
    private void forwardSequenceParallel(Tensor input, Tensor output, LayerActivations a, Workspace ws,
                                         DropoutKey probsKey, DropoutKey attentionKey, DropoutKey mlpKey,
                                         Tensor keyStarts) {
        inputLayernorm.forward(input, ws.shardA(), a.ln1Mean(), a.ln1Rstd());
        tp.allGatherFirstDim(ws.shardA(), a.ln1Out());                           // [s, b, h]
        selfAttention.forward(a.ln1Out(), null, ws.shardA(), a, ws, null, 0, probsKey, keyStarts);   // [s/t, b, h]
        dropoutAdd(ws.shardA(), input, a.afterAttention(), attentionKey);
        preMlpLayernorm.forward(a.afterAttention(), ws.shardB(), a.ln2Mean(), a.ln2Rstd());
        tp.allGatherFirstDim(ws.shardB(), a.ln2Out());                           // [s, b, h]
        mlp.forward(a.ln2Out(), null, ws.shardA(), a, ws, mlpKey != null);         // [s/t, b, h]
        dropoutAdd(ws.shardA(), a.afterAttention(), output, mlpKey);
    }

    /** dx {@code [s, b, h]} ({@code [s/t, b, h]} under sequence parallelism): in, the gradient of the output; out, the gradient of {@code input}. */
    public void backward(Tensor dx, Tensor input, LayerActivations a, Workspace ws, DropoutKey probsKey,
                         DropoutKey attentionKey, DropoutKey mlpKey, Tensor keyStarts) {
        if (sequenceParallel) {
            attentionKey = shard(attentionKey, input);
            mlpKey = shard(mlpKey, input);
        }
        // Selective recompute: refill what forward left in buffers shared with the other layers, from this layer's
        // saved inputs, before anything reads it (the norms' scratch is shardB, which the branch backward writes later).
        SelectiveRecompute r = a.recompute();
        if (r.layernorm()) {
            normForward(preMlpLayernorm, a.afterAttention(), a.ln2Out(), a.ln2Mean(), a.ln2Rstd(), ws.shardB());
        }
        mlp.recompute(a.ln2Out(), a, ws);
        // MLP block: dx stays the residual path's gradient; the branch adds its part. (Without sequence
        // parallelism shardA/shardB are hiddenA/hiddenB; with it the branches use hiddenB as full-length scratch.)
        Tensor dBranch = dropoutGrad(dx, ws.shardA(), mlpKey);
        mlp.backward(dBranch, a.ln2Out(), ws.shardB(), a, ws);                    // d ln2Out
        preMlpLayernorm.backwardAccumulate(ws.shardB(), a.afterAttention(), a.ln2Mean(), a.ln2Rstd(), dx);
        // Attention block.
        if (r.layernorm()) {
            normForward(inputLayernorm, input, a.ln1Out(), a.ln1Mean(), a.ln1Rstd(), ws.shardB());
        }
        dBranch = dropoutGrad(dx, ws.shardA(), attentionKey);
        selfAttention.backward(dBranch, a.ln1Out(), ws.shardB(), a, ws, probsKey, keyStarts);  // d ln1Out
        inputLayernorm.backwardAccumulate(ws.shardB(), input, a.ln1Mean(), a.ln1Rstd(), dx);
    }

    /**
     * A norm's forward as the layer's forward runs it: into out directly, or under sequence parallelism into this
     * rank's rows ({@code shard} scratch) and all-gathered into out. Rewrites mean and rstd with the same values.
     */
    private void normForward(Norm norm, Tensor x, Tensor out, Tensor mean, Tensor rstd, Tensor shard) {
        if (sequenceParallel) {
            norm.forward(x, shard, mean, rstd);
            tp.allGatherFirstDim(shard, out);                                    // [s, b, h]
        } else {
            norm.forward(x, out, mean, rstd);
        }
    }

    /** The key whose mask over this rank's rows of {@code shard} equals the single-rank mask of those rows. */
    private DropoutKey shard(DropoutKey key, Tensor shard) {
        return key == null ? null : key.shifted(tp.rank() * shard.numel());
    }

    /** out = residual + dropout(branch) (Megatron's bias-dropout-add; the bias is already in branch). */
    private void dropoutAdd(Tensor branch, Tensor residual, Tensor out, DropoutKey key) {
        if (drops(key)) {
            backend.dropoutForward(branch, out, hiddenDropout, key.seed(), key.offset());
            backend.add(out, residual, out);
        } else {
            backend.add(branch, residual, out);
        }
    }

    /** The gradient reaching the branch output: dropout's backward of dOut into scratch, or dOut itself. */
    private Tensor dropoutGrad(Tensor dOut, Tensor scratch, DropoutKey key) {
        if (drops(key)) {
            backend.dropoutBackward(dOut, scratch, hiddenDropout, key.seed(), key.offset());
            return scratch;
        }
        return dOut;
    }
}
