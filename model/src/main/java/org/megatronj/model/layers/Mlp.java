package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;

/**
 * Megatron-core's MLP: {@code linear_fc2(act(linear_fc1(x)))} with act = gelu (tanh or erf) or
 * SwiGLU (fc1 produces {@code [gate | up]}, {@code silu(gate) * up}).
 *
 * <p>Gradients: {@code dx} is written; parameter gradients accumulate.
 */
public final class Mlp {
    private final Backend backend;
    private final Linear linearFc1;   // [ffn or 2 ffn, h]
    private final Linear linearFc2;   // [h, ffn]
    private final boolean swiglu;
    private final boolean geluTanh;

    public Mlp(Backend backend, Linear linearFc1, Linear linearFc2, boolean swiglu, boolean geluTanh) {
        this.backend = backend;
        this.linearFc1 = linearFc1;
        this.linearFc2 = linearFc2;
        this.swiglu = swiglu;
        this.geluTanh = geluTanh;
    }

    public Linear linearFc1() {
        return linearFc1;
    }

    public Linear linearFc2() {
        return linearFc2;
    }

    /** x {@code [s, b, h]} -> out {@code [s, b, h]} (written); saves fc1Out and actOut in {@code a}. */
    public void forward(Tensor x, Tensor out, LayerActivations a) {
        linearFc1.forward(x, a.fc1Out());                      // [s, b, ffn] or [s, b, 2 ffn]
        if (swiglu) {
            backend.swigluForward(a.fc1Out(), a.actOut());     // [s, b, ffn]
        } else {
            backend.geluForward(a.fc1Out(), a.actOut(), geluTanh);
        }
        linearFc2.forward(a.actOut(), out);                    // [s, b, h]
    }

    /** dOut {@code [s, b, h]} -> dx {@code [s, b, h]} (written). */
    public void backward(Tensor dOut, Tensor x, Tensor dx, LayerActivations a, Workspace ws) {
        linearFc2.backward(dOut, a.actOut(), ws.dAct());      // dAct [s, b, ffn]
        if (swiglu) {
            backend.swigluBackward(a.fc1Out(), ws.dAct(), ws.dFc1());
        } else {
            backend.geluBackward(a.fc1Out(), ws.dAct(), ws.dFc1(), geluTanh);
        }
        linearFc1.backward(ws.dFc1(), x, dx);
    }
}
