package org.megatronj.io.checkpoint;

import org.megatronj.io.safetensors.SafetensorsException;
import org.megatronj.io.safetensors.SafetensorsFile;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The optimizer state of one (tensor, pipeline) rank folder, in either of its two forms:
 * <ul>
 * <li>{@code optimizer.safetensors}: one tensor per state entry ({@code <param>.exp_avg}, shaped
 *     like the rank's shard of the parameter), written by data-parallel rank 0;</li>
 * <li>{@code distrib_optim_dp_DDD.safetensors}, one per data-parallel rank of the distributed
 *     optimizer: the pieces of each state entry that rank owns, as 1-D tensors named
 *     {@code <param>.exp_avg@<first element>} (offset into the flattened shard). Since the pieces
 *     say where they belong, the files re-assemble into whole entries at any DP size.</li>
 * </ul>
 */
public final class OptimizerStateFiles {
    public static final String DISTRIB_PREFIX = "distrib_optim_dp_";
    private static final Pattern DISTRIB_FILE = Pattern.compile("distrib_optim_dp_\\d{3}\\.safetensors");

    private OptimizerStateFiles() {
    }

    /** {@code distrib_optim_dp_001.safetensors}. */
    public static String distribFileName(int dataParallelRank) {
        return String.format(Locale.ROOT, "%s%03d.safetensors", DISTRIB_PREFIX, dataParallelRank);
    }

    /** The name of the piece of {@code stateKey} starting at element {@code from}. */
    public static String pieceName(String stateKey, long from) {
        return stateKey + "@" + from;
    }

    /** True when the folder holds optimizer state in either form. */
    public static boolean present(Path rankDir) {
        return Files.exists(rankDir.resolve(CheckpointLayout.OPTIMIZER_FILE)) || !distribFiles(rankDir).isEmpty();
    }

    /** The distributed optimizer's files in {@code rankDir}, by DP rank. */
    public static List<Path> distribFiles(Path rankDir) {
        if (!Files.isDirectory(rankDir)) {
            return List.of();
        }
        try (Stream<Path> files = Files.list(rankDir)) {
            return files.filter(f -> DISTRIB_FILE.matcher(f.getFileName().toString()).matches())
                    .sorted(Comparator.comparing(Path::toString)).toList();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + rankDir + ": " + e.getMessage(), e);
        }
    }

    /**
     * Refuses a folder that lacks a DP rank's file: the pieces of the others tile each state from 0
     * without a gap when the last rank's is missing, so only the saved DP size can tell.
     */
    private static void requireEveryDataParallelRank(Path rankDir, List<Path> files) {
        if (!Files.exists(rankDir.resolve(CheckpointLayout.METADATA_FILE))) {
            return;   // only a data-parallel rank 0 writes it; without it there is no saved size to check against
        }
        ShardLayout saved = ShardLayout.fromMetadata(Checkpoint.readMetadata(rankDir));
        if (!saved.distributedOptimizer()) {
            return;
        }
        List<String> missing = new ArrayList<>();
        for (int r = 0; r < saved.dataParallel(); r++) {
            if (!files.contains(rankDir.resolve(distribFileName(r)))) {
                missing.add(distribFileName(r));
            }
        }
        if (!missing.isEmpty()) {
            throw new CheckpointException(rankDir + " lacks " + String.join(", ", missing) + ": it was saved at data-parallel "
                    + saved.dataParallel() + " with the distributed optimizer, one file per data-parallel rank (pass"
                    + " --no-load-optim to load the weights only)");
        }
    }

    /**
     * Every state entry of the folder as a whole flat array (F32), from whichever form it holds;
     * the distributed pieces are checked to tile each entry without gaps or overlaps. Throws
     * when the folder has no optimizer state.
     */
    public static Map<String, float[]> readAll(Path rankDir) {
        Path single = rankDir.resolve(CheckpointLayout.OPTIMIZER_FILE);
        Map<String, float[]> out = new LinkedHashMap<>();
        if (Files.exists(single)) {
            try (SafetensorsFile f = open(single)) {
                for (String name : f.names()) {
                    out.put(name, f.tensor(name).toFloatArray());
                }
            }
            return out;
        }
        List<Path> files = distribFiles(rankDir);
        if (files.isEmpty()) {
            throw new CheckpointException(rankDir + " holds no optimizer state (neither " + CheckpointLayout.OPTIMIZER_FILE
                    + " nor " + DISTRIB_PREFIX + "*.safetensors): pass --no-load-optim to load the weights only");
        }
        requireEveryDataParallelRank(rankDir, files);
        record Piece(long from, float[] values, Path file) {
        }
        Map<String, List<Piece>> pieces = new LinkedHashMap<>();
        for (Path file : files) {
            try (SafetensorsFile f = open(file)) {
                for (String name : f.names()) {
                    int at = name.lastIndexOf('@');
                    if (at < 0) {
                        throw new CheckpointException(file + ": tensor '" + name + "' is not named <state>@<offset>");
                    }
                    long from;
                    try {
                        from = Long.parseLong(name.substring(at + 1));
                    } catch (NumberFormatException e) {
                        throw new CheckpointException(file + ": tensor '" + name + "' has no numeric offset after '@'");
                    }
                    pieces.computeIfAbsent(name.substring(0, at), k -> new ArrayList<>())
                            .add(new Piece(from, f.tensor(name).toFloatArray(), file));
                }
            }
        }
        for (Map.Entry<String, List<Piece>> e : pieces.entrySet()) {
            List<Piece> list = new ArrayList<>(e.getValue());
            list.sort(Comparator.comparingLong(Piece::from));
            long end = 0;
            for (Piece p : list) {
                if (p.from() != end) {
                    throw new CheckpointException(rankDir + ": the distributed optimizer files do not tile state '" + e.getKey()
                            + "': a piece starts at element " + p.from() + " (" + p.file().getFileName() + ") where " + end
                            + " was expected (a DP rank's file is missing?)");
                }
                end += p.values().length;
            }
            float[] whole = new float[Math.toIntExact(end)];
            for (Piece p : list) {
                System.arraycopy(p.values(), 0, whole, Math.toIntExact(p.from()), p.values().length);
            }
            out.put(e.getKey(), whole);
        }
        return out;
    }

    private static SafetensorsFile open(Path file) {
        try {
            return SafetensorsFile.open(file);
        } catch (SafetensorsException e) {
            throw new CheckpointException("optimizer state file is corrupt: " + e.getMessage(), e);
        }
    }
}
