package org.megatronj.io.gpt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;

import org.junit.jupiter.api.Test;

class SplitMatrixTest {

    @Test
    void megatronsUsualSplitOfFiftySequences() {
        SplitMatrix m = SplitMatrix.parse("949,50,1");
        assertArrayEquals(new int[] {0, 47}, m.range(Split.TRAIN, 50));
        assertArrayEquals(new int[] {47, 50}, m.range(Split.VALID, 50));
        assertArrayEquals(new int[] {50, 50}, m.range(Split.TEST, 50), "test is empty, not absent");
        assertEquals(Arrays.asList(Arrays.asList(0, 0.949), Arrays.asList(0.949, 0.999), Arrays.asList(0.999, 1.0)), m.describe());
    }

    @Test
    void zeroWeightsMeanNoSplitAndPaddingToThree() {
        SplitMatrix m = SplitMatrix.parse("99,1");
        assertFalse(m.has(Split.TEST));
        assertNull(m.range(Split.TEST, 100));
        assertArrayEquals(new int[] {99, 100}, m.range(Split.VALID, 100));
        SplitMatrix onlyValid = SplitMatrix.parse("0,1,0");
        assertNull(onlyValid.describe().get(0));
        assertEquals(Arrays.asList(0.0, 1.0), onlyValid.describe().get(1), "after a zero weight the start is a float 0.0");
    }

    @Test
    void roundingIsHalfToEven() {
        SplitMatrix m = SplitMatrix.parse("1,1");
        assertArrayEquals(new int[] {0, 2}, m.range(Split.TRAIN, 5), "round(2.5) = 2");
        assertArrayEquals(new int[] {0, 4}, m.range(Split.TRAIN, 7), "round(3.5) = 4");
    }

    @Test
    void keepsTheStringVerbatimAndParsesLikeMegatron() {
        SplitMatrix m = SplitMatrix.parse(SplitMatrix.LEGACY_DEFAULT_SPLIT);
        assertEquals("969, 30, 1", m.split());
        assertArrayEquals(new int[] {0, 969}, m.range(Split.TRAIN, 1000));
        assertThrows(IllegalArgumentException.class, () -> SplitMatrix.parse("0,0,0"));
        assertThrows(IllegalArgumentException.class, () -> SplitMatrix.parse("1,2,3,4"));
        assertThrows(IllegalArgumentException.class, () -> SplitMatrix.parse("1.2.3"));
    }
}
