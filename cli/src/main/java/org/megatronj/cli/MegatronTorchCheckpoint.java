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
import java.util.stream.Stream;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.megatronj.io.checkpoint.CheckpointLayout;
import org.megatronj.io.torch.TorchFile;
import org.megatronj.io.torch.Unpickler;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.PipelineLayout;
import org.megatronj.model.ParameterSpec;
import org.megatronj.model.TransformerConfig;
import org.megatronj.parallel.checkpoint.FullModelState;
import picocli.CommandLine;

/**
 * A Megatron-LM checkpoint in its {@code --ckpt-format torch} layout ({@code iter_NNNNNNN/mp_rank_00/model_optim_rng.pt},
 * a Megatron-core GPT's state dict with the run's {@code args}), read as Megatron-J's model: the model flags the run's
 * arguments amount to, the configuration they give, and the weights under Megatron-J's names (which are Megatron-core's
 * local layer spec's: TransformerEngine's fused layer norms, {@code linear_qkv.layer_norm_weight} and
 * {@code linear_fc1.layer_norm_weight}, become {@code input_layernorm.weight} and {@code pre_mlp_layernorm.weight}; its
 * {@code _extra_state} entries are dropped). Every tensor- and pipeline-parallel rank's file is read as the shard of
 * Megatron-J's layout with the same sizes (Megatron-core's partitioning); the optimizer state is not read. A MoE run's
 * expert-parallel ranks of one tensor and pipeline rank (folders {@code mp_rank_TT[_PPP]_EEE}) make one shard: the first
 * gives the non-expert tensors, which every expert rank holds alike, each its own experts, renumbered to their global
 * indices ({@link MegatronExperts}).
 */
final class MegatronTorchCheckpoint {
    private static final String FILE = "model_optim_rng.pt";

    /** The checkpoint's iteration, the flags and configuration of its model, the tokenizer flags of its run. */
    record Contents(long iteration, List<String> modelFlags, TransformerConfig config, ObjectNode tokenizerArgs,
                    PipelineLayout pipeline) {
        /** The same run read from rank folders split over {@code stages} pipeline stages as {@code args} say. */
        Contents withPipeline(PipelineLayout split) {
            return new Contents(iteration, modelFlags, config, tokenizerArgs, split);
        }
    }

    private MegatronTorchCheckpoint() {
    }

    /**
     * A checkpoint's rank files by (tensor rank, pipeline rank, expert-parallel rank): {@code files[t][p][e]}, in
     * folders {@code mp_rank_TT[_PPP][_EEE]} (megatron/training/checkpointing.py's get_checkpoint_name: the pipeline rank
     * only with pipeline parallelism, the expert rank only with expert parallelism).
     */
    record Ranks(Path iterationDir, Path[][][] files) {
        int tensorParallel() {
            return files.length;
        }

        int pipelineParallel() {
            return files[0].length;
        }

        int expertParallel() {
            return files[0][0].length;
        }

        Path first() {
            return files[0][0][0];
        }
    }

    /** The iteration folder the tracker of {@code root} names ({@code iter_NNNNNNN/} or {@code release/}). */
    static Path latestIterationDir(Path root) {
        Path tracker = CheckpointLayout.trackerFile(root);
        if (!Files.isRegularFile(tracker)) {
            throw new IllegalArgumentException(root + " has no " + tracker.getFileName() + ": not a Megatron-LM checkpoint folder");
        }
        String iteration;
        try {
            iteration = Files.readString(tracker).strip();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + tracker + ": " + e.getMessage(), e);
        }
        if (iteration.equals(CheckpointLayout.RELEASE)) {
            return root.resolve("release");
        }
        try {
            return CheckpointLayout.iterationDir(root, Long.parseLong(iteration));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(tracker + " holds '" + iteration + "'; expected an iteration or 'release'");
        }
    }

    /**
     * The rank files of {@code --ckpt-format torch} iteration folder {@code dir}. Folder names of two numbers are a
     * tensor and a pipeline rank, or a tensor and an expert rank: the run's arguments (in the first folder's file) tell.
     */
    static Ranks ranks(Path dir) {
        List<String> names;
        try (Stream<Path> list = Files.list(dir)) {
            names = list.map(p -> p.getFileName().toString()).filter(n -> n.startsWith("mp_rank_")).sorted().toList();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + dir + ": " + e.getMessage(), e);
        }
        if (names.isEmpty()) {
            throw new IllegalArgumentException(dir + " has no mp_rank_* folders (--ckpt-format torch) and no .metadata"
                    + " (torch_dist): not a Megatron-LM checkpoint's iteration folder");
        }
        List<int[]> parsed = new ArrayList<>();
        for (String n : names) {
            String[] parts = n.substring("mp_rank_".length()).split("_");
            if (parts.length > 3 || parts.length != names.getFirst().substring("mp_rank_".length()).split("_").length
                    || !Arrays.stream(parts).allMatch(x -> !x.isEmpty() && x.chars().allMatch(Character::isDigit))) {
                throw new IllegalArgumentException(dir + " holds " + names + ": not the rank folders of one Megatron-LM save"
                        + " (mp_rank_TT, mp_rank_TT_PPP, mp_rank_TT_EEE or mp_rank_TT_PPP_EEE)");
            }
            parsed.add(Arrays.stream(parts).mapToInt(Integer::parseInt).toArray());
        }
        int count = parsed.getFirst().length;
        boolean pipeline = count == 3, expert = count == 3;
        if (count == 2) {   // pipeline or expert ranks: as the run's arguments say
            Path first = dir.resolve(names.getFirst()).resolve(FILE);
            Map<?, ?> args;
            try (TorchFile torch = TorchFile.open(first)) {
                args = namespace(dict(torch.root(), first + "'s state dict").get("args"), first);
            }
            expert = MegatronArgs.expertParallelSize(args) > 1
                    && !(args.get("pipeline_model_parallel_size") instanceof Number n && n.intValue() > 1);
            pipeline = !expert;
        }
        int tp = 0, pp = 1, ep = 1;
        for (int[] r : parsed) {
            tp = Math.max(tp, r[0] + 1);
            pp = Math.max(pp, pipeline ? r[1] + 1 : 1);
            ep = Math.max(ep, expert ? r[count - 1] + 1 : 1);
        }
        Path[][][] files = new Path[tp][pp][ep];
        for (int t = 0; t < tp; t++) {
            for (int p = 0; p < pp; p++) {
                for (int e = 0; e < ep; e++) {
                    String name = String.format(java.util.Locale.ROOT, "mp_rank_%02d", t) + (pipeline
                            ? String.format(java.util.Locale.ROOT, "_%03d", p) : "") + (expert
                            ? String.format(java.util.Locale.ROOT, "_%03d", e) : "");
                    Path f = dir.resolve(name).resolve(FILE);
                    if (!Files.isRegularFile(f)) {
                        throw new IllegalArgumentException(dir + " holds " + names + " but not " + dir.relativize(f)
                                + ": an incomplete checkpoint of " + tp + " tensor, " + pp + " pipeline and " + ep
                                + " expert-parallel ranks");
                    }
                    files[t][p][e] = f;
                }
            }
        }
        return new Ranks(dir, files);
    }

    /**
     * The run's arguments and model configuration, from the checkpoint's pickled state dict; the vocabulary is that of
     * {@code tokenizer} when its flags are given, else of the run's tokenizer flags, which must pad to the checkpoint's
     * embedding rows.
     */
    static Contents read(TorchFile torch, Path file, TokenizerOptions tokenizer, Ranks ranks) {
        Map<?, ?> state = dict(torch.root(), file + "'s state dict");
        if (state.get("model") == null) {
            throw new IllegalArgumentException(file + " has no 'model'" + (state.containsKey("model0")
                    ? " but model0, model1...: a virtual-pipeline checkpoint; merge it to one rank and chunk first" : ""));
        }
        Map<?, ?> args = namespace(state.get("args"), file);
        MegatronArgs.checkLayout(args, ranks.tensorParallel(), ranks.pipelineParallel(), ranks.expertParallel(), file);
        Map<?, ?> model = dict(state.get("model"), file + "'s model");
        if (!(model.get("embedding.word_embeddings.weight") instanceof TorchFile.TensorRef embedding)) {
            throw new IllegalArgumentException(file + "'s model has no embedding.word_embeddings.weight"
                    + (model.keySet().stream().anyMatch(k -> String.valueOf(k).startsWith("language_model."))
                    ? ": a legacy (non-core) Megatron model; convert it to Megatron-core with Megatron-LM first" : ""));
        }
        return contents(state, file, tokenizer, ranks.tensorParallel(), embedding.shape()[0] * ranks.tensorParallel())
                .withPipeline(MegatronArgs.pipelineLayout(args, ranks.pipelineParallel(), file));
    }

    /**
     * The run's iteration, model flags, configuration and tokenizer from the {@code args} of its (common) state dict
     * {@code state}; {@code rows}, the word embedding's rows over all {@code tp} tensor ranks, must be the vocabulary
     * padded as that run padded it.
     */
    static Contents contents(Map<?, ?> state, Path file, TokenizerOptions tokenizer, int tp, long rows) {
        Map<?, ?> args = namespace(state.get("args"), file);
        List<String> flags = MegatronArgs.modelFlags(args, file);
        ModelOptions options = new ModelOptions();
        try {
            new CommandLine(options).parseArgs(flags.toArray(String[]::new));
        } catch (CommandLine.ParameterException e) {
            throw new IllegalArgumentException(file + ": the run's model arguments (" + String.join(" ", flags) + ") do not"
                    + " make Megatron-J flags: " + e.getMessage(), e);
        }
        if (!tokenizer.isSet()) {
            tokenizer.takeFromSavedArgs(MegatronArgs.tokenizerArgs(args), file);
        }
        int vocab;
        try {
            vocab = tokenizer.build().vocabSize();
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("the run's tokenizer cannot be loaded here (" + e.getMessage() + "): give"
                    + " import-torch its tokenizer flags (--tokenizer-type with --vocab-file/--merge-file or --tokenizer-model)", e);
        }
        TransformerConfig config = options.toConfig(vocab, MegatronArgs.integer(args, "seq_length", file));
        if (config.mla() != null && tp > 1 && "local".equals(args.get("transformer_impl"))) {
            throw new IllegalArgumentException(file + ": a tensor-parallel multi-latent attention checkpoint of Megatron's"
                    + " local spec holds its down projections as column-parallel shards, which import-torch does not merge;"
                    + " import its transformer_engine form or a --tensor-model-parallel-size 1 run");
        }
        if (config.paddedVocabSize(tp) != rows) {
            throw new IllegalArgumentException("the tokenizer's " + vocab + " tokens pad to " + config.paddedVocabSize(tp)
                    + " (--make-vocab-size-divisible-by " + config.makeVocabSizeDivisibleBy() + (tp > 1 ? " x " + tp + " ranks"
                    : "") + ") but " + file + "'s embedding has " + rows + " rows" + (tp > 1 ? " over its " + tp + " ranks" : "")
                    + ": give the tokenizer flags of its run");
        }
        long iteration = state.get("iteration") instanceof Number n ? n.longValue() : 0;
        return new Contents(iteration, flags, config, tokenizer.toSavedArgs(), PipelineLayout.even(config.numLayers(), 1, 1));
    }

    /**
     * The weights of tensor rank {@code t} and pipeline stage {@code stage} under Megatron-J's names, F32, checked
     * against the parameters of that shard: read from the files of its expert-parallel ranks, the first for every
     * tensor but the experts, each for its own experts renumbered to their global indices ({@link MegatronExperts});
     * the stage's layers renumbered from their place in the stage to their place in the model, and on the last stage of
     * a pipeline with tied embeddings the output layer's copy named as Megatron-J keeps it.
     */
    static Map<String, Tensor> weights(Ranks ranks, int t, int stage, Contents run, TensorArena arena) {
        List<TorchFile> open = new ArrayList<>();
        try {
            for (Path file : ranks.files()[t][stage]) {
                open.add(TorchFile.open(file));
            }
            return weights(open, ranks.files()[t][stage], run.config(), ranks.tensorParallel(), run.pipeline(), stage,
                    run.modelFlags(), arena);
        } finally {
            open.forEach(TorchFile::close);
        }
    }

    private static Map<String, Tensor> weights(List<TorchFile> torches, Path[] files, TransformerConfig config, int tp,
                                               PipelineLayout pipeline, int stage, List<String> flags, TensorArena arena) {
        int ep = files.length;
        int pp = pipeline.stages();
        int firstLayer = pipeline.chunk(stage, 0).firstLayer();
        boolean tiedCopy = pp > 1 && stage == pp - 1 && !config.untieEmbeddingsAndOutputWeights();
        int experts = config.moe() == null ? 0 : config.moe().numExperts();
        if (experts % ep != 0) {
            throw new IllegalArgumentException(files[0] + ": " + experts + " experts do not split over " + ep
                    + " expert-parallel ranks");
        }
        int local = experts / ep;
        Map<String, MegatronExperts.Source> byName = new LinkedHashMap<>();
        java.util.Set<String> shared = new java.util.LinkedHashSet<>();
        for (int e = 0; e < ep; e++) {
            TorchFile torch = torches.get(e);
            Path file = files[e];
            Map<?, ?> model = dict(dict(torch.root(), file + "'s state dict").get("model"), file + "'s model");
            java.util.Set<String> others = new java.util.LinkedHashSet<>();
            for (Map.Entry<?, ?> entry : model.entrySet()) {
                String name = String.valueOf(entry.getKey());
                if (name.endsWith("._extra_state")) {
                    continue;   // TransformerEngine's FP8 metadata
                }
                if (!(entry.getValue() instanceof TorchFile.TensorRef ref)) {
                    throw new IllegalArgumentException(file + ": model entry " + name + " is " + entry.getValue() + ", not a tensor");
                }
                String ours = globalLayer(localSpecName(mtpLayerName(name)), firstLayer);
                if (tiedCopy && ours.equals("output_layer.weight")) {
                    ours = "embedding.word_embeddings.weight";
                }
                List<MegatronExperts.Source> expertTensors = MegatronExperts.torchExperts(ours, ref, torch, e * local, local, file);
                if (expertTensors != null) {
                    for (MegatronExperts.Source source : expertTensors) {
                        if (byName.putIfAbsent(source.name(), source) != null) {
                            throw new IllegalArgumentException(file + ": " + name + " holds " + source.name()
                                    + ", which another entry or expert-parallel rank holds too");
                        }
                    }
                } else if (e == 0) {
                    byName.put(ours, new MegatronExperts.Source(ours, ref.shape(), () -> torch.floats(ref)));
                    shared.add(ours);
                } else {
                    others.add(ours);   // a data-parallel replica of expert rank 0's
                }
            }
            if (e > 0 && !others.equals(shared)) {
                throw new IllegalArgumentException(file + " holds other tensors besides its experts than " + files[0]
                        + " (expert-parallel ranks of one tensor and pipeline rank hold the same ones)");
            }
        }
        Map<String, Tensor> weights = new LinkedHashMap<>();
        List<String> missing = new ArrayList<>();
        for (ParameterSpec spec : FullModelState.stageSpecs(config, tp, pipeline, stage)) {
            MegatronExperts.Source t = byName.remove(spec.name());
            if (t == null) {
                missing.add(spec.name());
                continue;
            }
            if (!Arrays.equals(t.shape(), spec.shape())) {
                throw new IllegalArgumentException(files[0] + ": " + spec.name() + " is " + Arrays.toString(t.shape())
                        + " but the run's arguments give " + Arrays.toString(spec.shape()));
            }
            weights.put(spec.name(), arena.fromFloats(t.values().get(), spec.shape()));
        }
        if (!missing.isEmpty() || !byName.isEmpty()) {
            throw new IllegalArgumentException(files[0] + (ep > 1 ? " (and its expert-parallel ranks)" : "") + ": the model's"
                    + " tensors do not match its arguments' model (flags " + String.join(" ", flags) + ")"
                    + (missing.isEmpty() ? "" : "; missing " + missing)
                    + (byName.isEmpty() ? "" : "; not expected " + byName.keySet()));
        }
        return weights;
    }

    /** {@code decoder.layers.<i>.} numbered within its pipeline stage, as Megatron's per-stage state dict has it, made global. */
    private static String globalLayer(String name, int firstLayer) {
        String prefix = "decoder.layers.";
        if (firstLayer == 0 || !name.startsWith(prefix)) {
            return name;
        }
        int dot = name.indexOf('.', prefix.length());
        return prefix + (Integer.parseInt(name.substring(prefix.length(), dot)) + firstLayer) + name.substring(dot);
    }

    /**
     * An MTP depth's layer, {@code mtp_model_layer} in today's Megatron-core modules (and so in its {@code torch}-format
     * state dicts), under the {@code transformer_layer} name of its distributed checkpoints and earlier releases (ours).
     */
    static String mtpLayerName(String name) {
        return name.replaceFirst("^(mtp\\.layers\\.\\d+\\.)mtp_model_layer\\.", "$1transformer_layer.");
    }

    /** TransformerEngine's fused layer norms under the local spec's names, which Megatron-J uses. */
    static String localSpecName(String name) {
        return name.replace(".self_attention.linear_q_up_proj.layer_norm_", ".self_attention.q_layernorm.")
                .replace(".self_attention.linear_kv_up_proj.layer_norm_", ".self_attention.kv_layernorm.")
                .replace(".self_attention.linear_qkv.layer_norm_weight", ".input_layernorm.weight")
                .replace(".self_attention.linear_qkv.layer_norm_bias", ".input_layernorm.bias")
                .replace(".mlp.linear_fc1.layer_norm_weight", ".pre_mlp_layernorm.weight")
                .replace(".mlp.linear_fc1.layer_norm_bias", ".pre_mlp_layernorm.bias");
    }

    static Map<?, ?> dict(Object o, String what) {
        if (o instanceof Map<?, ?> m) {
            return m;
        }
        throw new IllegalArgumentException(what + " is " + o + ", not a dict: not a Megatron-LM checkpoint");
    }

    static Map<?, ?> namespace(Object o, Path file) {
        if (o instanceof Unpickler.Instance i && i.type().equals(new Unpickler.Global("argparse", "Namespace"))
                && i.state() instanceof Map<?, ?> m) {
            return m;
        }
        throw new IllegalArgumentException(file + " has no argparse.Namespace 'args' (found " + o + "): not a checkpoint"
                + " Megatron-LM's training wrote");
    }

    /** The JSON a Megatron-J checkpoint keeps as its command-line arguments, from Megatron's model and tokenizer flags. */
    static ObjectNode savedArgs(Contents c) {
        ObjectNode args = new ObjectMapper().createObjectNode();
        args.put("command", "megatron checkpoint import-torch");
        for (int i = 0; i < c.modelFlags().size(); i++) {
            String flag = c.modelFlags().get(i).substring(2);
            boolean valued = i + 1 < c.modelFlags().size() && !c.modelFlags().get(i + 1).startsWith("--");
            args.put(flag, valued ? c.modelFlags().get(++i) : "true");
        }
        args.setAll(c.tokenizerArgs());
        return args;
    }
}
