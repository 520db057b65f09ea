package org.megatronj.io.gpt;

import java.util.Objects;

import org.megatronj.io.indexed.TokenSequences;
import org.megatronj.io.random.Pcg64;

/**
 * The data behind {@code --mock-data}: Megatron-LM's {@code MockGPTLowLevelDataset}
 * (megatron/core/datasets/gpt_dataset.py). 100,000 sequences whose lengths are
 * {@code numpy.random.default_rng(seed=0).integers(low=1, high=4096, size=100000, dtype=int32)};
 * sequence {@code i} of length {@code n} is {@code (1, 2, ..., n-1) % vocabSize} followed by the EOD id.
 * Tokens are computed when read, never stored (the sequences hold about 200 million tokens).
 */
public final class MockGptLowLevelDataset implements TokenSequences {
    /** Megatron's hard-coded {@code size}, {@code seed} and {@code max_sequence_length} (an exclusive bound). */
    public static final int SIZE = 100_000;
    static final long SEED = 0;
    static final int MAX_SEQUENCE_LENGTH = 4096;

    private final int vocabSize;
    private final int eodId;
    private final int[] lengths;

    /**
     * @param vocabSize the tokenizer's {@code vocab_size} (unpadded)
     * @param eodId the tokenizer's {@code eod}
     */
    public MockGptLowLevelDataset(int vocabSize, int eodId) {
        if (vocabSize <= 0) {
            throw new IllegalArgumentException("mock data needs a tokenizer vocabulary of at least 1 token, got " + vocabSize);
        }
        this.vocabSize = vocabSize;
        this.eodId = eodId;
        this.lengths = new Pcg64(SEED).integers(1, MAX_SEQUENCE_LENGTH, SIZE);
    }

    @Override
    public int sequenceCount() {
        return SIZE;
    }

    @Override
    public int sequenceLength(int i) {
        return lengths[Objects.checkIndex(i, SIZE)];
    }

    @Override
    public int[] sequenceLengths() {
        return lengths.clone();
    }

    @Override
    public void readTokens(int sequence, int offset, int length, int[] dst, int dstOffset) {
        int n = sequenceLength(sequence);
        if (offset < 0 || length < 0 || (long) offset + length > n) {
            throw new IndexOutOfBoundsException("tokens [" + offset + ", " + ((long) offset + length) + ") of mock sequence "
                    + sequence + ": the sequence has " + n + " tokens");
        }
        Objects.checkFromIndexSize(dstOffset, length, dst.length);
        for (int k = 0; k < length; k++) {
            int position = offset + k;
            dst[dstOffset + k] = position == n - 1 ? eodId : (position + 1) % vocabSize;
        }
    }
}
