package org.megatronj.io.gpt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.io.npy.NpyArray;
import org.megatronj.io.npy.NpyFile;
import org.megatronj.io.random.RandomState;

/** Index arrays against the independent NumPy reference (byte for byte, .npy headers included). */
class GptIndexBuilderTest {
    @TempDir
    Path tmp;

    @TestFactory
    List<DynamicTest> indicesEqualNumpyReferenceByteForByte() throws IOException {
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonNode c : ReferenceFixtures.cases().get("gpt")) {
            String name = c.get("name").asText();
            String split = c.get("index_split").asText();
            tests.add(DynamicTest.dynamicTest(name + "-" + split, () -> {
                int[] lengths = toInts(NpyFile.readCopy(ReferenceFixtures.file(name + "-lengths.npy")));
                int[] range = SplitMatrix.parse(c.get("split").asText()).range(splitOf(split), lengths.length);
                assertEquals(c.get("begin").asInt(), range[0]);
                assertEquals(c.get("end").asInt(), range[1]);
                Long samples = c.get("num_samples").isNull() ? null : c.get("num_samples").asLong();
                GptIndices built = GptIndexBuilder.build(new GptIndexBuilder.Request(lengths, range[0], range[1], samples,
                        c.get("seq_length").asInt(), c.get("seed").asLong(), c.get("add_extra_token").asBoolean(),
                        c.get("drop_last").asBoolean()));
                assertEquals(c.get("epochs").asInt(), built.epochs());
                assertEquals(c.get("separate").asBoolean(), built.separateFinalEpoch());
                String prefix = name + "-" + split + "-";
                assertSameBytes(prefix + "document_index.npy", built.documentIndexArray());
                assertSameBytes(prefix + "sample_index.npy", built.sampleIndexArray());
                assertSameBytes(prefix + "shuffle_index.npy", built.shuffleIndexArray());
            }));
        }
        return tests;
    }

    private void assertSameBytes(String fixture, NpyArray ours) throws IOException {
        Path written = tmp.resolve(fixture);
        NpyFile.write(written, ours);
        assertArrayEquals(Files.readAllBytes(ReferenceFixtures.file(fixture)), Files.readAllBytes(written), fixture);
    }

    static int[] toInts(NpyArray a) {
        int[] out = new int[(int) a.elementCount()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (int) a.getLong(i);
        }
        return out;
    }

    private static Split splitOf(String name) {
        for (Split s : Split.values()) {
            if (s.megatronName().equals(name)) {
                return s;
            }
        }
        throw new IllegalArgumentException(name);
    }

    @Test
    void separateLastEpochExampleOfTheFormatNotes() {
        // T = 49041, L = 128, X = 1, 1000 samples -> E = 3, S_before = 766, S_last = 234, S_per = 383, separate
        assertEquals(3, GptIndexBuilder.numEpochs(49041, 1000L, 128, 1));
        int[] lengths = {49041};
        GptIndices idx = GptIndexBuilder.build(new GptIndexBuilder.Request(lengths, 0, 1, 1000L, 128, 1234, true, true));
        assertTrue(idx.separateFinalEpoch());
        assertEquals((3 * 49041 - 1) / 128, idx.sampleCount());
        // the first 766 served samples come from the first two epochs, the rest from the last one
        for (int i = 0; i < idx.sampleCount(); i++) {
            assertEquals(i < 766, Integer.toUnsignedLong(idx.shuffleIndex()[i]) < 766, "sample " + i);
        }
        assertEquals(2, GptIndexBuilder.numEpochs(49041, 600L, 128, 1));
        GptIndices notSeparate = GptIndexBuilder.build(new GptIndexBuilder.Request(lengths, 0, 1, 700L, 128, 1234, true, true));
        assertFalse(notSeparate.separateFinalEpoch(), "700 - 383 = 317 >= 306: not separate");
    }

    @Test
    void samplesTileTheEpochsWithOneSharedToken() {
        int[] lengths = {5, 0, 7, 3, 11, 2, 9};
        GptIndices idx = GptIndexBuilder.build(new GptIndexBuilder.Request(lengths, 1, 6, 10L, 4, 5, true, true));
        long t = GptIndexBuilder.tokensPerEpoch(lengths, 1, 6);
        assertEquals(23, t);
        int[] doc = idx.documentIndex();
        long[] start = new long[doc.length + 1];
        for (int p = 0; p < doc.length; p++) {
            start[p + 1] = start[p] + lengths[doc[p]];
        }
        int[] s = idx.sampleIndex();
        for (int r = 0; r < idx.sampleCount(); r++) {
            long begin = start[s[2 * r]] + s[2 * r + 1];
            long end = start[s[2 * r + 2]] + s[2 * r + 3];
            assertEquals(4 * r, begin, "sample " + r + " start");
            assertEquals(4, end - begin);
        }
    }

    @Test
    void emptyOrTinySplitIsAClearError() {
        var e = assertThrows(IllegalArgumentException.class,
                () -> GptIndexBuilder.build(new GptIndexBuilder.Request(new int[] {3, 4}, 2, 2, 10L, 8, 1, true, true)));
        assertTrue(e.getMessage().contains("hold 0 tokens"), e.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> new GptIndexBuilder.Request(new int[] {3}, 0, 1, 1L, 1, 1, true, true));
    }

    @Test
    void documentIndexKeepsTheLastEpochAtTheEnd() {
        int[] d = GptIndexBuilder.buildDocumentIndex(10, 14, 3, true, new RandomState(3));
        int[] last = java.util.Arrays.copyOfRange(d, 8, 12);
        java.util.Arrays.sort(last);
        assertArrayEquals(new int[] {10, 11, 12, 13}, last);
    }
}
