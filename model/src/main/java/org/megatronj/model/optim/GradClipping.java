package org.megatronj.model.optim;

import org.megatronj.memory.Backend;
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
     * returns the norm before clipping (infinite or NaN norms leave the gradients as they are).
     */
    public static double clip(List<Parameter> parameters, Backend backend, double maxNorm) {
        if (!(maxNorm > 0)) {
            throw new IllegalArgumentException("--clip-grad must be positive, got " + maxNorm);
        }
        double norm = globalNorm(parameters, backend);
        double coefficient = maxNorm / (norm + 1e-6);
        if (coefficient < 1.0) {
            for (Parameter p : parameters) {
                backend.scale(p.grad(), (float) coefficient);
            }
        }
        return norm;
    }
}
