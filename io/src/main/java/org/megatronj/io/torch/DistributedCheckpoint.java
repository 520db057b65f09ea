package org.megatronj.io.torch;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A folder PyTorch's distributed checkpoint (DCP) {@code FileSystemWriter} wrote, as Megatron-LM's
 * {@code --ckpt-format torch_dist} does: {@code .metadata}, a pickled {@code Metadata} naming every item, and the
 * {@code __<rank>_<n>.distcp} files holding them. A tensor item has a global shape and dtype and is stored as chunks
 * (each rank writes its own), each chunk a whole {@code torch.save} archive at a byte range of a {@code .distcp} file;
 * a bytes item is raw bytes at a byte range. {@link #floats} assembles a tensor's chunks into the global tensor.
 *
 * <p>The pickle is read as data, its classes by the names of their fields, so that torch 1.13
 * ({@code torch.distributed._shard.checkpoint}) and torch 2.x ({@code torch.distributed.checkpoint}, with extra fields
 * such as {@code storage_meta} and {@code version}) read alike. The {@code .distcp} files are memory-mapped, not copied
 * into the heap; they stay mapped until {@link #close}.
 */
public final class DistributedCheckpoint implements AutoCloseable {
    /** Where an item's bytes are: {@code length} bytes at {@code offset} of {@code file} (a name in the folder). */
    public record Location(String file, long offset, long length) {
        @Override
        public String toString() {
            return file + " [bytes " + offset + ".." + (offset + length) + ")";
        }
    }

    /** One stored piece of a tensor: its place in the global tensor and where it is. */
    public record Chunk(long[] offsets, long[] sizes, Location location) {
        long numel() {
            return DistributedCheckpoint.numel(sizes);
        }
    }

    /** An item of the checkpoint. */
    public sealed interface Item permits TensorItem, BytesItem {
        String key();
    }

    /** A tensor: its dtype as torch names it ({@code torch.bfloat16}), global shape and chunks. */
    public record TensorItem(String key, String dtype, long[] shape, List<Chunk> chunks) implements Item {
        public long numel() {
            return DistributedCheckpoint.numel(shape);
        }

        @Override
        public String toString() {
            return key + " (" + dtype + ", " + Arrays.toString(shape) + ", " + chunks.size() + " chunks)";
        }
    }

    /** Bytes: what the saver put there (Megatron: {@code torch.save} of a list of objects). */
    public record BytesItem(String key, Location location) implements Item {
    }

    private static final Unpickler.Global SIZE = new Unpickler.Global("torch", "Size");
    private static final List<String> FLOATING = List.of("torch.float32", "torch.bfloat16", "torch.float16", "torch.float64");

    private final Path dir;
    private final Map<String, Item> items;
    private final Arena arena = Arena.ofShared();
    private final Map<String, MemorySegment> mapped = new HashMap<>();

    private DistributedCheckpoint(Path dir, Map<String, Item> items) {
        this.dir = dir;
        this.items = items;
    }

    /** Reads {@code dir/.metadata}; the {@code .distcp} files are opened as items are read. */
    public static DistributedCheckpoint open(Path dir) {
        Path file = dir.resolve(".metadata");
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException(dir + " has no .metadata: not a PyTorch distributed checkpoint folder");
        }
        byte[] pickle;
        try {
            pickle = Files.readAllBytes(file);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
        Object root = new Unpickler(pickle, file.toString(), Map.of(SIZE, args -> args.get(0)), null).load();
        return new DistributedCheckpoint(dir, new MetadataReader(file).items(root));
    }

    /** The folder. */
    public Path dir() {
        return dir;
    }

    /** Every item by key, in the order of {@code .metadata}. */
    public Map<String, Item> items() {
        return items;
    }

    /** The tensor item {@code key}. */
    public TensorItem tensor(String key) {
        if (items.get(key) instanceof TensorItem t) {
            return t;
        }
        throw new IllegalArgumentException(dir + ": " + (items.containsKey(key) ? key + " is a bytes item, not a tensor"
                : "no item " + key));
    }

    /**
     * The global tensor {@code key} as floats in row-major order, assembled from its chunks, which must cover it
     * exactly once (a chunk stored twice, as identical replicas, counts once).
     */
    public float[] floats(String key) {
        TensorItem t = tensor(key);
        return floats(key, new long[t.shape().length], t.shape());
    }

    /**
     * The box of tensor {@code key} at {@code offsets} of {@code sizes} (e.g. one layer of a stacked [L, ...] tensor)
     * as floats in row-major order, from the chunks it meets: a tensor may be larger than one Java array can hold.
     */
    public float[] floats(String key, long[] offsets, long[] sizes) {
        TensorItem t = tensor(key);
        if (!FLOATING.contains(t.dtype())) {
            throw new IllegalArgumentException(dir + ": " + t + " is not floating point (" + String.join(", ", FLOATING)
                    + " are read)");
        }
        Chunk box = new Chunk(offsets, sizes, null);
        if (!inside(box, t.shape())) {
            throw new IllegalArgumentException(dir + ": the box at " + Arrays.toString(offsets) + " of " + Arrays.toString(sizes)
                    + " is not inside " + t);
        }
        if (box.numel() > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(dir + ": the box of " + Arrays.toString(sizes) + " of " + t
                    + " has more than 2^31 elements");
        }
        float[] out = new float[(int) box.numel()];
        for (Chunk c : coveringChunks(t)) {
            if (!overlap(c, box)) {
                continue;
            }
            String source = dir.resolve(c.location().file()) + " [bytes " + c.location().offset() + ".."
                    + (c.location().offset() + c.location().length()) + ") (" + key + " at " + Arrays.toString(c.offsets()) + ")";
            try (TorchFile chunk = TorchFile.open(slice(c.location(), key), source)) {
                if (!(chunk.root() instanceof TorchFile.TensorRef ref) || !Arrays.equals(ref.shape(), c.sizes())) {
                    throw new IllegalArgumentException(source + " holds " + chunk.root() + "; .metadata says a tensor of shape "
                            + Arrays.toString(c.sizes()));
                }
                if (!ref.dtype().equals(t.dtype())) {
                    throw new IllegalArgumentException(source + " holds a " + ref.dtype() + " tensor; .metadata says " + t.dtype());
                }
                copyOverlap(chunk.floats(ref), c, out, box);
            }
        }
        return out;
    }

    /** The raw bytes of bytes item {@code key}. */
    public byte[] bytes(String key) {
        return slice(bytesItem(key).location(), key).toArray(ValueLayout.JAVA_BYTE);
    }

    /** Bytes item {@code key} read as what {@code torch.save} wrote there (Megatron's objects); close it before this. */
    public TorchFile torchFile(String key) {
        BytesItem b = bytesItem(key);
        return TorchFile.open(slice(b.location(), key), dir.resolve(b.location().file()) + " [bytes " + b.location().offset()
                + ".." + (b.location().offset() + b.location().length()) + ") (" + key + ")");
    }

    private BytesItem bytesItem(String key) {
        if (items.get(key) instanceof BytesItem b) {
            return b;
        }
        throw new IllegalArgumentException(dir + ": " + (items.containsKey(key) ? key + " is a tensor, not a bytes item"
                : "no item " + key));
    }

    /** The chunks, duplicates dropped, checked to lie inside the tensor, not to overlap and to cover it. */
    private List<Chunk> coveringChunks(TensorItem t) {
        List<Chunk> chunks = new ArrayList<>();
        long covered = 0;
        for (Chunk c : t.chunks()) {
            if (c.offsets().length != t.shape().length || c.sizes().length != t.shape().length) {
                throw new IllegalArgumentException(dir + ": " + t + " has a chunk at " + Arrays.toString(c.offsets()) + " of "
                        + Arrays.toString(c.sizes()) + ", not of the tensor's rank");
            }
            if (!inside(c, t.shape())) {
                throw new IllegalArgumentException(dir + ": " + t + " has a chunk at " + Arrays.toString(c.offsets())
                        + " of " + Arrays.toString(c.sizes()) + " reaching outside it");
            }
            if (chunks.stream().anyMatch(o -> Arrays.equals(o.offsets(), c.offsets()) && Arrays.equals(o.sizes(), c.sizes()))) {
                continue;   // the same piece saved by two replicas
            }
            for (Chunk o : chunks) {
                if (overlap(o, c)) {
                    throw new IllegalArgumentException(dir + ": " + t + " has overlapping chunks at " + Arrays.toString(o.offsets())
                            + " (" + Arrays.toString(o.sizes()) + ") and " + Arrays.toString(c.offsets()) + " ("
                            + Arrays.toString(c.sizes()) + ")");
                }
            }
            chunks.add(c);
            covered += c.numel();
        }
        if (covered != t.numel()) {
            throw new IllegalArgumentException(dir + ": the chunks of " + t + " cover " + covered + " of its " + t.numel()
                    + " elements: some rank's part is missing from .metadata");
        }
        return chunks;
    }

    private static boolean overlap(Chunk a, Chunk b) {
        for (int d = 0; d < a.offsets().length; d++) {
            if (a.offsets()[d] >= b.offsets()[d] + b.sizes()[d] || b.offsets()[d] >= a.offsets()[d] + a.sizes()[d]) {
                return false;
            }
        }
        return a.numel() > 0 && b.numel() > 0;
    }

    private static boolean inside(Chunk c, long[] shape) {
        if (c.offsets().length != shape.length || c.sizes().length != shape.length) {
            return false;
        }
        for (int d = 0; d < shape.length; d++) {
            if (c.offsets()[d] < 0 || c.sizes()[d] < 0 || c.offsets()[d] + c.sizes()[d] > shape[d]) {
                return false;
            }
        }
        return true;
    }

    /**
     * Copies where chunk {@code c} (its values row-major over its sizes) meets {@code box} into {@code out} (row-major
     * over the box's sizes), a run along the last axis at a time.
     */
    private static void copyOverlap(float[] values, Chunk c, float[] out, Chunk box) {
        int rank = box.sizes().length;
        if (rank == 0) {
            out[0] = values[0];
            return;
        }
        long[] lo = new long[rank], hi = new long[rank];
        for (int d = 0; d < rank; d++) {
            lo[d] = Math.max(c.offsets()[d], box.offsets()[d]);
            hi[d] = Math.min(c.offsets()[d] + c.sizes()[d], box.offsets()[d] + box.sizes()[d]);
            if (hi[d] <= lo[d]) {
                return;
            }
        }
        int run = (int) (hi[rank - 1] - lo[rank - 1]);
        long[] at = lo.clone();   // the global index of the run's start
        while (true) {
            long from = 0, to = 0;
            for (int d = 0; d < rank; d++) {
                from = from * c.sizes()[d] + (at[d] - c.offsets()[d]);
                to = to * box.sizes()[d] + (at[d] - box.offsets()[d]);
            }
            System.arraycopy(values, (int) from, out, (int) to, run);
            int d = rank - 2;
            for (; d >= 0 && ++at[d] == hi[d]; d--) {
                at[d] = lo[d];
            }
            if (d < 0) {
                return;
            }
        }
    }

    /** The bytes at {@code at}, from the mapped file, checked to be there. */
    private MemorySegment slice(Location at, String key) {
        MemorySegment file = map(at.file(), key);
        if (at.offset() < 0 || at.length() < 0 || at.offset() + at.length() > file.byteSize()) {
            throw new IllegalArgumentException(dir.resolve(at.file()) + " has " + file.byteSize() + " bytes but .metadata puts "
                    + key + " at bytes " + at.offset() + ".." + (at.offset() + at.length()) + ": the file is truncated");
        }
        return file.asSlice(at.offset(), at.length());
    }

    private synchronized MemorySegment map(String name, String key) {
        MemorySegment m = mapped.get(name);
        if (m != null) {
            return m;
        }
        Path file = dir.resolve(name).normalize();
        if (!file.startsWith(dir.normalize()) || !Files.isRegularFile(file)) {
            throw new IllegalArgumentException(dir + ": .metadata puts " + key + " in " + name + ", which is missing"
                    + " (copy every rank's .distcp file)");
        }
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            m = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot map " + file + ": " + e.getMessage(), e);
        }
        mapped.put(name, m);
        return m;
    }

    static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }

    /** Unmaps the files: segments and {@link TorchFile}s read from them are invalid afterwards. */
    @Override
    public void close() {
        arena.close();
    }

    /** Turns the unpickled {@code Metadata} into items, naming {@code .metadata} and the field in errors. */
    private record MetadataReader(Path file) {
        Map<String, Item> items(Object root) {
            Map<?, ?> metadata = fields(root, "Metadata");
            Map<?, ?> storage = map(metadata.get("storage_data"), "Metadata.storage_data");
            Map<String, Location> tensorChunks = new HashMap<>(), bytes = new HashMap<>();
            for (Map.Entry<?, ?> e : storage.entrySet()) {
                Map<?, ?> index = fields(e.getKey(), "MetadataIndex");
                Location at = location(e.getValue(), index.get("fqn"));
                String fqn = String.valueOf(index.get("fqn"));
                if (index.get("offset") == null) {
                    bytes.put(fqn, at);
                } else {
                    tensorChunks.put(fqn + Arrays.toString(longs(index.get("offset"), fqn)), at);
                }
            }
            Map<String, Item> items = new LinkedHashMap<>();
            for (Map.Entry<?, ?> e : map(metadata.get("state_dict_metadata"), "Metadata.state_dict_metadata").entrySet()) {
                String key = String.valueOf(e.getKey());
                if (e.getValue() instanceof Unpickler.Instance i && i.type().name().equals("BytesStorageMetadata")) {
                    Location at = bytes.get(key);
                    if (at == null) {
                        throw new IllegalArgumentException(file + ": bytes item " + key + " has no storage_data entry");
                    }
                    items.put(key, new BytesItem(key, at));
                } else if (e.getValue() instanceof Unpickler.Instance i && i.state() instanceof Map<?, ?> item
                        && item.containsKey("chunks")) {
                    items.put(key, tensor(key, item, tensorChunks));
                } else {
                    throw new IllegalArgumentException(file + ": item " + key + " is " + e.getValue() + ", neither a"
                            + " TensorStorageMetadata nor a BytesStorageMetadata");
                }
            }
            return items;
        }

        private TensorItem tensor(String key, Map<?, ?> item, Map<String, Location> stored) {
            List<Chunk> chunks = new ArrayList<>();
            for (Object o : list(item.get("chunks"), key + ".chunks")) {
                Map<?, ?> chunk = fields(o, key + "'s ChunkStorageMetadata");
                long[] offsets = longs(chunk.get("offsets"), key);
                Location at = stored.get(key + Arrays.toString(offsets));
                if (at == null) {
                    throw new IllegalArgumentException(file + ": the chunk of " + key + " at " + Arrays.toString(offsets)
                            + " has no storage_data entry");
                }
                chunks.add(new Chunk(offsets, longs(chunk.get("sizes"), key), at));
            }
            return new TensorItem(key, dtype(item.get("properties"), key), longs(item.get("size"), key), List.copyOf(chunks));
        }

        /** TensorProperties pickles its state as a tuple (dtype, layout, requires_grad, memory format, pin_memory). */
        private String dtype(Object properties, String key) {
            Object state = properties instanceof Unpickler.Instance i ? i.state() : null;
            Object dtype = state instanceof List<?> l && !l.isEmpty() ? l.get(0) : state instanceof Map<?, ?> m ? m.get("dtype") : null;
            if (dtype instanceof Unpickler.Global g && g.module().equals("torch")) {
                return "torch." + g.name();
            }
            throw new IllegalArgumentException(file + ": " + key + "'s properties " + properties + " name no torch dtype");
        }

        private Location location(Object info, Object key) {
            Map<?, ?> f = fields(info, key + "'s _StorageInfo");
            if (f.get("transform_descriptors") instanceof List<?> t && !t.isEmpty()) {
                throw new IllegalArgumentException(file + ": " + key + " is stored through the transforms " + t
                        + " (e.g. compression), which are not read; save it without DCP storage extensions");
            }
            if (f.get("relative_path") instanceof String path && f.get("offset") instanceof Number offset
                    && f.get("length") instanceof Number length) {
                return new Location(path, offset.longValue(), length.longValue());
            }
            throw new IllegalArgumentException(file + ": " + key + "'s storage info " + info
                    + " lacks relative_path, offset or length");
        }

        /** A dataclass instance's fields (its pickled {@code __dict__}). */
        private Map<?, ?> fields(Object o, String what) {
            if (o instanceof Unpickler.Instance i && i.state() instanceof Map<?, ?> m) {
                return m;
            }
            throw new IllegalArgumentException(file + ": " + what + " is " + o + ", not an object with fields:"
                    + " not a PyTorch distributed checkpoint's .metadata");
        }

        private Map<?, ?> map(Object o, String what) {
            if (o instanceof Map<?, ?> m) {
                return m;
            }
            throw new IllegalArgumentException(file + ": " + what + " is " + o + ", not a dict");
        }

        private List<?> list(Object o, String what) {
            if (o instanceof List<?> l) {
                return l;
            }
            throw new IllegalArgumentException(file + ": " + what + " is " + o + ", not a list");
        }

        private long[] longs(Object o, String key) {
            List<?> l = list(o, key + "'s shape or offsets");
            long[] out = new long[l.size()];
            for (int i = 0; i < out.length; i++) {
                if (!(l.get(i) instanceof Number n)) {
                    throw new IllegalArgumentException(file + ": " + key + " has a shape or offset " + l + " of non-integers");
                }
                out[i] = n.longValue();
            }
            return out;
        }
    }
}
