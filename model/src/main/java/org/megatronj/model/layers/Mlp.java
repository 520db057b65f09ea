package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.Backend.Activation;
import org.megatronj.memory.Tensor;
import org.megatronj.model.TransformerConfig;

/**
 * Megatron-core's MLP: {@code linear_fc2(act(linear_fc1(x)))} with act = gelu (tanh or erf), squared ReLU
 * or SwiGLU (fc1 produces {@code [gate | up]}, {@code silu(gate) * up}).
 *
 * <p>Gradients: {@code dx} is written; parameter gradients accumulate.
 */
public final class Mlp implements FeedForward {
    private final Backend backend;
    private final Linear linearFc1;   // [ffn or 2 ffn, h]
    private final Linear linearFc2;   // [h, ffn]
    private final boolean swiglu;
    private final Activation activation;   // fc1's, without SwiGLU

    /** {@code activation}: what fc1's output goes through unless {@code swiglu} ({@link #activation}). */
    public Mlp(Backend backend, Linear linearFc1, Linear linearFc2, boolean swiglu, Activation activation) {
        this.backend = backend;
        this.linearFc1 = linearFc1;
        this.linearFc2 = linearFc2;
        this.swiglu = swiglu;
        this.activation = activation;
    }

    /** The activation of {@code c}'s MLP without SwiGLU: squared ReLU, or gelu in the config's form. */
    public static Activation activation(TransformerConfig c) {
        return c.squaredRelu() ? Activation.SQUARED_RELU : Activation.gelu(c.geluTanh());
    }

    public Linear linearFc1() {
        return linearFc1;
    }

    public Linear linearFc2() {
        return linearFc2;
    }

    /** x {@code [s, b, h]} -> out {@code [s, b, h]} (written); saves fc1Out and actOut in {@code a}. */
    public void forward(Tensor x, Tensor out, LayerActivations a) {
        forward(x, out, a, null);
    }

    /**
     * As {@link #forward(Tensor, Tensor, LayerActivations)}; under sequence parallelism x is the
     * gathered {@code [s, b, h]} input, out this rank's {@code [s/t, b, h]} rows and ws.hiddenB
     * the full-length scratch of fc2's partial product.
     */
    public void forward(Tensor x, Tensor out, LayerActivations a, Workspace ws) {
        forward(x, null, out, a, ws);
    }

    @Override
    public void forward(Tensor x, Tensor residual, Tensor out, LayerActivations a, Workspace ws, boolean training) {
        forward(x, residual, out, a, ws);
    }

    /**
     * As {@link #forward(Tensor, Tensor, LayerActivations, Workspace)}; with a {@code residual} (not
     * under sequence parallelism) {@code out = residual + mlp(x)}, the add folded into fc2.
     */
    public void forward(Tensor x, Tensor residual, Tensor out, LayerActivations a, Workspace ws) {
        forwardFc1(x, a);
        if (linearFc2.sequenceParallel()) {
            ((RowParallelLinear) linearFc2).forwardSequenceParallel(a.actOut(), ws.hiddenB(), out);
        } else if (residual != null) {
            linearFc2.forwardAdd(a.actOut(), residual, out);   // [s, b, h] = residual + fc2(actOut)
        } else {
            linearFc2.forward(a.actOut(), out);                // [s, b, h]
        }
    }

    /** fc1 and the activation: x {@code [s, b, h]} -> a.fc1Out, a.actOut (what backward reads besides x). */
    private void forwardFc1(Tensor x, LayerActivations a) {
        if (swiglu) {
            linearFc1.forward(x, a.fc1Out());                  // [s, b, 2 ffn]
            backend.swigluForward(a.fc1Out(), a.actOut());     // [s, b, ffn]
        } else {
            linearFc1.forward(x, a.actOut(), activation, a.fc1Out());  // actOut = act(fc1Out) [s, b, ffn]: one op
        }
    }

    /**
     * Megatron's "mlp" recompute: fc1Out and actOut are shared between layers, so rerun fc1 and the activation from
     * the saved input. fc2 is not rerun: its output is not read in backward. Local under tensor parallelism (x is the
     * gathered input, fc1 column-parallel), so every rank refills without communicating.
     */
    @Override
    public void recompute(Tensor x, LayerActivations a, Workspace ws) {
        if (a.recompute().mlp()) {
            refill(x, a);
        }
    }

    /** Reruns fc1 and the activation from x into a.fc1Out, a.actOut (also the shared experts' refill). */
    void refill(Tensor x, LayerActivations a) {
        forwardFc1(x, a);
    }

    /**
     * dOut {@code [s, b, h]} -> dx {@code [s, b, h]} (written); both {@code [s/t, b, h]} under
     * sequence parallelism. With gelu or squared ReLU, fc2's input gradient is taken through act' in the
     * same op and lands in dFc1 (the gradient of fc1Out); with SwiGLU it lands in dAct first.
     */
    @Override
    public void backward(Tensor dOut, Tensor x, Tensor dx, LayerActivations a, Workspace ws) {
        Activation act = swiglu ? Activation.NONE : activation;
        Tensor dFc2Input = swiglu ? ws.dAct() : ws.dFc1();      // [s, b, ffn]
        Tensor pre = swiglu ? null : a.fc1Out();
        if (linearFc2.sequenceParallel()) {
            ((RowParallelLinear) linearFc2).backwardSequenceParallel(dOut, ws.hiddenB(), a.actOut(), dFc2Input, act, pre);
        } else {
            linearFc2.backward(dOut, a.actOut(), dFc2Input, act, pre);
        }
        if (swiglu) {
            backend.swigluBackward(a.fc1Out(), ws.dAct(), ws.dFc1());
        }
        if (linearFc1.sequenceParallel()) {
            ((ColumnParallelLinear) linearFc1).backwardSequenceParallel(ws.dFc1(), x, ws.hiddenB(), dx);
        } else {
            linearFc1.backward(ws.dFc1(), x, dx);
        }
    }
}
