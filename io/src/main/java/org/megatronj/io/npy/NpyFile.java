package org.megatronj.io.npy;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads and writes NumPy {@code .npy} files. Writing produces the exact bytes {@code numpy.save}
 * (NumPy 1.24 and later, format 1.0) writes for the same array: magic {@code \x93NUMPY}, version
 * {@code 01 00}, little-endian u16 header length, the header dict in NumPy's spelling followed by
 * NumPy's 21-character growth padding for the first axis, spaces to a 64-byte boundary, {@code \n},
 * then the raw C-order data. Reading accepts format versions 1.0, 2.0 and 3.0 and maps the data
 * without copying.
 */
public final class NpyFile {
    private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
    private static final int ALIGN = 64;
    /** NumPy's {@code GROWTH_AXIS_MAX_DIGITS}: room left in the header to grow the first axis in place. */
    private static final int GROWTH_AXIS_MAX_DIGITS = 21;
    private static final Pattern DESCR = Pattern.compile("'descr'\\s*:\\s*'([^']*)'");
    private static final Pattern FORTRAN = Pattern.compile("'fortran_order'\\s*:\\s*(True|False)");
    private static final Pattern SHAPE = Pattern.compile("'shape'\\s*:\\s*\\(([^)]*)\\)");

    private NpyFile() {
    }

    /** The header bytes (magic through the final newline) {@code numpy.save} writes for this dtype and shape. */
    public static byte[] header(NpyDtype dtype, long[] shape) {
        StringBuilder dict = new StringBuilder();
        dict.append("{'descr': '").append(dtype.descr()).append("', 'fortran_order': False, 'shape': ")
                .append(shapeRepr(shape)).append(", }");
        if (shape.length > 0) {
            dict.repeat(' ', GROWTH_AXIS_MAX_DIGITS - Long.toString(shape[0]).length());
        }
        int headerLength = dict.length() + 1;
        int padding = ALIGN - ((MAGIC.length + 2 + 2 + headerLength) % ALIGN);
        dict.repeat(' ', padding).append('\n');
        byte[] text = dict.toString().getBytes(StandardCharsets.ISO_8859_1);
        if (text.length > 0xffff) {
            throw new IllegalArgumentException("header of " + text.length + " bytes does not fit format 1.0");
        }
        byte[] out = new byte[MAGIC.length + 4 + text.length];
        System.arraycopy(MAGIC, 0, out, 0, MAGIC.length);
        out[6] = 1;
        out[7] = 0;
        out[8] = (byte) text.length;
        out[9] = (byte) (text.length >>> 8);
        System.arraycopy(text, 0, out, 10, text.length);
        return out;
    }

    /** Python's {@code repr} of a shape tuple: {@code ()}, {@code (5,)}, {@code (5, 2)}. */
    static String shapeRepr(long[] shape) {
        if (shape.length == 1) {
            return "(" + shape[0] + ",)";
        }
        StringBuilder s = new StringBuilder("(");
        for (int i = 0; i < shape.length; i++) {
            s.append(i == 0 ? "" : ", ").append(shape[i]);
        }
        return s.append(')').toString();
    }

    /**
     * Writes {@code array} to {@code file} as {@code numpy.save} would. The bytes go to a temporary
     * file in the same folder that is renamed over {@code file} once complete, so a reader never sees
     * half a file.
     */
    public static void write(Path file, NpyArray array) throws IOException {
        Path dir = file.toAbsolutePath().getParent();
        Files.createDirectories(dir);
        // a unique name in the same folder, created with the process's usual permissions (not createTempFile's 0600)
        Path tmp = dir.resolve(file.getFileName() + "." + ProcessHandle.current().pid() + "." + System.nanoTime() + ".tmp");
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.CREATE_NEW);
                 Arena arena = Arena.ofConfined()) {
                writeFully(ch, MemorySegment.ofArray(header(array.dtype(), array.shape())));
                MemorySegment data = array.data();
                long chunk = 1 << 20;
                MemorySegment buffer = arena.allocate(Math.min(chunk, Math.max(1, data.byteSize())), 8);
                for (long off = 0; off < data.byteSize(); off += chunk) {
                    long n = Math.min(chunk, data.byteSize() - off);
                    MemorySegment.copy(data, off, buffer, 0, n);
                    writeFully(ch, buffer.asSlice(0, n));
                }
                ch.force(false);
            }
            try {
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    private static void writeFully(FileChannel ch, MemorySegment bytes) throws IOException {
        var buffer = bytes.asByteBuffer();
        while (buffer.hasRemaining()) {
            ch.write(buffer);
        }
    }

    /**
     * Maps {@code file} read-only into {@code arena} and returns the array over the mapped bytes.
     * The array is valid until the arena closes.
     */
    public static NpyArray read(Path file, Arena arena) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            MemorySegment whole = size == 0 ? MemorySegment.ofArray(new byte[0]) : ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            return parse(file, whole);
        }
    }

    /** Reads {@code file} fully into heap memory (no mapping; for small files and tests). */
    public static NpyArray readCopy(Path file) throws IOException {
        return parse(file, MemorySegment.ofArray(Files.readAllBytes(file)));
    }

    private static NpyArray parse(Path file, MemorySegment bytes) throws NpyFormatException {
        long size = bytes.byteSize();
        if (size < 10) {
            throw new NpyFormatException(file, "file has " + size + " bytes, too short for a .npy header (at least 10)");
        }
        for (int i = 0; i < MAGIC.length; i++) {
            if (bytes.get(ValueLayout.JAVA_BYTE, i) != MAGIC[i]) {
                throw new NpyFormatException(file, "bad magic at offset " + i + ": expected \\x93NUMPY");
            }
        }
        int major = bytes.get(ValueLayout.JAVA_BYTE, 6);
        long headerLength;
        int headerStart;
        var le = ByteOrder.LITTLE_ENDIAN;
        if (major == 1) {
            headerLength = bytes.get(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(le), 8) & 0xffff;
            headerStart = 10;
        } else if (major == 2 || major == 3) {
            if (size < 12) {
                throw new NpyFormatException(file, "file too short for a version " + major + " header");
            }
            headerLength = bytes.get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(le), 8) & 0xffffffffL;
            headerStart = 12;
        } else {
            throw new NpyFormatException(file, "format version " + major + "." + bytes.get(ValueLayout.JAVA_BYTE, 7)
                    + " at offset 6 is not supported (expected 1.0, 2.0 or 3.0)");
        }
        long dataStart = headerStart + headerLength;
        if (dataStart > size) {
            throw new NpyFormatException(file, "header length " + headerLength + " at offset 8 runs past the end of the file (" + size + " bytes)");
        }
        byte[] headerBytes = bytes.asSlice(headerStart, headerLength).toArray(ValueLayout.JAVA_BYTE);
        String header = new String(headerBytes, major == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1);
        Matcher descr = DESCR.matcher(header);
        Matcher fortran = FORTRAN.matcher(header);
        Matcher shapeText = SHAPE.matcher(header);
        if (!descr.find() || !fortran.find() || !shapeText.find()) {
            throw new NpyFormatException(file, "header is not a simple array header with 'descr', 'fortran_order' and 'shape': " + header.strip());
        }
        NpyDtype dtype;
        try {
            dtype = NpyDtype.fromDescr(descr.group(1));
        } catch (IllegalArgumentException e) {
            throw new NpyFormatException(file, e.getMessage());
        }
        long[] shape = parseShape(file, shapeText.group(1));
        if (fortran.group(1).equals("True") && shape.length > 1) {
            throw new NpyFormatException(file, "Fortran-order arrays are not supported; save with C order");
        }
        long dataBytes;
        try {
            dataBytes = Math.multiplyExact(NpyArray.elementCount(shape), dtype.byteSize());
        } catch (ArithmeticException e) {
            throw new NpyFormatException(file, "shape " + shapeText.group(1) + " is too large");
        }
        if (size - dataStart != dataBytes) {
            throw new NpyFormatException(file, "data section has " + (size - dataStart) + " bytes at offset " + dataStart
                    + " but shape (" + shapeText.group(1) + ") of " + dtype.descr() + " needs " + dataBytes);
        }
        return new NpyArray(dtype, shape, bytes.asSlice(dataStart, dataBytes));
    }

    private static long[] parseShape(Path file, String text) throws NpyFormatException {
        String[] parts = text.split(",");
        int n = 0;
        long[] dims = new long[parts.length];
        for (String p : parts) {
            String t = p.strip();
            if (t.endsWith("L")) {
                t = t.substring(0, t.length() - 1);
            }
            if (t.isEmpty()) {
                continue;
            }
            try {
                dims[n++] = Long.parseLong(t);
            } catch (NumberFormatException e) {
                throw new NpyFormatException(file, "bad shape entry '" + p.strip() + "' in (" + text + ")");
            }
        }
        return java.util.Arrays.copyOf(dims, n);
    }
}
