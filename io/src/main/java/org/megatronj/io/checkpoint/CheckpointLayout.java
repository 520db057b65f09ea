package org.megatronj.io.checkpoint;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Locale;

/**
 * Megatron's checkpoint directory layout:
 * <pre>
 * SAVE/latest_checkpointed_iteration.txt     "100" (or "release"), written last
 * SAVE/iter_0000100/mp_rank_00/              one folder per (tensor, pipeline) rank
 *     model.safetensors                      weights under Megatron-core names
 *     optimizer.safetensors                  optimizer state tensors (absent when not saved)
 *     metadata.json                          args, iteration, consumed samples, RNG, optimizer and scheduler state
 * SAVE/iter_0000100/mp_rank_01_001/          a sharded checkpoint: TP rank 1 of pipeline stage 1 (PP &gt; 1)
 *     model.safetensors                      that rank's shards (same names, shard shapes)
 *     optimizer.safetensors                  its optimizer state, or instead, with the distributed optimizer,
 *     distrib_optim_dp_000.safetensors       the moments each data-parallel rank owns ({@link OptimizerStateFiles})
 *     metadata.json                          as above plus the layout under "parallel" ({@link ShardLayout})
 * </pre>
 */
public final class CheckpointLayout {
    public static final String TRACKER_FILE = "latest_checkpointed_iteration.txt";
    public static final String MODEL_FILE = "model.safetensors";
    public static final String OPTIMIZER_FILE = "optimizer.safetensors";
    public static final String METADATA_FILE = "metadata.json";
    public static final String RELEASE = "release";

    private CheckpointLayout() {
    }

    /** {@code root/iter_0000100}, seven digits as Megatron writes them. */
    public static Path iterationDir(Path root, long iteration) {
        return root.resolve(String.format(Locale.ROOT, "iter_%07d", iteration));
    }

    /** The {@code iter_NNNNNNN} folders under {@code root}, sorted (empty when there are none). */
    public static java.util.List<String> iterationDirNames(Path root) {
        return folderNames(root, "iter_\\d{7,}");
    }

    /** {@code mp_rank_00} without pipeline parallelism, {@code mp_rank_00_001} with it (Megatron's names). */
    public static String rankDirName(int tensorRank, int pipelineRank, boolean pipelineParallel) {
        return pipelineParallel
                ? String.format(Locale.ROOT, "mp_rank_%02d_%03d", tensorRank, pipelineRank)
                : String.format(Locale.ROOT, "mp_rank_%02d", tensorRank);
    }

    /** The rank folders ({@code mp_rank_*}) inside an iteration folder, sorted by name. */
    public static java.util.List<String> rankDirNames(Path iterationDir) {
        return folderNames(iterationDir, "mp_rank_\\d{2}(_\\d{3})?");
    }

    private static java.util.List<String> folderNames(Path dir, String pattern) {
        if (!Files.isDirectory(dir)) {
            return java.util.List.of();
        }
        try (java.util.stream.Stream<Path> dirs = Files.list(dir)) {
            return dirs.filter(Files::isDirectory).map(d -> d.getFileName().toString())
                    .filter(n -> n.matches(pattern)).sorted().toList();
        } catch (IOException e) {
            throw new CheckpointException("cannot list " + dir + ": " + e.getMessage(), e);
        }
    }

    public static Path trackerFile(Path root) {
        return root.resolve(TRACKER_FILE);
    }

    /**
     * Refuses a converter's output folder that already holds a checkpoint: writing there would point its
     * tracker at the converted model, and a training run using the folder would resume from it.
     */
    public static void requireNoCheckpoint(Path root, String flag) {
        if (Files.exists(trackerFile(root))) {
            String latest;
            try {
                latest = Files.readString(trackerFile(root), StandardCharsets.UTF_8).strip();
            } catch (IOException e) {
                latest = "unreadable";
            }
            throw new CheckpointException(flag + " " + root + " already holds a checkpoint (latest: " + latest
                    + "); choose a new or empty folder");
        }
    }

    /**
     * The iteration named by {@code root}'s tracker file: a non-negative number, or -1 for
     * {@code release}. Throws when the tracker is missing or holds anything else.
     */
    public static long latestIteration(Path root) {
        Path tracker = trackerFile(root);
        String text;
        try {
            text = Files.readString(tracker, StandardCharsets.UTF_8).strip();
        } catch (NoSuchFileException e) {
            throw new CheckpointException("no checkpoint in " + root + ": " + TRACKER_FILE + " is missing", e);
        } catch (IOException e) {
            throw new CheckpointException("cannot read " + tracker + ": " + e.getMessage(), e);
        }
        if (text.equals(RELEASE)) {
            return -1;
        }
        try {
            long it = Long.parseLong(text);
            if (it < 0) {
                throw new NumberFormatException();
            }
            return it;
        } catch (NumberFormatException e) {
            throw new CheckpointException(tracker + ": expected an iteration number or 'release', found '" + text + "'");
        }
    }

    /** The folder of {@code iteration} under {@code root}; -1 means the {@code release} folder. */
    public static Path resolveIterationDir(Path root, long iteration) {
        return iteration < 0 ? root.resolve(RELEASE) : iterationDir(root, iteration);
    }
}
