package org.megatronj.io.torch;

import java.io.InputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A zip archive held in a {@link MemorySegment} (e.g. the byte range of a {@code .distcp} file that one
 * {@code torch.save} wrote), read in place: {@code java.util.zip.ZipFile} only opens whole files, and copying a range
 * into the heap first would double what a large chunk costs. Only stored (uncompressed) entries are read, which is what
 * {@code torch.save} writes; zip64 records are followed, so archives and entries over 4 GiB read too. Offsets inside
 * the archive count from the segment's start, as {@code torch.save} into a stream counts them from where it began.
 */
final class StoredZip {
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final int END = 0x06054b50, END64 = 0x06064b50, END64_LOCATOR = 0x07064b50;
    private static final int CENTRAL = 0x02014b50, LOCAL = 0x04034b50;
    private static final long MAX32 = 0xffffffffL;

    private final MemorySegment zip;
    private final String source;
    private final Map<String, MemorySegment> entries = new LinkedHashMap<>();

    private StoredZip(MemorySegment zip, String source) {
        this.zip = zip;
        this.source = source;
        try {
            readCentralDirectory();
        } catch (IndexOutOfBoundsException e) {
            throw new IllegalArgumentException(source + ": a zip record runs past the archive's " + zip.byteSize()
                    + " bytes (truncated?)", e);
        }
    }

    /** The archive's entries; {@code source} names it in errors. */
    static StoredZip read(MemorySegment zip, String source) {
        return new StoredZip(zip, source);
    }

    List<String> names() {
        return List.copyOf(entries.keySet());
    }

    /** The bytes of entry {@code name}, or null when the archive has none. */
    MemorySegment entry(String name) {
        return entries.get(name);
    }

    /** A stream over entry {@code name}, or null when the archive has none. */
    InputStream open(String name) {
        MemorySegment e = entries.get(name);
        return e == null ? null : new SegmentInputStream(e);
    }

    private void readCentralDirectory() {
        long end = findEnd();
        long count = u16(end + 10), size = u32(end + 12), offset = u32(end + 16);
        if (count == 0xffff || size == MAX32 || offset == MAX32) {   // the zip64 record holds the real values
            long locator = end - 20;
            if (locator < 0 || zip.get(U32, locator) != END64_LOCATOR) {
                throw new IllegalArgumentException(source + ": the zip's end record points at a zip64 record that is not there");
            }
            long end64 = zip.get(U64, locator + 8);
            if (zip.get(U32, end64) != END64) {
                throw new IllegalArgumentException(source + ": no zip64 end record at byte " + end64);
            }
            count = zip.get(U64, end64 + 32);
            offset = zip.get(U64, end64 + 48);
        }
        long at = offset;
        for (long i = 0; i < count; i++) {
            if (zip.get(U32, at) != CENTRAL) {
                throw new IllegalArgumentException(source + ": zip central directory entry " + i + " at byte " + at
                        + " has no signature (truncated or not a zip?)");
            }
            int method = u16(at + 10);
            long compressed = u32(at + 20), uncompressed = u32(at + 24), local = u32(at + 42);
            int nameLength = u16(at + 28), extraLength = u16(at + 30), commentLength = u16(at + 32);
            String name = new String(zip.asSlice(at + 46, nameLength).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
            long extra = at + 46 + nameLength;
            for (long e = extra; e + 4 <= extra + extraLength; e += 4 + u16(e + 2)) {
                if (u16(e) == 0x0001) {   // zip64: the 64-bit values of the fields saturated above, in this order
                    long v = e + 4;
                    if (uncompressed == MAX32) {
                        uncompressed = zip.get(U64, v);
                        v += 8;
                    }
                    if (compressed == MAX32) {
                        compressed = zip.get(U64, v);
                        v += 8;
                    }
                    if (local == MAX32) {
                        local = zip.get(U64, v);
                    }
                }
            }
            if (method != 0 || compressed != uncompressed) {
                throw new IllegalArgumentException(source + ": zip entry " + name + " is compressed (method " + method
                        + "); torch.save stores its entries uncompressed");
            }
            if (zip.get(U32, local) != LOCAL) {
                throw new IllegalArgumentException(source + ": zip entry " + name + " has no local header at byte " + local);
            }
            long data = local + 30 + u16(local + 26) + u16(local + 28);
            if (data + compressed > zip.byteSize()) {
                throw new IllegalArgumentException(source + ": zip entry " + name + " (" + compressed + " bytes at byte " + data
                        + ") runs past the archive's " + zip.byteSize() + " bytes (truncated?)");
            }
            entries.put(name, zip.asSlice(data, compressed));
            at = extra + extraLength + commentLength;
        }
    }

    /** The end-of-central-directory record: the last 22 bytes, unless a comment (at most 64 KiB) follows it. */
    private long findEnd() {
        long last = zip.byteSize() - 22;
        for (long at = last; at >= 0 && at >= last - 0xffff; at--) {
            if (zip.get(U32, at) == END) {
                return at;
            }
        }
        throw new IllegalArgumentException(source + " is not a zip archive (no end record in its " + zip.byteSize()
                + " bytes): not written by torch.save, or truncated");
    }

    private int u16(long at) {
        return zip.get(U16, at) & 0xffff;
    }

    private long u32(long at) {
        return zip.get(U32, at) & MAX32;
    }

    /** Reads a segment from its start. */
    private static final class SegmentInputStream extends InputStream {
        private final MemorySegment bytes;
        private long at;

        SegmentInputStream(MemorySegment bytes) {
            this.bytes = bytes;
        }

        @Override
        public int read() {
            return at < bytes.byteSize() ? bytes.get(ValueLayout.JAVA_BYTE, at++) & 0xff : -1;
        }

        @Override
        public int read(byte[] b, int off, int len) {
            long left = bytes.byteSize() - at;
            if (left <= 0) {
                return len == 0 ? 0 : -1;
            }
            int n = (int) Math.min(len, left);
            MemorySegment.copy(bytes, ValueLayout.JAVA_BYTE, at, b, off, n);
            at += n;
            return n;
        }

        @Override
        public long skip(long n) {
            long k = Math.max(0, Math.min(n, bytes.byteSize() - at));
            at += k;
            return k;
        }

        @Override
        public int available() {
            return (int) Math.min(Integer.MAX_VALUE, bytes.byteSize() - at);
        }
    }
}
