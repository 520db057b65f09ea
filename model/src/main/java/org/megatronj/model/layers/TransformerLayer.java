package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;

/**
 * One pre-norm decoder layer, as Megatron-core's {@code TransformerLayer}:
 * <pre>
 *   h   = x + dropout(self_attention(input_layernorm(x)))
 *   out = h + dropout(mlp(pre_mlp_layernorm(h)))
 * </pre>
 * Gradients: the gradient of the layer input is written (in place over the output's gradient);
 * parameter gradients accumulate.
 */
public final class TransformerLayer {
    private final Backend backend;
    private final Norm inputLayernorm;
    private final SelfAttention selfAttention;
    private final Norm preMlpLayernorm;
    private final Mlp mlp;
    private final float hiddenDropout;

    public TransformerLayer(Backend backend, Norm inputLayernorm, SelfAttention selfAttention, Norm preMlpLayernorm,
                            Mlp mlp, float hiddenDropout) {
        this.backend = backend;
        this.inputLayernorm = inputLayernorm;
        this.selfAttention = selfAttention;
        this.preMlpLayernorm = preMlpLayernorm;
        this.mlp = mlp;
        this.hiddenDropout = hiddenDropout;
    }

    public SelfAttention selfAttention() {
        return selfAttention;
    }

    public Mlp mlp() {
        return mlp;
    }

    /**
     * input {@code [s, b, h]} -> output {@code [s, b, h]} (written, distinct from input). Dropout keys
     * null = no dropout (eval, generation). {@code cache}/{@code start}: see {@link SelfAttention#forward}.
     */
    public void forward(Tensor input, Tensor output, LayerActivations a, Workspace ws,
                        DropoutKey attentionKey, DropoutKey mlpKey, KvSlot cache, int start) {
        inputLayernorm.forward(input, a.ln1Out(), a.ln1Mean(), a.ln1Rstd());
        selfAttention.forward(a.ln1Out(), ws.hiddenA(), a, ws, cache, start);     // [s, b, h]
        dropoutAdd(ws.hiddenA(), input, a.afterAttention(), attentionKey);
        preMlpLayernorm.forward(a.afterAttention(), a.ln2Out(), a.ln2Mean(), a.ln2Rstd());
        mlp.forward(a.ln2Out(), ws.hiddenA(), a);                                  // [s, b, h]
        dropoutAdd(ws.hiddenA(), a.afterAttention(), output, mlpKey);
    }

    /** dx {@code [s, b, h]}: in, the gradient of the output; out, the gradient of {@code input}. */
    public void backward(Tensor dx, Tensor input, LayerActivations a, Workspace ws,
                         DropoutKey attentionKey, DropoutKey mlpKey) {
        // MLP block: dx stays the residual path's gradient; the branch adds its part.
        Tensor dBranch = dropoutGrad(dx, ws.hiddenA(), mlpKey);
        mlp.backward(dBranch, a.ln2Out(), ws.hiddenB(), a, ws);                   // d ln2Out
        preMlpLayernorm.backward(ws.hiddenB(), a.afterAttention(), a.ln2Mean(), a.ln2Rstd(), ws.hiddenA());
        backend.add(dx, ws.hiddenA(), dx);
        // Attention block.
        dBranch = dropoutGrad(dx, ws.hiddenA(), attentionKey);
        selfAttention.backward(dBranch, a.ln1Out(), ws.hiddenB(), a, ws);        // d ln1Out
        inputLayernorm.backward(ws.hiddenB(), input, a.ln1Mean(), a.ln1Rstd(), ws.hiddenA());
        backend.add(dx, ws.hiddenA(), dx);
    }

    /** out = residual + dropout(branch) (Megatron's bias-dropout-add; the bias is already in branch). */
    private void dropoutAdd(Tensor branch, Tensor residual, Tensor out, DropoutKey key) {
        if (key != null && hiddenDropout > 0) {
            backend.dropoutForward(branch, out, hiddenDropout, key.seed(), key.offset());
            backend.add(out, residual, out);
        } else {
            backend.add(branch, residual, out);
        }
    }

    /** The gradient reaching the branch output: dropout's backward of dOut into scratch, or dOut itself. */
    private Tensor dropoutGrad(Tensor dOut, Tensor scratch, DropoutKey key) {
        if (key != null && hiddenDropout > 0) {
            backend.dropoutBackward(dOut, scratch, hiddenDropout, key.seed(), key.offset());
            return scratch;
        }
        return dOut;
    }
}
