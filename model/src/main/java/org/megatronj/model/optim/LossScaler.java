package org.megatronj.model.optim;

/**
 * Megatron's grad scaler ({@code megatron/core/optimizer/grad_scaler.py}): the loss is multiplied
 * by {@link #scale()} before backward, so that small fp16 gradients do not flush to zero; the
 * optimizer multiplies the F32 main gradients by {@link #inverseScale()}, skips the step when any
 * of them is inf or NaN, and reports the outcome to {@link #update(boolean)}.
 *
 * <p>Megatron chooses: {@code --loss-scale S} a {@link Constant} scaler (fp16 or bf16);
 * otherwise {@code --fp16} a {@link DynamicLossScaler}; bf16 and fp32 none at all (no scaling,
 * no inf check, {@code loss scale: 1.0} in the log).
 */
public sealed interface LossScaler permits LossScaler.Constant, DynamicLossScaler {

    /** The factor the loss is multiplied by before backward. */
    double scale();

    /** The factor that turns scaled gradients back into true ones: Megatron's {@code scale.double().reciprocal().float()}. */
    default float inverseScale() {
        return (float) (1.0 / scale());
    }

    /** Records one iteration's outcome ({@code foundInfOrNan}: its step was skipped). */
    void update(boolean foundInfOrNan);

    /** Megatron's {@code ConstantGradScaler} ({@code --loss-scale}): the scale never changes; no state to checkpoint. */
    record Constant(double scale) implements LossScaler {
        public Constant {
            if (!(scale > 0) || Double.isInfinite(scale)) {
                throw new IllegalArgumentException("--loss-scale must be a positive finite number, got " + scale);
            }
            scale = (float) scale;   // Megatron keeps the scale in a float32 tensor
        }

        @Override
        public void update(boolean foundInfOrNan) {
        }
    }
}
