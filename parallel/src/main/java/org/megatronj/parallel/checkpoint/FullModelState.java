package org.megatronj.parallel.checkpoint;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.megatronj.io.checkpoint.CheckpointException;
import org.megatronj.io.checkpoint.CheckpointLayout;
import org.megatronj.io.checkpoint.OptimizerStateFiles;
import org.megatronj.io.checkpoint.ShardLayout;
import org.megatronj.io.safetensors.SafetensorsException;
import org.megatronj.io.safetensors.SafetensorsFile;
import org.megatronj.model.PipelineLayout;
import org.megatronj.model.ParameterSpec;
import org.megatronj.model.TensorShards;
import org.megatronj.model.TransformerConfig;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A checkpoint's weights (and optimizer state) merged into whole tensors in host memory, from
 * the rank folders of any (tensor, pipeline) layout, and cut again for any other: the core of
 * {@code megatron checkpoint reshard} (Megatron's {@code checkpoint_util}). How each parameter is
 * split is {@link ParameterSpec}'s knowledge ({@link TensorShards} cuts and glues; the fused QKV
 * weight is stored per query group, so its row split is the per-group split), and which stage
 * holds which layers is {@link ModelChunk}'s. The vocabulary tables are padded per TP size
 * ({@code --make-vocab-size-divisible-by x TP}); between sizes their padding rows are dropped,
 * or added as copies of the last row (weights; as Megatron's checkpoint_util) and zeros
 * (optimizer moments).
 *
 * <p>Whole tensors keep the source's vocabulary padding; {@link #shard} converts it.
 */
public final class FullModelState {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final TransformerConfig config;
    private final int sourceTensorParallel;
    private final Map<String, float[]> weights;
    private final Map<String, float[]> optimizerState;   // "<param>.<suffix>" -> whole tensor; empty when none

    private FullModelState(TransformerConfig config, int sourceTensorParallel, Map<String, float[]> weights,
                           Map<String, float[]> optimizerState) {
        this.config = config;
        this.sourceTensorParallel = sourceTensorParallel;
        this.weights = weights;
        this.optimizerState = optimizerState;
    }

    /** The model configuration saved in a rank folder's metadata. */
    public static TransformerConfig config(JsonNode metadata, Path where) {
        if (!metadata.has("model")) {
            throw new CheckpointException(where + "/metadata.json has no 'model' configuration");
        }
        try {
            return JSON.treeToValue(metadata.get("model"), TransformerConfig.class).validate();
        } catch (JsonProcessingException | IllegalArgumentException e) {
            throw new CheckpointException(where + "/metadata.json: unreadable 'model' configuration: " + e.getMessage(), e);
        }
    }

    /**
     * The parameters one tensor-parallel rank of pipeline stage {@code stage} holds, over all its
     * model chunks in chunk order (a last stage's copy of the tied word embedding included).
     */
    public static List<ParameterSpec> stageSpecs(TransformerConfig config, int tp, PipelineLayout layout, int stage) {
        Map<String, ParameterSpec> specs = new LinkedHashMap<>();
        for (int v = 0; v < layout.chunksPerStage(); v++) {
            for (ParameterSpec s : ParameterSpec.forGpt(config, tp, layout.chunk(stage, v))) {
                specs.putIfAbsent(s.name(), s);
            }
        }
        return List.copyOf(specs.values());
    }

    /** The layer split a checkpoint of {@code layout} was saved with. */
    public static PipelineLayout pipelineLayout(ShardLayout layout, TransformerConfig config) {
        int[] counts = layout.virtualStageLayers();
        if (counts == null) {
            return PipelineLayout.even(config.numLayers(), layout.pipelineParallel(), layout.chunksPerStage());
        }
        PipelineLayout split = PipelineLayout.ofCounts(layout.pipelineParallel(), layout.chunksPerStage(), counts);
        if (split.numLayers() != config.numLayers()) {
            throw new CheckpointException("the checkpoint's layer split " + split + " holds " + split.numLayers()
                    + " layers but its model has " + config.numLayers());
        }
        return split;
    }

    /**
     * Reads every rank folder of {@code iterationDir} (saved in {@code layout}) and merges the
     * shards; the optimizer state too when {@code withOptimizer} and the folders hold it.
     */
    public static FullModelState read(Path iterationDir, ShardLayout layout, TransformerConfig config, boolean withOptimizer) {
        int t = layout.tensorParallel();
        Map<String, float[]> weights = new LinkedHashMap<>();
        Map<String, float[]> state = new LinkedHashMap<>();
        boolean hasState = withOptimizer;
        for (int stage = 0; stage < layout.pipelineParallel(); stage++) {
            List<ParameterSpec> specs = stageSpecs(config, t, pipelineLayout(layout, config), stage);
            List<Map<String, float[]>> rankWeights = new ArrayList<>();
            List<Map<String, float[]>> rankState = new ArrayList<>();
            for (int r = 0; r < t; r++) {
                Path dir = iterationDir.resolve(layout.rankDirName(r, stage));
                if (!Files.isDirectory(dir)) {
                    throw new CheckpointException("rank folder " + dir + " is missing: a checkpoint saved at " + layout.describe()
                            + " needs all " + t * layout.pipelineParallel() + " (tensor, pipeline) folders");
                }
                rankWeights.add(readModel(dir.resolve(CheckpointLayout.MODEL_FILE), specs));
                hasState = hasState && OptimizerStateFiles.present(dir);
                rankState.add(hasState ? OptimizerStateFiles.readAll(dir) : Map.of());
            }
            for (ParameterSpec spec : specs) {
                if (weights.containsKey(spec.name())) {
                    continue;   // the tied embedding's copy on the last stage equals the first stage's
                }
                weights.put(spec.name(), merge(rankWeights, spec.name(), spec, t, iterationDir));
                if (hasState) {
                    for (String suffix : suffixes(rankState.getFirst(), spec.name())) {
                        String key = spec.name() + "." + suffix;
                        state.put(key, merge(rankState, key, spec, t, iterationDir));
                    }
                }
            }
        }
        return new FullModelState(config, t, weights, hasState ? state : Map.of());
    }

    private static Map<String, float[]> readModel(Path file, List<ParameterSpec> specs) {
        if (!Files.exists(file)) {
            throw new CheckpointException("checkpoint file " + file + " is missing");
        }
        Map<String, float[]> out = new LinkedHashMap<>();
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            Set<String> unexpected = new LinkedHashSet<>(f.names());
            for (ParameterSpec spec : specs) {
                if (!f.contains(spec.name())) {
                    throw new CheckpointException(file + ": tensor '" + spec.name() + "' is missing (the metadata's layout and"
                            + " model do not match the folder)");
                }
                unexpected.remove(spec.name());
                long[] shape = f.info(spec.name()).shape();
                if (!Arrays.equals(shape, spec.shape())) {
                    throw new CheckpointException(file + ": tensor '" + spec.name() + "' has shape " + Arrays.toString(shape)
                            + " but the saved layout implies " + Arrays.toString(spec.shape()));
                }
                out.put(spec.name(), f.tensor(spec.name()).toFloatArray());
            }
            if (!unexpected.isEmpty()) {
                throw new CheckpointException(file + ": unexpected tensors " + unexpected + " for this stage of the saved layout");
            }
        } catch (SafetensorsException e) {
            throw new CheckpointException("checkpoint file is corrupt: " + e.getMessage(), e);
        }
        return out;
    }

    /** The state suffixes saved for {@code param} ("exp_avg", "exp_avg_sq"; "momentum_buffer"; none). */
    private static List<String> suffixes(Map<String, float[]> state, String param) {
        List<String> out = new ArrayList<>();
        for (String key : state.keySet()) {
            if (key.startsWith(param + ".") && key.indexOf('.', param.length() + 1) < 0) {
                out.add(key.substring(param.length() + 1));
            }
        }
        return out;
    }

    private static float[] merge(List<Map<String, float[]>> ranks, String key, ParameterSpec spec, int t, Path where) {
        float[][] shards = new float[t][];
        for (int r = 0; r < t; r++) {
            shards[r] = ranks.get(r).get(key);
            if (shards[r] == null || shards[r].length != spec.numel()) {
                throw new CheckpointException(where + ": tensor-parallel rank " + r + " has "
                        + (shards[r] == null ? "no '" + key + "'" : "'" + key + "' of " + shards[r].length + " elements")
                        + " (expected " + spec.numel() + ")");
            }
        }
        return TensorShards.merge(shards, spec.fullShape(t), spec.split());
    }

    public TransformerConfig config() {
        return config;
    }

    /** True when the optimizer state was read (present in the checkpoint and asked for). */
    public boolean hasOptimizerState() {
        return !optimizerState.isEmpty();
    }

    /** The state suffixes of {@code param} in the checkpoint. */
    public List<String> stateSuffixes(String param) {
        return suffixes(optimizerState, param);
    }

    /**
     * Tensor-parallel rank {@code rank}'s shard of weight {@code spec.name()} (or, with
     * {@code stateSuffix}, of its optimizer state) for {@code t} ranks; {@code spec} is the
     * target rank's spec (shard shape).
     */
    public float[] shard(ParameterSpec spec, String stateSuffix, int t, int rank) {
        String key = stateSuffix == null ? spec.name() : spec.name() + "." + stateSuffix;
        float[] full = stateSuffix == null ? weights.get(key) : optimizerState.get(key);
        if (full == null) {
            throw new CheckpointException("the checkpoint has no " + (stateSuffix == null ? "weight" : "optimizer state") + " '"
                    + key + "'");
        }
        long[] fullShape = spec.fullShape(t);
        if (vocabRows(spec)) {
            full = resizeRows(full, config.paddedVocabSize(sourceTensorParallel), Math.toIntExact(fullShape[0]),
                    Math.toIntExact(fullShape[1]), stateSuffix == null);
        }
        if (full.length != numel(fullShape)) {
            throw new CheckpointException("'" + key + "' has " + full.length + " elements in the checkpoint but "
                    + Arrays.toString(fullShape) + " in the target layout");
        }
        return TensorShards.shard(full, fullShape, spec.split(), t, rank);
    }

    /** The word embedding and untied output layer: rows over the (TP-padded) vocabulary. */
    private static boolean vocabRows(ParameterSpec spec) {
        return spec.name().equals("embedding.word_embeddings.weight") || spec.name().equals("output_layer.weight");
    }

    /** Drops padding rows, or adds rows as copies of the last one ({@code replicateLast}) or zeros. */
    static float[] resizeRows(float[] full, int rows, int newRows, int cols, boolean replicateLast) {
        if (rows == newRows) {
            return full;
        }
        float[] out = Arrays.copyOf(full, newRows * cols);
        if (newRows > rows && replicateLast) {
            for (int r = rows; r < newRows; r++) {
                System.arraycopy(full, (rows - 1) * cols, out, r * cols, cols);
            }
        }
        return out;
    }

    private static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }
}
