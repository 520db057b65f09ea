package org.megatronj.parallel.train;

import org.megatronj.model.FlagValue;

/** {@code --optimizer}: Megatron's {@code adam} is AdamW (decoupled weight decay); {@code sgd} has momentum. */
public enum OptimizerType implements FlagValue {
    ADAM("adam"),
    SGD("sgd");

    private final String flagValue;

    OptimizerType(String flagValue) {
        this.flagValue = flagValue;
    }

    @Override
    public String flagValue() {
        return flagValue;
    }

    /** {@code adam} or {@code sgd}; {@code adamw} is accepted for adam. */
    public static OptimizerType parse(String value) {
        return value.trim().equalsIgnoreCase("adamw") ? ADAM : FlagValue.parse(OptimizerType.class, "--optimizer", value);
    }
}
