package org.megatronj.parallel.checkpoint;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.megatronj.io.safetensors.SafetensorsFile;
import org.megatronj.memory.Tensor;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The weights of a Hugging Face model folder, as transformers finds them: {@code model.safetensors},
 * else the shards that {@code model.safetensors.index.json} lists ({@code save_pretrained} shards
 * anything over 5 GB, e.g. GPT-2 XL in fp32). The index is
 * {@code {"metadata": {...}, "weight_map": {tensor name: shard file name}}}; every tensor it names
 * is read from its shard, and the index and the shards must agree exactly.
 */
public final class HfSafetensors implements AutoCloseable {
    public static final String SINGLE_FILE = "model.safetensors";
    public static final String INDEX_FILE = "model.safetensors.index.json";

    private final Path where;
    private final Map<String, SafetensorsFile> fileOf;   // tensor name -> the file holding it, in index order
    private final List<SafetensorsFile> files;

    private HfSafetensors(Path where, Map<String, SafetensorsFile> fileOf, List<SafetensorsFile> files) {
        this.where = where;
        this.fileOf = fileOf;
        this.files = files;
    }

    /** One safetensors file (the caller keeps closing it). */
    public static HfSafetensors of(SafetensorsFile file) {
        return single(file, List.of());
    }

    private static HfSafetensors single(SafetensorsFile file, List<SafetensorsFile> owned) {
        Map<String, SafetensorsFile> fileOf = new LinkedHashMap<>();
        file.names().forEach(n -> fileOf.put(n, file));
        return new HfSafetensors(file.path(), fileOf, owned);
    }

    /** Opens {@code dir/model.safetensors} or, without it, the shards of {@code dir/model.safetensors.index.json}. */
    public static HfSafetensors open(Path dir) {
        Path single = dir.resolve(SINGLE_FILE);
        Path index = dir.resolve(INDEX_FILE);
        if (Files.exists(single)) {           // transformers prefers the single file too
            SafetensorsFile file = SafetensorsFile.open(single);
            return single(file, List.of(file));
        }
        if (!Files.exists(index)) {
            throw new HfConfigException(single + " is missing and so is " + INDEX_FILE + " (sharded weights): only safetensors"
                    + " weights are read; convert pytorch_model.bin with transformers' save_pretrained(safe_serialization=True),"
                    + " which writes one of them");
        }
        return openShards(dir, index);
    }

    private static HfSafetensors openShards(Path dir, Path index) {
        Map<String, String> weightMap = readWeightMap(index);
        Map<String, SafetensorsFile> shards = new LinkedHashMap<>();
        Map<String, SafetensorsFile> fileOf = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, String> e : weightMap.entrySet()) {
                String name = e.getKey();
                String shardName = e.getValue();
                SafetensorsFile shard = shards.get(shardName);
                if (shard == null) {
                    Path shardPath = dir.resolve(shardName);
                    if (!Files.isRegularFile(shardPath)) {
                        throw new HfConfigException(shardPath + " is missing: " + index + " maps tensor '" + name + "' to it");
                    }
                    shard = SafetensorsFile.open(shardPath);
                    shards.put(shardName, shard);
                }
                if (!shard.contains(name)) {
                    throw new HfConfigException(shard.path() + " has no tensor '" + name + "', though " + index + " maps it there");
                }
                fileOf.put(name, shard);
            }
            for (SafetensorsFile shard : shards.values()) {
                for (String name : shard.names()) {
                    if (fileOf.get(name) != shard) {
                        throw new HfConfigException(shard.path() + " holds tensor '" + name + "', which " + index
                                + (weightMap.containsKey(name) ? " maps to " + weightMap.get(name) : " does not list"));
                    }
                }
            }
            return new HfSafetensors(index, fileOf, List.copyOf(shards.values()));
        } catch (RuntimeException e) {
            shards.values().forEach(SafetensorsFile::close);
            throw e;
        }
    }

    private static Map<String, String> readWeightMap(Path index) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(index.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + index + ": " + e.getMessage(), e);
        }
        JsonNode map = root == null ? null : root.get("weight_map");
        if (map == null || !map.isObject() || map.isEmpty()) {
            throw new HfConfigException(index + ": expected {\"weight_map\": {tensor name: shard file name, ...}}");
        }
        Map<String, String> weightMap = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : map.properties()) {
            if (!e.getValue().isTextual()) {
                throw new HfConfigException(index + ": weight_map entry '" + e.getKey() + "' is " + e.getValue()
                        + "; expected a shard file name");
            }
            weightMap.put(e.getKey(), e.getValue().asText());
        }
        return weightMap;
    }

    /** {@code model.safetensors} or the index: what messages about the whole set name. */
    public Path path() {
        return where;
    }

    /** Tensor names, in file (or index) order. */
    public List<String> names() {
        return new ArrayList<>(fileOf.keySet());
    }

    public boolean contains(String name) {
        return fileOf.containsKey(name);
    }

    /** The file that holds {@code name} (for messages). */
    public Path pathOf(String name) {
        return file(name).path();
    }

    public SafetensorsFile.TensorInfo info(String name) {
        return file(name).info(name);
    }

    /** A read-only view of {@code name}'s bytes, valid until this closes. */
    public Tensor tensor(String name) {
        return file(name).tensor(name);
    }

    private SafetensorsFile file(String name) {
        SafetensorsFile f = fileOf.get(name);
        if (f == null) {
            throw new HfConfigException(where + ": no tensor named '" + name + "'");
        }
        return f;
    }

    /** Closes the files this opened ({@link #of} leaves its file to the caller). */
    @Override
    public void close() {
        files.forEach(SafetensorsFile::close);
    }
}
