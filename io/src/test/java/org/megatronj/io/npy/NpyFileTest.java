package org.megatronj.io.npy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NpyFileTest {
    @TempDir
    Path dir;

    @Test
    void headerIsNumpys() {
        // numpy 1.24: np.save of np.arange(10, dtype=np.int32)
        String text = new String(NpyFile.header(NpyDtype.INT32, new long[] {10}), StandardCharsets.ISO_8859_1);
        assertEquals(128, text.length());
        assertTrue(text.startsWith("\u0093NUMPY\u0001\u0000v\u0000{'descr': '<i4', 'fortran_order': False, 'shape': (10,), }"), text);
        assertTrue(text.endsWith(" \n"));
        String twoD = new String(NpyFile.header(NpyDtype.INT64, new long[] {11, 2}), StandardCharsets.ISO_8859_1);
        assertTrue(twoD.contains("'shape': (11, 2), }" + " ".repeat(19)), twoD);
        assertEquals(0, twoD.length() % 64);
    }

    @Test
    void roundTripsEveryIntegerLayout() throws IOException {
        int[] ints = {0, -1, Integer.MAX_VALUE, Integer.MIN_VALUE, 42};
        long[] longs = {Long.MIN_VALUE, 0, 7, Long.MAX_VALUE};
        short[] shorts = {-32768, 0, 1, 32767};
        int[] uints = {-1, 0, 5};
        Path a = dir.resolve("a.npy");
        NpyFile.write(a, NpyArray.ofInt32(ints));
        Path b = dir.resolve("b.npy");
        NpyFile.write(b, NpyArray.ofInt64(longs).reshape(2, 2));
        Path c = dir.resolve("c.npy");
        NpyFile.write(c, NpyArray.ofInt16(shorts));
        Path d = dir.resolve("d.npy");
        NpyFile.write(d, NpyArray.ofUint32(uints));
        try (Arena arena = Arena.ofConfined()) {
            NpyArray ra = NpyFile.read(a, arena);
            assertEquals(NpyDtype.INT32, ra.dtype());
            assertArrayEquals(new long[] {5}, ra.shape());
            assertArrayEquals(Arrays.stream(ints).asLongStream().toArray(), ra.toLongArray());
            NpyArray rb = NpyFile.read(b, arena);
            assertArrayEquals(new long[] {2, 2}, rb.shape());
            assertArrayEquals(longs, rb.toLongArray());
            assertArrayEquals(new long[] {-32768, 0, 1, 32767}, NpyFile.read(c, arena).toLongArray());
            assertArrayEquals(new long[] {0xffffffffL, 0, 5}, NpyFile.read(d, arena).toLongArray());
        }
        assertEquals(NpyArray.ofInt32(ints), NpyFile.readCopy(a));
        try (var files = Files.list(dir)) {
            assertEquals(4, files.count(), "no temporary files left behind");
        }
    }

    @Test
    void emptyAndScalarShapes() throws IOException {
        Path e = dir.resolve("e.npy");
        NpyFile.write(e, NpyArray.ofInt32(new int[0]));
        assertEquals(0, NpyFile.readCopy(e).elementCount());
        String scalar = new String(NpyFile.header(NpyDtype.FLOAT64, new long[0]), StandardCharsets.ISO_8859_1);
        assertTrue(scalar.contains("'shape': (), }"), scalar);
        assertEquals(128, scalar.length(), "numpy pads even a scalar header past the growth room");
    }

    @Test
    void rejectsBrokenFiles() throws IOException {
        Path bad = dir.resolve("bad.npy");
        Files.write(bad, "not numpy at all".getBytes(StandardCharsets.US_ASCII));
        assertTrue(assertThrows(NpyFormatException.class, () -> NpyFile.readCopy(bad)).getMessage().contains("magic"));
        Path good = dir.resolve("good.npy");
        NpyFile.write(good, NpyArray.ofInt32(new int[] {1, 2, 3}));
        byte[] bytes = Files.readAllBytes(good);
        Path cut = dir.resolve("cut.npy");
        Files.write(cut, Arrays.copyOf(bytes, bytes.length - 2));
        var ex = assertThrows(NpyFormatException.class, () -> NpyFile.readCopy(cut));
        assertTrue(ex.getMessage().contains("needs 12"), ex.getMessage());
        Path big = dir.resolve("big.npy");
        byte[] be = bytes.clone();
        String h = new String(be, StandardCharsets.ISO_8859_1).replace("'<i4'", "'>i4'");
        Files.write(big, h.getBytes(StandardCharsets.ISO_8859_1));
        assertTrue(assertThrows(NpyFormatException.class, () -> NpyFile.readCopy(big)).getMessage().contains("big-endian"));
    }

    @Test
    void dtypeSpellings() {
        assertEquals(NpyDtype.INT32, NpyDtype.fromDescr("<i4"));
        assertEquals(NpyDtype.INT32, NpyDtype.fromDescr("i4"));
        assertEquals(NpyDtype.UINT8, NpyDtype.fromDescr("|u1"));
        assertEquals(NpyDtype.INT8, NpyDtype.fromDescr("<i1"));
        assertEquals(NpyDtype.UINT8, NpyDtype.fromDescr(">u1"));
        assertThrows(IllegalArgumentException.class, () -> NpyDtype.fromDescr("<c16"));
    }
}
