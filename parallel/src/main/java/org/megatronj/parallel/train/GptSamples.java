package org.megatronj.parallel.train;

import org.megatronj.io.gpt.GptSample;
import org.megatronj.io.gpt.GptSampleSource;
import org.megatronj.model.MicroBatch;

/**
 * A split of the GPT dataset (io's samples, already shuffled) as micro-batches for the trainer.
 * Every token and label is checked against the model's (padded) vocabulary as its sample is read,
 * so a dataset tokenized with another vocabulary fails naming the sample and its dataset, before
 * the embedding would fail naming only a position in a batch. Ids between the tokenizer's size and
 * the padded size are rows of the embedding like any other, and pass, as in Megatron. With
 * {@code --reset-attention-mask} the samples' documents become the micro-batch's key starts.
 */
public final class GptSamples implements SampleSource {
    private final GptSampleSource source;
    private final int seqLength;
    private final int vocabLimit;

    /** {@code vocabLimit}: the model's padded vocabulary size (the embedding's rows); ids must lie in {@code [0, vocabLimit)}. */
    public GptSamples(GptSampleSource source, int seqLength, int vocabLimit) {
        if (source.size() <= 0) {
            throw new IllegalArgumentException("dataset split " + source.description() + " has no samples");
        }
        if (vocabLimit <= 0) {
            throw new IllegalArgumentException("vocabulary size " + vocabLimit + ": expected > 0");
        }
        this.source = source;
        this.seqLength = seqLength;
        this.vocabLimit = vocabLimit;
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
        int[] keyStarts = null;   // with --reset-attention-mask; a sample without documents keeps starts 0
        for (int r = 0; r < batchSize; r++) {
            long index = Math.floorMod(first + r, source.size());
            GptSample s = source.sample(index);
            if (s.tokens().length != seqLength) {
                throw new IllegalStateException("sample " + index + " (" + source.origin(index) + ") has " + s.tokens().length
                        + " tokens, expected --seq-length " + seqLength);
            }
            checkIds(index, "token", s.tokens());
            checkIds(index, "label", s.labels());
            System.arraycopy(s.tokens(), 0, tokens, r * seqLength, seqLength);
            System.arraycopy(s.labels(), 0, labels, r * seqLength, seqLength);
            System.arraycopy(s.lossMask(), 0, mask, r * seqLength, seqLength);
            System.arraycopy(s.positionIds(), 0, positions, r * seqLength, seqLength);
            int[] starts = s.keyStarts();
            if (starts != null) {
                keyStarts = keyStarts == null ? new int[n] : keyStarts;
                System.arraycopy(starts, 0, keyStarts, r * seqLength, seqLength);
            }
        }
        return new MicroBatch(batchSize, seqLength, tokens, labels, mask, positions, keyStarts);
    }

    private void checkIds(long index, String what, int[] ids) {
        for (int p = 0; p < ids.length; p++) {
            if (ids[p] < 0 || ids[p] >= vocabLimit) {
                throw new IllegalArgumentException("sample " + index + " (" + source.origin(index) + ") has " + what + " id "
                        + ids[p] + " at position " + p + ", outside the model's padded vocabulary [0, " + vocabLimit
                        + "): the dataset was tokenized with another vocabulary than this run's tokenizer (--tokenizer-type,"
                        + " --vocab-file, --vocab-size), or its file is damaged");
            }
        }
    }
}
