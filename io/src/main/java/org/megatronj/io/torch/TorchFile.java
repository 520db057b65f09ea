package org.megatronj.io.torch;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;

import org.megatronj.memory.FloatFormats;

/**
 * A file {@code torch.save} wrote (the zip format of PyTorch 1.6 on): {@code <archive>/data.pkl}, the pickled object,
 * whose tensors point at storages stored as {@code <archive>/data/<key>}. {@link #root()} is the object as
 * {@link Unpickler} reads it, with each tensor a {@link TensorRef}; {@link #floats} reads a tensor's values. Nothing
 * from the file is executed.
 */
public final class TorchFile implements AutoCloseable {

    /** A storage: its element type (torch's class name, e.g. {@code BFloat16Storage}), key and element count. */
    public record Storage(String type, String key, long numel) {
        /** Bytes per element. */
        int elementSize() {
            return switch (type) {
                case "FloatStorage", "IntStorage" -> 4;
                case "HalfStorage", "BFloat16Storage", "ShortStorage" -> 2;
                case "DoubleStorage", "LongStorage" -> 8;
                case "ByteStorage", "CharStorage", "BoolStorage" -> 1;
                default -> throw new IllegalArgumentException("torch storage type " + type + " is not supported");
            };
        }
    }

    /** A tensor: a view of a storage, {@code offset}, {@code shape} and {@code stride} in elements. */
    public record TensorRef(Storage storage, long offset, long[] shape, long[] stride) {
        public long numel() {
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            return n;
        }

        /** The dtype as torch names it: {@code torch.bfloat16}, ... */
        public String dtype() {
            return switch (storage.type()) {
                case "FloatStorage" -> "torch.float32";
                case "HalfStorage" -> "torch.float16";
                case "BFloat16Storage" -> "torch.bfloat16";
                case "DoubleStorage" -> "torch.float64";
                case "LongStorage" -> "torch.int64";
                case "IntStorage" -> "torch.int32";
                default -> "torch." + storage.type();
            };
        }

        boolean contiguous() {
            long expected = 1;
            for (int d = shape.length - 1; d >= 0; d--) {
                if (shape[d] != 1 && stride[d] != expected) {
                    return false;
                }
                expected *= shape[d];
            }
            return true;
        }

        @Override
        public String toString() {
            return "tensor(" + dtype() + ", " + Arrays.toString(shape) + ")";
        }
    }

    private static final Unpickler.Global REBUILD_TENSOR = new Unpickler.Global("torch._utils", "_rebuild_tensor_v2");
    private static final Unpickler.Global REBUILD_PARAMETER = new Unpickler.Global("torch._utils", "_rebuild_parameter");
    private static final Unpickler.Global ENCODE = new Unpickler.Global("_codecs", "encode");

    /** The entries of the zip archive: a whole file's, or a byte range's that {@link StoredZip} reads in place. */
    private interface Archive {
        List<String> names();

        /** A stream over entry {@code name}, or null when there is none. */
        InputStream open(String name) throws IOException;

        void close() throws IOException;
    }

    private final String file;
    private final Archive zip;
    private final String prefix;
    private final ByteOrder order;
    private final Object root;

    private TorchFile(String file, Archive zip) throws IOException {
        this.file = file;
        this.zip = zip;
        try {
            this.prefix = archivePrefix();
            byte[] byteorder = read(prefix + "byteorder");
            this.order = byteorder != null && new String(byteorder, java.nio.charset.StandardCharsets.US_ASCII).strip()
                    .equals("big") ? ByteOrder.BIG_ENDIAN : ByteOrder.LITTLE_ENDIAN;
            Map<Unpickler.Global, Function<List<Object>, Object>> reducers = Map.of(
                    REBUILD_TENSOR, args -> new TensorRef((Storage) args.get(0), toLong(args.get(1)), longs(args.get(2)),
                            longs(args.get(3))),
                    REBUILD_PARAMETER, args -> args.get(0),
                    ENCODE, args -> ((String) args.get(0)).getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
            this.root = new Unpickler(read(prefix + "data.pkl"), file + " (data.pkl)", reducers, this::storage).load();
        } catch (IOException | RuntimeException e) {
            zip.close();
            throw e;
        }
    }

    /** Opens a {@code torch.save} file; the legacy (pre-1.6, non-zip) format is refused by name. */
    public static TorchFile open(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException(file + ": no such file");
        }
        try {
            byte[] head = new byte[4];
            try (InputStream in = Files.newInputStream(file)) {
                if (in.readNBytes(head, 0, 4) < 4 || head[0] != 'P' || head[1] != 'K') {
                    throw new IllegalArgumentException(file + " is not a zip file: PyTorch's legacy (before 1.6) format is not"
                            + " supported; re-save it with a newer PyTorch (torch.save writes zip files since 1.6)");
                }
            }
            ZipFile zip = new ZipFile(file.toFile());
            return new TorchFile(file.toString(), new Archive() {
                @Override
                public List<String> names() {
                    return zip.stream().map(ZipEntry::getName).toList();
                }

                @Override
                public InputStream open(String name) throws IOException {
                    ZipEntry entry = zip.getEntry(name);
                    return entry == null ? null : zip.getInputStream(entry);
                }

                @Override
                public void close() throws IOException {
                    zip.close();
                }
            });
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
    }

    /**
     * Reads what one {@code torch.save} wrote into {@code bytes} (e.g. a byte range of a distributed checkpoint's
     * {@code .distcp} file), in place; {@code source} names it in errors. The segment must outlive the result.
     */
    public static TorchFile open(MemorySegment bytes, String source) {
        if (bytes.byteSize() < 4 || bytes.get(ValueLayout.JAVA_BYTE, 0) != 'P' || bytes.get(ValueLayout.JAVA_BYTE, 1) != 'K') {
            throw new IllegalArgumentException(source + " is not a zip archive, so not what torch.save writes");
        }
        StoredZip zip = StoredZip.read(bytes, source);
        try {
            return new TorchFile(source, new Archive() {
                @Override
                public List<String> names() {
                    return zip.names();
                }

                @Override
                public InputStream open(String name) {
                    return zip.open(name);
                }

                @Override
                public void close() {
                }
            });
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + source + ": " + e.getMessage(), e);
        }
    }

    /** The unpickled object. */
    public Object root() {
        return root;
    }

    /** The values of {@code t} (a floating-point tensor of this file) as floats, in row-major order. */
    public float[] floats(TensorRef t) {
        String type = t.storage().type();
        int size = t.storage().elementSize();
        long numel = t.numel();
        if (numel > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(file + ": " + t + " has more than 2^31 elements");
        }
        float[] out = new float[(int) numel];
        try (InputStream in = zip.open(prefix + "data/" + t.storage().key())) {
            if (in == null) {
                throw new IllegalArgumentException(file + " lacks the storage " + t.storage().key() + " of " + t);
            }
            if (t.contiguous()) {
                in.skipNBytes(t.offset() * size);
                ByteBuffer b = ByteBuffer.wrap(in.readNBytes((int) (numel * size))).order(order);
                for (int i = 0; i < out.length; i++) {
                    out[i] = element(b, i * size, type);
                }
            } else {
                ByteBuffer b = ByteBuffer.wrap(in.readAllBytes()).order(order);
                long[] index = new long[t.shape().length];
                for (int i = 0; i < out.length; i++) {
                    long at = t.offset();
                    for (int d = 0; d < index.length; d++) {
                        at += index[d] * t.stride()[d];
                    }
                    out[i] = element(b, Math.toIntExact(at * size), type);
                    for (int d = index.length - 1; d >= 0 && ++index[d] == t.shape()[d]; d--) {
                        index[d] = 0;
                    }
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + t + " from " + file + ": " + e.getMessage(), e);
        } catch (java.nio.BufferUnderflowException | IndexOutOfBoundsException e) {
            throw new IllegalArgumentException(file + ": " + t + " reaches past its storage " + t.storage().key()
                    + " (truncated file?)", e);
        }
        return out;
    }

    private static float element(ByteBuffer b, int at, String type) {
        return switch (type) {
            case "FloatStorage" -> b.getFloat(at);
            case "HalfStorage" -> FloatFormats.f16ToFloat(b.getShort(at));
            case "BFloat16Storage" -> FloatFormats.bf16ToFloat(b.getShort(at));
            case "DoubleStorage" -> (float) b.getDouble(at);
            default -> throw new IllegalArgumentException("a " + type + " tensor is not floating point");
        };
    }

    /** torch's persistent id of a storage: {@code ('storage', <class>, key, location, numel)}. */
    private Object storage(Object pid) {
        if (pid instanceof List<?> l && l.size() == 5 && "storage".equals(l.get(0)) && l.get(1) instanceof Unpickler.Global g) {
            return new Storage(g.name(), String.valueOf(l.get(2)), toLong(l.get(4)));
        }
        throw new IllegalArgumentException(file + ": persistent id " + pid + " is not a torch storage");
    }

    /** The folder inside the zip that holds data.pkl (the archive's name, e.g. {@code model_optim_rng/}). */
    private String archivePrefix() {
        for (String name : zip.names()) {
            if (name.endsWith("data.pkl") && name.indexOf('/') == name.length() - "data.pkl".length() - 1) {
                return name.substring(0, name.length() - "data.pkl".length());
            }
        }
        throw new IllegalArgumentException(file + " is a zip file without <archive>/data.pkl: not written by torch.save");
    }

    /** The bytes of entry {@code name}, or null when there is none. */
    private byte[] read(String name) throws IOException {
        try (InputStream in = zip.open(name)) {
            return in == null ? null : in.readAllBytes();
        }
    }

    private static long toLong(Object o) {
        return ((Number) o).longValue();
    }

    private static long[] longs(Object tuple) {
        List<?> l = (List<?>) tuple;
        long[] out = new long[l.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = toLong(l.get(i));
        }
        return out;
    }

    @Override
    public void close() {
        try {
            zip.close();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot close " + file + ": " + e.getMessage(), e);
        }
    }
}
