package org.megatronj.io.preprocess;

import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.zip.GZIPInputStream;

/**
 * Reads a file as batches of complete lines of about {@code batchBytes} each (a longer line makes
 * a larger batch), counting lines so that errors can name them. Memory holds one batch. A gzip file
 * (Megatron's preprocess_data.py reads {@code .gz} inputs too) is decompressed on the fly; its
 * batches' end offsets then count compressed bytes, so that progress compares with the file size.
 */
final class LineBatchReader implements AutoCloseable {
    private final Path path;
    private final InputStream in;
    private final CountingInputStream compressed;  // null unless the input is gzip
    private final int batchBytes;
    private byte[] carry = new byte[0];
    private int carryLength;
    private long nextLine = 1;
    private long offset;
    private boolean eof;

    LineBatchReader(Path path, int batchBytes) {
        this.path = path;
        this.batchBytes = batchBytes;
        try {
            if (isGzip(path)) {
                this.compressed = new CountingInputStream(Files.newInputStream(path));
                this.in = new GZIPInputStream(compressed, 1 << 16);
            } else {
                this.compressed = null;
                this.in = Files.newInputStream(path);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open the input " + path + ": " + e.getMessage(), e);
        }
    }

    /** By content, not name: gzip's magic bytes 1f 8b can never start a line of JSON text. */
    private static boolean isGzip(Path path) throws IOException {
        try (InputStream head = Files.newInputStream(path)) {
            return head.read() == 0x1f && head.read() == 0x8b;
        }
    }

    /** The next batch, or null after the last line. */
    LineBatch next() {
        if (eof && carryLength == 0) {
            return null;
        }
        byte[] buf = Arrays.copyOf(carry, Math.max(batchBytes, carryLength * 2));
        int length = carryLength;
        int scanFrom = carryLength;  // the carried-over tail holds no newline
        int lastNewline;
        while (true) {
            if (!eof) {
                int want = buf.length - length;
                int n = readFully(buf, length, want);
                length += n;
                eof = n < want;
            }
            lastNewline = -1;
            for (int i = length - 1; i >= scanFrom; i--) {
                if (buf[i] == '\n') {
                    lastNewline = i;
                    break;
                }
            }
            if (lastNewline >= 0 || eof) break;
            scanFrom = length;
            buf = Arrays.copyOf(buf, buf.length * 2);  // a line longer than the batch: grow until it ends
        }
        int end = lastNewline >= 0 ? lastNewline + 1 : length;  // at end of file the last line needs no newline
        carryLength = length - end;
        carry = carryLength == 0 ? new byte[0] : Arrays.copyOfRange(buf, end, length);
        if (end == 0) {
            return null;
        }
        long first = nextLine;
        nextLine += countNewlines(buf, end);
        offset += end;
        return new LineBatch(buf, end, first, compressed == null ? offset : compressed.count);
    }

    /** Counts '\n' bytes eight at a time (exact per-byte zero test on {@code word ^ 0x0A..}). */
    static int countNewlines(byte[] b, int end) {
        final long newlines = 0x0A0A0A0A0A0A0A0AL, low7 = 0x7F7F7F7F7F7F7F7FL;
        int count = 0;
        int i = 0;
        for (; i + 8 <= end; i += 8) {
            long x = (long) LONGS.get(b, i) ^ newlines;
            long zeroHighBits = ~(((x & low7) + low7) | x | low7);
            count += Long.bitCount(zeroHighBits);
        }
        for (; i < end; i++) {
            if (b[i] == '\n') count++;
        }
        return count;
    }

    private static final java.lang.invoke.VarHandle LONGS =
            java.lang.invoke.MethodHandles.byteArrayViewVarHandle(long[].class, java.nio.ByteOrder.LITTLE_ENDIAN);

    private int readFully(byte[] buf, int off, int len) {
        try {
            return in.readNBytes(buf, off, len);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + path + (compressed != null ? " (gzip)" : "") + ": " + e.getMessage(), e);
        }
    }

    /** Counts the bytes read through it. */
    private static final class CountingInputStream extends FilterInputStream {
        long count;

        CountingInputStream(InputStream in) {
            super(in);
        }

        @Override
        public int read() throws IOException {
            int b = super.read();
            if (b >= 0) count++;
            return b;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            int n = super.read(b, off, len);
            if (n > 0) count += n;
            return n;
        }

        @Override
        public long skip(long n) throws IOException {
            long skipped = super.skip(n);
            count += skipped;
            return skipped;
        }
    }

    @Override
    public void close() {
        try {
            in.close();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot close " + path + ": " + e.getMessage(), e);
        }
    }
}
