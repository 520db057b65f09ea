package org.megatronj.cli;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.megatronj.io.torch.DistributedCheckpoint;
import org.megatronj.io.torch.TorchFile;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.PipelineLayout;
import org.megatronj.model.ParameterSpec;
import org.megatronj.model.TransformerConfig;
import org.megatronj.parallel.checkpoint.FullModelState;

/**
 * A Megatron-LM checkpoint in its default {@code --ckpt-format torch_dist} layout: an iteration folder that PyTorch's
 * distributed checkpoint wrote ({@code .metadata}, {@code __<rank>_<n>.distcp}; {@code metadata.json} names the
 * backend), with the run's {@code args} in {@code common.pt} or, since Megatron-LM stopped writing that file, in the
 * bytes item {@code common_state/shard_0_1}.
 *
 * <p>Megatron-core saves each parameter as a ShardedTensor whose key names the global tensor and whose chunks every
 * tensor and pipeline rank writes at their global offsets, so the stored tensors are already whole whatever the run's
 * parallel layout: column-parallel weights concatenated by rows (linear_qkv by query group, the vocabulary),
 * row-parallel ones by columns, SwiGLU's linear_fc1 as [all of the gate; all of the up half]
 * ({@code apply_swiglu_sharded_factory}), which is the one-rank layout Megatron-J keeps. In the default (homogeneous)
 * layout a layer's tensors are stacked under {@code decoder.layers.<name>} with a leading axis over all layers
 * ({@code TransformerBlock.sharded_state_dict}); the non-homogeneous layout keeps {@code decoder.layers.<i>.<name>}.
 * {@code optimizer.*} keys and every object ({@code _extra_state}, {@code rng_state}, ...) are not read. The embedding
 * (and an untied output layer) has the rows of the saving run's padding, which depends on its tensor-parallel size;
 * rows past the one-rank padding are padding and are dropped.
 *
 * <p>A MoE layer's experts are saved with an expert axis after the layer axis, each expert-parallel rank writing its
 * experts at their global indices (megatron/core/transformer/moe/experts.py, {@code sharded_state_dict} of
 * SequentialMLP and TEGroupedMLP, the same keys for both): {@code decoder.layers.<i>.mlp.experts.experts.linear_fc1.weight}
 * [E, out, in] (the per-layer layout, which any {@code --moe-layer-freq} other than 1 implies), or stacked
 * {@code decoder.layers.mlp.experts.experts.linear_fc1.weight} [L, E, out, in]; with {@code singleton_local_shards} one
 * key per expert, {@code decoder.layers.<i>.mlp.experts.experts.<g>.linear_fc1.weight}. They become SequentialMLP's
 * {@code decoder.layers.<i>.mlp.experts.local_experts.<g>.*}. The router ({@code mlp.router.weight}) and the shared
 * experts ({@code mlp.shared_experts.*}) are saved as any replicated or tensor-parallel weight.
 */
final class MegatronDistCheckpoint {
    private static final String LAYERS = "decoder.layers.";
    private static final String COMMON_STATE = "common_state/shard_0_1";

    private MegatronDistCheckpoint() {
    }

    /**
     * Whether {@code iterDir} holds a distributed checkpoint; one whose {@code metadata.json} names another backend
     * than torch_dist is refused by name.
     */
    static boolean isDistributed(Path iterDir) {
        Path config = iterDir.resolve("metadata.json");
        if (Files.isRegularFile(config)) {
            JsonNode json;
            try {
                json = new ObjectMapper().readTree(config.toFile());
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read " + config + ": " + e.getMessage(), e);
            }
            String backend = json.path("sharded_backend").asText("");
            if (!backend.isEmpty() && !backend.equals("torch_dist")) {
                throw new IllegalArgumentException(config + " names the sharded backend '" + backend + "'; import-torch reads"
                        + " torch_dist (Megatron-LM's default) and torch: save it with one of those");
            }
            if (backend.equals("torch_dist")) {
                return true;
            }
        }
        return Files.isRegularFile(iterDir.resolve(".metadata"));
    }

    /** The common (not sharded) state dict: args, iteration, ... */
    static Map<?, ?> commonState(DistributedCheckpoint dcp) {
        Path file = dcp.dir().resolve("common.pt");
        if (Files.isRegularFile(file)) {
            try (TorchFile torch = TorchFile.open(file)) {
                return MegatronTorchCheckpoint.dict(torch.root(), file + "'s state dict");
            }
        }
        if (dcp.items().containsKey(COMMON_STATE)) {
            try (TorchFile torch = dcp.torchFile(COMMON_STATE)) {
                if (torch.root() instanceof List<?> l && l.size() == 1) {
                    return MegatronTorchCheckpoint.dict(l.getFirst(), dcp.dir() + "'s " + COMMON_STATE);
                }
                throw new IllegalArgumentException(dcp.dir() + "'s " + COMMON_STATE + " is " + torch.root()
                        + ", not a list of one state dict");
            }
        }
        throw new IllegalArgumentException(dcp.dir() + " has neither common.pt nor a " + COMMON_STATE + " item, where"
                + " Megatron-LM keeps the run's args: not a Megatron-LM torch_dist checkpoint");
    }

    /** The global word embedding's rows: the vocabulary as the saving run padded it. */
    static long embeddingRows(DistributedCheckpoint dcp) {
        String key = "embedding.word_embeddings.weight";
        if (!dcp.items().containsKey(key)) {
            throw new IllegalArgumentException(dcp.dir() + " has no " + key + (dcp.items().keySet().stream()
                    .anyMatch(k -> k.startsWith("language_model.")) ? ": a legacy (non-core) Megatron model; convert it to"
                    + " Megatron-core with Megatron-LM first" : ": not a Megatron-core GPT"));
        }
        return dcp.tensor(key).shape()[0];
    }

    /** The model's weights under Megatron-J's names, F32, checked against the parameters of one rank of {@code config}. */
    static Map<String, Tensor> weights(DistributedCheckpoint dcp, TransformerConfig config, List<String> flags, TensorArena arena) {
        Map<String, float[]> byName = new LinkedHashMap<>();
        Map<String, long[]> shapes = new LinkedHashMap<>();
        for (DistributedCheckpoint.Item item : dcp.items().values()) {
            String key = item.key();
            if (!(item instanceof DistributedCheckpoint.TensorItem t) || key.startsWith("optimizer.") || key.contains("._extra_state")) {
                continue;   // objects (TE's FP8 metadata, RNG and common state) and the optimizer's state
            }
            int expertAxis = MegatronExperts.distExpertAxis(key);
            if (expertAxis >= 0) {
                splitExperts(dcp, t, expertAxis, config, byName, shapes);
            } else if (stacked(key)) {
                unstack(dcp, t, config.numLayers(), byName, shapes);
            } else {
                String name = MegatronExperts.distSingletonName(key);   // ...experts.experts.<g>.*: one expert's
                byName.put(name, dcp.floats(key));
                shapes.put(name, t.shape());
            }
        }
        joinSwigluHalves(byName, shapes);
        Map<String, Tensor> weights = new LinkedHashMap<>();
        Map<String, long[]> unexpected = new LinkedHashMap<>();
        shapes.forEach((name, shape) -> unexpected.put(MegatronTorchCheckpoint.localSpecName(name), shape));
        Map<String, String> stored = new LinkedHashMap<>();
        byName.keySet().forEach(name -> stored.put(MegatronTorchCheckpoint.localSpecName(name), name));
        List<String> missing = new ArrayList<>();
        for (ParameterSpec spec : FullModelState.stageSpecs(config, 1, PipelineLayout.even(config.numLayers(), 1, 1), 0)) {
            long[] shape = unexpected.remove(spec.name());
            if (shape == null) {
                missing.add(spec.name());
                continue;
            }
            float[] values = byName.get(stored.get(spec.name()));
            if (vocabRows(spec.name()) && shape[0] > spec.shape()[0] && Arrays.equals(Arrays.copyOfRange(shape, 1, shape.length),
                    Arrays.copyOfRange(spec.shape(), 1, spec.shape().length))) {
                values = Arrays.copyOf(values, (int) (values.length / shape[0] * spec.shape()[0]));   // the saving TP's padding
                shape = spec.shape();
            }
            if (!Arrays.equals(shape, spec.shape())) {
                throw new IllegalArgumentException(dcp.dir() + ": " + spec.name() + " is " + Arrays.toString(shape)
                        + " but the run's arguments give " + Arrays.toString(spec.shape()));
            }
            weights.put(spec.name(), arena.fromFloats(values, spec.shape()));
        }
        if (!missing.isEmpty() || !unexpected.isEmpty()) {
            throw new IllegalArgumentException(dcp.dir() + ": the model's tensors do not match its arguments' model (flags "
                    + String.join(" ", flags) + ")" + (missing.isEmpty() ? "" : "; missing " + missing)
                    + (unexpected.isEmpty() ? "" : "; not expected " + unexpected.keySet()));
        }
        return weights;
    }

    /** {@code decoder.layers.<name>} (all layers along a leading axis), not {@code decoder.layers.<i>.<name>}. */
    private static boolean stacked(String key) {
        if (!key.startsWith(LAYERS)) {
            return false;
        }
        String next = key.substring(LAYERS.length(), Math.max(LAYERS.length(), key.indexOf('.', LAYERS.length())));
        return next.isEmpty() || !next.chars().allMatch(Character::isDigit);
    }

    /** Layer {@code i} of a stacked tensor [L, ...] as {@code decoder.layers.<i>.<name>}, read a layer at a time. */
    private static void unstack(DistributedCheckpoint dcp, DistributedCheckpoint.TensorItem t, int layers,
                                Map<String, float[]> byName, Map<String, long[]> shapes) {
        if (t.shape().length < 2 || t.shape()[0] != layers) {
            throw new IllegalArgumentException(dcp.dir() + ": " + t + " should stack the run's " + layers
                    + " layers along its first axis");
        }
        long[] shape = Arrays.copyOfRange(t.shape(), 1, t.shape().length);
        long[] sizes = t.shape().clone();
        sizes[0] = 1;
        String name = t.key().substring(LAYERS.length());
        for (int i = 0; i < layers; i++) {
            long[] offsets = new long[sizes.length];
            offsets[0] = i;
            byName.put(LAYERS + i + "." + name, dcp.floats(t.key(), offsets, sizes));
            shapes.put(LAYERS + i + "." + name, shape);
        }
    }

    /**
     * The experts of a key with an expert axis (at {@code axis}: 0 per layer, 1 after a stacked layer axis), as
     * {@code decoder.layers.<i>.mlp.experts.local_experts.<g>.<name>}, read an expert (and layer) at a time.
     */
    private static void splitExperts(DistributedCheckpoint dcp, DistributedCheckpoint.TensorItem t, int axis,
                                     TransformerConfig config, Map<String, float[]> byName, Map<String, long[]> shapes) {
        long[] shape = t.shape();
        int experts = config.moe() == null ? 0 : config.moe().numExperts();
        if (shape.length < axis + 2 || shape[axis] != experts || axis == 1 && shape[0] != config.numLayers()) {
            throw new IllegalArgumentException(dcp.dir() + ": " + t + " should hold " + (axis == 1 ? "the run's "
                    + config.numLayers() + " layers, then " : "") + "its " + experts + " experts along its first axes");
        }
        long[] one = Arrays.copyOfRange(shape, axis + 1, shape.length);
        int layers = axis == 1 ? config.numLayers() : 1;
        int fixedLayer = axis == 0 ? Integer.parseInt(t.key().substring(LAYERS.length(), t.key().indexOf('.', LAYERS.length()))) : -1;
        for (int l = 0; l < layers; l++) {
            for (int g = 0; g < experts; g++) {
                long[] offsets = new long[shape.length], sizes = shape.clone();
                if (axis == 1) {
                    offsets[0] = l;
                    sizes[0] = 1;
                }
                offsets[axis] = g;
                sizes[axis] = 1;
                String name = MegatronExperts.distExpertName(t.key(), axis == 1 ? l : fixedLayer, g);
                byName.put(name, dcp.floats(t.key(), offsets, sizes));
                shapes.put(name, one);
            }
        }
    }

    /**
     * With {@code singleton_local_shards} Megatron saves SwiGLU's linear_fc1 as two tensors, {@code weight_w} (the gate)
     * and {@code weight_v} (the up half); the parameter is the gate's rows then the up half's.
     */
    private static void joinSwigluHalves(Map<String, float[]> byName, Map<String, long[]> shapes) {
        for (String w : List.copyOf(byName.keySet())) {
            if (!w.endsWith("_w") || !byName.containsKey(w.substring(0, w.length() - 1) + "v")) {
                continue;
            }
            String v = w.substring(0, w.length() - 1) + "v", name = w.substring(0, w.length() - 2);
            float[] gate = byName.remove(w), up = byName.remove(v);
            float[] both = Arrays.copyOf(gate, gate.length + up.length);
            System.arraycopy(up, 0, both, gate.length, up.length);
            long[] shape = shapes.remove(w).clone();
            shape[0] += shapes.remove(v)[0];
            byName.put(name, both);
            shapes.put(name, shape);
        }
    }

    private static boolean vocabRows(String name) {
        return name.equals("embedding.word_embeddings.weight") || name.equals("output_layer.weight");
    }
}
