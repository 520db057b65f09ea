package org.megatronj.memory.cpu;

import static org.junit.jupiter.api.Assertions.fail;

/** Bit-exact comparison of float arrays, naming the first element that differs. */
final class DeterminismAssertions {
    private DeterminismAssertions() {
    }

    static void assertSameBits(String what, float[] expected, float[] actual) {
        if (expected.length != actual.length) {
            fail(what + ": " + expected.length + " elements before, " + actual.length + " after");
        }
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
                fail(what + ": element " + i + " was " + expected[i] + " (0x" + Integer.toHexString(Float.floatToRawIntBits(expected[i]))
                        + "), now " + actual[i] + " (0x" + Integer.toHexString(Float.floatToRawIntBits(actual[i])) + ")");
            }
        }
    }
}
