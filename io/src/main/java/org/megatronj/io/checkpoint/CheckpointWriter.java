package org.megatronj.io.checkpoint;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import org.megatronj.io.safetensors.SafetensorsWriter;
import org.megatronj.memory.Tensor;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Comparator;
import java.util.Map;
import java.util.stream.Stream;

/**
 * Saves one rank's part of a checkpoint so that a kill at any moment leaves the previous
 * "latest" checkpoint intact: the iteration folder is written under a hidden temporary name,
 * forced to disk and renamed into place, and only then is the tracker file replaced (also via
 * a temporary file and an atomic rename).
 */
public final class CheckpointWriter {
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private CheckpointWriter() {
    }

    /** What one (tensor, pipeline) rank saves. {@code optimizer} may be empty (e.g. an exported model). */
    public record RankState(String rankDirName, Map<String, Tensor> model, Map<String, Tensor> optimizer, JsonNode metadata) {
    }

    /**
     * Writes {@code state} as iteration {@code iteration} under {@code root} and points the tracker at it.
     * Returns the number of bytes written.
     */
    public static long save(Path root, long iteration, RankState state) {
        Path finalDir = CheckpointLayout.resolveIterationDir(root, iteration);
        Path partial = root.resolve("." + finalDir.getFileName() + ".partial");
        try {
            Files.createDirectories(root);
            deleteTree(partial); // left over from a save that was killed
            Path rankDir = partial.resolve(state.rankDirName());
            Files.createDirectories(rankDir);
            long bytes = SafetensorsWriter.write(rankDir.resolve(CheckpointLayout.MODEL_FILE), state.model(), Map.of("format", "pt"));
            if (state.optimizer() != null && !state.optimizer().isEmpty()) {
                bytes += SafetensorsWriter.write(rankDir.resolve(CheckpointLayout.OPTIMIZER_FILE), state.optimizer(), Map.of());
            }
            bytes += writeDurably(rankDir.resolve(CheckpointLayout.METADATA_FILE), JSON.writeValueAsBytes(state.metadata()));
            forceDirectory(rankDir);
            forceDirectory(partial);
            replaceDirectory(partial, finalDir);
            forceDirectory(root);
            String tracker = iteration < 0 ? CheckpointLayout.RELEASE : Long.toString(iteration);
            writeDurably(CheckpointLayout.trackerFile(root), (tracker + "\n").getBytes(StandardCharsets.UTF_8));
            forceDirectory(root);
            return bytes;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot save checkpoint iteration " + iteration + " to " + root + ": " + e.getMessage(), e);
        }
    }

    /**
     * The first step of a save by many ranks: (one rank) clears any leftover of a killed save and
     * creates the hidden folder {@code .iter_NNNNNNN.partial} that every rank then writes its
     * folder into ({@link #writeRankFiles}); {@link #commit} publishes it. Between the steps the
     * ranks must meet at a barrier.
     */
    public static Path preparePartial(Path root, long iteration) {
        Path partial = partialDir(root, iteration);
        try {
            Files.createDirectories(root);
            deleteTree(partial);
            Files.createDirectories(partial);
            return partial;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot prepare checkpoint iteration " + iteration + " in " + root + ": " + e.getMessage(), e);
        }
    }

    /** The hidden folder a save of {@code iteration} is written into before it is renamed. */
    public static Path partialDir(Path root, long iteration) {
        return root.resolve("." + CheckpointLayout.resolveIterationDir(root, iteration).getFileName() + ".partial");
    }

    /**
     * Writes files of one rank folder inside {@code partial}: the model weights and metadata when
     * {@code state.model()} is not null, the optimizer state when not empty, and {@code extra}
     * safetensors files (e.g. a distributed-optimizer shard) by file name. Several ranks may write
     * different files of the same folder. Returns the bytes written.
     */
    public static long writeRankFiles(Path partial, RankState state, Map<String, Map<String, Tensor>> extra) {
        Path rankDir = partial.resolve(state.rankDirName());
        try {
            Files.createDirectories(rankDir);
            long bytes = 0;
            if (state.model() != null) {
                bytes += SafetensorsWriter.write(rankDir.resolve(CheckpointLayout.MODEL_FILE), state.model(), Map.of("format", "pt"));
            }
            if (state.optimizer() != null && !state.optimizer().isEmpty()) {
                bytes += SafetensorsWriter.write(rankDir.resolve(CheckpointLayout.OPTIMIZER_FILE), state.optimizer(), Map.of());
            }
            for (Map.Entry<String, Map<String, Tensor>> e : extra.entrySet()) {
                bytes += SafetensorsWriter.write(rankDir.resolve(e.getKey()), e.getValue(), Map.of());
            }
            if (state.metadata() != null) {
                bytes += writeDurably(rankDir.resolve(CheckpointLayout.METADATA_FILE), JSON.writeValueAsBytes(state.metadata()));
            }
            forceDirectory(rankDir);
            return bytes;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write checkpoint folder " + rankDir + ": " + e.getMessage(), e);
        }
    }

    /**
     * The last step of a save by many ranks (one rank, after all have written): renames the
     * partial folder into place, then points the tracker at it.
     */
    public static void commit(Path root, long iteration) {
        Path partial = partialDir(root, iteration);
        try {
            forceDirectory(partial);
            replaceDirectory(partial, CheckpointLayout.resolveIterationDir(root, iteration));
            forceDirectory(root);
            String tracker = iteration < 0 ? CheckpointLayout.RELEASE : Long.toString(iteration);
            writeDurably(CheckpointLayout.trackerFile(root), (tracker + "\n").getBytes(StandardCharsets.UTF_8));
            forceDirectory(root);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot publish checkpoint iteration " + iteration + " in " + root + ": " + e.getMessage(), e);
        }
    }

    /**
     * Deletes iteration {@code iteration}'s folder under {@code root}: renamed to a hidden name first, so that a kill
     * midway leaves no half folder that looks like a checkpoint.
     */
    public static void deleteIterationDir(Path root, long iteration) {
        Path dir = CheckpointLayout.iterationDir(root, iteration);
        Path doomed = root.resolve("." + dir.getFileName() + ".deleting");
        try {
            deleteTree(doomed);
            Files.move(dir, doomed, StandardCopyOption.ATOMIC_MOVE);
            deleteTree(doomed);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot delete checkpoint iteration " + iteration + " in " + root + ": " + e.getMessage(), e);
        }
    }

    /** Writes {@code bytes} to a temporary sibling, forces it and renames it onto {@code file}. */
    public static long writeDurably(Path file, byte[] bytes) throws IOException {
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            java.nio.ByteBuffer buf = java.nio.ByteBuffer.wrap(bytes);
            while (buf.hasRemaining()) {
                ch.write(buf);
            }
            ch.force(true);
        }
        Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        return bytes.length;
    }

    /** Moves {@code from} onto {@code to}; an existing {@code to} (a re-save of the same iteration) is moved aside first. */
    private static void replaceDirectory(Path from, Path to) throws IOException {
        Path old = to.resolveSibling("." + to.getFileName() + ".old");
        deleteTree(old);
        if (Files.exists(to)) {
            Files.move(to, old, StandardCopyOption.ATOMIC_MOVE);
        }
        Files.move(from, to, StandardCopyOption.ATOMIC_MOVE);
        deleteTree(old);
    }

    /** fsync of a directory makes the renames inside it durable; not every file system allows it, so failure is ignored. */
    private static void forceDirectory(Path dir) {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        } catch (IOException | UnsupportedOperationException ignored) {
            // best effort: the data files themselves were forced already
        }
    }

    static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }
}
