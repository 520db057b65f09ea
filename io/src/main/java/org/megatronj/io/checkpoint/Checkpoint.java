package org.megatronj.io.checkpoint;

import com.fasterxml.jackson.core.JsonProcessingException;
import org.megatronj.io.JsonErrors;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.megatronj.io.safetensors.SafetensorsException;
import org.megatronj.io.safetensors.SafetensorsFile;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * One rank's part of a saved checkpoint, opened for reading: the metadata JSON and the mapped
 * model (and, when saved, optimizer) safetensors files. Close it to unmap.
 */
public final class Checkpoint implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path rankDir;
    private final long iteration;
    private final JsonNode metadata;
    private final SafetensorsFile model;
    private final SafetensorsFile optimizer;

    private Checkpoint(Path rankDir, long iteration, JsonNode metadata, SafetensorsFile model, SafetensorsFile optimizer) {
        this.rankDir = rankDir;
        this.iteration = iteration;
        this.metadata = metadata;
        this.model = model;
        this.optimizer = optimizer;
    }

    /**
     * Opens the latest checkpoint under {@code root} (the folder given to {@code --save}/{@code --load}),
     * or {@code root} itself when it is an iteration folder ({@code .../iter_0000100}).
     */
    public static Checkpoint openLatest(Path root, String rankDirName) {
        Path iterDir = latestIterationDir(root);
        long iteration = iterDir.equals(root) ? -1 : iterationOf(root);
        List<String> ranks = CheckpointLayout.rankDirNames(iterDir);
        if (!ranks.contains(rankDirName) && !ranks.isEmpty()) {
            throw notWhole(iterDir, "its rank folders are " + ranks);
        }
        Checkpoint ckpt = open(iterDir.resolve(rankDirName), iteration);
        ShardLayout layout = ShardLayout.fromMetadata(ckpt.metadata());
        if (layout.sharded()) {
            ckpt.close();
            throw notWhole(iterDir, "it is a checkpoint of " + layout.describe());
        }
        return ckpt;
    }

    /** Opens one (tensor, pipeline) rank folder of the latest iteration of a checkpoint in any layout. */
    public static Checkpoint openLatestShard(Path root, String rankDirName) {
        Path iterDir = latestIterationDir(root);
        return open(iterDir.resolve(rankDirName), iterDir.equals(root) ? -1 : iterationOf(root));
    }

    /**
     * Opens the first rank folder of the latest iteration whatever the layout (for reading the
     * metadata every folder shares: {@code checkpoint inspect}, the saved RNG stream).
     */
    public static Checkpoint openLatestAnyRank(Path root) {
        Path iterDir = latestIterationDir(root);
        long iteration = iterDir.equals(root) ? -1 : iterationOf(root);
        List<String> ranks = CheckpointLayout.rankDirNames(iterDir);
        if (ranks.isEmpty()) {
            throw new CheckpointException(iterDir + " holds no rank folder (mp_rank_*)");
        }
        return open(iterDir.resolve(ranks.getFirst()), iteration);
    }

    /** {@code root}'s latest iteration folder, or {@code root} itself when it is an iteration folder. */
    public static Path latestIterationDir(Path root) {
        if (!Files.isDirectory(root)) {
            throw new CheckpointException("checkpoint folder " + root + " does not exist");
        }
        if (!Files.exists(CheckpointLayout.trackerFile(root)) && !CheckpointLayout.rankDirNames(root).isEmpty()) {
            return refuseMegatronLmFormats(root);
        }
        return refuseMegatronLmFormats(CheckpointLayout.resolveIterationDir(root, CheckpointLayout.latestIteration(root)));
    }

    /**
     * {@code iterDir}, unless it holds one of Megatron-LM's own formats (its {@code --ckpt-format torch}
     * {@code model_optim_rng.pt} pickles or {@code torch_dist} {@code .distcp} files), which training does not load:
     * then an error that names the import-torch command converting it instead of one about a missing file.
     */
    private static Path refuseMegatronLmFormats(Path iterDir) {
        String format = null;
        try (var files = Files.list(iterDir)) {
            for (Path p : (Iterable<Path>) files::iterator) {
                String name = p.getFileName().toString();
                if (name.endsWith(".distcp") || name.equals("common.pt")) {
                    format = "torch_dist (PyTorch distributed checkpoint files " + name + ")";
                } else if (Files.isRegularFile(p.resolve("model_optim_rng.pt"))
                        && !Files.exists(p.resolve(CheckpointLayout.MODEL_FILE))) {
                    format = "torch (" + p.getFileName().resolve("model_optim_rng.pt") + ")";
                }
            }
        } catch (IOException e) {
            throw new CheckpointException("cannot list checkpoint folder " + iterDir + ": " + e.getMessage(), e);
        }
        if (format != null) {
            String convert = "'megatron checkpoint import-torch --load " + iterDir.getParent() + " --save <new folder>'";
            throw new CheckpointException(iterDir + " is a Megatron-LM checkpoint in its --ckpt-format " + format
                    + ", which Megatron-J loads once converted to its own layout (safetensors tensors and a metadata.json): "
                    + convert);
        }
        return iterDir;
    }

    private static long iterationOf(Path root) {
        return CheckpointLayout.latestIteration(root);
    }

    private static CheckpointException notWhole(Path iterDir, String why) {
        return new CheckpointException(iterDir + " is a sharded checkpoint (" + why + "), not one folder of whole tensors:"
                + " train from it with the same --tensor-model-parallel-size and --pipeline-model-parallel-size, or convert it with"
                + " 'megatron checkpoint reshard --load <dir> --save <new dir> --target-tensor-parallel-size 1"
                + " --target-pipeline-parallel-size 1'");
    }

    /** The {@code metadata.json} of a rank folder, checked to be a JSON object. */
    static JsonNode readMetadata(Path rankDir) {
        Path metaFile = rankDir.resolve(CheckpointLayout.METADATA_FILE);
        JsonNode metadata;
        try {
            metadata = JSON.readTree(metaFile.toFile());
        } catch (JsonProcessingException e) {
            throw new CheckpointException(metaFile + " is not valid JSON: " + JsonErrors.describe(e), e);
        } catch (IOException e) {
            throw new CheckpointException("cannot read checkpoint metadata " + metaFile + ": " + e.getMessage(), e);
        }
        if (metadata == null || !metadata.isObject()) {
            throw new CheckpointException(metaFile + ": expected a JSON object");
        }
        return metadata;
    }

    /** Opens a rank folder ({@code .../iter_0000100/mp_rank_00}); {@code iteration} is -1 when only the metadata knows it. */
    public static Checkpoint open(Path rankDir, long iteration) {
        if (!Files.isDirectory(rankDir)) {
            throw new CheckpointException("checkpoint folder " + rankDir + " does not exist (tracker and folders disagree,"
                    + " or the checkpoint was saved with another tensor/pipeline parallel layout: see"
                    + " 'megatron checkpoint reshard')");
        }
        JsonNode metadata = readMetadata(rankDir);
        long it = iteration >= 0 ? iteration : metadata.path("iteration").asLong(0);
        SafetensorsFile model = openTensors(rankDir.resolve(CheckpointLayout.MODEL_FILE));
        Path optimizerFile = rankDir.resolve(CheckpointLayout.OPTIMIZER_FILE);
        SafetensorsFile optimizer = null;
        if (Files.exists(optimizerFile)) {
            try {
                optimizer = openTensors(optimizerFile);
            } catch (RuntimeException e) {
                model.close();
                throw e;
            }
        }
        return new Checkpoint(rankDir, it, metadata, model, optimizer);
    }

    private static SafetensorsFile openTensors(Path file) {
        if (!Files.exists(file)) {
            throw new CheckpointException("checkpoint file " + file + " is missing");
        }
        try {
            return SafetensorsFile.open(file);
        } catch (SafetensorsException e) {
            throw new CheckpointException("checkpoint file is corrupt: " + e.getMessage(), e);
        }
    }

    public Path rankDir() {
        return rankDir;
    }

    public long iteration() {
        return iteration;
    }

    public JsonNode metadata() {
        return metadata;
    }

    public SafetensorsFile model() {
        return model;
    }

    public Optional<SafetensorsFile> optimizer() {
        return Optional.ofNullable(optimizer);
    }

    @Override
    public void close() {
        try {
            model.close();
        } finally {
            if (optimizer != null) {
                optimizer.close();
            }
        }
    }
}
