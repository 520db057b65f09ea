package org.megatronj.model.optim;

import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;
import org.megatronj.model.Parameter;

import java.util.List;

/** Megatron's {@code clip_grad_norm}: the global L2 norm over all gradients, and scaling to {@code --clip-grad}. */
public final class GradClipping {
    private GradClipping() {
    }

    /** {@code sqrt(sum over all gradients of g^2)}, accumulated in double. */
    public static double globalNorm(List<Parameter> parameters, Backend backend) {
        double sum = 0;
        for (Parameter p : parameters) {
            sum += backend.sumOfSquares(p.grad());
        }
        return Math.sqrt(sum);
    }

    /**
     * Scales every gradient by {@code maxNorm / (norm + 1e-6)} when that is below 1, as Megatron does;
     * returns the norm before clipping (a NaN norm leaves the gradients as they are, an infinite one
     * scales them by 0, as in Megatron; the trainer skips the step of either).
     */
    public static double clip(List<Parameter> parameters, Backend backend, double maxNorm) {
        double norm = globalNorm(parameters, backend);
        float coefficient = coefficient(norm, maxNorm);
        if (coefficient != 1f) {
            for (Parameter p : parameters) {
                backend.scale(p.grad(), coefficient);
            }
        }
        return norm;
    }

    /**
     * The factor {@link #clip} scales the gradients by: Megatron's {@code maxNorm / (norm + 1e-6)}
     * when that is below 1, else 1 (also for a NaN norm; an infinite norm gives 0). For an
     * optimizer that applies it inside its step ({@code AdamW.step(lr, gradScale, copies)}).
     */
    public static float coefficient(double norm, double maxNorm) {
        if (!(maxNorm > 0)) {
            throw new IllegalArgumentException("--clip-grad must be positive, got " + maxNorm);
        }
        double coefficient = maxNorm / (norm + 1e-6);
        return coefficient < 1.0 ? (float) coefficient : 1f;
    }

    /**
     * The global norm over one flat gradient store ({@code ParameterStore.flatGrad()}; its padding
     * is zero): one reduction, so one host synchronisation on a device backend instead of one per
     * parameter.
     */
    public static double globalNorm(Tensor flatGrad, Backend backend) {
        return Math.sqrt(backend.sumOfSquares(flatGrad));
    }

    /** {@link #clip(List, Backend, double)} over one flat gradient store, in two ops. */
    public static double clip(Tensor flatGrad, Backend backend, double maxNorm) {
        double norm = globalNorm(flatGrad, backend);
        float coefficient = coefficient(norm, maxNorm);
        if (coefficient != 1f) {
            backend.scale(flatGrad, coefficient);
        }
        return norm;
    }
}
