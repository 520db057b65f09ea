package org.megatronj.io.random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.io.InputStream;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

/** Pcg64 against NumPy's own draws ({@code make_pcg64_fixtures.py} -> {@code pcg64-fixtures.json}). */
class Pcg64Test {
    private static JsonNode fixtures() throws IOException {
        try (InputStream in = Pcg64Test.class.getResourceAsStream("pcg64-fixtures.json")) {
            return new ObjectMapper().readTree(in);
        }
    }

    private static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).intValue();
        }
        return out;
    }

    @Test
    void seedSequenceAndRawDrawsEqualNumpys() throws IOException {
        JsonNode f = fixtures();
        long[] state = Pcg64.seedSequenceState(0, 4);
        Pcg64 rng = new Pcg64(0);
        for (int i = 0; i < 4; i++) {
            assertEquals(Long.parseUnsignedLong(f.get("seed0_seed_sequence_uint64").get(i).asText()), state[i], "state word " + i);
            assertEquals(Long.parseUnsignedLong(f.get("seed0_raw_uint64").get(i).asText()), rng.nextLong(), "raw draw " + i);
        }
    }

    @Test
    void megatronsMockSequenceLengthsEqualNumpys() throws IOException {
        JsonNode f = fixtures();
        int[] lengths = new Pcg64(0).integers(1, 4096, 100_000);
        int[] first = ints(f.get("mock_lengths_first"));
        assertArrayEquals(first, java.util.Arrays.copyOf(lengths, first.length));
        for (Map.Entry<String, JsonNode> e : f.get("mock_lengths_picks").properties()) {
            assertEquals(e.getValue().intValue(), lengths[Integer.parseInt(e.getKey())], "length " + e.getKey());
        }
        long sum = 0;
        for (int l : lengths) {
            sum += l;
        }
        assertEquals(f.get("mock_lengths_sum").longValue(), sum);
    }

    @Test
    void otherSeedsAndRangesEqualNumpys() throws IOException {
        for (JsonNode c : fixtures().get("integers")) {
            int[] expected = ints(c.get("values"));
            int[] got = new Pcg64(c.get("seed").longValue()).integers(c.get("low").intValue(), c.get("high").intValue(), expected.length);
            assertArrayEquals(expected, got, "seed " + c.get("seed") + ", [" + c.get("low") + ", " + c.get("high") + ")");
        }
    }

    @Test
    void badArgumentsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new Pcg64(-1));
        assertThrows(IllegalArgumentException.class, () -> new Pcg64(0).integers(5, 5, 1));
    }
}
