package org.megatronj.io.gpt;

import java.util.Arrays;

/**
 * Turns a sample's raw token ids into model inputs, labels, loss mask and position ids, as
 * Megatron's {@code GPTDataset.__getitem__} and {@code _get_ltor_masks_and_position_ids} do.
 */
final class GptSampleAssembler {
    private GptSampleAssembler() {
    }

    static GptSample assemble(int[] text, GptDatasetConfig config) {
        int seq = config.sequenceLength();
        int pad = config.padId();
        int eod = config.eodId();
        int[] tokens;
        int[] labels;
        if (config.addExtraToken()) {
            tokens = Arrays.copyOfRange(text, 0, seq);
            labels = Arrays.copyOfRange(text, 1, seq + 1);
        } else {
            tokens = text.clone();
            labels = new int[seq];
            System.arraycopy(text, 1, labels, 0, seq - 1);
            labels[seq - 1] = pad;
        }
        float[] lossMask = new float[seq];
        int[] positions = new int[seq];
        int[] segments = config.resetAttentionMask() ? new int[seq] : null;
        int segmentStart = 0;
        int segment = 0;
        for (int t = 0; t < seq; t++) {
            lossMask[t] = config.eodMaskLoss() && tokens[t] == eod ? 0f : 1f;
            positions[t] = config.resetPositionIds() ? t - segmentStart : t;
            if (segments != null) {
                segments[t] = segment;
            }
            if (tokens[t] == eod) {
                // positions and attention restart after an EOD input
                segmentStart = t + 1;
                segment++;
            }
        }
        for (int t = 0; t < seq; t++) {
            if (labels[t] == pad) {
                lossMask[t] = 0f;
                labels[t] = 0;
            }
            if (tokens[t] == pad) {
                tokens[t] = 0;
            }
        }
        return new GptSample(tokens, labels, lossMask, positions, segments, text);
    }
}
