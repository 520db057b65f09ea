package org.megatronj.model;

/**
 * The language-model loss of one micro-batch: {@code lossSum = sum_i loss_i * mask_i} (nats) over
 * {@code tokens = sum_i mask_i} counted labels. Averaging across micro-batches and data-parallel
 * ranks is the trainer's job; sums and counts add up exactly.
 */
public record LossResult(double lossSum, long tokens) {

    /** The micro-batch mean loss (Megatron's reported "lm loss"); NaN when no label counted. */
    public double meanLoss() {
        return tokens == 0 ? Double.NaN : lossSum / tokens;
    }

    public LossResult plus(LossResult other) {
        return new LossResult(lossSum + other.lossSum, tokens + other.tokens);
    }
}
