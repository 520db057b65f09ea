package org.megatronj.model;

/**
 * Multi-Token Prediction (DeepSeek-V3; Megatron-core's {@code multi_token_prediction.py}): {@code numLayers} sequential
 * MTP depths after the decoder, depth k predicting the token k + 1 places ahead of each position. Each depth is Megatron's
 * {@code MultiTokenPredictionLayer}: {@code enorm} over the shared word embedding of the input ids rolled left by k,
 * {@code hnorm} over the hidden states of depth k - 1 (the decoder's output after its final norm for k = 1),
 * {@code eh_proj} over their concatenation [e; h] (2h -> h, column-parallel and gathered), one transformer layer of the
 * decoder's last layer's kind, its {@code final_layernorm}, then the shared output layer and a cross-entropy against the
 * labels rolled by k under the loss mask rolled by k. Training adds {@code lossScalingFactor / numLayers} times each
 * depth's loss to the objective (Megatron's {@code MTPLossAutoScaler}); the reported {@code lm loss} stays the decoder's.
 *
 * @param numLayers         {@code --mtp-num-layers}: the MTP depths (positive)
 * @param lossScalingFactor {@code --mtp-loss-scaling-factor} (Megatron's default 0.1): the weight of the depths' mean loss
 */
public record MtpConfig(int numLayers, float lossScalingFactor) {

    /** Megatron's {@code mtp_loss_scaling_factor} default. */
    public static final float DEFAULT_LOSS_SCALING_FACTOR = 0.1f;

    /** {@code --mtp-num-layers n} with Megatron's default scaling factor. */
    public static MtpConfig of(int numLayers) {
        return new MtpConfig(numLayers, DEFAULT_LOSS_SCALING_FACTOR);
    }

    /** The weight of each depth's loss in the training objective: {@code lossScalingFactor / numLayers}, as Megatron. */
    public float depthLossScale() {
        return lossScalingFactor / numLayers;
    }

    /** Refuses what Megatron-J's MTP does not take, naming the flag; returns this. */
    MtpConfig validate(PositionEmbeddingType positions) {
        if (numLayers <= 0) {
            throw new IllegalArgumentException("--mtp-num-layers must be positive, got " + numLayers);
        }
        if (!Float.isFinite(lossScalingFactor) || lossScalingFactor < 0) {
            throw new IllegalArgumentException("--mtp-loss-scaling-factor must be a non-negative number, got "
                    + lossScalingFactor);
        }
        if (positions == PositionEmbeddingType.LEARNED_ABSOLUTE) {   // Megatron's validate_args asserts the same
            throw new IllegalArgumentException("--mtp-num-layers needs --position-embedding-type rope or none (Megatron:"
                    + " 'Multi-Token Prediction (MTP) is not supported with learned_absolute position embedding type')");
        }
        return this;
    }
}
