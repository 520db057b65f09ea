package org.megatronj.model;

/**
 * Model FLOPs as Megatron's {@code num_floating_point_operations} counts them (dense GPT, no
 * activation recompute), for throughput and MFU in logs and benchmarks:
 * <pre>
 *   flops = 12 B s L h^2 ( (1 + ng/np + s/h) (np d / h) + (ffn / h) (swiglu ? 3/2 : 1) + V / (2 L h) )
 * </pre>
 * 12 = 3 (forward, weight-grad, data-grad) x 2 (two GEMMs of each size per block) x 2 (multiply-add).
 * For GPT-2 this is the familiar {@code 72 B s L h^2 (1 + s/(6h) + V/(12 L h))}. The causal mask's
 * saving is not subtracted, as in Megatron until 2026 and in the PyTorch baselines the benchmarks
 * compare with; today's Megatron subtracts it in its log's throughput
 * ({@link #megatronLoggedFlopsPerIteration}, which {@code --log-throughput} uses).
 */
public final class FlopCounter {
    private FlopCounter() {
    }

    /** FLOPs of one training iteration over {@code batchSize} sequences of the config's seq length. */
    public static double trainingFlopsPerIteration(TransformerConfig c, long batchSize) {
        double h = c.hiddenSize();
        double s = c.seqLength();
        double attentionRatio = (double) c.numAttentionHeads() * c.kvChannels() / h;
        double attention = (1 + (double) c.numQueryGroups() / c.numAttentionHeads() + s / h) * attentionRatio;
        double mlp = c.ffnHiddenSize() / h * (c.swiglu() ? 1.5 : 1.0);
        double logits = c.paddedVocabSize() / (2.0 * c.numLayers() * h);
        return 12.0 * batchSize * s * c.numLayers() * h * h * (attention + mlp + logits);
    }

    /**
     * FLOPs of one training iteration as today's Megatron counts them for its log's {@code --log-throughput}
     * ({@code num_floating_point_operations}, dense GPT): the same projections, MLP and logits as
     * {@link #trainingFlopsPerIteration}, but causal attention's {@code QK^T} and {@code PV} counted for the
     * half of the score matrix the mask keeps: {@code 6 L b s^2 (heads x kv_channels)}.
     */
    public static double megatronLoggedFlopsPerIteration(TransformerConfig c, long batchSize) {
        double h = c.hiddenSize();
        double s = c.seqLength();
        double q = (double) c.numAttentionHeads() * c.kvChannels();
        double kv = (double) c.numQueryGroups() * c.kvChannels();
        double mlp = 6.0 * h * c.ffnHiddenSize() * (c.swiglu() ? 3 : 2);
        double attentionProjections = 6.0 * (h * (q + 2 * kv) + q * h);
        double logits = 6.0 * h * c.paddedVocabSize();
        double tokens = (double) batchSize * s;
        return tokens * (c.numLayers() * (mlp + attentionProjections) + logits) + batchSize * s * s * c.numLayers() * 6.0 * q;
    }

    /** Training FLOPs per token (forward + backward). */
    public static double trainingFlopsPerToken(TransformerConfig c) {
        return trainingFlopsPerIteration(c, 1) / c.seqLength();
    }

    /** Model FLOPs utilisation: achieved FLOP/s over the hardware's peak FLOP/s. */
    public static double mfu(double flopsPerIteration, double secondsPerIteration, double peakFlopsPerSecond) {
        if (!(secondsPerIteration > 0) || !(peakFlopsPerSecond > 0)) {
            throw new IllegalArgumentException("MFU needs a positive iteration time and peak, got " + secondsPerIteration
                    + " s and " + peakFlopsPerSecond + " FLOP/s");
        }
        return flopsPerIteration / secondsPerIteration / peakFlopsPerSecond;
    }
}
