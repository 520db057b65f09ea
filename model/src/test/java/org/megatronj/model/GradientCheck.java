package org.megatronj.model;

import org.megatronj.memory.Tensor;

import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Central finite differences of {@code L = sum(out * w)} for random fixed weights w, against the
 * analytic backward. Everything is fp32, so the objective is summed in double, the step is
 * fairly large (1e-2) and the tolerance relative to the largest gradient entry.
 */
final class GradientCheck {
    /** A tensor whose gradient is checked and where backward leaves that gradient. */
    record Wrt(String name, Tensor value, Tensor grad) {
    }

    private final Tensor out;
    private final Runnable forward;
    private final Tensor dOut;
    private final Runnable zeroGrads;
    private final Runnable backward;
    private final float[] weights;

    /**
     * @param forward   recomputes {@code out} from the current values
     * @param dOut      where backward reads the output gradient (may be {@code out}'s own gradient buffer)
     * @param zeroGrads clears accumulating parameter gradients before backward
     * @param backward  computes the gradients of every {@link Wrt} from dOut
     */
    GradientCheck(Tensor out, Runnable forward, Tensor dOut, Runnable zeroGrads, Runnable backward, long seed) {
        this.out = out;
        this.forward = forward;
        this.dOut = dOut;
        this.zeroGrads = zeroGrads;
        this.backward = backward;
        Random r = new Random(seed);
        this.weights = new float[(int) out.numel()];
        for (int i = 0; i < weights.length; i++) {
            weights[i] = (float) r.nextGaussian();
        }
    }

    private double objective() {
        forward.run();
        double sum = 0;
        for (int i = 0; i < weights.length; i++) {
            sum += (double) out.getFloat(i) * weights[i];
        }
        return sum;
    }

    /** Checks up to {@code samples} random entries of each tensor's gradient; returns the worst relative error. */
    double check(List<Wrt> wrts, int samples, double tolerance) {
        forward.run();
        zeroGrads.run();
        dOut.copyFrom(weights);
        backward.run();
        double worst = 0;
        Random r = new Random(99);
        for (Wrt wrt : wrts) {
            float[] analytic = wrt.grad().toFloatArray();
            double scale = 1e-6;
            for (float g : analytic) {
                scale = Math.max(scale, Math.abs(g));
            }
            int n = (int) wrt.value().numel();
            for (int k = 0; k < Math.min(samples, n); k++) {
                int i = samples >= n ? k : r.nextInt(n);
                float original = wrt.value().getFloat(i);
                float step = 1e-2f * Math.max(1f, Math.abs(original));
                wrt.value().setFloat(i, original + step);
                double plus = objective();
                wrt.value().setFloat(i, original - step);
                double minus = objective();
                wrt.value().setFloat(i, original);
                double numeric = (plus - minus) / (2.0 * step);
                double error = Math.abs(numeric - analytic[i]) / scale;
                worst = Math.max(worst, error);
                assertTrue(error <= tolerance, wrt.name() + "[" + i + "]: analytic " + analytic[i] + ", numeric " + numeric
                        + " (largest |grad| " + scale + ", relative error " + error + ")");
            }
        }
        forward.run();
        return worst;
    }
}
