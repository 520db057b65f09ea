package org.megatronj.io.gpt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.io.indexed.IndexedDataset;
import org.megatronj.io.indexed.IndexedDatasetBuilder;
import org.megatronj.io.indexed.IndexedDtype;

class GptDatasetTest {
    static final int EOD = 99;
    private static final TokenizerIdentity TOKENIZER = TokenizerIdentity.nullTokenizer(TokenizerIdentity.Style.MAIN, 100, null, -1);

    @TempDir
    Path dir;

    /** Sequences of lengths {@code lengths}; token k of sequence s is (s*7 + k) % 90, and the last is the EOD. */
    static Path writeDataset(Path prefix, int[] lengths) throws IOException {
        try (IndexedDatasetBuilder b = new IndexedDatasetBuilder(prefix, IndexedDtype.UINT16)) {
            for (int s = 0; s < lengths.length; s++) {
                int[] t = new int[lengths[s]];
                for (int k = 0; k < t.length; k++) {
                    t[k] = k == t.length - 1 ? EOD : (s * 7 + k) % 90;
                }
                b.addSequence(t, 0, t.length);
                b.endDocument();
            }
            b.finish();
        }
        return prefix;
    }

    static int[] randomLengths(int n, long seed) {
        Random r = new Random(seed);
        int[] lengths = new int[n];
        for (int i = 0; i < n; i++) {
            lengths[i] = 1 + r.nextInt(40);
        }
        return lengths;
    }

    @Test
    void buildsCachesAndReloadsTheSameSamples() throws IOException {
        int[] lengths = randomLengths(60, 1);
        Path prefix = writeDataset(dir.resolve("corpus_text_document"), lengths);
        Path cacheDir = dir.resolve("cache");
        GptDatasetConfig config = GptDatasetConfig.of(1234, 16, "90,10", TOKENIZER, EOD).withCache(cacheDir);
        try (IndexedDataset indexed = IndexedDataset.open(prefix)) {
            int[] range = config.splitMatrix().range(Split.TRAIN, indexed.sequenceCount());
            int[] firstText;
            try (GptDataset d = GptDataset.open(indexed, prefix.toString(), range, 200L, Split.TRAIN, config)) {
                assertFalse(d.loadedFromCache());
                assertTrue(d.size() >= 200);
                for (String affix : List.of("description.txt", "document_index.npy", "sample_index.npy", "shuffle_index.npy")) {
                    Path f = cacheDir.resolve(d.description().md5() + "-GPTDataset-train-" + affix);
                    assertTrue(Files.isRegularFile(f), f.toString());
                }
                assertEquals(d.description().text(), Files.readString(d.cache().descriptionFile()));
                firstText = d.text(0);
                checkSamplesAreTheFlattenedStream(d, lengths, indexed);
            }
            try (GptDataset again = GptDataset.open(indexed, prefix.toString(), range, 200L, Split.TRAIN, config)) {
                assertTrue(again.loadedFromCache());
                assertArrayEquals(firstText, again.text(0));
            }
        }
    }

    /** Every sample is L+1 consecutive tokens of the epoch-ordered token stream, starting at r*L. */
    private static void checkSamplesAreTheFlattenedStream(GptDataset d, int[] lengths, IndexedDataset indexed) {
        long docs = d.documentIndex().elementCount();
        int total = 0;
        for (long p = 0; p < docs; p++) {
            total += lengths[(int) d.documentIndex().getLong(p)];
        }
        int[] stream = new int[total];
        int at = 0;
        for (long p = 0; p < docs; p++) {
            int s = (int) d.documentIndex().getLong(p);
            indexed.readTokens(s, 0, lengths[s], stream, at);
            at += lengths[s];
        }
        for (long i = 0; i < d.size(); i++) {
            long j = d.shuffleIndex().getLong(i);
            int[] text = d.text(i);
            assertArrayEquals(java.util.Arrays.copyOfRange(stream, (int) (j * 16), (int) (j * 16 + 17)), text, "sample " + i);
        }
    }

    @Test
    void masksAndPositionsFollowMegatron() {
        int[] text = {1, 2, EOD, 3, 4, EOD, 5, 6, 7};
        GptDatasetConfig plain = GptDatasetConfig.of(1, 8, "1", TOKENIZER, EOD);
        GptSample s = GptSampleAssembler.assemble(text, plain);
        assertArrayEquals(new int[] {1, 2, EOD, 3, 4, EOD, 5, 6}, s.tokens());
        assertArrayEquals(new int[] {2, EOD, 3, 4, EOD, 5, 6, 7}, s.labels());
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 5, 6, 7}, s.positionIds());
        assertArrayEquals(new float[] {1, 1, 1, 1, 1, 1, 1, 1}, s.lossMask());
        assertNull(s.attentionSegments());
        assertTrue(s.attends(5, 0));

        GptSample r = GptSampleAssembler.assemble(text, plain.withMasks(true, true, true));
        assertArrayEquals(new int[] {0, 1, 2, 0, 1, 2, 0, 1}, r.positionIds());
        assertArrayEquals(new float[] {1, 1, 0, 1, 1, 0, 1, 1}, r.lossMask());
        assertArrayEquals(new int[] {0, 0, 0, 1, 1, 1, 2, 2}, r.attentionSegments());
        assertTrue(r.attends(2, 0));
        assertFalse(r.attends(3, 2), "no attention across an EOD");
        assertFalse(r.attends(1, 2), "causal");
        assertArrayEquals(new int[] {0, 0, 0, 3, 3, 3, 6, 6}, r.keyStarts(), "the first key each position attends");
        assertNull(s.keyStarts());

        int[] padded = {1, 2, 3, -1, -1};
        GptSample p = GptSampleAssembler.assemble(padded, GptDatasetConfig.of(1, 4, "1", TOKENIZER, EOD));
        assertArrayEquals(new int[] {1, 2, 3, 0}, p.tokens());
        assertArrayEquals(new int[] {2, 3, 0, 0}, p.labels());
        assertArrayEquals(new float[] {1, 1, 0, 0}, p.lossMask());

    }

    /**
     * {@code --dataloader-inter-document-masking}: the sample's document pieces, not its EOD tokens, bound
     * attention and restart positions; the extra token leaves the last piece, padding joins the last document.
     */
    @Test
    void interDocumentMaskingFollowsTheDocumentPieces() {
        GptDatasetConfig config = GptDatasetConfig.of(1, 8, "1", TOKENIZER, EOD).withInterDocumentMasking(true);
        int[] text = {1, 2, 3, 4, EOD, 5, 6, 7, 8};   // an EOD inside the second piece does not split it
        GptSample s = GptSampleAssembler.assemble(text, config, new int[] {3, 5, 1});
        assertArrayEquals(new int[] {0, 0, 0, 1, 1, 1, 1, 1}, s.attentionSegments());
        assertArrayEquals(new int[] {0, 1, 2, 0, 1, 2, 3, 4}, s.positionIds());
        assertArrayEquals(new int[] {0, 0, 0, 3, 3, 3, 3, 3}, s.keyStarts());
        GptSample longLast = GptSampleAssembler.assemble(text, config, new int[] {6, 3});   // the extra token ends piece 2
        assertArrayEquals(new int[] {0, 0, 0, 0, 0, 0, 1, 1}, longLast.attentionSegments());
        int[] padded = {1, 2, 3, 4, 5, -1, -1, -1, -1};
        GptSample p = GptSampleAssembler.assemble(padded, config, new int[] {2, 3});
        assertArrayEquals(new int[] {0, 0, 1, 1, 1, 1, 1, 1}, p.attentionSegments(), "padding joins the last document");
        assertArrayEquals(new int[] {0, 1, 0, 1, 2, 3, 4, 5}, p.positionIds());
    }

    /** On documents that each end with an EOD, inter-document masking gives what --reset-attention-mask and --reset-position-ids give. */
    @Test
    void interDocumentMaskingMatchesEodMasksOnDocumentsEndingWithEod() throws IOException {
        Path prefix = writeDataset(dir.resolve("docs_text_document"), randomLengths(50, 4));
        GptDatasetConfig base = GptDatasetConfig.of(1234, 16, "100", TOKENIZER, EOD).withCache(dir.resolve("cache"));
        try (IndexedDataset indexed = IndexedDataset.open(prefix)) {
            int[] range = base.splitMatrix().range(Split.TRAIN, indexed.sequenceCount());
            try (GptDataset byDocuments = GptDataset.open(indexed, prefix.toString(), range, 60L, Split.TRAIN,
                    base.withInterDocumentMasking(true));
                 GptDataset byEod = GptDataset.open(indexed, prefix.toString(), range, 60L, Split.TRAIN,
                         base.withMasks(true, true, false))) {
                for (long i = 0; i < byDocuments.size(); i++) {
                    GptSample d = byDocuments.sample(i);
                    GptSample e = byEod.sample(i);
                    assertArrayEquals(e.tokens(), d.tokens(), "sample " + i);
                    assertArrayEquals(e.attentionSegments(), d.attentionSegments(), "sample " + i);
                    assertArrayEquals(e.positionIds(), d.positionIds(), "sample " + i);
                }
            }
        }
    }

    @Test
    void noExtraTokenShiftsWithinTheSample() {
        GptDatasetConfig config = GptDatasetConfig.of(1, 4, "1", TOKENIZER, EOD).withExtraToken(false);
        GptSample s = GptSampleAssembler.assemble(new int[] {5, 6, 7, 8}, config);
        assertArrayEquals(new int[] {5, 6, 7, 8}, s.tokens());
        assertArrayEquals(new int[] {6, 7, 8, 0}, s.labels());
        assertArrayEquals(new float[] {1, 1, 1, 0}, s.lossMask());
    }

    @Test
    void factoryBuildsSplitsAndBlends() throws IOException {
        Path a = writeDataset(dir.resolve("a"), randomLengths(80, 2));
        Path b = writeDataset(dir.resolve("b"), randomLengths(50, 3));
        Path cache = dir.resolve("cache");
        GptDatasetConfig config = GptDatasetConfig.of(1234, 8, "90,10", TOKENIZER, EOD).withCache(cache);
        Long[] sizes = {300L, 40L, 10L};
        try (GptDataSplits splits = GptDatasetFactory.build(GptDatasetFactory.Sources.of(
                DataBlend.parse(List.of("0.3", a.toString(), "0.7", b.toString()))), sizes, config)) {
            GptSampleSource train = splits.get(Split.TRAIN);
            assertNotNull(train);
            assertEquals(300, train.size(), "ceil(300*0.3) + ceil(300*0.7)");
            assertEquals(40, splits.get(Split.VALID).size());
            assertNull(splits.get(Split.TEST));
            assertEquals(4, splits.gptDatasets().size());
            assertEquals(91L, splits.gptDatasets().get(0).description().identifiers().get("num_samples"), "ceil(ceil(90) * 1.005)");
            BlendedDataset blended = (BlendedDataset) train;
            assertTrue(Files.isRegularFile(blended.cache().file("dataset_index.npy")));
            assertEquals(8, train.sample(5).tokens().length);
            assertTrue(train.origin(0).startsWith("blend dataset"));
        }
        try (GptDataSplits single = GptDatasetFactory.build(GptDatasetFactory.Sources.of(DataBlend.parse(List.of(a.toString()))),
                sizes, config)) {
            assertTrue(single.get(Split.TRAIN) instanceof GptDataset);
            assertTrue(((GptDataset) single.get(Split.TRAIN)).size() >= 300);
        }
        GptDatasetConfig perSplitConfig = GptDatasetConfig.of(1234, 8, null, TOKENIZER, EOD).withCache(cache);
        try (GptDataSplits perSplit = GptDatasetFactory.build(GptDatasetFactory.Sources.perSplit(
                DataBlend.parse(List.of(a.toString())), DataBlend.parse(List.of(b.toString())), null), sizes, perSplitConfig)) {
            GptDataset valid = (GptDataset) perSplit.get(Split.VALID);
            // the whole of dataset b (50 sequences), every sequence equally often
            long[] seen = new long[50];
            for (long p = 0; p < valid.documentIndex().elementCount(); p++) {
                seen[(int) valid.documentIndex().getLong(p)]++;
            }
            for (long count : seen) {
                assertEquals(valid.documentIndex().elementCount() / 50, count);
            }
            assertNull(perSplit.get(Split.TEST));
            assertTrue(valid.description().text().contains("\"split\": null,\n    \"split_matrix\": null"));
        }
    }

    @Test
    void emptySplitIsAClearError() throws IOException {
        Path a = writeDataset(dir.resolve("tiny"), randomLengths(50, 4));
        GptDatasetConfig config = GptDatasetConfig.of(1234, 8, "949,50,1", TOKENIZER, EOD).withCache(dir.resolve("c"));
        var e = assertThrows(IllegalArgumentException.class, () -> GptDatasetFactory.build(
                GptDatasetFactory.Sources.of(DataBlend.parse(List.of(a.toString()))), new Long[] {10L, 10L, 10L}, config));
        assertTrue(e.getMessage().contains("test split of " + a + " is empty"), e.getMessage());
        assertTrue(e.getMessage().contains("[50, 50) of 50"), e.getMessage());
    }

    @Test
    void dataPathParsing() {
        DataBlend w = DataBlend.parse(List.of("30", "x", "70", " y "));
        assertArrayEquals(new double[] {30, 70}, w.weights());
        assertEquals(List.of("x", "y"), w.prefixes());
        assertNull(DataBlend.parse(List.of("x", "y")).weights());
        assertNull(DataBlend.parse(List.of("x")).weights());
        assertThrows(IllegalArgumentException.class, () -> DataBlend.parse(List.of("0.5", "x", "y", "z")));
        var negative = assertThrows(IllegalArgumentException.class, () -> DataBlend.parse(List.of("-1", "x", "2", "y")));
        assertEquals("data path weight -1.0 of x must be a finite number > 0", negative.getMessage());
        var zero = assertThrows(IllegalArgumentException.class, () -> DataBlend.parse(List.of("1", "x", "0", "y")));
        assertEquals("data path weight 0.0 of y must be a finite number > 0 (to leave a dataset out, drop it from the list)", zero.getMessage());
        assertTrue(DataBlend.isPythonFloat("1e-3") && DataBlend.isPythonFloat(".5") && !DataBlend.isPythonFloat("1f"));
    }
}
