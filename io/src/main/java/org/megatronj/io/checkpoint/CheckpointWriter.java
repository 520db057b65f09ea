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
