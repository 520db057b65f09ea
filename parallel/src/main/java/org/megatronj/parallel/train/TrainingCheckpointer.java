package org.megatronj.parallel.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.megatronj.io.checkpoint.Checkpoint;
import org.megatronj.io.checkpoint.CheckpointException;
import org.megatronj.io.checkpoint.CheckpointLayout;
import org.megatronj.io.checkpoint.CheckpointWriter;
import org.megatronj.io.checkpoint.OptimizerStateFiles;
import org.megatronj.io.safetensors.SafetensorsFile;
import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.Parameter;
import org.megatronj.model.optim.DynamicLossScaler;
import org.megatronj.model.optim.DecayStyle;
import org.megatronj.model.optim.OptimizerParamScheduler;
import org.megatronj.model.optim.WeightDecaySchedule;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.Set;
import java.util.function.Consumer;

/**
 * Saves and loads the complete training state of one rank: weights ({@code model.safetensors}
 * under Megatron-core names), optimizer state ({@code optimizer.safetensors}) and, in
 * {@code metadata.json}, the iteration, consumed samples, scheduler clock, optimizer step count,
 * the dynamic loss scaler's state (fp16), RNG stream, the model configuration and the
 * command-line arguments. Weights are always the F32 main parameters, whatever the run's
 * precision, so a checkpoint loads into an fp32, bf16 or fp16 run alike (as Megatron's).
 */
public final class TrainingCheckpointer implements TrainingCheckpoints {
    public static final String FORMAT = "megatron-j";
    public static final int FORMAT_VERSION = 1;
    public static final String RANK_DIR = CheckpointLayout.rankDirName(0, 0, false);
    /** The metadata field holding the Hugging Face {@code config.json} of an imported model. */
    public static final String HF_CONFIG = "hf_config";
    private static final ObjectMapper JSON = new ObjectMapper();

    private final JsonNode modelConfig;
    private final JsonNode args;
    private final Backend backend; // copies device tensors to and from the host files; null: all on the host
    /** The Hugging Face config an imported checkpoint carries: kept through finetuning, so an export keeps its fields. */
    private JsonNode hfConfig;
    private CheckpointStrictness strictness = CheckpointStrictness.ASSUME_OK_UNEXPECTED;
    private Consumer<String> log = line -> { };
    private int saveRetainInterval;
    private java.util.function.LongConsumer deleted = iteration -> { };

    /**
     * @param modelConfig the model's architecture as JSON (compared on load, so a checkpoint of
     *                    another shape fails with the differing fields named)
     * @param args        the command line's values, kept for {@code megatron checkpoint inspect}
     */
    public TrainingCheckpointer(JsonNode modelConfig, JsonNode args) {
        this(modelConfig, args, null);
    }

    /** A checkpointer for a model on {@code backend}'s device: tensors travel through host copies. */
    public TrainingCheckpointer(JsonNode modelConfig, JsonNode args, Backend backend) {
        this.modelConfig = modelConfig == null ? JSON.createObjectNode() : modelConfig;
        this.args = args == null ? JSON.createObjectNode() : args;
        this.backend = backend;
    }

    /** Writes iteration {@code state.iteration()} under {@code root}; returns bytes written. */
    @Override
    public long save(Path root, ResumePoint state, TrainableModel model, TrainingOptimizer optimizer,
                     OptimizerParamScheduler scheduler, Contents contents) {
        long bytes;
        try (TensorArena staging = TensorArena.named("checkpoint-staging")) {
            CheckpointWriter.RankState files = new CheckpointWriter.RankState(RANK_DIR,
                    HostStaging.toHost(backend, weights(model), staging),
                    contents.optimizer() ? HostStaging.toHost(backend, optimizer.stateTensors(), staging) : Map.of(),
                    metadata(state, optimizer, scheduler, contents));
            bytes = CheckpointWriter.writeRankFiles(CheckpointWriter.preparePartial(root, state.iteration()), files, Map.of());
        }
        publish(root, state.iteration());
        return bytes;
    }

    @Override
    public PendingSave saveAsync(Path root, ResumePoint state, TrainableModel model, TrainingOptimizer optimizer,
                                 OptimizerParamScheduler scheduler, Contents contents) {
        TensorArena snapshot = TensorArena.named("checkpoint-snapshot");
        try {
            CheckpointWriter.RankState files = new CheckpointWriter.RankState(RANK_DIR,
                    HostStaging.snapshot(backend, weights(model), snapshot),
                    contents.optimizer() ? HostStaging.snapshot(backend, optimizer.stateTensors(), snapshot) : Map.of(),
                    metadata(state, optimizer, scheduler, contents));
            Path partial = CheckpointWriter.preparePartial(root, state.iteration());
            return new BackgroundSave(snapshot, () -> CheckpointWriter.writeRankFiles(partial, files, Map.of()),
                    () -> publish(root, state.iteration()));
        } catch (RuntimeException e) {
            snapshot.close();
            throw e;
        }
    }

    private static Map<String, Tensor> weights(TrainableModel model) {
        Map<String, Tensor> weights = new LinkedHashMap<>();
        for (Parameter p : model.parameters()) {
            weights.put(p.name(), p.data());
        }
        return weights;
    }

    /**
     * The {@code metadata.json} of a training checkpoint: format, counters, RNG stream, optimizer
     * and scheduler state, model configuration and arguments (every rank folder of a sharded
     * checkpoint holds the same, plus its layout). The RNG stream, and the optimizer and scheduler
     * state, only where {@code contents} asks for them; a load that needs them then fails by name.
     */
    public ObjectNode metadata(ResumePoint state, TrainingOptimizer optimizer, OptimizerParamScheduler scheduler,
                               Contents contents) {
        ObjectNode meta = JSON.createObjectNode();
        meta.put("format", FORMAT);
        meta.put("format_version", FORMAT_VERSION);
        meta.put("iteration", state.iteration());
        meta.put("consumed_train_samples", state.consumedTrainSamples());
        meta.put("consumed_valid_samples", state.consumedValidSamples());
        meta.put("num_floating_point_operations_so_far", state.floatingPointOperationsSoFar());
        if (contents.rng()) {
            meta.putObject("rng").put("stream", state.rngStream());
        }
        if (contents.optimizer()) {
            putOptimizerState(meta, optimizer, scheduler);
        }
        meta.set("model", modelConfig);
        meta.set("args", args);
        if (hfConfig != null) {
            meta.set(HF_CONFIG, hfConfig);
        }
        return meta;
    }

    private static void putOptimizerState(ObjectNode meta, TrainingOptimizer optimizer, OptimizerParamScheduler scheduler) {
        ObjectNode opt = meta.putObject("optimizer");
        opt.put("type", optimizer.name());
        opt.put("step_count", optimizer.stepCount());
        if (optimizer.lossScaler() instanceof DynamicLossScaler dynamic) {
            // Megatron's optimizer state dict 'grad_scaler' (a constant scaler has no state).
            DynamicLossScaler.State scaler = dynamic.state();
            ObjectNode g = opt.putObject("grad_scaler");
            g.put("scale", scaler.scale());
            g.put("growth_tracker", scaler.growthTracker());
            g.put("hysteresis_tracker", scaler.hysteresisTracker());
        }
        ObjectNode sched = meta.putObject("scheduler");
        sched.put("num_steps", scheduler.numSteps());
        sched.put("max_lr", scheduler.maxLr());
        sched.put("min_lr", scheduler.minLr());
        sched.put("warmup_steps", scheduler.warmupSteps());
        sched.put("decay_steps", scheduler.decaySteps());
        sched.put("decay_style", scheduler.style().flagValue());
        WeightDecaySchedule wd = scheduler.weightDecaySchedule();
        if (wd != null) {   // Megatron's names
            sched.put("start_wd", wd.start());
            sched.put("end_wd", wd.end());
            sched.put("wd_incr_steps", wd.steps());
            sched.put("wd_incr_style", wd.style().flagValue());
        }
    }

    /**
     * Writes weights only, as Megatron's {@code release} checkpoint (tracker {@code release}):
     * what {@code checkpoint import-hf} produces. {@code extra} fields (e.g. the source's config)
     * are added to the metadata.
     */
    public long saveRelease(Path root, Map<String, Tensor> weights, ObjectNode extra) {
        return CheckpointWriter.save(root, -1, new CheckpointWriter.RankState(RANK_DIR, weights, Map.of(), releaseMetadata(extra)));
    }

    /** The {@code metadata.json} of a weights-only release checkpoint, with {@code extra} fields (may be null). */
    public ObjectNode releaseMetadata(ObjectNode extra) {
        ObjectNode meta = JSON.createObjectNode();
        meta.put("format", FORMAT);
        meta.put("format_version", FORMAT_VERSION);
        meta.put("release", true);
        meta.put("iteration", 0);
        meta.put("consumed_train_samples", 0);
        meta.put("consumed_valid_samples", 0);
        meta.set("model", modelConfig);
        meta.set("args", args);
        if (extra != null) {
            meta.setAll(extra);
        }
        return meta;
    }

    /**
     * Loads the latest checkpoint under {@code root} into the model (always), the optimizer and
     * scheduler (unless {@code finetune} or {@code noLoadOptim}) and returns where to continue.
     * A finetune starts at iteration 0 with fresh counters.
     */
    @Override
    public ResumePoint load(Path root, TrainableModel model, TrainingOptimizer optimizer, OptimizerParamScheduler scheduler,
                            boolean finetune, boolean noLoadOptim, boolean noLoadRng, long seed) {
        try (Checkpoint ckpt = Checkpoint.openLatest(root, RANK_DIR)) {
            return restore(ckpt, () -> loadWeightsAsConfigured(ckpt, model.parameters()), optimizer, scheduler, finetune,
                    noLoadOptim, noLoadRng, seed, () -> copyOptimizerState(ckpt, optimizer.stateTensors(), backend));
        }
    }

    /**
     * Loads one rank folder: checks the model shape, runs {@code loadWeights}, then, unless {@code finetune}, {@code noLoadOptim} or a release
     * checkpoint, checks the optimizer type, runs {@code loadOptimizerState} and restores the step
     * count and scheduler clock. Returns where to continue.
     */
    public ResumePoint restore(Checkpoint ckpt, Runnable loadWeights, TrainingOptimizer optimizer,
                               OptimizerParamScheduler scheduler, boolean finetune, boolean noLoadOptim, boolean noLoadRng,
                               long seed, Runnable loadOptimizerState) {
        JsonNode meta = ckpt.metadata();
        checkModelConfig(ckpt, meta.path("model"));
        checkSavedContents(ckpt, finetune, noLoadOptim, noLoadRng);
        loadWeights.run();
        if (meta.hasNonNull(HF_CONFIG)) {
            hfConfig = meta.get(HF_CONFIG);
        }
        // A release checkpoint (an import, an export of weights) has no training state: Megatron
        // loads its weights and starts at iteration 0, as with --finetune.
        boolean release = meta.path("release").asBoolean(false);
        if (loadsOptimizerState(meta, finetune, noLoadOptim)) {
            String saved = meta.path("optimizer").path("type").asText("");
            if (!saved.equals(optimizer.name())) {
                throw new CheckpointException(ckpt.rankDir() + ": checkpoint optimizer is '" + saved + "' but this run uses '"
                        + optimizer.name() + "' (pass --no-load-optim to start the optimizer afresh)");
            }
            loadOptimizerState.run();
            optimizer.setStepCount(meta.path("optimizer").path("step_count").asLong());
            restoreLossScaler(meta.path("optimizer").path("grad_scaler"), optimizer);
            JsonNode sched = meta.path("scheduler");
            try {
                scheduler.loadState(new OptimizerParamScheduler.State(sched.path("max_lr").asDouble(),
                        sched.path("min_lr").asDouble(), sched.path("warmup_steps").asDouble(),
                        sched.path("decay_steps").asDouble(), DecayStyle.parse(sched.path("decay_style").asText()),
                        sched.path("num_steps").asLong(), !sched.has("wd_incr_style") ? null : new WeightDecaySchedule(
                                sched.path("start_wd").asDouble(), sched.path("end_wd").asDouble(),
                                sched.path("wd_incr_steps").asDouble(),
                                WeightDecaySchedule.Style.parse(sched.path("wd_incr_style").asText()))));
            } catch (IllegalArgumentException e) {
                throw new CheckpointException(ckpt.rankDir() + ": " + e.getMessage(), e);
            }
        }
        if (finetune || release) {
            return ResumePoint.fresh(seed);
        }
        long stream = noLoadRng ? seed : meta.path("rng").path("stream").asLong();
        return new ResumePoint(ckpt.iteration(), meta.path("consumed_train_samples").asLong(),
                meta.path("consumed_valid_samples").asLong(), stream, meta.path("num_floating_point_operations_so_far").asDouble(0));
    }

    /**
     * As Megatron's {@code load_state_dict}: a dynamic scaler continues from the checkpoint's
     * state when it has one; a checkpoint without it (fp32, bf16, a constant scale) leaves the
     * scaler at its initial state, and a run without a dynamic scaler ignores a saved one.
     */
    private static void restoreLossScaler(JsonNode saved, TrainingOptimizer optimizer) {
        if (saved.isObject() && optimizer.lossScaler() instanceof DynamicLossScaler dynamic) {
            dynamic.restore(new DynamicLossScaler.State(saved.path("scale").asDouble(), saved.path("growth_tracker").asLong(),
                    saved.path("hysteresis_tracker").asInt()));
        }
    }

    /**
     * Megatron's refusals, before any tensor is read, of a load that asks for what a save left out
     * ({@code --no-save-optim}, {@code --no-save-rng}); a release checkpoint and {@code --finetune} need neither.
     */
    public static void checkSavedContents(Checkpoint ckpt, boolean finetune, boolean noLoadOptim, boolean noLoadRng) {
        JsonNode meta = ckpt.metadata();
        if (finetune || meta.path("release").asBoolean(false)) {
            return;
        }
        if (!noLoadOptim && !meta.has("optimizer")) {
            throw new CheckpointException("Unable to load optimizer from checkpoint " + ckpt.rankDir() + " (it was saved with"
                    + " --no-save-optim). Specify --no-load-optim or --finetune to prevent attempting to load the optimizer"
                    + " state");
        }
        if (!noLoadRng && !meta.path("rng").has("stream")) {
            throw new CheckpointException("Unable to load rng state from checkpoint " + ckpt.rankDir() + " (it was saved"
                    + " with --no-save-rng). Specify --no-load-rng or --finetune to prevent attempting to load the rng state");
        }
    }

    /** True when a load with these flags restores the optimizer from a checkpoint with this metadata. */
    public static boolean loadsOptimizerState(JsonNode metadata, boolean finetune, boolean noLoadOptim) {
        return !finetune && !noLoadOptim && !metadata.path("release").asBoolean(false);
    }

    /**
     * Copies every tensor of {@code targets} from the folder's {@code optimizer.safetensors} (same
     * names and shapes), or from its distributed-optimizer files (a TP1/PP1 run with
     * {@code --use-distributed-optimizer}) re-assembled into whole tensors.
     */
    public static void copyOptimizerState(Checkpoint ckpt, Map<String, Tensor> targets) {
        copyOptimizerState(ckpt, targets, null);
    }

    /** {@link #copyOptimizerState(Checkpoint, Map)} into tensors on {@code backend}'s device (null: host tensors). */
    public static void copyOptimizerState(Checkpoint ckpt, Map<String, Tensor> targets, Backend backend) {
        if (ckpt.optimizer().isEmpty() && !OptimizerStateFiles.distribFiles(ckpt.rankDir()).isEmpty()) {
            Map<String, float[]> pieces = OptimizerStateFiles.readAll(ckpt.rankDir());
            for (Map.Entry<String, Tensor> e : targets.entrySet()) {
                float[] values = pieces.get(e.getKey());
                if (values == null || values.length != e.getValue().numel()) {
                    throw new CheckpointException(ckpt.rankDir() + ": distributed optimizer state '" + e.getKey() + "' is "
                            + (values == null ? "missing" : values.length + " elements, expected " + e.getValue().numel()));
                }
                HostStaging.fill(backend, e.getValue(), host -> host.copyFrom(values));
            }
            return;
        }
        SafetensorsFile state = ckpt.optimizer().orElseThrow(() -> new CheckpointException(ckpt.rankDir()
                + ": optimizer.safetensors is missing (pass --no-load-optim to load the weights only)"));
        for (Map.Entry<String, Tensor> e : targets.entrySet()) {
            if (!state.contains(e.getKey())) {
                throw new CheckpointException(state.path() + ": optimizer state '" + e.getKey() + "' is missing");
            }
            HostStaging.copyInto(backend, state, e.getKey(), e.getValue());
        }
    }

    /**
     * The RNG stream saved in the latest checkpoint under {@code root} (or in the iteration folder
     * {@code root}), if there is one (no checkpoint: empty). A resumed run seeds its model's dropout with it, so the masks continue
     * the saved run's sequence even when {@code --seed} changed.
     */
    public static OptionalLong savedRngStream(Path root) {
        if (root == null || !Files.exists(CheckpointLayout.trackerFile(root)) && CheckpointLayout.rankDirNames(root).isEmpty()) {
            return OptionalLong.empty();
        }
        try (Checkpoint ckpt = Checkpoint.openLatestAnyRank(root)) {   // every rank folder records the same stream
            JsonNode rng = ckpt.metadata().path("rng").path("stream");
            return rng.isIntegralNumber() ? OptionalLong.of(rng.asLong()) : OptionalLong.empty();
        }
    }

    /** Copies every parameter from the checkpoint after checking names and shapes; reports all mismatches at once. */
    public static void loadWeights(Checkpoint ckpt, List<Parameter> parameters) {
        loadWeights(ckpt, parameters, null);
    }

    /** {@link #loadWeights(Checkpoint, List)} into parameters on {@code backend}'s device (null: host parameters). */
    public static void loadWeights(Checkpoint ckpt, List<Parameter> parameters, Backend backend) {
        loadWeights(ckpt, parameters, backend, CheckpointStrictness.RAISE_ALL, line -> { });
    }

    /** {@link #loadWeights(Checkpoint, List)} under this checkpointer's {@code --dist-ckpt-strictness}. */
    public void loadWeightsAsConfigured(Checkpoint ckpt, List<Parameter> parameters) {
        loadWeights(ckpt, parameters, backend, strictness, log);
    }

    /**
     * Copies the parameters the checkpoint holds after checking their shapes and dtypes (always errors); tensors the
     * checkpoint lacks or has besides the model's are errors, warnings to {@code log} or ignored as {@code strictness}
     * says (a parameter the checkpoint lacks keeps its value).
     */
    private static void loadWeights(Checkpoint ckpt, List<Parameter> parameters, Backend backend, CheckpointStrictness strictness,
                                    Consumer<String> log) {
        SafetensorsFile file = ckpt.model();
        List<String> problems = new ArrayList<>();
        List<String> lacking = new ArrayList<>();
        Set<String> unused = new LinkedHashSet<>(file.names());
        List<Parameter> present = new ArrayList<>();
        for (Parameter p : parameters) {
            if (!file.contains(p.name())) {
                lacking.add("missing tensor '" + p.name() + "' " + Tensor.shapeString(p.data().shape()));
                continue;
            }
            unused.remove(p.name());
            present.add(p);
            SafetensorsFile.TensorInfo info = file.info(p.name());
            if (!Arrays.equals(info.shape(), p.data().shape()) || info.dtype() != p.data().dtype()) {
                problems.add("tensor '" + p.name() + "' is " + info.dtype() + Tensor.shapeString(info.shape())
                        + " in the checkpoint but " + p.data().dtype() + Tensor.shapeString(p.data().shape()) + " in the model");
            }
        }
        List<String> extra = unused.stream().map(n -> "unexpected tensor '" + n + "' " + Tensor.shapeString(file.info(n).shape()))
                .toList();
        sortMismatches(lacking, strictness.lacking(), problems, log, file, "keeps its initial value");
        sortMismatches(extra, strictness.extra(), problems, log, file, "is not loaded");
        if (!problems.isEmpty()) {
            int shown = Math.min(problems.size(), 5);
            throw new CheckpointException(file.path() + " does not fit this model (" + problems.size() + " mismatches): "
                    + String.join("; ", problems.subList(0, shown)) + (problems.size() > shown ? "; ..." : "")
                    + (strictness == CheckpointStrictness.RAISE_ALL ? "" : " (--dist-ckpt-strictness " + strictness.flagValue()
                    + ")"));
        }
        for (Parameter p : present) {
            HostStaging.copyInto(backend, file, p.name(), p.data());
        }
    }

    private static void sortMismatches(List<String> found, CheckpointStrictness.Handling handling, List<String> problems,
                                       Consumer<String> log, SafetensorsFile file, String consequence) {
        switch (handling) {
            case RAISE -> problems.addAll(found);
            case LOG -> found.forEach(m -> log.accept("WARNING: " + file.path() + ": " + m + " " + consequence
                    + " (--dist-ckpt-strictness)"));
            case IGNORE -> { }
        }
    }

    /** {@code --dist-ckpt-strictness} for the loads of training ({@link #load}); its warnings go to {@code log}. */
    public void setStrictness(CheckpointStrictness strictness, Consumer<String> log) {
        this.strictness = strictness;
        this.log = log;
    }

    /**
     * Megatron's {@code --save-retain-interval N} (0: keep all): once a save is published, the checkpoint it replaced as
     * the latest is deleted unless its iteration is a multiple of N (or it is the same iteration, or a release);
     * {@code deleted} hears of each deletion ({@code --log-progress}).
     */
    public void setSaveRetainInterval(int interval, java.util.function.LongConsumer deleted) {
        if (interval < 0) {
            throw new IllegalArgumentException("--save-retain-interval must be positive, got " + interval);
        }
        this.saveRetainInterval = interval;
        this.deleted = deleted;
    }

    /**
     * Publishes {@code iteration} (renames its partial folder into place, points the tracker at it), then deletes the
     * checkpoint it replaced where {@code --save-retain-interval} says so. One rank calls this.
     */
    public void publish(Path root, long iteration) {
        long previous = Files.exists(CheckpointLayout.trackerFile(root)) ? CheckpointLayout.latestIteration(root) : -1;
        CheckpointWriter.commit(root, iteration);
        if (saveRetainInterval > 0 && previous > 0 && previous != iteration && previous % saveRetainInterval != 0) {
            Path old = CheckpointLayout.iterationDir(root, previous);
            if (Files.isSymbolicLink(old)) {
                log.accept(String.format(java.util.Locale.ROOT, "  skipping deleting checkpoint from iteration %7d at %s since"
                        + " it is a symbolic link", previous, root));
                return;
            }
            CheckpointWriter.deleteIterationDir(root, previous);
            log.accept(String.format(java.util.Locale.ROOT, "  successfully deleted checkpoint from iteration %7d at %s",
                    previous, root));
            deleted.accept(previous);
        }
    }

    /** Names the architecture fields that differ between the checkpoint and this run, before any tensor is read. */
    private void checkModelConfig(Checkpoint ckpt, JsonNode saved) {
        if (!saved.isObject() || !modelConfig.isObject() || modelConfig.isEmpty()) {
            return;
        }
        List<String> diffs = new ArrayList<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = modelConfig.properties().iterator(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (e.getKey().equals("mtp")) {
                mtpDiffs(saved.get("mtp"), e.getValue(), diffs);
                continue;
            }
            if (e.getKey().equals("moe")) {
                moeDiffs(saved.get("moe"), e.getValue(), diffs);
                continue;
            }
            if (e.getKey().equals("mla")) {
                mlaDiffs(saved.get("mla"), e.getValue(), diffs);
                continue;
            }
            if (!isShapeField(e.getKey())) {
                continue;
            }
            JsonNode other = saved.get(e.getKey());
            if (other != null && !sameValue(other, e.getValue())) {
                diffs.add(e.getKey() + " " + other + " (this run: " + e.getValue() + ")");
            }
        }
        if (!diffs.isEmpty()) {
            String hint = diffs.stream().anyMatch(d -> d.startsWith("geluTanh ")) ? " (geluTanh false is the exact GeLU:"
                    + " --no-bias-gelu-fusion or --disable-bias-linear; true is its tanh form, the default, or --openai-gelu)" : "";
            throw new CheckpointException(ckpt.rankDir() + " was saved from another model shape: " + String.join(", ", diffs)
                    + hint);
        }
    }

    /** JSON equality, but a float field read back from the file (a double there) equals the run's float. */
    private static boolean sameValue(JsonNode saved, JsonNode run) {
        if (saved.isNumber() && run.isNumber() && !(saved.isIntegralNumber() && run.isIntegralNumber())) {
            return (float) saved.doubleValue() == (float) run.doubleValue();
        }
        return saved.equals(run);
    }

    /**
     * Fields that change tensor shapes or what the same weights compute (the activation and GeLU form, the norm's
     * epsilon, rope's share, base and layout); dropout or init differences do not prevent a load.
     */
    /**
     * The mixture-of-experts fields that make another model (the experts, their width and layers, how the router
     * chooses and weighs them); the training-only ones (load-balancing and z-loss coefficients, capacity) may differ.
     */
    private static void moeDiffs(JsonNode saved, JsonNode run, List<String> diffs) {
        boolean savedMoe = saved != null && saved.isObject();
        boolean runMoe = run != null && run.isObject();
        if (savedMoe != runMoe) {
            diffs.add("moe " + (savedMoe ? saved : "null") + " (this run: " + (runMoe ? run : "null") + ")");
            return;
        }
        if (!savedMoe) {
            return;
        }
        for (String field : List.of("numExperts", "routerTopk", "ffnHiddenSize", "layerFreq", "routerPreSoftmax",
                "scoreFunction", "topkScalingFactor", "sharedExpertIntermediateSize", "sharedExpertGate", "routerNumGroups",
                "routerGroupTopk", "routerEnableExpertBias")) {
            JsonNode s = saved.get(field);
            JsonNode r = run.get(field);
            if (s != null && r != null && !sameValue(s, r)) {
                diffs.add("moe." + field + " " + s + " (this run: " + r + ")");
            }
        }
    }

    /** Every multi-latent attention field makes another model (its shapes, rope or softmax scale); standard vs MLA too. */
    private static void mlaDiffs(JsonNode saved, JsonNode run, List<String> diffs) {
        boolean savedMla = saved != null && saved.isObject();
        boolean runMla = run != null && run.isObject();
        if (savedMla != runMla) {
            diffs.add("mla " + (savedMla ? saved : "null") + " (this run: " + (runMla ? run : "null") + ")");
            return;
        }
        for (Iterator<Map.Entry<String, JsonNode>> it = runMla ? run.properties().iterator()
                : java.util.Collections.emptyIterator(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> f = it.next();
            JsonNode s = saved.get(f.getKey());
            if (s != null && !sameValue(s, f.getValue())) {
                diffs.add("mla." + f.getKey() + " " + s + " (this run: " + f.getValue() + ")");
            }
        }
    }

    private static boolean isShapeField(String name) {
        return switch (name) {
            case "numLayers", "hiddenSize", "ffnHiddenSize", "numAttentionHeads", "kvChannels", "numQueryGroups",
                 "maxPositionEmbeddings", "positionEmbeddingType", "normalization", "swiglu", "squaredRelu", "addBiasLinear",
                 "untieEmbeddingsAndOutputWeights", "vocabSize", "makeVocabSizeDivisibleBy", "geluTanh", "addQkvBias", "qkLayernorm",
                 "rotarySeqLenInterpolationFactor", "useRopeScaling", "ropeScalingFactor", "rotaryInterleaved",
                 "layernormEpsilon", "applyLayernorm1p", "rotaryPercent", "rotaryBase" -> true;
            default -> false;
        };
    }

    /**
     * The Multi-Token Prediction fields that make another model: whether it has MTP depths and how many; the loss
     * scaling factor, a training coefficient, may differ. A checkpoint from before MTP has no field: none.
     */
    private static void mtpDiffs(JsonNode saved, JsonNode run, List<String> diffs) {
        boolean savedMtp = saved != null && saved.isObject();
        boolean runMtp = run != null && run.isObject();
        if (savedMtp != runMtp) {
            diffs.add("mtp " + (savedMtp ? saved : "null") + " (this run: " + (runMtp ? run : "null")
                    + "; --mtp-num-layers must match the checkpoint's)");
        } else if (savedMtp && !sameValue(saved.get("numLayers"), run.get("numLayers"))) {
            diffs.add("mtp.numLayers " + saved.get("numLayers") + " (this run: " + run.get("numLayers") + ")");
        }
    }
}
