package org.megatronj.io.indexed;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * A Megatron indexed dataset ({@code prefix.idx} + {@code prefix.bin}, the "MMIDIDX" format) mapped
 * read-only, zero-copy: both files are {@link MemorySegment}s of one shared {@link Arena}, so a
 * dataset may be read from any thread and has no 2 GiB limit. The layout is in MEGATRON-FORMATS.md:
 * a 34-byte header, int32 sequence lengths, int64 byte pointers into {@code .bin}, the int64
 * document index, and for multimodal datasets an int8 mode per sequence.
 *
 * <p>{@link #open} checks the header and that lengths, pointers and the {@code .bin} size agree,
 * so a truncated or foreign file fails at once with a {@link DatasetFormatException} naming the
 * file and the byte offset, never later with garbage tokens.
 */
public final class IndexedDataset implements TokenSequences, AutoCloseable {

    static final byte[] MAGIC = {'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0};
    static final long VERSION = 1;
    static final int HEADER_BYTES = 34;
    static final ValueLayout.OfInt INT32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong INT64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort INT16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfFloat FLOAT32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfDouble FLOAT64 = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Path prefix;
    private final Path idxPath;
    private final Arena arena;
    private final IndexedDtype dtype;
    private final int sequenceCount;
    private final int documentIndexEntries;
    private final MemorySegment lengths;   // int32[N]
    private final MemorySegment pointers;  // int64[N]
    private final MemorySegment documents; // int64[M]
    private final MemorySegment modes;     // int8[N] or null
    private final MemorySegment bin;
    private final long totalTokens;

    private IndexedDataset(Path prefix, boolean multimodal, boolean legacyDtypes) {
        this.prefix = prefix;
        this.idxPath = idxPath(prefix);
        Path binPath = binPath(prefix);
        this.arena = Arena.ofShared();
        try {
            MemorySegment idx = map(idxPath, arena);
            this.bin = map(binPath, arena);
            long idxBytes = idx.byteSize();
            if (idxBytes < HEADER_BYTES) {
                throw error("is " + idxBytes + " bytes long, shorter than the 34-byte header: truncated or not an index file");
            }
            for (int i = 0; i < MAGIC.length; i++) {
                if (idx.get(ValueLayout.JAVA_BYTE, i) != MAGIC[i]) {
                    throw error("has no MMIDIDX magic at byte 0 (found " + hex(idx, 0, MAGIC.length)
                            + ", expected 4d4d4944494458 0000): not a Megatron mmap index"
                            + (startsWith(idx, "TNTIDX") ? " (it is a legacy lazy/cached TNTIDX index; re-run preprocessing with the mmap format)" : ""));
                }
            }
            long version = idx.get(INT64, 9);
            if (version != VERSION) {
                throw error("has index version " + Long.toUnsignedString(version) + " at byte 9, expected 1");
            }
            int code = Byte.toUnsignedInt(idx.get(ValueLayout.JAVA_BYTE, 17));
            try {
                this.dtype = IndexedDtype.fromCode(code, legacyDtypes);
            } catch (DatasetFormatException e) {
                throw error("byte 17: " + e.getMessage());
            }
            long n = idx.get(INT64, 18);
            long m = idx.get(INT64, 26);
            if (n < 0 || n > Integer.MAX_VALUE - 8) {
                throw error("declares " + Long.toUnsignedString(n) + " sequences at byte 18: more than this reader supports (2^31 - 9) or corrupt");
            }
            if (m < 1 || m > Integer.MAX_VALUE - 8) {
                throw error("declares " + Long.toUnsignedString(m) + " document-index entries at byte 26, expected 1 to 2^31 - 9 (the index always starts with 0)");
            }
            long expected = HEADER_BYTES + 12 * n + 8 * m + (multimodal ? n : 0);
            if (idxBytes != expected) {
                String hint = !multimodal && idxBytes == expected + n ? " (the extra " + n + " bytes look like a multimodal mode array: open it as multimodal)"
                        : multimodal && idxBytes == expected - n ? " (it has no mode array: it is not a multimodal dataset)" : "";
                throw error("is " + idxBytes + " bytes long but its header (N=" + n + " sequences, M=" + m
                        + " document-index entries" + (multimodal ? ", multimodal" : "") + ") requires 34 + 12N + 8M"
                        + (multimodal ? " + N" : "") + " = " + expected + " bytes" + hint);
            }
            this.sequenceCount = (int) n;
            this.documentIndexEntries = (int) m;
            this.lengths = idx.asSlice(HEADER_BYTES, 4 * n);
            this.pointers = idx.asSlice(HEADER_BYTES + 4 * n, 8 * n);
            this.documents = idx.asSlice(HEADER_BYTES + 12 * n, 8 * m);
            this.modes = multimodal ? idx.asSlice(HEADER_BYTES + 12 * n + 8 * m, n) : null;
            this.totalTokens = checkPointers(binPath);
            checkDocumentIndex();
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /** Opens {@code prefix.idx} and {@code prefix.bin} (a text dataset: no mode array). */
    public static IndexedDataset open(Path prefix) {
        return new IndexedDataset(prefix, false, false);
    }

    /** Opens a dataset whose index ends with a per-sequence mode array when {@code multimodal}. */
    public static IndexedDataset open(Path prefix, boolean multimodal) {
        return new IndexedDataset(prefix, multimodal, false);
    }

    /** Opens a dataset written by legacy Megatron ({@code megatron/data}), where dtype code 7 meant float64. */
    public static IndexedDataset openLegacy(Path prefix, boolean multimodal) {
        return new IndexedDataset(prefix, multimodal, true);
    }

    public static Path idxPath(Path prefix) {
        return prefix.resolveSibling(prefix.getFileName() + ".idx");
    }

    public static Path binPath(Path prefix) {
        return prefix.resolveSibling(prefix.getFileName() + ".bin");
    }

    public Path prefix() {
        return prefix;
    }

    public IndexedDtype dtype() {
        return dtype;
    }

    /** N: the number of sequences (documents, or sentences when preprocessing split them). */
    @Override
    public int sequenceCount() {
        return sequenceCount;
    }

    /** M - 1: the number of documents the document index delimits. */
    public int documentCount() {
        return documentIndexEntries - 1;
    }

    public boolean isMultimodal() {
        return modes != null;
    }

    @Override
    public int sequenceLength(int i) {
        return lengths.getAtIndex(INT32, checkSequence(i));
    }

    /** A copy of all N sequence lengths. */
    @Override
    public int[] sequenceLengths() {
        return lengths.toArray(INT32);
    }

    /** Byte offset of sequence {@code i} in the {@code .bin} file. */
    public long sequencePointer(int i) {
        return pointers.getAtIndex(INT64, checkSequence(i));
    }

    /** A copy of the M document-index entries: document k is sequences [doc[k], doc[k+1]). */
    public long[] documentIndex() {
        return documents.toArray(INT64);
    }

    /** Sum of all sequence lengths. */
    public long totalTokens() {
        return totalTokens;
    }

    /**
     * Copies tokens {@code [offset, offset + length)} of a sequence into {@code dst} as ints
     * (unsigned types widen, float types are truncated towards zero).
     */
    @Override
    public void readTokens(int sequence, int offset, int length, int[] dst, int dstOffset) {
        int seqLength = sequenceLength(sequence);
        if (offset < 0 || length < 0 || (long) offset + length > seqLength) {
            throw new IndexOutOfBoundsException("tokens [" + offset + ", " + ((long) offset + length) + ") of sequence "
                    + sequence + " in " + prefix + ": the sequence has " + seqLength + " tokens");
        }
        java.util.Objects.checkFromIndexSize(dstOffset, length, dst.length);
        long base = sequencePointer(sequence) + (long) offset * dtype.byteSize();
        switch (dtype) {
            case UINT8 -> { for (int k = 0; k < length; k++) dst[dstOffset + k] = Byte.toUnsignedInt(bin.get(ValueLayout.JAVA_BYTE, base + k)); }
            case INT8 -> { for (int k = 0; k < length; k++) dst[dstOffset + k] = bin.get(ValueLayout.JAVA_BYTE, base + k); }
            case UINT16 -> { for (int k = 0; k < length; k++) dst[dstOffset + k] = Short.toUnsignedInt(bin.get(INT16, base + 2L * k)); }
            case INT16 -> { for (int k = 0; k < length; k++) dst[dstOffset + k] = bin.get(INT16, base + 2L * k); }
            case INT32 -> MemorySegment.copy(bin, INT32, base, dst, dstOffset, length);
            case INT64 -> { for (int k = 0; k < length; k++) dst[dstOffset + k] = Math.toIntExact(bin.get(INT64, base + 8L * k)); }
            case FLOAT32 -> { for (int k = 0; k < length; k++) dst[dstOffset + k] = (int) bin.get(FLOAT32, base + 4L * k); }
            case FLOAT64 -> { for (int k = 0; k < length; k++) dst[dstOffset + k] = (int) bin.get(FLOAT64, base + 8L * k); }
        }
    }

    /** All tokens of one sequence as ints. */
    public int[] sequenceTokens(int sequence) {
        int[] tokens = new int[sequenceLength(sequence)];
        readTokens(sequence, 0, tokens.length, tokens, 0);
        return tokens;
    }

    /** Zero-copy view of one sequence's bytes in {@code .bin} (little-endian elements of {@link #dtype()}). */
    public MemorySegment sequenceSegment(int i) {
        return bin.asSlice(sequencePointer(i), (long) sequenceLength(i) * dtype.byteSize());
    }

    /** The whole {@code .bin} file, zero-copy. */
    public MemorySegment binSegment() {
        return bin;
    }

    /** The per-sequence modes of a multimodal dataset (a copy). */
    public byte[] modes() {
        if (modes == null) {
            throw new IllegalStateException(idxPath + " was opened as a text dataset, which has no mode array; open it with multimodal=true");
        }
        return modes.toArray(ValueLayout.JAVA_BYTE);
    }

    @Override
    public void close() {
        arena.close();
    }

    private int checkSequence(int i) {
        if (i < 0 || i >= sequenceCount) {
            throw new IndexOutOfBoundsException("sequence " + i + " of " + prefix + ", which has " + sequenceCount + " sequences");
        }
        return i;
    }

    /** Pointers must run back to back from 0 (as Megatron writes them) and end exactly at the end of {@code .bin}. */
    private long checkPointers(Path binPath) {
        long expectedPointer = 0;
        long tokens = 0;
        int size = dtype.byteSize();
        for (int i = 0; i < sequenceCount; i++) {
            int length = lengths.getAtIndex(INT32, i);
            long pointer = pointers.getAtIndex(INT64, i);
            if (length < 0) {
                throw error("has a negative length " + length + " for sequence " + i + " at byte " + (HEADER_BYTES + 4L * i));
            }
            if (pointer != expectedPointer) {
                throw error("has pointer " + pointer + " for sequence " + i + " at byte " + (HEADER_BYTES + 4L * sequenceCount + 8L * i)
                        + ", expected " + expectedPointer + " (the previous pointer plus length x " + size + " bytes)");
            }
            expectedPointer += (long) length * size;
            tokens += length;
        }
        if (expectedPointer != bin.byteSize()) {
            throw new DatasetFormatException(binPath + " is " + bin.byteSize() + " bytes long but " + idxPath + " describes "
                    + tokens + " " + dtype.numpyName() + " tokens = " + expectedPointer + " bytes"
                    + (expectedPointer > bin.byteSize() ? ": the .bin file is truncated" : ": the .bin file has extra bytes")
                    + " (or the two files belong to different datasets)");
        }
        return tokens;
    }

    private void checkDocumentIndex() {
        long base = HEADER_BYTES + 12L * sequenceCount;
        long previous = 0;
        for (int k = 0; k < documentIndexEntries; k++) {
            long d = documents.getAtIndex(INT64, k);
            if ((k == 0 && d != 0) || d < previous || d > sequenceCount) {
                throw error("has document-index entry " + k + " = " + d + " at byte " + (base + 8L * k) + ", expected "
                        + (k == 0 ? "0" : "a value from " + previous + " (the previous entry) to " + sequenceCount + " (N)"));
            }
            previous = d;
        }
    }

    private DatasetFormatException error(String what) {
        return new DatasetFormatException(idxPath + " " + what);
    }

    private static MemorySegment map(Path path, Arena arena) {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            return ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
        } catch (NoSuchFileException e) {
            // The message spells out the cause's own text, so the CLI does not repeat it as a "caused by" line.
            String prefix = path.toString().replaceAll("\\.(bin|idx)$", "");
            throw new DatasetFormatException("cannot open " + path + ": no such file or directory (an indexed dataset needs both "
                    + prefix + ".bin and " + prefix + ".idx" + missingDatasetHint(prefix) + ")", e);
        } catch (IOException e) {
            throw new DatasetFormatException("cannot map " + path + ": " + e.getMessage(), e);
        }
    }

    /** What the user probably meant: the prefix without a .bin/.idx suffix, or a dataset inside the folder they named. */
    private static String missingDatasetHint(String prefix) {
        String withoutSuffix = prefix.replaceAll("\\.(bin|idx)$", "");
        if (!withoutSuffix.equals(prefix) && java.nio.file.Files.isRegularFile(Path.of(withoutSuffix + ".idx"))) {
            return "; give the prefix without .bin/.idx: " + withoutSuffix;
        }
        Path folder = Path.of(prefix);
        if (!java.nio.file.Files.isDirectory(folder)) {
            return "";
        }
        try (var files = java.nio.file.Files.list(folder)) {
            var datasets = files.map(f -> f.getFileName().toString()).filter(n -> n.endsWith(".idx")).sorted().limit(3)
                    .map(n -> folder.resolve(n.substring(0, n.length() - 4)).toString()).toList();
            return "; " + prefix + " is a folder" + (datasets.isEmpty() ? " without .idx files"
                    : ": give a dataset prefix such as " + String.join(" or ", datasets));
        } catch (IOException e) {
            return "; " + prefix + " is a folder";
        }
    }

    private static boolean startsWith(MemorySegment s, String ascii) {
        if (s.byteSize() < ascii.length()) return false;
        for (int i = 0; i < ascii.length(); i++) {
            if (s.get(ValueLayout.JAVA_BYTE, i) != ascii.charAt(i)) return false;
        }
        return true;
    }

    private static String hex(MemorySegment s, long from, int count) {
        StringBuilder sb = new StringBuilder();
        for (long i = from; i < Math.min(s.byteSize(), from + count); i++) {
            sb.append(String.format("%02x", s.get(ValueLayout.JAVA_BYTE, i)));
        }
        return sb.toString();
    }
}
