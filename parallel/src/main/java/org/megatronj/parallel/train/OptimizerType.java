package org.megatronj.parallel.train;

import java.util.Locale;

/** {@code --optimizer}: Megatron's {@code adam} is AdamW (decoupled weight decay); {@code sgd} has momentum. */
public enum OptimizerType {
    ADAM("adam"),
    SGD("sgd");

    private final String flagValue;

    OptimizerType(String flagValue) {
        this.flagValue = flagValue;
    }

    public String flagValue() {
        return flagValue;
    }

    public static OptimizerType parse(String value) {
        String v = value.trim().toLowerCase(Locale.ROOT);
        if (v.equals("adamw")) {
            return ADAM;
        }
        for (OptimizerType t : values()) {
            if (t.flagValue.equals(v)) {
                return t;
            }
        }
        throw new IllegalArgumentException("unknown --optimizer '" + value + "': expected adam or sgd");
    }
}
