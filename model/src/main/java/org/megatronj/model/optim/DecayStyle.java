package org.megatronj.model.optim;

import java.util.Locale;

/** {@code --lr-decay-style}: how the learning rate falls from {@code --lr} to {@code --min-lr} after warmup. */
public enum DecayStyle {
    CONSTANT("constant"),
    LINEAR("linear"),
    COSINE("cosine"),
    INVERSE_SQUARE_ROOT("inverse-square-root"),
    /** Warmup-stable-decay: {@code --lr} until the last {@code --lr-wsd-decay-iters/samples}, then {@link WsdDecay}'s fall. */
    WSD("WSD");

    private final String flagValue;

    DecayStyle(String flagValue) {
        this.flagValue = flagValue;
    }

    public String flagValue() {
        return flagValue;
    }

    public static DecayStyle parse(String value) {
        for (DecayStyle d : values()) {
            if (d.flagValue.equalsIgnoreCase(value.trim())) {
                return d;
            }
        }
        throw new IllegalArgumentException("unknown --lr-decay-style '" + value
                + "': expected constant, linear, cosine, inverse-square-root or WSD");
    }
}
