package org.megatronj.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.megatronj.io.checkpoint.Checkpoint;
import org.megatronj.io.checkpoint.CheckpointLayout;
import org.megatronj.io.gpt.GptDataSplits;
import org.megatronj.io.gpt.GptDatasetFactory;
import org.megatronj.io.gpt.GptSampleSource;
import org.megatronj.io.gpt.PythonJson;
import org.megatronj.io.gpt.Split;
import org.megatronj.io.tokenizer.Tokenizer;
import org.megatronj.memory.Backend;
import org.megatronj.memory.Backends;
import org.megatronj.model.ActivationRecompute;
import org.megatronj.model.FlopCounter;
import org.megatronj.model.GPTModel;
import org.megatronj.model.Precision;
import org.megatronj.model.TransformerConfig;
import org.megatronj.parallel.ParallelConfig;
import org.megatronj.parallel.train.BatchConfig;
import org.megatronj.parallel.train.ExitSignal;
import org.megatronj.parallel.train.GptSamples;
import org.megatronj.parallel.train.GptTraining;
import org.megatronj.parallel.train.ProgressLog;
import org.megatronj.parallel.train.SampleSource;
import org.megatronj.parallel.train.Trainer;
import org.megatronj.parallel.train.TrainingCheckpointer;
import org.megatronj.parallel.train.TrainingConfig;
import org.megatronj.parallel.train.TrainingResult;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.TreeMap;

/**
 * {@code megatron pretrain gpt}: Megatron's pretrain_gpt.py, on one rank or, with the parallel
 * flags, on {@code --world-size} ranks running as threads (tensor, sequence, pipeline and data
 * parallelism; see {@link ParallelOptions}).
 */
@Command(name = "gpt", mixinStandardHelpOptions = true, sortOptions = false, abbreviateSynopsis = true,
        description = {"Pretrain a GPT model on indexed datasets (.bin/.idx from megatron preprocess), or on --mock-data.",
                "Log lines, validation blocks and checkpoints follow Megatron-LM's formats.",
                "Put long flag lists in a file and pass @args.txt."},
        exitCodeListHeading = "%nExit codes:%n",
        exitCodeList = {"0:training finished or exited cleanly (interval, duration, SIGTERM)", "1:the run failed (the message says why)",
                "2:invalid command line"})
final class PretrainGptCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Mixin
    GptDataOptions data;

    @Mixin
    TokenizerOptions tokenizer;

    @Mixin
    ModelOptions model;

    @Mixin
    TrainingOptions training;

    @Mixin
    PrecisionOptions precision;

    @Mixin
    ParallelOptions parallel;

    @Mixin
    DeviceOptions deviceOptions;

    @Mixin
    ImplementationChoiceOptions implementationChoices;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    /**
     * Megatron's {@code --use-checkpoint-args}: the model options take the checkpoint's shape ({@link
     * ModelOptions#takeFromCheckpoint}); without tokenizer flags the tokenizer is the checkpoint's. Returns the tokenizer.
     */
    private Tokenizer checkpointArgs(PrintWriter out) {
        Path dir = training.checkpointArgsDir();
        if (dir == null) {
            return tokenizer.build();
        }
        if (!Files.exists(CheckpointLayout.trackerFile(dir)) && CheckpointLayout.rankDirNames(dir).isEmpty()) {
            out.println("Checkpoint not found to provide arguments, using provided arguments.");
            return tokenizer.build();
        }
        CommandLine.ParseResult parsed = spec.commandLine().getParseResult();
        try (Checkpoint ckpt = Checkpoint.openLatestAnyRank(dir)) {
            model.takeFromCheckpoint(CheckpointModel.savedConfig(ckpt), parsed::hasMatchedOption, out::println);
            if (!tokenizer.isSet() && training.tokenizerFromCheckpointArgs()) {   // also names the cache files, as the run did
                tokenizer.takeFromSavedArgs(ckpt.metadata().path("args"), ckpt.rankDir());
            }
            return tokenizer.build();
        }
    }

    /**
     * What context parallelism does not cover here: document masks (a rank's chunks would need the mask's rows and
     * the other chunks' document starts) and the CUDA backend (its attention calls under CP are not wired).
     */
    private void refuseWithContextParallelism() {
        if (parallel.contextParallelSize() <= 1) {
            return;
        }
        String cp = "--context-parallel-size " + parallel.contextParallelSize();
        if (model.mla.multiLatentAttention) {
            throw new IllegalArgumentException(cp + " is not supported with --multi-latent-attention in Megatron-J (MLA's"
                    + " keys and values are not exchanged between context ranks)");
        }
        if (data.resetAttentionMask || data.interDocumentMasking) {
            throw new IllegalArgumentException(cp + " does not support document masks (--reset-attention-mask,"
                    + " --dataloader-inter-document-masking): each sequence is attended causally as a whole");
        }
        if (!"cpu".equalsIgnoreCase(deviceOptions.device().trim())) {
            throw new IllegalArgumentException(cp + " runs on the CPU backend only; use --device cpu");
        }
    }

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        refuseWithContextParallelism();   // by name, before the device's own checks
        data.checkMockData();
        implementationChoices.validate(deviceOptions.device(),
                parallel.sequenceParallel && parallel.tensorModelParallelSize > 1, parallel.pipelineModelParallelSize);
        Tokenizer tok = checkpointArgs(out);
        Precision dtype = precision.precision();
        TransformerConfig config = model.toConfig(tok.vocabSize(), data.seqLength, parallel.tensorModelParallelSize,
                parallel.dataParallelSize() * Math.max(1, parallel.contextParallelSize()));
        if (config.mtp() != null && !"cpu".equalsIgnoreCase(deviceOptions.device().trim())) {   // before any device work
            throw new IllegalArgumentException("--mtp-num-layers trains on --device cpu only: eh_proj's concatenation needs a"
                    + " strided copy that the " + deviceOptions.device().trim() + " backend does not offer");
        }
        // before anything is built or loaded
        MlaOptions.checkDevice(deviceOptions.device(), config);
        Backends.checkAttentionDropout(deviceOptions.device(), config.attentionDropout(), dtype.mixed(), config.kvChannels());
        ParallelConfig layout = parallel.toConfig(config);
        TrainingConfig tc = training.toConfig(data.seed, parallel.dataParallelSize(), data.seqLength, parallel.worldSize());
        ActivationRecompute recompute = parallel.recompute(model.moe.layerRecompute);
        if (model.moe.layerRecompute) {   // Megatron's TransformerConfig: the deprecated flag becomes selective "moe"
            out.println("WARNING: --moe-layer-recompute is deprecated. Use --recompute-granularity selective"
                    + " --recompute-modules moe instead.");
        }
        recompute.checkModules(config, model.moe.groupedGemm, model.moe.sharedExpertOverlap);
        precision.validate();
        training.profile();
        training.checkpointStrictness();
        ProgressLog progress = training.startProgressLog(parallel.worldSize(), data.seqLength);
        long iterations = tc.totalIterations();
        int gbs = tc.batch().globalBatchSize();
        long evalSamples = (long) tc.logging().evalIters() * tc.logging().evalGlobalBatchSize(tc.batch());
        Long[] sizes = {tc.schedule().trainSamples() > 0 ? tc.schedule().trainSamples() : iterations * gbs,
                tc.logging().evaluates() ? (iterations / tc.logging().evalInterval() + 1) * evalSamples : evalSamples,
                evalSamples};
        // Megatron's first line (validate_args); log parsers read the sizes from it.
        out.printf(Locale.ROOT, "using world size: %d, data-parallel size: %d, context-parallel size: %d, hierarchical"
                        + " context-parallel sizes: None, tensor-model-parallel size: %d, pipeline-model-parallel size: %d%n",
                parallel.worldSize(), parallel.dataParallelSize(), layout.contextParallelSize(),
                layout.tensorModelParallelSize(), layout.pipelineModelParallelSize());
        if (layout.sequenceParallel() && !layout.sequenceParallelActive()) {
            // Megatron turns it off (and says so) rather than change the numerics of a TP = 1 run
            out.println("WARNING: Disabling sequence parallelism because tensor model parallelism is disabled");
        }
        if (training.asyncSaveWarning() != null) {
            out.println(training.asyncSaveWarning());
        }
        data.warnAboutDefaults(spec.commandLine().getErr());
        ObjectNode args = CommandArgs.toJson(spec.commandLine().getParseResult());
        args.put("params_dtype", dtype.torchDtype());   // Megatron's derived args.params_dtype, kept in every checkpoint
        if (layout.sequenceParallel() && !layout.sequenceParallelActive()) {
            args.put("sequence-parallel", "false");    // Megatron sets args.sequence_parallel = False at TP 1
        }
        printArguments(out, spec, args);
        if (tc.batch().schedule() instanceof BatchConfig.StepSchedule steps) {
            out.println("> using step batch size schedule: " + steps.text());   // Megatron's set_global_variables
        }
        out.printf(Locale.ROOT, "> building %s tokenizer (vocab %d, padded to %d) ...%n", tok.typeName(), tok.vocabSize(),
                config.paddedVocabSize(layout.tensorModelParallelSize()));   // each TP rank holds an equal slice
        // Resuming continues the checkpoint's dropout RNG stream (unless --no-load-rng); the init is overwritten by the load.
        long modelSeed = tc.checkpoint().load() != null && !tc.checkpoint().noLoadRng() && !tc.checkpoint().finetune()
                ? TrainingCheckpointer.savedRngStream(tc.checkpoint().loadDir()).orElse(data.seed) : data.seed;
        if (parallel.parallel()) {   // on one rank --use-distributed-optimizer and --overlap-grad-reduce change nothing
            ParallelPretraining run = new ParallelPretraining(out, config, tc, layout, parallel, recompute, precision,
                    modelSeed, checkpointer(config, args, null, out, progress), training.logMemoryInterval(), progress);
            run.refuseUnsupported(deviceOptions.device());
            try (JfrProfile profile = JfrProfile.of(training.profile(), out)) {
                run.profileWith(profile);
                run.checkWeightHashesEvery(training.checkWeightHashInterval);
                return run.run(GptDatasetFactory.build(data.sources(() -> tok), sizes, data.config(tokenizer, tok)),
                        data.seqLength);
            }
        }
        try (Backend backend = Backends.create(deviceOptions.device());
             GPTModel gpt = new GPTModel(config, backend, modelSeed, dtype);
             GptTraining.ModelOptimizer optimizer = GptTraining.optimizer(tc.optimizer(), gpt, precision.lossScaler());
             GptDataSplits splits = GptDatasetFactory.build(data.sources(() -> tok), sizes, data.config(tokenizer, tok));
             ExitSignal signal = tc.exit().exitOnSignal() ? ExitSignal.onSigterm() : null;
             JfrProfile profile = JfrProfile.of(training.profile(), out)) {
            gpt.setRecompute(recompute);
            out.printf(Locale.ROOT, " > number of parameters on (tensor, pipeline) model parallel rank (0, 0): %d%n",
                    gpt.parameterCount());
            if (dtype.mixed()) {
                out.printf(Locale.ROOT, " > mixed precision: %s compute weights and activations, fp32 main weights,"
                        + " gradients and optimizer%n", dtype.flagValue());
            }
            GptSampleSource trainSplit = splits.get(Split.TRAIN);
            if (trainSplit == null) {
                throw new IllegalArgumentException("no training split: give --data-path with a --split whose first part is > 0,"
                        + " --train-data-path, or --mock-data");
            }
            int vocabLimit = config.paddedVocabSize();
            SampleSource train = new GptSamples(trainSplit, data.seqLength, vocabLimit);
            SampleSource valid = sourceOrNull(splits.get(Split.VALID), vocabLimit);
            SampleSource test = sourceOrNull(splits.get(Split.TEST), vocabLimit);
            out.printf(Locale.ROOT, " > datasets: train %d, valid %d, test %d samples of %d tokens%n", train.size(),
                    valid == null ? 0 : valid.size(), test == null ? 0 : test.size(), data.seqLength);
            TrainingCheckpointer checkpointer = checkpointer(config, args, backend, out, progress);
            Trainer trainer = new Trainer(tc, GptTraining.model(gpt), optimizer, train, valid, test, checkpointer, signal,
                    line -> {
                        out.println(line);
                        out.flush();
                    });
            trainer.setModelFlops(b -> FlopCounter.megatronLoggedFlopsPerIteration(config, b), 1);
            trainer.setMemoryReport(MemoryReports.forRank(backend, 0, out::println,
                    MemoryReports.theoretical(config, tc, layout, parallel, recompute), training.logMemoryInterval()));
            trainer.setProgressLog(progress);
            trainer.setStepProfiler(profile);
            trainer.setWeightHashCheckInterval(training.checkWeightHashInterval);
            trainer.loadCheckpoint();
            TrainingResult result = trainer.train();
            out.printf(Locale.ROOT, "[after training is done] iteration %d, consumed samples %d (%s)%n", result.iteration(),
                    result.consumedTrainSamples(), result.exitReason().name().toLowerCase(Locale.ROOT));
            return 0;
        }
    }

    /**
     * The run's checkpointer, with {@code --dist-ckpt-strictness} (its lines printed whole from any rank) and
     * {@code --save-retain-interval} (deletions in the progress log too).
     */
    private TrainingCheckpointer checkpointer(TransformerConfig config, ObjectNode args, Backend backend, PrintWriter out,
                                              ProgressLog progress) {
        TrainingCheckpointer c = new TrainingCheckpointer(JSON.valueToTree(config), args, backend);
        c.setStrictness(training.checkpointStrictness(), line -> {
            synchronized (out) {
                out.println(line);
                out.flush();
            }
        });
        c.setSaveRetainInterval(training.saveRetainInterval, progress == null ? iteration -> { } : progress::deletedCheckpoint);
        return c;
    }

    /**
     * Megatron's arguments block: every flag of the command with its value, defaults included (log
     * parsers look values up there), plus what {@code args} derives or adjusts (params_dtype, a
     * sequence parallelism turned off); values as Python prints them ({@code True}, {@code None},
     * {@code 1e-08}, {@code ['a', 'b']}).
     */
    private static void printArguments(PrintWriter out, CommandLine.Model.CommandSpec command, ObjectNode args) {
        out.println("------------------------ arguments ------------------------");
        TreeMap<String, String> sorted = new TreeMap<>();
        java.util.Map<String, String> given = new java.util.HashMap<>();
        for (CommandLine.Model.OptionSpec o : command.options()) {
            if (!o.usageHelp() && !o.versionHelp()) {
                String key = o.longestName().replaceFirst("^-+", "");
                Object value = o.getValue();   // (not inline: String.valueOf would bind it as a char[])
                sorted.put(key.replace('-', '_'), pythonValue(value));
                given.put(key, String.valueOf(value));
            }
        }
        args.properties().forEach(e -> {
            boolean adjusted = !e.getValue().isArray() && !e.getValue().asText().equals(given.get(e.getKey()));
            if (!e.getKey().equals("command") && adjusted) {
                sorted.put(e.getKey().replace('-', '_'), pythonValue(e.getValue().asText()));
            }
        });
        sorted.forEach((k, v) -> out.println("  " + k + " " + ".".repeat(Math.max(1, 48 - k.length())) + " " + v));
        out.println("-------------------- end of arguments ---------------------");
    }

    private static String pythonValue(Object v) {
        return switch (v) {
            case null -> "None";
            case Boolean b -> b ? "True" : "False";
            case Float f -> pythonValue(Double.parseDouble(Float.toString(f)));   // the digits as typed
            case Double d when !Double.isFinite(d) -> d.isNaN() ? "nan" : d > 0 ? "inf" : "-inf";
            case Double d -> PythonJson.floatRepr(d);
            case java.util.List<?> list -> list.stream().map(x -> x instanceof String str ? "'" + str + "'" : pythonValue(x))
                    .collect(java.util.stream.Collectors.joining(", ", "[", "]"));
            case String str when str.equals("true") || str.equals("false") -> str.equals("true") ? "True" : "False";
            default -> String.valueOf(v);
        };
    }

    private SampleSource sourceOrNull(GptSampleSource split, int vocabLimit) {
        return split == null || split.size() == 0 ? null : new GptSamples(split, data.seqLength, vocabLimit);
    }
}
