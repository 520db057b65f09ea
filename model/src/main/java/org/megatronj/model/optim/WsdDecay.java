package org.megatronj.model.optim;

import org.megatronj.model.FlagValue;


/**
 * The decay of a {@link DecayStyle#WSD} schedule: over its last {@code steps} (Megatron's {@code wsd_decay_steps},
 * samples) the learning rate falls from {@code --lr} to {@code --min-lr} in {@code --lr-wsd-decay-style}.
 */
public record WsdDecay(double steps, Style style) {
    /** {@code --lr-wsd-decay-style}. */
    public enum Style implements FlagValue {
        EXPONENTIAL("exponential"), LINEAR("linear"), COSINE("cosine"), MINUS_SQRT("minus_sqrt");

        private final String flagValue;

        Style(String flagValue) {
            this.flagValue = flagValue;
        }

        @Override
        public String flagValue() {
            return flagValue;
        }

        public static Style parse(String value) {
            return FlagValue.parse(Style.class, "--lr-wsd-decay-style", value);
        }
    }

    public WsdDecay {
        if (!(steps > 0)) {
            throw new IllegalArgumentException("the WSD decay (--lr-wsd-decay-iters or --lr-wsd-decay-samples) must be"
                    + " positive, got " + steps + " steps");
        }
    }

    /** Megatron's coefficient of {@code max_lr - min_lr} at {@code ratio} (0 to 1) through the decay. */
    double coefficient(double ratio) {
        return switch (style) {
            case LINEAR -> 1.0 - ratio;
            case COSINE -> 0.5 * (Math.cos(Math.PI * ratio) + 1.0);
            case EXPONENTIAL -> 2.0 * Math.pow(0.5, ratio) - 1.0;
            case MINUS_SQRT -> 1.0 - Math.sqrt(ratio);
        };
    }
}
