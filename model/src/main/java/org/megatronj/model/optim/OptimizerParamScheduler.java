package org.megatronj.model.optim;

/**
 * Megatron's {@code OptimizerParamScheduler} for the learning rate: linear warmup from 0 to
 * {@code maxLr} over {@code warmupSteps}, then constant, linear, cosine or inverse-square-root
 * decay to {@code minLr} at {@code decaySteps} (counted from 0, warmup included), then
 * {@code minLr}. The trainer counts steps in samples (each iteration adds its global batch
 * size), so ramp-up and sample-based runs share one clock.
 *
 * <p>As in Megatron the learning rate of an optimizer step is the one computed after the
 * previous step: the first step of a warmup runs at lr 0.
 */
public final class OptimizerParamScheduler {
    private final double maxLr;
    private final double minLr;
    private final double warmupSteps;
    private final double decaySteps;
    private final DecayStyle style;
    private long numSteps;

    public OptimizerParamScheduler(double maxLr, double minLr, double warmupSteps, double decaySteps, DecayStyle style) {
        checkLrRange(maxLr, minLr);
        if (!(decaySteps > 0)) {
            throw new IllegalArgumentException("lr decay length must be positive, got " + decaySteps + " steps");
        }
        if (!(warmupSteps >= 0) || warmupSteps > decaySteps && style != DecayStyle.CONSTANT) {
            throw new IllegalArgumentException("lr warmup (" + warmupSteps + " steps) must lie within the decay ("
                    + decaySteps + " steps)");
        }
        this.maxLr = maxLr;
        this.minLr = minLr;
        this.warmupSteps = warmupSteps;
        this.decaySteps = decaySteps;
        this.style = style;
    }

    /** Megatron's {@code 0 <= min_lr <= max_lr}, worded with the flags that set them. */
    public static void checkLrRange(double lr, double minLr) {
        if (!(lr >= 0) || !(minLr >= 0) || minLr > lr) {
            throw new IllegalArgumentException("need 0 <= --min-lr <= --lr, got --lr " + lr + " and --min-lr " + minLr);
        }
    }

    /** The learning rate at {@code step} (Megatron's {@code get_lr}). */
    public double lrAt(long step) {
        if (warmupSteps > 0 && step <= warmupSteps) {
            return maxLr * step / warmupSteps;
        }
        if (style == DecayStyle.CONSTANT) {
            return maxLr;
        }
        if (step > decaySteps) {
            return minLr;
        }
        if (style == DecayStyle.INVERSE_SQUARE_ROOT) {
            double warmup = Math.max(warmupSteps, 1);
            double n = Math.max(step, 1);
            return Math.max(minLr, maxLr * Math.sqrt(warmup) / Math.sqrt(n));
        }
        double decayRatio = (step - warmupSteps) / (decaySteps - warmupSteps);
        double coefficient = switch (style) {
            case LINEAR -> 1.0 - decayRatio;
            case COSINE -> 0.5 * (Math.cos(Math.PI * decayRatio) + 1.0);
            default -> throw new IllegalStateException("unhandled decay style " + style);
        };
        return minLr + coefficient * (maxLr - minLr);
    }

    /** The learning rate for the next optimizer step. */
    public double currentLr() {
        return lrAt(numSteps);
    }

    /** Advances the clock by {@code increment} steps (for the trainer: the iteration's global batch size). */
    public void step(long increment) {
        numSteps += increment;
    }

    public long numSteps() {
        return numSteps;
    }

    /** Restores the clock from a checkpoint. */
    public void setNumSteps(long steps) {
        numSteps = steps;
    }

    public double maxLr() {
        return maxLr;
    }

    public double minLr() {
        return minLr;
    }

    public double warmupSteps() {
        return warmupSteps;
    }

    public double decaySteps() {
        return decaySteps;
    }

    public DecayStyle style() {
        return style;
    }
}
