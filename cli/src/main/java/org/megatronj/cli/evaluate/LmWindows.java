package org.megatronj.cli.evaluate;

/**
 * The evaluation windows of Megatron's {@code _LMDataset}: window i starts at token i·overlap and
 * holds seqLength + 1 tokens (inputs and shifted targets), padded at the end; with overlapping
 * evaluation (overlap &lt; seqLength) every window but the first scores only its last {@code overlap}
 * targets, so each target is predicted once with as much context as the window allows.
 */
public final class LmWindows {
    private final int[] tokens;
    private final int seqLength;
    private final int overlap;
    private final int pad;
    private final int count;

    /** @param overlap Megatron's {@code --overlapping-eval}, in [1, seqLength]; null or {@code seqLength} = disjoint windows */
    public LmWindows(int[] tokens, int seqLength, Integer overlap, int pad) {
        if (seqLength < 1) {
            throw new IllegalArgumentException("sequence length must be >= 1, got " + seqLength);
        }
        // A stride longer than the window skips the tokens between windows: never scored, yet counted in the loss.
        if (overlap != null && (overlap < 1 || overlap > seqLength)) {
            throw new IllegalArgumentException("--overlapping-eval " + overlap + " must be in [1, --seq-length "
                    + seqLength + "]");
        }
        this.tokens = tokens;
        this.seqLength = seqLength;
        this.overlap = overlap == null ? seqLength : overlap;
        this.pad = pad;
        long targets = Math.max(tokens.length - 1 - this.overlap, 0);
        this.count = (int) Math.max((targets + this.overlap - 1) / this.overlap + 1, 1);
    }

    public int size() {
        return count;
    }

    public int seqLength() {
        return seqLength;
    }

    /** Window {@code idx}: {@code input[seqLength]}, {@code target[seqLength]} and 0/1 {@code mask[seqLength]} written. */
    public void window(int idx, int[] input, int[] target, float[] mask) {
        int start = idx * overlap;
        int available = Math.max(0, Math.min(tokens.length - start, seqLength + 1));   // real tokens in the window
        for (int t = 0; t < seqLength; t++) {
            input[t] = t < available ? tokens[start + t] : pad;
            target[t] = t + 1 < available ? tokens[start + t + 1] : pad;
            mask[t] = t + 1 < available ? 1f : 0f;
        }
        if (overlap != seqLength && idx != 0) {
            for (int t = 0; t < seqLength - overlap; t++) {
                mask[t] = 0f;
            }
        }
    }
}
