package org.megatronj.model;

/** The normalization layer ({@code --normalization}). */
public enum Normalization implements FlagValue {
    /** {@code (x - mean) / sqrt(var + eps) * weight + bias}. */
    LAYER_NORM("LayerNorm"),
    /** {@code x / sqrt(mean(x^2) + eps) * weight}, no bias. */
    RMS_NORM("RMSNorm");

    private final String flagValue;

    Normalization(String flagValue) {
        this.flagValue = flagValue;
    }

    /** The value as Megatron's flag spells it. */
    @Override
    public String flagValue() {
        return flagValue;
    }

    public static Normalization parse(String value) {
        return FlagValue.parse(Normalization.class, "--normalization", value);
    }
}
