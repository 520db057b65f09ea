package org.megatronj.model;

/**
 * One micro-batch on the host, batch-major: element {@code r * seqLength + t} is position t of
 * sample r, as the GPT dataset produces it. {@code lossMask} holds 0 or 1 per label;
 * {@code positionIds} may be null (positions 0..s-1, which is what Megatron's GPT uses); they
 * index the learned position table and are ignored with rope, which rotates by 0..s-1 as
 * Megatron-core does. {@code keyStarts} may be null (causal attention over the whole sequence);
 * with {@code --reset-attention-mask} position t of a sample attends only positions
 * {@code [keyStarts[t], t]}, the start of its document on.
 */
public record MicroBatch(int batchSize, int seqLength, int[] tokens, int[] labels, float[] lossMask, int[] positionIds,
                         int[] keyStarts) {

    /** A micro-batch without documents (causal attention over each whole sample). */
    public MicroBatch(int batchSize, int seqLength, int[] tokens, int[] labels, float[] lossMask, int[] positionIds) {
        this(batchSize, seqLength, tokens, labels, lossMask, positionIds, null);
    }

    public MicroBatch {
        if (batchSize <= 0 || seqLength <= 0) {
            throw new IllegalArgumentException("micro-batch: batch size and sequence length must be positive, got "
                    + batchSize + " x " + seqLength);
        }
        int n = Math.multiplyExact(batchSize, seqLength);
        requireLength("tokens", tokens == null ? -1 : tokens.length, n, batchSize, seqLength);
        requireLength("labels", labels == null ? -1 : labels.length, n, batchSize, seqLength);
        requireLength("lossMask", lossMask == null ? -1 : lossMask.length, n, batchSize, seqLength);
        if (positionIds != null) {
            requireLength("positionIds", positionIds.length, n, batchSize, seqLength);
        }
        if (keyStarts != null) {
            requireLength("keyStarts", keyStarts.length, n, batchSize, seqLength);
            for (int i = 0; i < n; i++) {
                if (keyStarts[i] < 0 || keyStarts[i] > i % seqLength) {
                    throw new IllegalArgumentException("micro-batch: keyStarts[" + i + "] (sample " + i / seqLength
                            + ", position " + i % seqLength + ") is " + keyStarts[i] + "; expected a start in [0, "
                            + i % seqLength + "]");
                }
            }
        }
        for (int i = 0; i < n; i++) {
            if (lossMask[i] != 0f && lossMask[i] != 1f) {
                throw new IllegalArgumentException("micro-batch: lossMask[" + i + "] (sample " + i / seqLength + ", position "
                        + i % seqLength + ") is " + lossMask[i] + "; expected 0 or 1");
            }
        }
    }

    private static void requireLength(String what, int length, int n, int b, int s) {
        if (length != n) {
            throw new IllegalArgumentException("micro-batch: " + what + (length < 0 ? " is missing" : " has " + length
                    + " entries") + "; expected " + b + " x " + s + " = " + n);
        }
    }

    /** A micro-batch whose every label counts. */
    public static MicroBatch of(int batchSize, int seqLength, int[] tokens, int[] labels) {
        float[] mask = new float[tokens.length];
        java.util.Arrays.fill(mask, 1f);
        return new MicroBatch(batchSize, seqLength, tokens, labels, mask, null);
    }
}
