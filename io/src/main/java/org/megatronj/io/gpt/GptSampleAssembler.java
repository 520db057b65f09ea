package org.megatronj.io.gpt;

import java.util.Arrays;

/**
 * Turns a sample's raw token ids into model inputs, labels, loss mask and position ids, as
 * Megatron's {@code GPTDataset.__getitem__} and {@code _get_ltor_masks_and_position_ids} do; with
 * {@code --dataloader-inter-document-masking}, the documents of the sample (Megatron's
 * {@code document_lengths} and {@code cu_seqlens}) become its attention segments and restart its positions.
 */
final class GptSampleAssembler {
    private GptSampleAssembler() {
    }

    static GptSample assemble(int[] text, GptDatasetConfig config) {
        return assemble(text, config, null);
    }

    /**
     * {@code documentLengths}: the tokens the sample's text takes from each document it spans, in order
     * (read with {@code --dataloader-inter-document-masking}, else null).
     */
    static GptSample assemble(int[] text, GptDatasetConfig config, int[] documentLengths) {
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
        if (config.interDocumentMasking()) {
            segments = new int[seq];
            documents(documentLengths, seq, config.extraTokens(), segments, positions);
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

    /**
     * The document of each of the {@code seq} input positions, and its position within that document, from
     * the lengths of the sample's document pieces as Megatron's {@code inter_document_masking} forms its
     * {@code cu_seqlens}: the extra token leaves the last piece (which goes if it was only that), and
     * padding joins the last document.
     */
    private static void documents(int[] lengths, int seq, int extra, int[] segments, int[] positions) {
        if (lengths == null) {
            throw new IllegalArgumentException("--dataloader-inter-document-masking needs the sample's document lengths");
        }
        int[] docs = Arrays.copyOf(lengths, lengths.length);
        int n = docs.length;
        if (extra > 0 && n > 0) {
            docs[n - 1] -= extra;
            if (docs[n - 1] == 0) {
                n--;
            }
        }
        int sum = 0;
        for (int i = 0; i < n; i++) {
            sum += docs[i];
        }
        if (sum < seq) {   // a padded sample
            if (n == 0) {
                docs = new int[] {0};
                n = 1;
            }
            docs[n - 1] += seq - sum;
        }
        int t = 0;
        for (int d = 0; d < n && t < seq; d++) {
            for (int k = 0; k < docs[d] && t < seq; k++, t++) {
                segments[t] = d;
                positions[t] = k;
            }
        }
    }
}
