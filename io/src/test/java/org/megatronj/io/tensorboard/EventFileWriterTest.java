package org.megatronj.io.tensorboard;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class EventFileWriterTest {
    @TempDir
    Path dir;

    /**
     * Byte for byte what TensorBoard's own protocol buffers and record writer make of the same scalars
     * (events.fixture, from make_event_fixture.py): field order, proto3 defaults (step 0 left out, a 0.0
     * value kept in its oneof), float values, 64-bit steps, masked CRC-32C.
     */
    @Test
    void writesWhatTensorBoardsWriterWrites() throws IOException {
        Path file = dir.resolve("events");
        try (EventFileWriter w = EventFileWriter.at(file, 1765000000.5)) {
            w.addScalar("lm loss", 10.8125, 1, 1765000001.25);
            w.addScalar("lm loss vs samples", 10.8125, 8, 1765000001.25);
            w.addScalar("learning-rate", 6e-05, 1, 1765000001.5);
            w.addScalar("grad-norm", 0.0, 2, 1765000002.0);
            w.addScalar("batch-size", 8, 0, 1765000002.5);
            w.addScalar("loss-scale", 4294967296.0, 1234567890123L, 1765000003.0);
        }
        try (InputStream in = EventFileWriterTest.class.getResourceAsStream("events.fixture")) {
            assertArrayEquals(in.readAllBytes(), Files.readAllBytes(file));
        }
    }

    @Test
    void namesTheFileAsTensorBoardAndFlushesTheFileVersionAtOnce() throws IOException {
        Path logs = dir.resolve("tb/run1");
        try (EventFileWriter w = EventFileWriter.create(logs)) {
            String name = w.file().getFileName().toString();
            assertTrue(name.matches("events\\.out\\.tfevents\\.\\d{10}\\..+\\." + ProcessHandle.current().pid() + "\\.0"), name);
            byte[] bytes = Files.readAllBytes(w.file());   // readable before close: TensorBoard tails the file
            assertTrue(new String(bytes, StandardCharsets.ISO_8859_1).contains("brain.Event:2"));
        }
    }

    @Test
    void aFolderThatCannotBeMadeIsNamed() throws IOException {
        Path file = Files.writeString(dir.resolve("not-a-folder"), "x");
        var e = org.junit.jupiter.api.Assertions.assertThrows(java.io.UncheckedIOException.class,
                () -> EventFileWriter.create(file.resolve("tb")));
        assertTrue(e.getMessage().startsWith("--tensorboard-dir " + file.resolve("tb") + ": cannot write an event file there"),
                e.getMessage());
    }

    @Test
    void maskedCrcIsTfRecords() {
        // TFRecord's masked CRC-32C of "a" (crc32c 0xc1d04330): rotate right 15, add 0xa282ead8
        long crc = 0xC1D04330L;
        long expected = ((((crc >>> 15) | (crc << 17)) & 0xFFFFFFFFL) + 0xA282EAD8L) & 0xFFFFFFFFL;
        assertEquals(expected, EventFileWriter.maskedCrc("a".getBytes(StandardCharsets.US_ASCII)));
    }
}
