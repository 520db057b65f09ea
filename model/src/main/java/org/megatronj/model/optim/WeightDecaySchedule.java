package org.megatronj.model.optim;

import org.megatronj.model.FlagValue;


/**
 * Megatron's weight-decay increment ({@code --start-weight-decay}, {@code --end-weight-decay},
 * {@code --weight-decay-incr-style}): from {@code start} to {@code end} over {@code steps} (the whole run, in samples),
 * linearly or along a half cosine, then {@code end} ({@code get_wd}).
 */
public record WeightDecaySchedule(double start, double end, double steps, Style style) {
    /** {@code --weight-decay-incr-style} (constant needs no schedule: the optimizer keeps {@code --weight-decay}). */
    public enum Style implements FlagValue {
        LINEAR("linear"), COSINE("cosine");

        private final String flagValue;

        Style(String flagValue) {
            this.flagValue = flagValue;
        }

        @Override
        public String flagValue() {
            return flagValue;
        }

        public static Style parse(String value) {
            return FlagValue.parse(Style.class, "--weight-decay-incr-style", value);
        }
    }

    public WeightDecaySchedule {
        if (!(start >= 0) || !(end >= 0)) {
            throw new IllegalArgumentException("--start-weight-decay and --end-weight-decay must be >= 0, got " + start
                    + " and " + end);
        }
        if (!(steps > 0)) {
            throw new IllegalArgumentException("the weight-decay increment needs a positive length, got " + steps);
        }
    }

    /** The weight decay at {@code step} (Megatron's {@code get_wd}). */
    public double at(long step) {
        if (step > steps) {
            return end;
        }
        double ratio = step / steps;
        double coefficient = style == Style.LINEAR ? ratio : 0.5 * (Math.cos(Math.PI * (1 - ratio)) + 1.0);
        return start + coefficient * (end - start);
    }
}
