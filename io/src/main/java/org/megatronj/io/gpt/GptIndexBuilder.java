package org.megatronj.io.gpt;

import org.megatronj.io.random.RandomState;

/**
 * Builds the document, sample and shuffle indices of one GPT split exactly as Megatron-LM's
 * {@code GPTDataset._build_document_sample_shuffle_indices} and {@code helpers.cpp build_sample_idx}
 * do, so that the arrays are byte-identical to Megatron's cached {@code .npy} files.
 *
 * <ul>
 *   <li>Epochs: the fewest {@code E >= 1} with {@code E*T >= S_req*L + X} ({@code T} tokens per epoch,
 *       {@code X} = 1 with the extra label token), or 1 without a requested count.</li>
 *   <li>Separate last epoch: when {@code E > 1} and the last epoch serves fewer than 80% of an epoch's
 *       samples, it is shuffled on its own so its documents stay at the end.</li>
 *   <li>One NumPy {@code RandomState(seed)} per split: document-index shuffle(s) first, then
 *       shuffle-index shuffle(s).</li>
 * </ul>
 * Works on plain int arrays: the whole dataset's sequence lengths and the split's range of sequences.
 */
public final class GptIndexBuilder {
    /** Megatron's {@code threshold = 0.80} for separating the last epoch. */
    private static final double SEPARATE_LAST_EPOCH_THRESHOLD = 0.80;
    private static final long MAX_JAVA_ARRAY = Integer.MAX_VALUE - 8;

    private GptIndexBuilder() {
    }

    /** What the indices are built from; {@code requestedSamples} null means "one epoch". */
    public record Request(int[] sequenceLengths, int begin, int end, Long requestedSamples, int sequenceLength,
                          long seed, boolean addExtraToken, boolean dropLastPartialSequence) {
        public Request {
            if (begin < 0 || end > sequenceLengths.length || begin > end) {
                throw new IllegalArgumentException("sequence range [" + begin + ", " + end + ") is outside the dataset's "
                        + sequenceLengths.length + " sequences");
            }
            if (sequenceLength < 2) {
                throw new IllegalArgumentException("--seq-length must be at least 2 (Megatron asserts seq_length > 1), got " + sequenceLength);
            }
            if (requestedSamples != null && requestedSamples < 0) {
                throw new IllegalArgumentException("requested sample count must be >= 0, got " + requestedSamples);
            }
        }

        int extraTokens() {
            return addExtraToken ? 1 : 0;
        }
    }

    /** Builds all three indices for one split. */
    public static GptIndices build(Request r) {
        long tokensPerEpoch = tokensPerEpoch(r.sequenceLengths(), r.begin(), r.end());
        if (tokensPerEpoch <= 1) {
            throw new IllegalArgumentException("the split's sequences [" + r.begin() + ", " + r.end() + ") hold " + tokensPerEpoch
                    + " tokens; at least 2 are needed to build a sample (Megatron would loop forever or assert here). "
                    + "Give the split a larger share in --split, use a larger dataset, or set its weight to 0");
        }
        int epochs = numEpochs(tokensPerEpoch, r.requestedSamples(), r.sequenceLength(), r.extraTokens());
        int x = r.extraTokens();
        int seqLength = r.sequenceLength();
        boolean separate = false;
        long samplesSansFinalEpoch = 0;
        if (epochs > 1) {
            samplesSansFinalEpoch = ((epochs - 1) * tokensPerEpoch - x) / seqLength;
            long samplesFromFinalEpoch = r.requestedSamples() - samplesSansFinalEpoch;
            long samplesPerEpoch = (tokensPerEpoch - x) / seqLength;
            if (samplesFromFinalEpoch < 0 || samplesFromFinalEpoch > samplesPerEpoch + 1) {
                throw new IllegalStateException("samples from the final epoch (" + samplesFromFinalEpoch + ") outside [0, "
                        + (samplesPerEpoch + 1) + "]: Megatron asserts here");
            }
            separate = samplesFromFinalEpoch < (long) (SEPARATE_LAST_EPOCH_THRESHOLD * samplesPerEpoch);
        }

        RandomState rng = new RandomState(r.seed());
        int[] documentIndex = buildDocumentIndex(r.begin(), r.end(), epochs, separate, rng);
        int[] sampleIndex = buildSampleIndex(r.sequenceLengths(), documentIndex, seqLength, epochs, tokensPerEpoch,
                r.dropLastPartialSequence(), x);
        long samples = sampleIndex.length / 2 - 1;
        int[] shuffleIndex = buildShuffleIndex(separate ? samplesSansFinalEpoch : samples, samples, rng);
        return new GptIndices(documentIndex, sampleIndex, shuffleIndex, epochs, tokensPerEpoch, separate);
    }

    /** Sum of the sequence lengths in {@code [begin, end)}. */
    public static long tokensPerEpoch(int[] lengths, int begin, int end) {
        long t = 0;
        for (int i = begin; i < end; i++) {
            t += lengths[i];
        }
        return t;
    }

    /** The fewest epochs {@code E >= 1} with {@code E*T >= S*L + X}; 1 when no count is requested. */
    public static int numEpochs(long tokensPerEpoch, Long requestedSamples, int sequenceLength, int extraTokens) {
        if (requestedSamples == null) {
            return 1;
        }
        long needed = Math.addExact(Math.multiplyExact(requestedSamples, (long) sequenceLength), extraTokens);
        long epochs = Math.max(1, (needed + tokensPerEpoch - 1) / tokensPerEpoch);
        if (epochs > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(requestedSamples + " samples of " + sequenceLength + " tokens need " + epochs
                    + " epochs over " + tokensPerEpoch + " tokens; more than int32 (Megatron passes num_epochs as int32)");
        }
        return (int) epochs;
    }

    /**
     * {@code _build_document_index}: the range repeated {@code epochs} times and shuffled as one
     * array, or — separating the last epoch — {@code epochs-1} repetitions shuffled, then one more
     * epoch shuffled on its own, concatenated.
     */
    public static int[] buildDocumentIndex(int begin, int end, int epochs, boolean separateFinalEpoch, RandomState rng) {
        int n = end - begin;
        long total = (long) n * epochs;
        if (total > MAX_JAVA_ARRAY) {
            throw new IllegalArgumentException("the document index would hold " + total + " entries (" + n + " sequences x "
                    + epochs + " epochs), more than a Java array can hold (2^31-9)");
        }
        int[] index = new int[(int) total];
        for (int e = 0; e < epochs; e++) {
            int base = e * n;
            for (int i = 0; i < n; i++) {
                index[base + i] = begin + i;
            }
        }
        if (!separateFinalEpoch || epochs == 1) {
            rng.shuffle(index, 0, index.length);
        } else {
            int firstPart = n * (epochs - 1);
            rng.shuffle(index, 0, firstPart);
            rng.shuffle(index, firstPart, n);
        }
        return index;
    }

    /**
     * {@code helpers.cpp build_sample_idx}: row {@code r} of the flat {@code [S+1, 2]} result is the
     * (position in the document index, token offset in that sequence) where sample {@code r} starts.
     * Each sample spans {@code L + X} tokens and the next starts {@code X} tokens before this one ends.
     */
    public static int[] buildSampleIndex(int[] lengths, int[] documentIndex, int seqLength, int epochs, long tokensPerEpoch,
                                         boolean dropLastPartialSequence, int extraTokens) {
        long numSamples = numSamples(epochs, tokensPerEpoch, seqLength, dropLastPartialSequence, extraTokens);
        if (2 * (numSamples + 1) > MAX_JAVA_ARRAY) {
            throw new IllegalArgumentException("the sample index would hold " + (numSamples + 1) + " rows, more than a Java array can hold");
        }
        int[] sampleIndex = new int[(int) (2 * (numSamples + 1))];
        // the lengths in document-index order: one pass of independent random reads up front
        int[] ordered = new int[documentIndex.length];
        for (int p = 0; p < ordered.length; p++) {
            ordered[p] = lengths[documentIndex[p]];
        }
        int position = 0;
        int offset = 0;
        int last = documentIndex.length - 1;
        // row 0 is (0, 0): the array starts zeroed
        for (int row = 1; row <= numSamples; row++) {
            int remaining = seqLength + extraTokens;
            while (remaining != 0) {
                int length = ordered[position] - offset;
                remaining -= length;
                if (remaining <= 0) {
                    offset += remaining + length - extraTokens;
                    remaining = 0;
                } else {
                    if (position == last) {
                        offset = ordered[position] - extraTokens;
                        break;
                    }
                    position++;
                    offset = 0;
                }
            }
            sampleIndex[2 * row] = position;
            sampleIndex[2 * row + 1] = offset;
        }
        return sampleIndex;
    }

    /**
     * Samples in {@code epochs} epochs: {@code (E*T - X) / L}, or with the last partial sequence kept
     * (validation only) {@code ceil} of the same quotient computed in C {@code float}, as helpers.cpp does.
     */
    public static long numSamples(int epochs, long tokensPerEpoch, int seqLength, boolean dropLastPartialSequence, int extraTokens) {
        long tokens = epochs * tokensPerEpoch - extraTokens;
        if (dropLastPartialSequence) {
            return tokens / seqLength;
        }
        return (long) Math.ceil((float) tokens / (float) seqLength);
    }

    /**
     * {@code _build_shuffle_index}: {@code 0..first-1} shuffled, then (when {@code first < total})
     * {@code first..total-1} shuffled on its own; values held as uint32 bits.
     */
    public static int[] buildShuffleIndex(long first, long total, RandomState rng) {
        if (total > MAX_JAVA_ARRAY) {
            throw new IllegalArgumentException("the shuffle index would hold " + total + " entries, more than a Java array can hold");
        }
        int[] index = new int[(int) total];
        for (int i = 0; i < index.length; i++) {
            index[i] = i;
        }
        rng.shuffle(index, 0, (int) first);
        if (first < total) {
            rng.shuffle(index, (int) first, (int) (total - first));
        }
        return index;
    }
}
