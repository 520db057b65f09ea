package org.megatronj.parallel.train;

import org.megatronj.model.MicroBatch;

/** Samples cut from a fixed, mostly predictable token stream: next = (3 * cur + 1) mod V, with a rare jump. */
final class PatternSource implements SampleSource {
    private final int vocab;
    private final int seqLength;
    private final long samples;
    private final long salt;

    PatternSource(int vocab, int seqLength, long samples, long salt) {
        this.vocab = vocab;
        this.seqLength = seqLength;
        this.samples = samples;
        this.salt = salt;
    }

    @Override
    public long size() {
        return samples;
    }

    @Override
    public MicroBatch microBatch(long first, int batchSize) {
        int n = batchSize * seqLength;
        int[] tokens = new int[n];
        int[] labels = new int[n];
        for (int r = 0; r < batchSize; r++) {
            long sample = (first + r) % samples;
            int cur = (int) ((sample * 7 + salt) % vocab);
            for (int t = 0; t < seqLength; t++) {
                int next = (sample + t) % 11 == 0 ? (cur + 5) % vocab : (3 * cur + 1) % vocab;
                tokens[r * seqLength + t] = cur;
                labels[r * seqLength + t] = next;
                cur = next;
            }
        }
        return MicroBatch.of(batchSize, seqLength, tokens, labels);
    }
}
