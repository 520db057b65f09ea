package org.megatronj.io.gpt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.IntStream;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code --mock-data}: Megatron's MockGPTLowLevelDataset and MockGPTDataset, against {@code make_mock_fixtures.py}. */
class MockGptDatasetTest {
    @TempDir
    Path dir;

    private static final TokenizerIdentity NULL_1000 = TokenizerIdentity.nullTokenizer(TokenizerIdentity.Style.MAIN, 1000, null, -1);

    @Test
    void sequencesAreMegatronsCountingRunsEndingInEod() {
        MockGptLowLevelDataset d = new MockGptLowLevelDataset(50257, 50256);
        assertEquals(100_000, d.sequenceCount());
        // numpy.random.default_rng(seed=0).integers(low=1, high=4096, size=100000, dtype=numpy.int32)[:8]
        assertArrayEquals(new int[] {3484, 2609, 2094, 1105, 1261, 168, 309, 68}, IntStream.range(0, 8).map(d::sequenceLength).toArray());
        int[] first = new int[3484];
        d.readTokens(0, 0, first.length, first, 0);
        for (int k = 0; k < 3483; k++) {
            assertEquals(k + 1, first[k], "token " + k);
        }
        assertEquals(50256, first[3483]);
        int[] tail = new int[5];
        d.readTokens(7, 65, 3, tail, 2);   // sequence 7 has 68 tokens: 66, 67, EOD
        assertArrayEquals(new int[] {0, 0, 66, 67, 50256}, tail);
        assertThrows(IndexOutOfBoundsException.class, () -> d.readTokens(7, 66, 3, tail, 0));
    }

    @Test
    void tokensWrapAtTheVocabularySize() {
        MockGptLowLevelDataset d = new MockGptLowLevelDataset(1001, 1000);
        int[] t = new int[4];
        d.readTokens(0, 998, 4, t, 0);   // positions 998..1001 hold 999 % 1001 .. 1002 % 1001
        assertArrayEquals(new int[] {999, 1000, 0, 1}, t);
    }

    @Test
    void samplesEqualMegatronsMockGptDataset() throws IOException {
        JsonNode fixtures;
        try (InputStream in = MockGptDatasetTest.class.getResourceAsStream("mock-fixtures.json")) {
            fixtures = new ObjectMapper().readTree(in);
        }
        for (JsonNode c : fixtures.get("cases")) {
            Split split = Split.valueOf(c.get("split").asText().toUpperCase());
            Long[] sizes = new Long[3];
            sizes[split.ordinal()] = c.get("num_samples").isNull() ? null : c.get("num_samples").longValue();
            GptDatasetConfig config = GptDatasetConfig.of(c.get("seed").longValue(), c.get("seq_length").intValue(),
                    GptDatasetFactory.MOCK_SPLIT, NULL_1000, c.get("eod").intValue());
            try (GptDataSplits splits = GptDatasetFactory.build(
                    GptDatasetFactory.Sources.mock(c.get("vocab_size").intValue(), c.get("eod").intValue()), sizes, config)) {
                GptSampleSource source = splits.get(split);
                String name = c.get("name").asText();
                assertEquals(c.get("size").longValue(), source.size(), name + " size");
                for (int i = 0; i < c.get("samples").size(); i++) {
                    JsonNode expected = c.get("samples").get(i);
                    int[] want = IntStream.range(0, expected.size()).map(k -> expected.get(k).intValue()).toArray();
                    assertArrayEquals(want, source.sample(i).text(), name + " sample " + i);
                }
                assertTrue(source.origin(0).startsWith("mock data " + split.megatronName()), source.origin(0));
            }
        }
    }

    @Test
    void indicesAreCachedUnderMegatronsMockNamesOnlyWithACacheFolder() throws IOException {
        GptDatasetConfig config = GptDatasetConfig.of(1234, 64, GptDatasetFactory.MOCK_SPLIT, NULL_1000, 1000);
        try (GptDataSplits splits = GptDatasetFactory.build(GptDatasetFactory.Sources.mock(1001, 1000), new Long[] {8L, 8L, 8L}, config)) {
            for (GptDataset d : splits.gptDatasets()) {
                assertNull(d.cache(), "mock data has no folder of its own");
            }
        }
        Path cache = dir.resolve("cache");
        try (GptDataSplits splits = GptDatasetFactory.build(GptDatasetFactory.Sources.mock(1001, 1000), new Long[] {8L, 8L, 8L},
                config.withCache(cache))) {
            GptDataset train = splits.gptDatasets().getFirst();
            assertTrue(train.cache().file("document_index.npy").getFileName().toString().endsWith("-MockGPTDataset-train-document_index.npy"));
            String description = Files.readString(train.cache().descriptionFile());
            assertTrue(description.startsWith("{\n    \"class\": \"MockGPTDataset\",\n    \"dataset_path\": null,\n"), description);
            assertTrue(description.contains("\"split\": \"1,1,1\""), description);
        }
        try (GptDataSplits again = GptDatasetFactory.build(GptDatasetFactory.Sources.mock(1001, 1000), new Long[] {8L, 8L, 8L},
                config.withCache(cache))) {
            assertTrue(again.gptDatasets().getFirst().loadedFromCache());
        }
    }

    @Test
    void mockDataRefusesAnotherSplit() {
        GptDatasetConfig config = GptDatasetConfig.of(1234, 64, "99,1,0", NULL_1000, 1000);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> GptDatasetFactory.build(GptDatasetFactory.Sources.mock(1001, 1000), new Long[3], config));
        assertEquals("--mock-data uses Megatron's split 1,1,1, got 99,1,0", e.getMessage());
    }
}
