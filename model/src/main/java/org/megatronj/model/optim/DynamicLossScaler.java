package org.megatronj.model.optim;

/**
 * Megatron's {@code DynamicGradScaler} for fp16 training ({@link LossScaler}). The loss is
 * multiplied by {@link #scale()} before backward; after it the optimizer checks the gradients for
 * inf/NaN and calls {@link #update(boolean)}, exactly as Megatron's:
 * <ul>
 *   <li>overflow: the step is skipped, the growth tracker resets to 0 and the hysteresis tracker
 *       drops by one; once it is at or below 0 the scale halves, never below {@code minScale}, on
 *       this and every further overflow. The hysteresis tracker refills only when the scale grows,
 *       so the overflows that use up the hysteresis need not be consecutive (Megatron's docstring
 *       says "in a row"; its code, followed here, does not reset the tracker on a clean step);</li>
 *   <li>clean step: the growth tracker counts up; at {@code window} clean steps in a row the scale
 *       doubles, the growth tracker resets and the hysteresis tracker refills.</li>
 * </ul>
 * Flags: {@code --initial-loss-scale 2^32 --min-loss-scale 1 --loss-scale-window 1000 --hysteresis 2}.
 * The scale is kept at float32 precision, as Megatron's float tensor.
 */
public final class DynamicLossScaler implements LossScaler {
    private static final double GROWTH_FACTOR = 2.0;
    private static final double BACKOFF_FACTOR = 0.5;

    private final double minScale;
    private final long window;
    private final int hysteresis;
    private double scale;
    private long growthTracker;
    private int hysteresisTracker;

    public DynamicLossScaler(double initialScale, double minScale, long window, int hysteresis) {
        if (!(initialScale > 0) || Double.isInfinite(initialScale) || !(minScale > 0) || minScale > initialScale) {
            throw new IllegalArgumentException("need 0 < --min-loss-scale <= --initial-loss-scale, got "
                    + minScale + " and " + initialScale);
        }
        if (window < 1) {
            throw new IllegalArgumentException("--loss-scale-window must be a whole number >= 1, got " + window);
        }
        if (hysteresis < 1) {
            throw new IllegalArgumentException("--hysteresis must be >= 1, got " + hysteresis);
        }
        this.scale = (float) initialScale;
        this.minScale = (float) minScale;
        this.window = window;
        this.hysteresis = hysteresis;
        this.hysteresisTracker = hysteresis;
    }

    /** Megatron's defaults. */
    public static DynamicLossScaler withDefaults() {
        return new DynamicLossScaler(Math.pow(2, 32), 1.0, 1000, 2);
    }

    @Override
    public double scale() {
        return scale;
    }

    /** Records one step's outcome ({@code foundInfOrNan}: the step was skipped) and adjusts the scale. */
    @Override
    public void update(boolean foundInfOrNan) {
        if (foundInfOrNan) {
            growthTracker = 0;
            hysteresisTracker--;
            if (hysteresisTracker <= 0) {
                scale = Math.max(scale * BACKOFF_FACTOR, minScale);
            }
        } else {
            growthTracker++;
            if (growthTracker == window) {
                growthTracker = 0;
                hysteresisTracker = hysteresis;
                scale = (float) (scale * GROWTH_FACTOR);
            }
        }
    }

    /** The state a checkpoint keeps: scale, growth tracker, hysteresis tracker. */
    public State state() {
        return new State(scale, growthTracker, hysteresisTracker);
    }

    public void restore(State state) {
        if (!(state.scale() > 0)) {
            throw new IllegalArgumentException("loss scale must be positive, got " + state.scale());
        }
        this.scale = state.scale();
        this.growthTracker = state.growthTracker();
        this.hysteresisTracker = state.hysteresisTracker();
    }

    /** Checkpointed fields, named as Megatron's state dict ({@code scale}, {@code growth_tracker}, {@code hysteresis_tracker}). */
    public record State(double scale, long growthTracker, int hysteresisTracker) {
    }
}
