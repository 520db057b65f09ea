package org.megatronj.io.safetensors;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A safetensors file mapped read-only into memory. The header is parsed and checked when the
 * file opens (dtypes, shapes, offsets inside the data section, no overlaps), so later reads
 * cannot fail half-way. {@link #tensor} returns zero-copy views of the mapping that live until
 * {@link #close()}.
 */
public final class SafetensorsFile implements AutoCloseable {
    /** Larger headers are certainly corrupt (the reference implementation caps at 100 MB). */
    private static final long MAX_HEADER_BYTES = 100L << 20;
    private static final ObjectMapper JSON = new ObjectMapper();

    /** One entry of the header: where a tensor's bytes lie relative to the data section. */
    public record TensorInfo(String name, DType dtype, long[] shape, long begin, long end) {
        public long numel() {
            return Tensor.numel(shape);
        }
    }

    private final Path path;
    private final Arena arena;
    private final MemorySegment data;
    private final Map<String, TensorInfo> tensors;
    private final Map<String, String> metadata;

    private SafetensorsFile(Path path, Arena arena, MemorySegment data, Map<String, TensorInfo> tensors,
                            Map<String, String> metadata) {
        this.path = path;
        this.arena = arena;
        this.data = data;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    /** Maps and validates {@code path}; throws {@link SafetensorsException} naming the file and the defect. */
    public static SafetensorsFile open(Path path) {
        Arena arena = Arena.ofShared();
        try {
            MemorySegment file;
            try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
                file = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
            }
            long size = file.byteSize();
            if (size < 8) {
                throw new SafetensorsException(path + ": file is " + size
                        + " bytes; a safetensors file starts with an 8-byte header length");
            }
            long headerLength = file.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN), 0);
            if (headerLength < 2 || headerLength > MAX_HEADER_BYTES || headerLength > size - 8) {
                throw new SafetensorsException(path + ": header length " + headerLength + " at offset 0 is impossible for a "
                        + size + "-byte file (expected 2.." + Math.min(MAX_HEADER_BYTES, size - 8) + ")");
            }
            byte[] headerBytes = file.asSlice(8, headerLength).toArray(ValueLayout.JAVA_BYTE);
            MemorySegment data = file.asSlice(8 + headerLength);
            Map<String, String> metadata = new LinkedHashMap<>();
            Map<String, TensorInfo> tensors = parseHeader(path, headerBytes, data.byteSize(), metadata);
            return new SafetensorsFile(path, arena, data, tensors, Collections.unmodifiableMap(metadata));
        } catch (NoSuchFileException e) {
            arena.close();
            throw new SafetensorsException(path + ": no such safetensors file", e);
        } catch (IOException e) {
            arena.close();
            throw new UncheckedIOException("cannot read safetensors file " + path + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static Map<String, TensorInfo> parseHeader(Path path, byte[] headerBytes, long dataSize,
                                                       Map<String, String> metadataOut) {
        JsonNode root;
        try {
            root = JSON.readTree(new String(headerBytes, StandardCharsets.UTF_8));
        } catch (JsonProcessingException e) {
            throw new SafetensorsException(path + ": header is not valid JSON (at header byte "
                    + e.getLocation().getCharOffset() + "): " + e.getOriginalMessage());
        }
        if (root == null || !root.isObject()) {
            throw new SafetensorsException(path + ": header must be a JSON object of tensor entries");
        }
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = root.properties().iterator(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String name = e.getKey();
            JsonNode node = e.getValue();
            if (name.equals("__metadata__")) {
                if (!node.isObject()) {
                    throw new SafetensorsException(path + ": __metadata__ must be an object of strings");
                }
                node.properties().forEach(m -> {
                    if (!m.getValue().isTextual()) {
                        throw new SafetensorsException(path + ": __metadata__." + m.getKey() + " must be a string");
                    }
                    metadataOut.put(m.getKey(), m.getValue().asText());
                });
                continue;
            }
            tensors.put(name, parseEntry(path, name, node, dataSize));
        }
        checkNoOverlap(path, tensors);
        return tensors;
    }

    private static TensorInfo parseEntry(Path path, String name, JsonNode node, long dataSize) {
        String where = path + ": tensor '" + name + "'";
        if (!node.isObject() || !node.has("dtype") || !node.has("shape") || !node.has("data_offsets")) {
            throw new SafetensorsException(where + ": entry must have dtype, shape and data_offsets");
        }
        DType dtype = SafetensorsDType.parse(node.get("dtype").asText(), where);
        JsonNode shapeNode = node.get("shape");
        if (!shapeNode.isArray()) {
            throw new SafetensorsException(where + ": shape must be an array of non-negative integers");
        }
        long[] shape = new long[shapeNode.size()];
        for (int i = 0; i < shape.length; i++) {
            JsonNode d = shapeNode.get(i);
            if (!d.canConvertToLong() || !d.isIntegralNumber() || d.asLong() < 0) {
                throw new SafetensorsException(where + ": shape " + shapeNode + " must hold non-negative integers");
            }
            shape[i] = d.asLong();
        }
        JsonNode offsets = node.get("data_offsets");
        if (!offsets.isArray() || offsets.size() != 2 || !offsets.get(0).isIntegralNumber() || !offsets.get(1).isIntegralNumber()) {
            throw new SafetensorsException(where + ": data_offsets must be [begin, end]");
        }
        long begin = offsets.get(0).asLong();
        long end = offsets.get(1).asLong();
        long expected = Tensor.byteSize(dtype, shape);
        if (begin < 0 || end < begin || end > dataSize) {
            throw new SafetensorsException(where + ": data_offsets [" + begin + ", " + end
                    + "] lie outside the data section of " + dataSize + " bytes (file truncated?)");
        }
        if (end - begin != expected) {
            throw new SafetensorsException(where + ": data_offsets [" + begin + ", " + end + "] span " + (end - begin)
                    + " bytes but " + dtype + Tensor.shapeString(shape) + " needs " + expected);
        }
        return new TensorInfo(name, dtype, shape, begin, end);
    }

    private static void checkNoOverlap(Path path, Map<String, TensorInfo> tensors) {
        List<TensorInfo> sorted = new ArrayList<>(tensors.values());
        sorted.sort(Comparator.comparingLong(TensorInfo::begin));
        for (int i = 1; i < sorted.size(); i++) {
            TensorInfo prev = sorted.get(i - 1);
            TensorInfo cur = sorted.get(i);
            if (cur.begin() < prev.end()) {
                throw new SafetensorsException(path + ": tensors '" + prev.name() + "' and '" + cur.name()
                        + "' overlap in the data section");
            }
        }
    }

    public Path path() {
        return path;
    }

    /** Tensor names in header order. */
    public List<String> names() {
        return List.copyOf(tensors.keySet());
    }

    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    public TensorInfo info(String name) {
        TensorInfo info = tensors.get(name);
        if (info == null) {
            throw new SafetensorsException(path + ": no tensor named '" + name + "' (the file holds " + tensors.size()
                    + " tensors" + (tensors.isEmpty() ? "" : ", e.g. '" + tensors.keySet().iterator().next() + "'") + ")");
        }
        return info;
    }

    /** The string pairs of {@code __metadata__}, empty when absent. */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** A read-only view of the mapped bytes of {@code name}, valid until this file closes. */
    public Tensor tensor(String name) {
        TensorInfo info = info(name);
        return Tensor.wrap(data.asSlice(info.begin(), info.end() - info.begin()), info.dtype(), info.shape());
    }

    /**
     * Copies {@code name} into {@code dst}, which must have the same dtype and shape; the message
     * names both shapes otherwise (a checkpoint from another model shape).
     */
    public void copyTo(String name, Tensor dst) {
        TensorInfo info = info(name);
        if (!dst.device().isHost()) {
            throw new SafetensorsException(path + ": cannot copy '" + name + "' into " + dst + ": the destination is on "
                    + dst.device() + "; load into a host tensor and copy it with the backend");
        }
        if (info.dtype() != dst.dtype() || !java.util.Arrays.equals(info.shape(), dst.shape())) {
            throw new SafetensorsException(path + ": tensor '" + name + "' is " + info.dtype() + Tensor.shapeString(info.shape())
                    + " but the model expects " + dst.dtype() + Tensor.shapeString(dst.shape()));
        }
        MemorySegment.copy(data, info.begin(), dst.segment(), 0, info.end() - info.begin());
    }

    /** Total bytes of tensor data. */
    public long dataBytes() {
        return data.byteSize();
    }

    @Override
    public void close() {
        arena.close();
    }
}
