package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;
import org.megatronj.model.Normalization;
import org.megatronj.model.Parameter;

/**
 * LayerNorm ({@code weight}, {@code bias}) or RMSNorm ({@code weight} only) over the hidden dimension.
 *
 * <p>Gradients: {@code dx} is written; the weight and bias gradients accumulate.
 * Saved for backward: the input x, and per row {@code mean} (LayerNorm only) and {@code rstd} (F32).
 */
public final class Norm {
    private final Backend backend;
    private final Normalization kind;
    private final Parameter weight;   // [h]
    private final Parameter bias;     // [h], LayerNorm only
    private final float eps;
    private final Tensor gamma;       // [h] 1 + weight with --apply-layernorm-1p (compute dtype), else null

    public Norm(Backend backend, Normalization kind, Parameter weight, Parameter bias, float eps) {
        this(backend, kind, weight, bias, eps, null);
    }

    /**
     * {@code zeroCenteredGamma}: with {@code --apply-layernorm-1p} (Megatron-core's
     * {@code layernorm_zero_centered_gamma}) a buffer {@code [h]} in the compute dtype where the norm's scale
     * {@code 1 + weight} is formed before each use, as Megatron's fused LayerNorm adds 1 to its weight;
     * the weight's gradient is the scale's. Null otherwise.
     */
    public Norm(Backend backend, Normalization kind, Parameter weight, Parameter bias, float eps, Tensor zeroCenteredGamma) {
        if (kind == Normalization.LAYER_NORM && bias == null) {
            throw new IllegalArgumentException("LayerNorm " + weight.name() + " needs a bias");
        }
        if (kind == Normalization.RMS_NORM && bias != null) {
            throw new IllegalArgumentException("RMSNorm " + weight.name() + " has no bias");
        }
        this.backend = backend;
        this.kind = kind;
        this.weight = weight;
        this.bias = bias;
        this.eps = eps;
        this.gamma = zeroCenteredGamma;
    }

    /** The scale the kernels multiply by: the weight, or {@code 1 + weight} formed now with {@code --apply-layernorm-1p}. */
    private Tensor gamma() {
        if (gamma == null) {
            return weight.compute();
        }
        backend.fill(gamma, 1f);
        backend.axpy(1f, weight.compute(), gamma);
        return gamma;
    }

    public Normalization kind() {
        return kind;
    }

    /** x, y {@code [..., h]}; mean (ignored by RMSNorm, may be null) and rstd F32 {@code [rows]}. */
    public void forward(Tensor x, Tensor y, Tensor mean, Tensor rstd) {
        if (kind == Normalization.LAYER_NORM) {
            backend.layerNormForward(x, gamma(), bias.compute(), eps, y, mean, rstd);
        } else {
            backend.rmsNormForward(x, gamma(), eps, y, rstd);
        }
    }

    /** dx written from dy and the saved x, mean, rstd; weight/bias grads accumulate. */
    public void backward(Tensor dy, Tensor x, Tensor mean, Tensor rstd, Tensor dx) {
        if (kind == Normalization.LAYER_NORM) {
            backend.layerNormBackward(dy, x, gamma(), mean, rstd, dx, weight.grad(), bias.grad());
        } else {
            backend.rmsNormBackward(dy, x, gamma(), rstd, dx, weight.grad());
        }
    }

    /**
     * {@link #backward} with dx accumulated: {@code dx +=} the gradient reaching x through the norm
     * (a pre-norm block's input, whose other path is the residual connection, one op instead of two).
     */
    public void backwardAccumulate(Tensor dy, Tensor x, Tensor mean, Tensor rstd, Tensor dx) {
        if (kind == Normalization.LAYER_NORM) {
            backend.layerNormBackwardAccumulate(dy, x, gamma(), mean, rstd, dx, weight.grad(), bias.grad());
        } else {
            backend.rmsNormBackwardAccumulate(dy, x, gamma(), rstd, dx, weight.grad());
        }
    }
}
