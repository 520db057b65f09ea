package org.megatronj.parallel.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.junit.jupiter.api.Test;
import org.megatronj.io.gpt.CacheDescription;
import org.megatronj.io.gpt.GptSample;
import org.megatronj.io.gpt.GptSampleSource;
import org.megatronj.model.MicroBatch;

class GptSamplesTest {
    /** Samples of 4 tokens; sample 1 holds {@code bad} at token position 2. */
    private static GptSampleSource source(int bad) {
        return source(bad, null);
    }

    /** As {@link #source(int)}, each sample with these attention segments (--reset-attention-mask), or none. */
    private static GptSampleSource source(int bad, int[] segments) {
        return new GptSampleSource() {
            @Override
            public long size() {
                return 3;
            }

            @Override
            public GptSample sample(long index) {
                int[] tokens = {1, 2, index == 1 ? bad : 3, 4};
                int[] labels = {2, 3, 4, 5};
                return new GptSample(tokens, labels, new float[] {1, 1, 1, 1}, new int[] {0, 1, 2, 3}, segments, null);
            }

            @Override
            public CacheDescription description() {
                return CacheDescription.of(Map.of("class", "Test"));
            }

            @Override
            public String origin(long index) {
                return "corpus_text_document, shuffled sample " + index;
            }
        };
    }

    @Test
    void idsBetweenTheTokenizerAndThePaddedSizeAreEmbeddingRowsLikeAnyOther() {
        MicroBatch batch = new GptSamples(source(63), 4, 64).microBatch(0, 3);
        assertArrayEquals(new int[] {1, 2, 3, 4, 1, 2, 63, 4, 1, 2, 3, 4}, batch.tokens());
    }

    @Test
    void anIdPastThePaddedVocabularyNamesTheSampleAndItsDataset() {
        GptSamples samples = new GptSamples(source(64), 4, 64);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> samples.microBatch(0, 3));
        assertEquals("sample 1 (corpus_text_document, shuffled sample 1) has token id 64 at position 2, outside the model's"
                + " padded vocabulary [0, 64): the dataset was tokenized with another vocabulary than this run's tokenizer"
                + " (--tokenizer-type, --vocab-file, --vocab-size), or its file is damaged", e.getMessage());
    }

    @Test
    void negativeIdsAndLabelsAreRefusedToo() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new GptSamples(source(-7), 4, 64).microBatch(1, 1));
        assertTrue(e.getMessage().startsWith("sample 1 (corpus_text_document, shuffled sample 1) has token id -7 at position 2"),
                e.getMessage());
        IllegalArgumentException labels = assertThrows(IllegalArgumentException.class,
                () -> new GptSamples(source(3), 4, 5).microBatch(0, 1));
        assertTrue(labels.getMessage().startsWith("sample 0 (corpus_text_document, shuffled sample 0) has label id 5 at position 3"),
                labels.getMessage());
    }

    @Test
    void documentsBecomeKeyStarts() {
        assertNull(new GptSamples(source(3), 4, 64).microBatch(0, 2).keyStarts());
        MicroBatch batch = new GptSamples(source(3, new int[] {0, 0, 1, 2}), 4, 64).microBatch(1, 2);
        assertArrayEquals(new int[] {0, 0, 2, 3, 0, 0, 2, 3}, batch.keyStarts());
    }
}
