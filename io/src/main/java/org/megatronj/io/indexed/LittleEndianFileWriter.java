package org.megatronj.io.indexed;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/** A buffered, little-endian, append-only writer over a file channel (the builder's output and spill files). */
final class LittleEndianFileWriter implements AutoCloseable {
    private final Path path;
    private final FileChannel channel;
    private final ByteBuffer buffer;
    private long written;

    LittleEndianFileWriter(Path path, int bufferBytes) {
        this.path = path;
        try {
            this.channel = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                    StandardOpenOption.WRITE, StandardOpenOption.READ);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create " + path + ": " + e.getMessage(), e);
        }
        this.buffer = ByteBuffer.allocateDirect(bufferBytes).order(ByteOrder.LITTLE_ENDIAN);
    }

    Path path() {
        return path;
    }

    /** Bytes written so far, buffered ones included. */
    long position() {
        return written;
    }

    ByteBuffer reserve(int bytes) {
        if (buffer.remaining() < bytes) {
            flush();
        }
        written += bytes;
        return buffer;
    }

    void putByte(byte v) {
        reserve(1).put(v);
    }

    void putInt(int v) {
        reserve(4).putInt(v);
    }

    void putLong(long v) {
        reserve(8).putLong(v);
    }

    void putBytes(byte[] bytes) {
        for (int off = 0; off < bytes.length; ) {
            if (!buffer.hasRemaining()) flush();
            int n = Math.min(buffer.remaining(), bytes.length - off);
            buffer.put(bytes, off, n);
            off += n;
        }
        written += bytes.length;
    }

    /** Appends token ids as elements of {@code dtype} (the caller checked that they fit). */
    void putTokens(int[] tokens, int offset, int length, IndexedDtype dtype) {
        int size = dtype.byteSize();
        int perChunk = buffer.capacity() / size;
        for (int done = 0; done < length; ) {
            int n = Math.min(length - done, perChunk);
            if (buffer.remaining() < n * size) flush();
            int from = offset + done;
            switch (dtype) {
                case UINT16, INT16 -> { for (int k = 0; k < n; k++) buffer.putShort((short) tokens[from + k]); }
                case INT32 -> { for (int k = 0; k < n; k++) buffer.putInt(tokens[from + k]); }
                case UINT8, INT8 -> { for (int k = 0; k < n; k++) buffer.put((byte) tokens[from + k]); }
                case INT64 -> { for (int k = 0; k < n; k++) buffer.putLong(tokens[from + k]); }
                case FLOAT32 -> { for (int k = 0; k < n; k++) buffer.putFloat(tokens[from + k]); }
                case FLOAT64 -> { for (int k = 0; k < n; k++) buffer.putDouble(tokens[from + k]); }
            }
            done += n;
        }
        written += (long) length * size;
    }

    /** Appends the whole content of another file (zero-copy where the OS allows). */
    void appendFile(Path source) {
        flush();
        try (FileChannel in = FileChannel.open(source, StandardOpenOption.READ)) {
            long size = in.size();
            for (long pos = 0; pos < size; ) {
                pos += in.transferTo(pos, size - pos, channel);
            }
            written += size;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot copy " + source + " into " + path + ": " + e.getMessage(), e);
        }
    }

    void flush() {
        buffer.flip();
        try {
            while (buffer.hasRemaining()) {
                channel.write(buffer);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + path + ": " + e.getMessage(), e);
        } finally {
            buffer.clear();
        }
    }

    @Override
    public void close() {
        try {
            channel.close();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot close " + path + ": " + e.getMessage(), e);
        }
    }
}
