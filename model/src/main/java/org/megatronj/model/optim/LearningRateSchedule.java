package org.megatronj.model.optim;

/**
 * The learning rate of Megatron's {@code OptimizerParamScheduler.get_lr}: a linear warmup from 0
 * to {@code maxLr} over the first {@code warmupSteps}, then a decay to {@code minLr} that ends at
 * step {@code decaySteps} (counted from 0, warmup included), then {@code minLr}. Steps are
 * iterations or samples, whichever the trainer counts ({@code --lr-decay-iters} or
 * {@code --lr-decay-samples}).
 */
public final class LearningRateSchedule {
    private final float maxLr;
    private final float minLr;
    private final long warmupSteps;
    private final long decaySteps;
    private final DecayStyle style;

    public LearningRateSchedule(float maxLr, float minLr, long warmupSteps, long decaySteps, DecayStyle style) {
        if (!(maxLr >= 0) || !(minLr >= 0) || minLr > maxLr) {
            throw new IllegalArgumentException("need 0 <= --min-lr <= --lr, got --lr " + maxLr + " and --min-lr " + minLr);
        }
        if (warmupSteps < 0) {
            throw new IllegalArgumentException("warmup steps must be >= 0, got " + warmupSteps);
        }
        if (style != DecayStyle.CONSTANT && decaySteps <= warmupSteps) {
            throw new IllegalArgumentException("--lr-decay-iters (" + decaySteps + ") must exceed the warmup ("
                    + warmupSteps + ") for --lr-decay-style " + style.flagValue());
        }
        this.maxLr = maxLr;
        this.minLr = minLr;
        this.warmupSteps = warmupSteps;
        this.decaySteps = decaySteps;
        this.style = style;
    }

    /** The learning rate at {@code step} (0 before the first update: Megatron steps the scheduler after each update). */
    public float lr(long step) {
        if (warmupSteps > 0 && step <= warmupSteps) {
            return (float) ((double) maxLr * step / warmupSteps);
        }
        if (style == DecayStyle.CONSTANT) {
            return maxLr;
        }
        if (step > decaySteps) {
            return minLr;
        }
        if (style == DecayStyle.INVERSE_SQUARE_ROOT) {
            double warmup = Math.max(warmupSteps, 1);
            double lr = maxLr * Math.sqrt(warmup) / Math.sqrt(Math.max(step, 1));
            return (float) Math.max(minLr, lr);
        }
        double ratio = (double) (step - warmupSteps) / (decaySteps - warmupSteps);
        double coefficient = switch (style) {
            case LINEAR -> 1.0 - ratio;
            case COSINE -> 0.5 * (Math.cos(Math.PI * ratio) + 1.0);
            default -> throw new IllegalStateException("unreachable: " + style);
        };
        return (float) (minLr + coefficient * (maxLr - minLr));
    }

    public float maxLr() {
        return maxLr;
    }

    public float minLr() {
        return minLr;
    }

    public long warmupSteps() {
        return warmupSteps;
    }

    public long decaySteps() {
        return decaySteps;
    }

    public DecayStyle style() {
        return style;
    }
}
