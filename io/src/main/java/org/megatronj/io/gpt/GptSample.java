package org.megatronj.io.gpt;

/**
 * One training sample, as Megatron's {@code GPTDataset.__getitem__} returns it, each array of
 * length {@code L}.
 *
 * @param tokens model inputs; padded positions hold 0
 * @param labels the next token of each input; padded positions hold 0
 * @param lossMask 1 where the loss counts, 0 at padding (and at EOD inputs with {@code --eod-mask-loss})
 * @param positionIds 0..L-1, or restarting after each EOD with {@code --reset-position-ids}
 * @param attentionSegments with {@code --reset-attention-mask}: the number of EOD inputs before each
 *        position; query {@code i} attends key {@code j} iff {@code j <= i} and both have the same
 *        segment. Null without that flag (plain causal mask).
 * @param text the raw {@code L + X} token ids of the sample before the shift (padding as the pad id)
 */
public record GptSample(int[] tokens, int[] labels, float[] lossMask, int[] positionIds, int[] attentionSegments, int[] text) {

    /** Whether query position {@code i} may attend key position {@code j} (Megatron's attention mask is true where masked). */
    public boolean attends(int i, int j) {
        if (j > i) {
            return false;
        }
        return attentionSegments == null || attentionSegments[i] == attentionSegments[j];
    }

    /**
     * With {@code --reset-attention-mask}: the first position of each position's segment, the first
     * key it attends ({@code Backend#attentionForward}'s keyStarts); null without that flag.
     */
    public int[] keyStarts() {
        if (attentionSegments == null) {
            return null;
        }
        int[] starts = new int[attentionSegments.length];
        for (int t = 1; t < starts.length; t++) {
            starts[t] = attentionSegments[t] == attentionSegments[t - 1] ? starts[t - 1] : t;
        }
        return starts;
    }
}
