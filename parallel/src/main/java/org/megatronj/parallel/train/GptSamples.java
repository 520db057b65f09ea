package org.megatronj.parallel.train;

import org.megatronj.io.gpt.GptSample;
import org.megatronj.io.gpt.GptSampleSource;
import org.megatronj.model.MicroBatch;

/** A split of the GPT dataset (io's samples, already shuffled) as micro-batches for the trainer. */
public final class GptSamples implements SampleSource {
    private final GptSampleSource source;
    private final int seqLength;

    public GptSamples(GptSampleSource source, int seqLength) {
        if (source.size() <= 0) {
            throw new IllegalArgumentException("dataset split " + source.description() + " has no samples");
        }
        this.source = source;
        this.seqLength = seqLength;
    }

    @Override
    public long size() {
        return source.size();
    }

    @Override
    public MicroBatch microBatch(long first, int batchSize) {
        int n = batchSize * seqLength;
        int[] tokens = new int[n];
        int[] labels = new int[n];
        float[] mask = new float[n];
        int[] positions = new int[n];
        for (int r = 0; r < batchSize; r++) {
            long index = Math.floorMod(first + r, source.size());
            GptSample s = source.sample(index);
            if (s.tokens().length != seqLength) {
                throw new IllegalStateException("sample " + index + " (" + source.origin(index) + ") has " + s.tokens().length
                        + " tokens, expected --seq-length " + seqLength);
            }
            if (s.attentionSegments() != null) {
                throw new IllegalArgumentException("--reset-attention-mask is not supported by the GPT model yet (it attends causally"
                        + " across documents); train without it");
            }
            System.arraycopy(s.tokens(), 0, tokens, r * seqLength, seqLength);
            System.arraycopy(s.labels(), 0, labels, r * seqLength, seqLength);
            System.arraycopy(s.lossMask(), 0, mask, r * seqLength, seqLength);
            System.arraycopy(s.positionIds(), 0, positions, r * seqLength, seqLength);
        }
        return new MicroBatch(batchSize, seqLength, tokens, labels, mask, positions);
    }
}
