package org.megatronj.model;

import org.megatronj.memory.DType;

/**
 * The dtype a model computes in, as Megatron's {@code --fp16} / {@code --bf16} choose
 * {@code params_dtype}. Whatever the choice, the main parameters, their gradients and the
 * optimizer state stay F32; with BF16 or F16 the layers read a 16-bit copy of the weights (cast
 * from the main parameters after every optimizer step) and keep their activations in that dtype,
 * while norm statistics, the attention log-sum-exp and the cross-entropy are computed in F32.
 */
public enum Precision {
    FP32(DType.F32, "fp32", "torch.float32"),
    BF16(DType.BF16, "bf16", "torch.bfloat16"),
    FP16(DType.F16, "fp16", "torch.float16");

    private final DType computeDtype;
    private final String flagValue;
    private final String torchDtype;

    Precision(DType computeDtype, String flagValue, String torchDtype) {
        this.computeDtype = computeDtype;
        this.flagValue = flagValue;
        this.torchDtype = torchDtype;
    }

    /** The dtype of the compute weights and activations. */
    public DType computeDtype() {
        return computeDtype;
    }

    /** {@code fp32}, {@code bf16} or {@code fp16}: how logs and checkpoint metadata name it. */
    public String flagValue() {
        return flagValue;
    }

    /** How Megatron prints its {@code args.params_dtype}: {@code torch.float32}, {@code torch.bfloat16}, {@code torch.float16}. */
    public String torchDtype() {
        return torchDtype;
    }

    /** True with a 16-bit compute copy of the weights (BF16, FP16). */
    public boolean mixed() {
        return this != FP32;
    }

    /** From Megatron's two flags; both at once is an error, as in Megatron. */
    public static Precision of(boolean fp16, boolean bf16) {
        if (fp16 && bf16) {
            throw new IllegalArgumentException("--fp16 and --bf16 are mutually exclusive: pick one");
        }
        return fp16 ? FP16 : bf16 ? BF16 : FP32;
    }

    /** The inverse of {@link #flagValue()}. */
    public static Precision parse(String value) {
        for (Precision p : values()) {
            if (p.flagValue.equalsIgnoreCase(value.trim())) {
                return p;
            }
        }
        throw new IllegalArgumentException("unknown precision '" + value + "': expected fp32, bf16 or fp16");
    }
}
