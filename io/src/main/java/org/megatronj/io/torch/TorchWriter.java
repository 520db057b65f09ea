package org.megatronj.io.torch;

import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

import org.megatronj.memory.FloatFormats;

/**
 * Writes what {@code torch.load} reads: a zip of {@code <archive>/data.pkl} (the object as {@link Pickler} writes it,
 * each {@link TensorData} a tensor rebuilt by {@code torch._utils._rebuild_tensor_v2} from its own storage),
 * {@code <archive>/data/<key>} (the storages, little-endian), {@code byteorder} and {@code version}. The file is
 * written under a temporary name and renamed when complete.
 */
public final class TorchWriter {

    /** A tensor to write: its values, stored as {@code dtype} ({@code torch.float32}, {@code torch.bfloat16} or {@code torch.float16}). */
    public record TensorData(String dtype, long[] shape, float[] values) {
        public TensorData {
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            if (n != values.length) {
                throw new IllegalArgumentException(values.length + " values for shape " + java.util.Arrays.toString(shape));
            }
            storageType(dtype);
        }
    }

    private final List<byte[]> storages = new ArrayList<>();

    private TorchWriter() {
    }

    /** Writes {@code root} to {@code file}; returns the bytes written. */
    public static long write(Path file, Object root) {
        TorchWriter w = new TorchWriter();
        byte[] pickle = Pickler.dumps(w.withStorages(root));
        String archive = file.getFileName().toString().replaceFirst("\\.[^.]*$", "");
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        try {
            try (OutputStream os = Files.newOutputStream(tmp); ZipOutputStream zip = new ZipOutputStream(os)) {
                stored(zip, archive + "/data.pkl", pickle);
                stored(zip, archive + "/byteorder", "little".getBytes(StandardCharsets.US_ASCII));
                for (int i = 0; i < w.storages.size(); i++) {
                    stored(zip, archive + "/data/" + i, w.storages.get(i));
                }
                stored(zip, archive + "/version", "3\n".getBytes(StandardCharsets.US_ASCII));
            }
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            return Files.size(file);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
        }
    }

    /** {@code root} with every TensorData replaced by torch's rebuild call over a storage of its own. */
    private Object withStorages(Object v) {
        return switch (v) {
            case null -> null;
            case TensorData t -> tensor(t);
            case Pickler.OrderedDict d -> new Pickler.OrderedDict(mapValues(d.entries()));
            case Pickler.NewObject o -> new Pickler.NewObject(o.cls(), mapValues(o.state()));
            case Map<?, ?> m -> mapValues(m);
            case List<?> l -> l.stream().map(this::withStorages).toList();
            default -> v;
        };
    }

    private <K> Map<K, Object> mapValues(Map<K, ?> m) {
        Map<K, Object> out = new LinkedHashMap<>();
        m.forEach((k, v) -> out.put(k, withStorages(v)));
        return out;
    }

    private Pickler.Call tensor(TensorData t) {
        String key = Integer.toString(storages.size());
        storages.add(bytes(t));
        long[] stride = new long[t.shape().length];
        long s = 1;
        for (int d = stride.length - 1; d >= 0; d--) {
            stride[d] = s;
            s *= t.shape()[d];
        }
        var storage = new Pickler.PersistentId(new Pickler.Tuple(List.of("storage", new Unpickler.Global("torch",
                storageType(t.dtype())), key, "cpu", (long) t.values().length)));
        return new Pickler.Call(new Unpickler.Global("torch._utils", "_rebuild_tensor_v2"), List.of(storage, 0L,
                tuple(t.shape()), tuple(stride), false, new Pickler.OrderedDict(Map.of())));
    }

    private static Pickler.Tuple tuple(long[] values) {
        List<Object> items = new ArrayList<>();
        for (long v : values) {
            items.add(v);
        }
        return new Pickler.Tuple(items);
    }

    private static String storageType(String dtype) {
        return switch (dtype) {
            case "torch.float32" -> "FloatStorage";
            case "torch.bfloat16" -> "BFloat16Storage";
            case "torch.float16" -> "HalfStorage";
            default -> throw new IllegalArgumentException("tensors are written as torch.float32, torch.bfloat16 or"
                    + " torch.float16, not " + dtype);
        };
    }

    private static byte[] bytes(TensorData t) {
        boolean f32 = t.dtype().equals("torch.float32");
        ByteBuffer b = ByteBuffer.allocate(t.values().length * (f32 ? 4 : 2)).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : t.values()) {
            switch (t.dtype()) {
                case "torch.float32" -> b.putFloat(v);
                case "torch.bfloat16" -> b.putShort(FloatFormats.floatToBf16(v));
                default -> b.putShort(FloatFormats.floatToF16(v));
            }
        }
        return b.array();
    }

    private static void stored(ZipOutputStream zip, String name, byte[] data) throws IOException {
        ZipEntry e = new ZipEntry(name);
        e.setMethod(ZipEntry.STORED);
        e.setSize(data.length);
        e.setCompressedSize(data.length);
        CRC32 crc = new CRC32();
        crc.update(data);
        e.setCrc(crc.getValue());
        zip.putNextEntry(e);
        zip.write(data);
        zip.closeEntry();
    }
}
