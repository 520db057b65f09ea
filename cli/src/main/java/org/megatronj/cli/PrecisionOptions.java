package org.megatronj.cli;

import org.megatronj.model.Precision;
import org.megatronj.model.optim.DynamicLossScaler;
import org.megatronj.model.optim.LossScaler;
import picocli.CommandLine.Option;

/**
 * Megatron's mixed-precision flags. {@code --bf16}/{@code --fp16}: the layers compute in that
 * dtype from a 16-bit copy of the F32 main weights; gradients, the optimizer and checkpoints stay
 * F32. fp16 scales the loss: {@code --loss-scale} fixes the scale, otherwise a dynamic scaler
 * starts at {@code --initial-loss-scale}, halves on overflow (after {@code --hysteresis}
 * overflows) and doubles after {@code --loss-scale-window} clean iterations; overflowing
 * iterations are skipped. As in Megatron, bf16 scales only with {@code --loss-scale}, and fp32
 * never (the loss-scale flags are then ignored).
 */
public final class PrecisionOptions {
    @Option(names = "--fp16", description = "Mixed precision in fp16 (compute weights and activations), F32 main weights,"
            + " gradients and optimizer, with loss scaling.")
    boolean fp16;

    @Option(names = "--bf16", description = "Mixed precision in bf16 (compute weights and activations), F32 main weights,"
            + " gradients and optimizer; no loss scaling.")
    boolean bf16;

    @Option(names = "--accumulate-allreduce-grads-in-fp32", description = "Accumulate and all-reduce gradients in fp32"
            + " (Megatron's flag, accepted for its scripts): main gradients are always F32 here, whatever the precision.")
    boolean accumulateAllreduceGradsInFp32;

    @Option(names = "--loss-scale", paramLabel = "S", description = "A static loss scale (fp16 or bf16); without it fp16"
            + " scales dynamically.")
    Double lossScale;

    @Option(names = "--initial-loss-scale", paramLabel = "S", defaultValue = "4294967296",
            description = "Initial dynamic loss scale (default 2^32).")
    double initialLossScale;

    @Option(names = "--min-loss-scale", paramLabel = "S", defaultValue = "1.0",
            description = "Lowest dynamic loss scale (default ${DEFAULT-VALUE}).")
    double minLossScale;

    @Option(names = "--loss-scale-window", paramLabel = "N", defaultValue = "1000",
            description = "Clean iterations before the dynamic loss scale doubles (default ${DEFAULT-VALUE}).")
    double lossScaleWindow;

    @Option(names = "--hysteresis", paramLabel = "N", defaultValue = "2",
            description = "Overflows before the dynamic loss scale halves (default ${DEFAULT-VALUE}).")
    int hysteresis;

    /** The compute precision; {@code --fp16} with {@code --bf16} is an error, as in Megatron. */
    public Precision precision() {
        return Precision.of(fp16, bf16);
    }

    /**
     * A fresh scaler as Megatron picks it ({@code get_megatron_optimizer}): {@code --loss-scale}
     * with fp16 or bf16 a constant one, else fp16 a dynamic one, else none (null). A parallel
     * run gives each rank its own.
     */
    public LossScaler lossScaler() {
        Precision p = precision();
        if (!p.mixed()) {
            return null;
        }
        if (lossScale != null) {
            return new LossScaler.Constant(lossScale);
        }
        if (p != Precision.FP16) {
            return null;
        }
        if (lossScaleWindow < 1 || lossScaleWindow != Math.rint(lossScaleWindow)) {
            throw new IllegalArgumentException("--loss-scale-window must be a whole number >= 1, got " + lossScaleWindow);
        }
        return new DynamicLossScaler(initialLossScale, minLossScale, (long) lossScaleWindow, hysteresis);
    }

    /** Checks every flag up front (so a bad value fails before data and model are built). */
    public void validate() {
        lossScaler();
    }
}
