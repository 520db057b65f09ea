package org.megatronj.io.tensorboard;

import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.zip.CRC32C;

/**
 * A TensorBoard event file of scalars, as Megatron's {@code --tensorboard-dir} writes them through
 * {@code torch.utils.tensorboard.SummaryWriter.add_scalar}: a file
 * {@code events.out.tfevents.<seconds>.<host>.<pid>.0} of TFRecords (length, its masked CRC-32C, the
 * data, its masked CRC-32C) holding {@code Event} protocol buffers: first the file version, then one
 * {@code Summary.Value(tag, simple_value)} per scalar at its step.
 *
 * <p>TensorBoard reads the file while it grows, so it is written in place, not renamed at the end;
 * {@link #flush} makes what was added visible.
 */
public final class EventFileWriter implements AutoCloseable {
    static final String FILE_VERSION = "brain.Event:2";
    static final String WRITER = "megatron-j";

    private final Path file;
    private final OutputStream out;

    private EventFileWriter(Path file, double wallTime) throws IOException {
        this.file = file;
        this.out = new BufferedOutputStream(Files.newOutputStream(file));
        write(fileVersionEvent(wallTime));
        flush();
    }

    /**
     * A new event file in {@code logDir} (created if needed), named as TensorBoard's writer names it;
     * fails naming the folder when it cannot be made or written.
     */
    public static EventFileWriter create(Path logDir) {
        double now = System.currentTimeMillis() / 1000.0;
        String name = String.format(Locale.ROOT, "events.out.tfevents.%010d.%s.%d.0", (long) now, hostName(),
                ProcessHandle.current().pid());
        try {
            Files.createDirectories(logDir);
            return new EventFileWriter(logDir.resolve(name), now);
        } catch (IOException e) {
            throw new UncheckedIOException("--tensorboard-dir " + logDir + ": cannot write an event file there (" + e + ")", e);
        }
    }

    /** An event file at exactly {@code file}, its first event at {@code wallTime} (tests). */
    static EventFileWriter at(Path file, double wallTime) throws IOException {
        return new EventFileWriter(file, wallTime);
    }

    private static String hostName() {
        try {
            return InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            return "localhost";
        }
    }

    public Path file() {
        return file;
    }

    /** {@code add_scalar(tag, value, step)} now. */
    public void addScalar(String tag, double value, long step) {
        addScalar(tag, value, step, System.currentTimeMillis() / 1000.0);
    }

    /** {@code add_scalar(tag, value, step, walltime)}: the value is stored as a float, as TensorBoard's simple_value. */
    public void addScalar(String tag, double value, long step, double wallTime) {
        try {
            write(scalarEvent(tag, (float) value, step, wallTime));
        } catch (IOException e) {
            throw new UncheckedIOException("writing " + file + ": " + e.getMessage(), e);
        }
    }

    public void flush() {
        try {
            out.flush();
        } catch (IOException e) {
            throw new UncheckedIOException("writing " + file + ": " + e.getMessage(), e);
        }
    }

    @Override
    public void close() {
        try {
            out.close();
        } catch (IOException e) {
            throw new UncheckedIOException("closing " + file + ": " + e.getMessage(), e);
        }
    }

    // ------------------------------------------------------------------ records and protocol buffers

    private void write(byte[] event) throws IOException {
        out.write(record(event));
    }

    /** One TFRecord: uint64 length, uint32 masked CRC-32C of those 8 bytes, the data, uint32 masked CRC-32C of the data. */
    static byte[] record(byte[] data) {
        ByteArrayOutputStream b = new ByteArrayOutputStream(data.length + 16);
        byte[] length = littleEndian(data.length, 8);
        b.writeBytes(length);
        b.writeBytes(littleEndian(maskedCrc(length), 4));
        b.writeBytes(data);
        b.writeBytes(littleEndian(maskedCrc(data), 4));
        return b.toByteArray();
    }

    /** TFRecord's masked CRC-32C: rotated right by 15 bits, plus 0xa282ead8. */
    static long maskedCrc(byte[] data) {
        CRC32C crc = new CRC32C();
        crc.update(data);
        long c = crc.getValue();
        return ((((c >>> 15) | (c << 17)) & 0xFFFFFFFFL) + 0xA282EAD8L) & 0xFFFFFFFFL;
    }

    private static byte[] littleEndian(long v, int bytes) {
        byte[] b = new byte[bytes];
        for (int i = 0; i < bytes; i++) {
            b[i] = (byte) (v >>> (8 * i));
        }
        return b;
    }

    /** Event{wall_time = 1, file_version = 3, source_metadata = 10 {writer = 1}}. */
    static byte[] fileVersionEvent(double wallTime) {
        Proto e = new Proto();
        e.fixed64(1, Double.doubleToRawLongBits(wallTime));
        e.bytes(3, FILE_VERSION.getBytes(StandardCharsets.UTF_8));
        e.bytes(10, new Proto().bytes(1, WRITER.getBytes(StandardCharsets.UTF_8)).toByteArray());
        return e.toByteArray();
    }

    /** Event{wall_time = 1, step = 2, summary = 5 {value = 1 {tag = 1, simple_value = 2}}}. */
    static byte[] scalarEvent(String tag, float value, long step, double wallTime) {
        Proto v = new Proto().bytes(1, tag.getBytes(StandardCharsets.UTF_8)).fixed32(2, Float.floatToRawIntBits(value));
        Proto summary = new Proto().bytes(1, v.toByteArray());
        Proto e = new Proto();
        e.fixed64(1, Double.doubleToRawLongBits(wallTime));
        if (step != 0) {   // proto3 leaves a default value out
            e.varint(2, step);
        }
        e.bytes(5, summary.toByteArray());
        return e.toByteArray();
    }

    /** The protocol-buffer wire format, the few field kinds an Event needs. */
    private static final class Proto {
        private final ByteArrayOutputStream b = new ByteArrayOutputStream();

        Proto varint(int field, long value) {
            key(field, 0);
            rawVarint(value);
            return this;
        }

        Proto fixed64(int field, long bits) {
            key(field, 1);
            b.writeBytes(littleEndian(bits, 8));
            return this;
        }

        Proto bytes(int field, byte[] data) {
            key(field, 2);
            rawVarint(data.length);
            b.writeBytes(data);
            return this;
        }

        Proto fixed32(int field, int bits) {
            key(field, 5);
            b.writeBytes(littleEndian(bits & 0xFFFFFFFFL, 4));
            return this;
        }

        private void key(int field, int wireType) {
            rawVarint((long) field << 3 | wireType);
        }

        private void rawVarint(long v) {
            while ((v & ~0x7FL) != 0) {
                b.write((int) ((v & 0x7F) | 0x80));
                v >>>= 7;
            }
            b.write((int) v);
        }

        byte[] toByteArray() {
            return b.toByteArray();
        }
    }
}
