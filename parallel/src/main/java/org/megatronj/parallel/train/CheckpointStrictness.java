package org.megatronj.parallel.train;

import org.megatronj.model.FlagValue;

/**
 * Megatron's {@code --dist-ckpt-strictness}: what a load does when the checkpoint's tensors and the model's differ by
 * name. In Megatron's words an "unexpected" key is one the model asks for and the checkpoint lacks (the model then keeps
 * its initial values), a "missing" key one the checkpoint holds and the model does not ask for. A tensor of the wrong
 * shape or dtype is an error in every mode.
 */
public enum CheckpointStrictness implements FlagValue {
    /** Megatron's default: a tensor the checkpoint lacks fails the load; extra ones are not looked at. */
    ASSUME_OK_UNEXPECTED("assume_ok_unexpected", Handling.RAISE, Handling.IGNORE),
    LOG_UNEXPECTED("log_unexpected", Handling.LOG, Handling.IGNORE),
    LOG_ALL("log_all", Handling.LOG, Handling.LOG),
    RAISE_UNEXPECTED("raise_unexpected", Handling.RAISE, Handling.IGNORE),
    RAISE_ALL("raise_all", Handling.RAISE, Handling.RAISE),
    /** Megatron returns the mismatches to its caller, which goes on; here they are logged. */
    RETURN_UNEXPECTED("return_unexpected", Handling.LOG, Handling.IGNORE),
    RETURN_ALL("return_all", Handling.LOG, Handling.LOG),
    IGNORE_ALL("ignore_all", Handling.IGNORE, Handling.IGNORE);

    /** What happens to one kind of mismatch. */
    public enum Handling { RAISE, LOG, IGNORE }

    private final String flagValue;
    private final Handling lacking;
    private final Handling extra;

    CheckpointStrictness(String flagValue, Handling lacking, Handling extra) {
        this.flagValue = flagValue;
        this.lacking = lacking;
        this.extra = extra;
    }

    @Override
    public String flagValue() {
        return flagValue;
    }

    /** A tensor the model has and the checkpoint lacks (Megatron's "unexpected"). */
    public Handling lacking() {
        return lacking;
    }

    /** A tensor the checkpoint has and the model does not (Megatron's "missing"). */
    public Handling extra() {
        return extra;
    }

    public static CheckpointStrictness parse(String value) {
        return FlagValue.parse(CheckpointStrictness.class, "--dist-ckpt-strictness", value);
    }
}
