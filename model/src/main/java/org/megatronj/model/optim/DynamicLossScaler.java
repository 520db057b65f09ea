package org.megatronj.model.optim;

/**
 * Megatron's {@code DynamicGradScaler} for fp16 training. The loss is multiplied by
 * {@link #scale()} before backward; after it the trainer checks the gradients for inf/NaN and
 * calls {@link #update(boolean)}:
 * <ul>
 *   <li>overflow: the step is skipped, the growth count resets, and after {@code hysteresis}
 *       overflows (not necessarily consecutive) the scale is halved, never below {@code minScale};</li>
 *   <li>{@code window} clean steps in a row: the scale doubles and the hysteresis budget refills.</li>
 * </ul>
 * Flags: {@code --initial-loss-scale 2^32 --min-loss-scale 1 --loss-scale-window 1000 --hysteresis 2}.
 */
public final class DynamicLossScaler {
    private static final double GROWTH_FACTOR = 2.0;
    private static final double BACKOFF_FACTOR = 0.5;

    private final double minScale;
    private final long window;
    private final int hysteresis;
    private double scale;
    private long growthTracker;
    private int hysteresisTracker;

    public DynamicLossScaler(double initialScale, double minScale, long window, int hysteresis) {
        if (!(initialScale > 0) || !(minScale > 0) || minScale > initialScale) {
            throw new IllegalArgumentException("need 0 < --min-loss-scale <= --initial-loss-scale, got "
                    + minScale + " and " + initialScale);
        }
        if (window < 1 || hysteresis < 1) {
            throw new IllegalArgumentException("--loss-scale-window and --hysteresis must be >= 1, got " + window
                    + " and " + hysteresis);
        }
        this.scale = initialScale;
        this.minScale = minScale;
        this.window = window;
        this.hysteresis = hysteresis;
        this.hysteresisTracker = hysteresis;
    }

    /** Megatron's defaults. */
    public static DynamicLossScaler withDefaults() {
        return new DynamicLossScaler(Math.pow(2, 32), 1.0, 1000, 2);
    }

    public double scale() {
        return scale;
    }

    /** The factor that turns scaled gradients back into true ones. */
    public double inverseScale() {
        return 1.0 / scale;
    }

    /** Records one step's outcome ({@code foundInfOrNan}: the step was skipped) and adjusts the scale. */
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
                scale *= GROWTH_FACTOR;
            }
        }
    }

    /** The state a checkpoint keeps: scale, growth tracker, hysteresis tracker. */
    public State state() {
        return new State(scale, growthTracker, hysteresisTracker);
    }

    public void restore(State state) {
        this.scale = state.scale();
        this.growthTracker = state.growthTracker();
        this.hysteresisTracker = state.hysteresisTracker();
    }

    /** Checkpointed fields, named as Megatron's state dict ({@code scale}, {@code growth_tracker}, {@code hysteresis_tracker}). */
    public record State(double scale, long growthTracker, int hysteresisTracker) {
    }
}
