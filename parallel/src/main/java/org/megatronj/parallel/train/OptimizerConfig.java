package org.megatronj.parallel.train;

/**
 * {@code --optimizer adam|sgd}, {@code --weight-decay}, {@code --adam-beta1/2}, {@code --adam-eps},
 * {@code --sgd-momentum} and {@code --clip-grad} (global L2 norm; 0 disables clipping).
 */
public record OptimizerConfig(OptimizerType type, double weightDecay, double adamBeta1, double adamBeta2,
                              double adamEps, double sgdMomentum, double clipGrad) {

    public OptimizerConfig {
        if (type == null) {
            throw new IllegalArgumentException("--optimizer must be set");
        }
        if (!(weightDecay >= 0)) {
            throw new IllegalArgumentException("--weight-decay must be >= 0, got " + weightDecay);
        }
        if (!(adamBeta1 >= 0 && adamBeta1 < 1) || !(adamBeta2 >= 0 && adamBeta2 < 1)) {
            throw new IllegalArgumentException("--adam-beta1 and --adam-beta2 must be in [0, 1), got " + adamBeta1 + " and " + adamBeta2);
        }
        if (!(adamEps > 0)) {
            throw new IllegalArgumentException("--adam-eps must be positive, got " + adamEps);
        }
        if (!(sgdMomentum >= 0 && sgdMomentum < 1)) {
            throw new IllegalArgumentException("--sgd-momentum must be in [0, 1), got " + sgdMomentum);
        }
        if (!(clipGrad >= 0)) {
            throw new IllegalArgumentException("--clip-grad must be >= 0 (0 disables clipping), got " + clipGrad);
        }
    }

    /** Megatron's defaults: adam, weight decay 0.01, betas 0.9/0.999, eps 1e-8, clip 1.0. */
    public static OptimizerConfig defaults() {
        return new OptimizerConfig(OptimizerType.ADAM, 0.01, 0.9, 0.999, 1e-8, 0.9, 1.0);
    }
}
