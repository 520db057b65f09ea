package org.megatronj.io.indexed;

/**
 * What GPT sampling reads from its data (Megatron's "low-level dataset"): how many token sequences
 * there are, their lengths and their tokens. {@link IndexedDataset} reads them from {@code .bin/.idx}
 * files; the mock GPT data of {@code --mock-data} generates them.
 */
public interface TokenSequences {
    /** N: the number of sequences. */
    int sequenceCount();

    int sequenceLength(int i);

    /** A copy of all N sequence lengths. */
    int[] sequenceLengths();

    /** Copies tokens {@code [offset, offset + length)} of a sequence into {@code dst} at {@code dstOffset}. */
    void readTokens(int sequence, int offset, int length, int[] dst, int dstOffset);
}
