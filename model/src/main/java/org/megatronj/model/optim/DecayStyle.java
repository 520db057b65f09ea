package org.megatronj.model.optim;

import org.megatronj.model.FlagValue;


/** {@code --lr-decay-style}: how the learning rate falls from {@code --lr} to {@code --min-lr} after warmup. */
public enum DecayStyle implements FlagValue {
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

    @Override
    public String flagValue() {
        return flagValue;
    }

    public static DecayStyle parse(String value) {
        return FlagValue.parse(DecayStyle.class, "--lr-decay-style", value);
    }
}
