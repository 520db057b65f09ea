package org.megatronj.io.gpt;

import org.megatronj.io.npy.NpyArray;

/**
 * The three index arrays of one GPT split, as Megatron caches them.
 *
 * @param documentIndex int32 {@code [E*n]}: sequence numbers, epoch after epoch, shuffled
 * @param sampleIndex int32 {@code [S+1, 2]} flattened: (document-index position, offset) where each sample starts
 * @param shuffleIndex uint32 {@code [S]} (as int bits): the order samples are served in
 * @param epochs number of epochs {@code E}
 * @param tokensPerEpoch tokens in one pass over the split
 * @param separateFinalEpoch whether the last epoch was shuffled on its own
 */
public record GptIndices(int[] documentIndex, int[] sampleIndex, int[] shuffleIndex, int epochs, long tokensPerEpoch,
                         boolean separateFinalEpoch) {

    /** Number of samples {@code S}. */
    public int sampleCount() {
        return sampleIndex.length / 2 - 1;
    }

    public NpyArray documentIndexArray() {
        return NpyArray.ofInt32(documentIndex);
    }

    public NpyArray sampleIndexArray() {
        return NpyArray.ofInt32(sampleIndex).reshape(sampleIndex.length / 2, 2);
    }

    public NpyArray shuffleIndexArray() {
        return NpyArray.ofUint32(shuffleIndex);
    }
}
