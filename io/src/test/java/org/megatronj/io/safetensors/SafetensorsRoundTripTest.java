package org.megatronj.io.safetensors;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SafetensorsRoundTripTest {
    @TempDir
    Path dir;

    @Test
    void tensorsAndMetadataSurviveARoundTripBitForBit() {
        Random rnd = new Random(7);
        try (TensorArena arena = TensorArena.named("st")) {
            Tensor a = arena.allocate(DType.F32, 3, 5);
            for (int i = 0; i < a.numel(); i++) {
                a.setFloat(i, (float) rnd.nextGaussian());
            }
            a.setFloat(2, Float.NaN);
            Tensor b = arena.allocate(DType.BF16, 4);
            for (int i = 0; i < 4; i++) {
                b.setFloat(i, i * 0.37f);
            }
            Tensor c = arena.allocate(DType.I64, 2, 2);
            c.setLong(3, Long.MAX_VALUE);
            Tensor scalar = arena.allocate(DType.I32);
            scalar.setLong(0, -9);
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            tensors.put("layer.weight", a);
            tensors.put("b", b);
            tensors.put("c", c);
            tensors.put("empty", arena.allocate(DType.F32, 0, 4));
            tensors.put("scalar", scalar);
            Path file = dir.resolve("x.safetensors");
            SafetensorsWriter.write(file, tensors, Map.of("format", "pt"));

            try (SafetensorsFile f = SafetensorsFile.open(file)) {
                assertEquals(java.util.List.of("layer.weight", "b", "c", "empty", "scalar"), f.names());
                assertEquals("pt", f.metadata().get("format"));
                for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
                    Tensor back = f.tensor(e.getKey());
                    assertEquals(e.getValue().dtype(), back.dtype());
                    assertArrayEquals(e.getValue().shape(), back.shape());
                    assertArrayEquals(e.getValue().segment().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE),
                            back.segment().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE), e.getKey());
                }
                Tensor dst = arena.allocate(DType.F32, 3, 5);
                f.copyTo("layer.weight", dst);
                assertEquals(Float.floatToRawIntBits(a.getFloat(7)), Float.floatToRawIntBits(dst.getFloat(7)));
            }
            assertTrue(Files.notExists(dir.resolve("x.safetensors.tmp")), "no temporary file left behind");
        }
    }

    @Test
    void headerIsPaddedSoTheDataSectionIsAligned() throws IOException {
        try (TensorArena arena = TensorArena.named("st")) {
            Path file = dir.resolve("a.safetensors");
            SafetensorsWriter.write(file, Map.of("w", arena.allocate(DType.F32, 3)), Map.of());
            byte[] bytes = Files.readAllBytes(file);
            long headerLength = ByteBuffer.wrap(bytes, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
            assertEquals(0, headerLength % 8);
            String header = new String(bytes, 8, (int) headerLength, StandardCharsets.UTF_8).strip();
            assertEquals("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}", header);
            assertEquals(8 + headerLength + 12, bytes.length);
        }
    }

    @Test
    void copyToAnotherShapeNamesBothShapes() {
        try (TensorArena arena = TensorArena.named("st")) {
            Path file = dir.resolve("a.safetensors");
            SafetensorsWriter.write(file, Map.of("w", arena.allocate(DType.F32, 3, 4)), Map.of());
            try (SafetensorsFile f = SafetensorsFile.open(file)) {
                var e = assertThrows(SafetensorsException.class, () -> f.copyTo("w", arena.allocate(DType.F32, 4, 3)));
                assertTrue(e.getMessage().contains("F32[3, 4]") && e.getMessage().contains("F32[4, 3]"), e.getMessage());
                var missing = assertThrows(SafetensorsException.class, () -> f.tensor("nope"));
                assertTrue(missing.getMessage().contains("no tensor named 'nope'"), missing.getMessage());
            }
        }
    }

    @Test
    void missingTruncatedAndCorruptFilesGiveClearErrors() throws IOException {
        var missing = assertThrows(SafetensorsException.class, () -> SafetensorsFile.open(dir.resolve("none.safetensors")));
        assertTrue(missing.getMessage().contains("no such safetensors file"), missing.getMessage());

        Path tiny = dir.resolve("tiny.safetensors");
        Files.write(tiny, new byte[3]);
        var e1 = assertThrows(SafetensorsException.class, () -> SafetensorsFile.open(tiny));
        assertTrue(e1.getMessage().contains("8-byte header length"), e1.getMessage());

        Path good = dir.resolve("good.safetensors");
        try (TensorArena arena = TensorArena.named("st")) {
            SafetensorsWriter.write(good, Map.of("w", arena.allocate(DType.F32, 16)), Map.of());
        }
        byte[] bytes = Files.readAllBytes(good);

        Path truncated = dir.resolve("truncated.safetensors");
        Files.write(truncated, Arrays.copyOf(bytes, bytes.length - 4));
        var e2 = assertThrows(SafetensorsException.class, () -> SafetensorsFile.open(truncated));
        assertTrue(e2.getMessage().contains("outside the data section") && e2.getMessage().contains("'w'"), e2.getMessage());

        Path badLength = dir.resolve("badlen.safetensors");
        byte[] b2 = bytes.clone();
        ByteBuffer.wrap(b2).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 1L << 40);
        Files.write(badLength, b2);
        var e3 = assertThrows(SafetensorsException.class, () -> SafetensorsFile.open(badLength));
        assertTrue(e3.getMessage().contains("header length"), e3.getMessage());

        Path badJson = dir.resolve("badjson.safetensors");
        byte[] b3 = bytes.clone();
        b3[8] = 'x';
        Files.write(badJson, b3);
        var e4 = assertThrows(SafetensorsException.class, () -> SafetensorsFile.open(badJson));
        assertTrue(e4.getMessage().contains("not valid JSON"), e4.getMessage());

        Path badDtype = dir.resolve("baddtype.safetensors");
        Files.write(badDtype, withHeader("{\"w\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8));
        var e5 = assertThrows(SafetensorsException.class, () -> SafetensorsFile.open(badDtype));
        assertTrue(e5.getMessage().contains("'F64' is not supported"), e5.getMessage());

        Path badSpan = dir.resolve("badspan.safetensors");
        Files.write(badSpan, withHeader("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 12));
        var e6 = assertThrows(SafetensorsException.class, () -> SafetensorsFile.open(badSpan));
        assertTrue(e6.getMessage().contains("needs 12"), e6.getMessage());

        Path overlap = dir.resolve("overlap.safetensors");
        Files.write(overlap, withHeader("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12));
        var e7 = assertThrows(SafetensorsException.class, () -> SafetensorsFile.open(overlap));
        assertTrue(e7.getMessage().contains("overlap"), e7.getMessage());
    }

    private static byte[] withHeader(String json, int dataBytes) {
        byte[] h = json.getBytes(StandardCharsets.UTF_8);
        ByteBuffer buf = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        buf.putLong(h.length).put(h);
        return buf.array();
    }
}
