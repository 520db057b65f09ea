package org.megatronj.cli;

import org.megatronj.model.optim.DecayStyle;
import org.megatronj.model.optim.WeightDecaySchedule;
import org.megatronj.model.optim.WsdDecay;
import org.megatronj.model.optim.OptimizerParamScheduler;
import org.megatronj.parallel.train.BatchConfig;
import org.megatronj.parallel.train.CheckpointConfig;
import org.megatronj.parallel.train.CheckpointStrictness;
import org.megatronj.parallel.train.ExitConfig;
import org.megatronj.parallel.train.LoggingConfig;
import org.megatronj.parallel.train.OptimizerConfig;
import org.megatronj.parallel.train.OptimizerType;
import org.megatronj.parallel.train.ProgressLog;
import org.megatronj.parallel.train.ScheduleConfig;
import org.megatronj.parallel.train.TensorBoardLog;
import org.megatronj.parallel.train.Timers;
import org.megatronj.parallel.train.TrainingConfig;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** Megatron's training flags: batches, schedule, optimizer, logging, evaluation, checkpoints and exits. */
public final class TrainingOptions {
    // ---- batches
    @Option(names = "--micro-batch-size", paramLabel = "B", defaultValue = "1", description = "Samples per forward/backward (default ${DEFAULT-VALUE}).")
    int microBatchSize;

    @Option(names = "--global-batch-size", paramLabel = "B", description = "Samples per optimizer step; gradients of"
            + " global/(micro x data-parallel) micro-batches accumulate (default: micro x data-parallel).")
    int globalBatchSize;

    @Option(names = "--rampup-batch-size", arity = "3", paramLabel = "N", description = "<start> <increment> <samples>:"
            + " grow the global batch from start by increment over samples (needs --train-samples).")
    List<Long> rampupBatchSize;

    @Option(names = "--step-batch-size-schedule", paramLabel = "SCHEDULE", description = "\"THRESHOLD:BS ...\": the global"
            + " batch size is BS from THRESHOLD tokens on (K, M, B, T suffixes), e.g. \"0:16 2.4B:320 4.8B:624\"; instead of"
            + " --global-batch-size.")
    String stepBatchSizeSchedule;

    // ---- length and schedule
    @Option(names = "--train-iters", paramLabel = "N", description = "Iterations to train (or --train-samples).")
    long trainIters;

    @Option(names = "--train-samples", paramLabel = "N", description = "Samples to train (or --train-iters).")
    long trainSamples;

    @Option(names = "--lr", paramLabel = "LR", required = true, description = "Peak learning rate.")
    double lr;

    @Option(names = "--min-lr", paramLabel = "LR", defaultValue = "0", description = "Learning rate at the end of the decay (default ${DEFAULT-VALUE}).")
    double minLr;

    @Option(names = "--lr-warmup-init", paramLabel = "LR", defaultValue = "0.0", description = "Learning rate the warmup"
            + " starts from (default ${DEFAULT-VALUE}).")
    double lrWarmupInit;

    @Option(names = "--decoupled-lr", paramLabel = "LR", description = "Learning rate of the word embedding and the"
            + " output layer (their own param group; same warmup and decay).")
    Double decoupledLr;

    @Option(names = "--decoupled-min-lr", paramLabel = "LR", description = "Their minimum (default --min-lr).")
    Double decoupledMinLr;

    @Option(names = "--start-weight-decay", paramLabel = "WD", description = "Weight decay at the start of a"
            + " --weight-decay-incr-style linear or cosine run.")
    Double startWeightDecay;

    @Option(names = "--end-weight-decay", paramLabel = "WD", description = "Weight decay at its end.")
    Double endWeightDecay;

    @Option(names = "--weight-decay-incr-style", paramLabel = "STYLE", defaultValue = "constant", description = "constant"
            + " (--weight-decay throughout, the default), linear or cosine (from --start- to --end-weight-decay).")
    String weightDecayIncrStyle;

    @Option(names = "--lr-decay-style", paramLabel = "STYLE", defaultValue = "linear",
            description = "constant, linear, cosine, inverse-square-root or WSD (default ${DEFAULT-VALUE}).")
    String lrDecayStyle;

    @Option(names = "--lr-wsd-decay-style", paramLabel = "STYLE", defaultValue = "exponential", description = "WSD's fall"
            + " over its last iterations: exponential, linear, cosine or minus_sqrt (default ${DEFAULT-VALUE}).")
    String lrWsdDecayStyle;

    @Option(names = "--lr-wsd-decay-iters", paramLabel = "N", description = "Iterations of WSD's decay (the end of the"
            + " --lr-decay-iters span).")
    long lrWsdDecayIters;

    @Option(names = "--lr-wsd-decay-samples", paramLabel = "N", description = "Samples of WSD's decay (sample-based runs).")
    long lrWsdDecaySamples;

    @Option(names = "--lr-decay-iters", paramLabel = "N", description = "Iterations of the decay (default --train-iters).")
    long lrDecayIters;

    @Option(names = "--lr-decay-samples", paramLabel = "N", description = "Samples of the decay (default --train-samples).")
    long lrDecaySamples;

    @Option(names = "--lr-warmup-fraction", paramLabel = "F", description = "Warmup as a fraction of the decay length.")
    Double lrWarmupFraction;

    @Option(names = "--lr-warmup-iters", paramLabel = "N", defaultValue = "0", description = "Warmup iterations (default ${DEFAULT-VALUE}).")
    long lrWarmupIters;

    @Option(names = "--lr-warmup-samples", paramLabel = "N", defaultValue = "0", description = "Warmup samples (default ${DEFAULT-VALUE}).")
    long lrWarmupSamples;

    // ---- optimizer
    @Option(names = "--optimizer", paramLabel = "OPT", defaultValue = "adam", description = "adam (AdamW) or sgd (default ${DEFAULT-VALUE}).")
    String optimizer;

    @Option(names = "--weight-decay", paramLabel = "W", defaultValue = "0.01", description = "Decoupled weight decay (default ${DEFAULT-VALUE}).")
    double weightDecay;

    @Option(names = "--adam-beta1", paramLabel = "B", defaultValue = "0.9", description = "(default ${DEFAULT-VALUE})")
    double adamBeta1;

    @Option(names = "--adam-beta2", paramLabel = "B", defaultValue = "0.999", description = "(default ${DEFAULT-VALUE})")
    double adamBeta2;

    @Option(names = "--adam-eps", paramLabel = "E", defaultValue = "1e-8", description = "(default ${DEFAULT-VALUE})")
    double adamEps;

    @Option(names = "--sgd-momentum", paramLabel = "M", defaultValue = "0.9", description = "(default ${DEFAULT-VALUE})")
    double sgdMomentum;

    @Option(names = "--clip-grad", paramLabel = "NORM", defaultValue = "1.0", description = "Clip the global gradient L2 norm; 0 disables (default ${DEFAULT-VALUE}).")
    double clipGrad;

    // ---- kernels
    @Option(names = "--use-flash-attn", description = "Use FlashAttention (Megatron's flag, accepted for its scripts). Both"
            + " backends always run attention as FlashAttention (tiled online softmax, no materialised score matrix, the"
            + " log-sum-exp kept for backward), so the flag selects what already runs; it is recorded in the arguments.")
    boolean useFlashAttn;

    // ---- logging and evaluation
    @Option(names = "--log-interval", paramLabel = "N", defaultValue = "100", description = "Iterations per log line (default ${DEFAULT-VALUE}).")
    int logInterval;

    @Option(names = "--eval-interval", paramLabel = "N", defaultValue = "1000", description = "Iterations between validations (default ${DEFAULT-VALUE}).")
    int evalInterval;

    @Option(names = "--eval-iters", paramLabel = "N", defaultValue = "100", description = "Global batches per validation; 0 disables (default ${DEFAULT-VALUE}).")
    int evalIters;

    @Option(names = "--eval-micro-batch-size", paramLabel = "B", description = "Micro batch size of evaluations (default:"
            + " --micro-batch-size).")
    int evalMicroBatchSize;

    @Option(names = "--eval-global-batch-size", paramLabel = "B", description = "Global batch size of evaluations (default:"
            + " the training global batch size); a multiple of the eval micro batch size x data-parallel size.")
    int evalGlobalBatchSize;

    @Option(names = "--skip-train", description = "Skip training: evaluate the loaded model on the validation and test"
            + " splits, then exit.")
    boolean skipTrain;

    @Option(names = "--log-loss-to", paramLabel = "FILE", description = "Write each iteration's loss to a CSV (plot it with megatron plot-loss); a run that starts at iteration k keeps the file's rows up to k and continues it.")
    Path logLossTo;

    @Option(names = "--timing-log-level", paramLabel = "L", defaultValue = "0", description = "0, 1 or 2: Megatron timers printed with each log line (default ${DEFAULT-VALUE}).")
    int timingLogLevel;

    @Option(names = "--log-throughput", description = "Add Megatron's 'throughput per GPU (TFLOP/s/GPU)' (model FLOPs per"
            + " iteration over its time and the ranks) to each log line.")
    boolean logThroughput;

    @Option(names = "--log-params-norm", description = "Add the L2 norm of the (fp32) parameters after each step to the"
            + " log line (and to TensorBoard), as Megatron's 'params norm'.")
    boolean logParamsNorm;

    @Option(names = "--log-num-zeros-in-grad", description = "Add the number of zero gradient elements after each step's"
            + " clip to the log line (and to TensorBoard), as Megatron's 'num zeros'.")
    boolean logNumZerosInGrad;

    @Option(names = "--tensorboard-dir", paramLabel = "DIR", description = "Write Megatron's TensorBoard scalars (lm loss,"
            + " learning-rate, batch-size, loss-scale, grad-norm, each also vs samples; lm loss validation) to an event file"
            + " in DIR.")
    Path tensorboardDir;

    @Option(names = "--tensorboard-log-interval", paramLabel = "N", defaultValue = "1",
            description = "Iterations between TensorBoard scalars (default ${DEFAULT-VALUE}).")
    int tensorboardLogInterval;

    @Option(names = "--tensorboard-queue-size", paramLabel = "N", defaultValue = "1000", description = "Accepted: events"
            + " are flushed at each log line and evaluation here (default ${DEFAULT-VALUE}).")
    int tensorboardQueueSize;

    @Option(names = "--log-timers-to-tensorboard", description = "Also write iteration-time, throughput and the timers"
            + " (--timing-log-level) at each log line.")
    boolean logTimersToTensorboard;

    @Option(names = "--log-validation-ppl-to-tensorboard", description = "Also write the validation perplexity.")
    boolean logValidationPplToTensorboard;

    @Option(names = "--no-log-loss-scale-to-tensorboard", description = "Leave the loss scale out of TensorBoard.")
    boolean noLogLossScaleToTensorboard;

    @Option(names = "--log-world-size-to-tensorboard", description = "Also write the world size.")
    boolean logWorldSizeToTensorboard;

    @Option(names = "--timing-log-option", paramLabel = "OPT", defaultValue = "minmax", description = "What the timer"
            + " reports show of the ranks' times: max, minmax (default) or all.")
    String timingLogOption;

    @Option(names = "--log-memory-to-tensorboard", description = "Also write the tensor memory: mem-reserved-bytes,"
            + " mem-allocated-bytes, mem-max-allocated-bytes and mem-allocated-count (on the CPU, the rank's host tensors).")
    boolean logMemoryToTensorboard;

    @Option(names = "--log-memory-interval", paramLabel = "N", description = "Print the memory report every N iterations"
            + " (a multiple of --log-interval), besides the first log lines.")
    Integer logMemoryInterval;

    @Option(names = "--profile", arity = "0..1", fallbackValue = "", paramLabel = "FILE.jfr", description = "Record a Java"
            + " Flight Recording with the training events: to FILE.jfr over the whole run, or without a file (Megatron's"
            + " switch) to megatron-profile.jfr in --tensorboard-dir (else here) over --profile-step-start/-end.")
    String profile;

    @Option(names = "--profile-step-start", paramLabel = "N", description = "With --profile, start recording after"
            + " iteration N (Megatron's default 10).")
    Integer profileStepStart;

    @Option(names = "--profile-step-end", paramLabel = "N", description = "With --profile, stop recording after"
            + " iteration N (Megatron's default 12).")
    Integer profileStepEnd;

    @Option(names = "--use-pytorch-profiler", description = "With --profile: accepted; the recording here is a Java Flight"
            + " Recording either way (Megatron picks between nsys and PyTorch's profiler).")
    boolean usePytorchProfiler;

    @Option(names = "--profile-ranks", arity = "1..*", paramLabel = "RANK", description = "Accepted: ranks are threads"
            + " of one process here, and the recording holds every rank's events (each on its thread rank-N).")
    java.util.List<Integer> profileRanks;

    // ---- checkpoints
    @Option(names = "--save", paramLabel = "DIR", description = "Save checkpoints here.")
    Path save;

    @Option(names = "--save-interval", paramLabel = "N", defaultValue = "0", description = "Iterations between checkpoints; 0: only at the end and on exits.")
    int saveInterval;

    @Option(names = "--load", paramLabel = "DIR", description = "Resume from the latest checkpoint here.")
    Path load;

    @Option(names = "--finetune", description = "Load the weights only and start at iteration 0.")
    boolean finetune;

    @Option(names = "--no-load-optim", description = "Do not load the optimizer and scheduler state.")
    boolean noLoadOptim;

    @Option(names = "--no-load-rng", description = "Use --seed for dropout instead of the checkpoint's RNG stream.")
    boolean noLoadRng;

    @Option(names = "--ckpt-step", paramLabel = "N", defaultValue = "-1", description = "Load iteration N (its"
            + " iter_NNNNNNN folder under --load) instead of the latest.")
    long ckptStep;

    @Option(names = "--use-checkpoint-args", description = "Take the model's shape from the checkpoint under --load: sizes"
            + " not given here and the architecture's switches (and the tokenizer, when no tokenizer flags are given).")
    boolean useCheckpointArgs;

    @Option(names = "--no-save-optim", description = "Leave the optimizer and scheduler state out of saved checkpoints"
            + " (a resume then needs --no-load-optim or --finetune).")
    boolean noSaveOptim;

    @Option(names = "--no-save-rng", description = "Leave the dropout RNG stream out of saved checkpoints (a resume then"
            + " needs --no-load-rng or --finetune).")
    boolean noSaveRng;

    @Option(names = "--exit-on-missing-checkpoint", description = "Fail when --load holds no checkpoint, instead of"
            + " training from scratch.")
    boolean exitOnMissingCheckpoint;

    @Option(names = "--ckpt-format", paramLabel = "FORMAT", description = "Megatron-LM's on-disk formats (torch, torch_dist,"
            + " ...) are refused by name: training saves and loads Megatron-J's own (Megatron's folder layout with safetensors"
            + " tensors and a metadata.json); leave the flag out and convert with 'checkpoint import-torch'/'export-torch'.")
    String ckptFormat;

    @Option(names = "--log-progress", description = "Append Megatron's progress log to <save>/progress.txt: each job's"
            + " start, and at each save the job's and the cumulative throughput, the model FLOPs and the tokens so far.")
    boolean logProgress;

    @Option(names = "--check-weight-hash-across-dp-replicas-interval", paramLabel = "N", defaultValue = "0",
            description = "Before training and every N iterations, check that the data-parallel replicas' weights are equal"
                    + " (a SHA-1 of each parameter, compared over the replicas); a difference stops the run naming them.")
    int checkWeightHashInterval;

    @Option(names = "--save-retain-interval", paramLabel = "N", defaultValue = "0", description = "Keep only the"
            + " checkpoints of iterations that are multiples of N, besides the latest: each save deletes the checkpoint it"
            + " replaces otherwise (0, the default: keep all).")
    int saveRetainInterval;

    @Option(names = "--dist-ckpt-strictness", paramLabel = "MODE", defaultValue = "assume_ok_unexpected", description = "A"
            + " load's handling of tensors the checkpoint lacks or has besides the model's: assume_ok_unexpected (default:"
            + " a lacking one fails, extra ones are not read), log_unexpected, log_all, raise_unexpected, raise_all,"
            + " return_unexpected, return_all (logged here), ignore_all. A wrong shape always fails.")
    String distCkptStrictness;

    @Option(names = "--async-save", description = "Write checkpoints in the background while training goes on: a save"
            + " copies the weights and optimizer state to host memory, a writer thread writes them, and the next iterations"
            + " publish the checkpoint (rename, tracker) once it is complete; the end of training waits for it.")
    boolean asyncSave;

    @Option(names = "--moe-per-layer-logging", description = "With --tensorboard-dir, each layer's MoE losses too"
            + " (moe/<name>_layer_<i>, every layer, dense ones 0), as Megatron's metrics tracker writes them.")
    boolean moePerLayerLogging;

    @Option(names = "--use-persistent-ckpt-worker", description = "The background writer --async-save needs, as in Megatron"
            + " (a save's writer thread here); without it Megatron disables --async-save with a warning, and so does"
            + " Megatron-J.")
    boolean usePersistentCkptWorker;

    @Option(names = "--no-use-tokenizer-model-from-checkpoint-args", description = "With --use-checkpoint-args, do not take"
            + " the tokenizer from the checkpoint: the tokenizer flags must be given.")
    boolean noUseTokenizerModelFromCheckpointArgs;

    @Option(names = {"--override-opt_param-scheduler", "--override-opt-param-scheduler"}, description = "On --load, keep this run's learning-rate schedule"
            + " (--lr, --min-lr, warmup, decay) where the checkpoint's differs (otherwise an error, as in Megatron).")
    boolean overrideOptParamScheduler;

    @Option(names = {"--use-checkpoint-opt_param-scheduler", "--use-checkpoint-opt-param-scheduler"}, description = "On --load, take the checkpoint's learning-rate"
            + " schedule instead of this run's flags.")
    boolean useCheckpointOptParamScheduler;

    /** Megatron's rules: constant keeps --weight-decay (and takes no start or end), linear and cosine need both. */
    private ScheduleConfig.WeightDecayIncrement weightDecayIncrement() {
        if (weightDecayIncrStyle.equals("constant")) {
            if (startWeightDecay != null || endWeightDecay != null) {
                throw new IllegalArgumentException("--start-weight-decay and --end-weight-decay need --weight-decay-incr-style"
                        + " linear or cosine (constant uses --weight-decay)");
            }
            return null;
        }
        WeightDecaySchedule.Style style = WeightDecaySchedule.Style.parse(weightDecayIncrStyle);
        if (startWeightDecay == null || endWeightDecay == null) {
            throw new IllegalArgumentException("--weight-decay-incr-style " + weightDecayIncrStyle + " needs"
                    + " --start-weight-decay and --end-weight-decay");
        }
        return new ScheduleConfig.WeightDecayIncrement(startWeightDecay, endWeightDecay, style);
    }

    /** With {@code --use-checkpoint-args}, the folder whose checkpoint provides them ({@code --load}, or its {@code --ckpt-step} iteration); else null. */
    Path checkpointArgsDir() {
        if (!useCheckpointArgs) {
            return null;
        }
        if (load == null) {
            throw new IllegalArgumentException("--use-checkpoint-args needs --load DIR");
        }
        return ckptStep >= 0 ? org.megatronj.io.checkpoint.CheckpointLayout.iterationDir(load, ckptStep) : load;
    }

    // ---- exits
    @Option(names = "--exit-interval", paramLabel = "N", defaultValue = "0", description = "Save and exit after every N-th iteration.")
    long exitInterval;

    @Option(names = "--exit-duration-in-mins", paramLabel = "M", defaultValue = "0", description = "Save and exit after M minutes of training.")
    double exitDurationInMins;

    @Option(names = "--exit-signal-handler", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "On SIGTERM save a checkpoint and exit cleanly (default on; --no-exit-signal-handler: die at once).")
    boolean exitSignalHandler;

    @Option(names = "--calculate-per-token-loss", description = "Train on the global batch's mean loss over its counted"
            + " tokens instead of the mean of its micro-batches' means (Megatron's per-token loss normalisation).")
    boolean calculatePerTokenLoss;

    @Option(names = "--no-check-for-nan-in-loss-and-grad", description = "Go on when the training loss is NaN or Inf"
            + " instead of stopping the run with an error (Megatron's default); an iteration whose gradients are not finite"
            + " is then skipped and counted in 'number of nan iterations'.")
    boolean noCheckForNanInLossAndGrad;

    /**
     * The training config; throws with the offending flags named when values contradict each other.
     *
     * @param dataParallelSize the ranks that share each global batch, for Megatron's default
     *                         {@code --global-batch-size} (micro x DP). The batch config itself counts
     *                         the micro-batches of a whole global batch, which every rank reads before
     *                         taking its share; {@link ParallelPretraining} checks the sizes at this DP
     * @param seqLength        {@code --seq-length}: {@code --step-batch-size-schedule}'s thresholds are tokens
     * @param worldSize        the run's ranks, for {@code --log-world-size-to-tensorboard}
     */
    public TrainingConfig toConfig(long seed, int dataParallelSize, int seqLength, int worldSize) {
        int global = globalBatchSize > 0 ? globalBatchSize : microBatchSize * dataParallelSize;
        BatchConfig.BatchSchedule batchSchedule = null;
        if (rampupBatchSize != null) {
            batchSchedule = new BatchConfig.Rampup(Math.toIntExact(rampupBatchSize.get(0)),
                    Math.toIntExact(rampupBatchSize.get(1)), rampupBatchSize.get(2));
        }
        if (stepBatchSizeSchedule != null) {
            if (globalBatchSize > 0) {   // Megatron's error
                throw new IllegalArgumentException("Cannot specify both --step-batch-size-schedule and --global-batch-size");
            }
            if (batchSchedule != null) {
                throw new IllegalArgumentException("--step-batch-size-schedule and --rampup-batch-size contradict each other;"
                        + " give one (Megatron ignores --rampup-batch-size since it has --step-batch-size-schedule)");
            }
            batchSchedule = BatchConfig.StepSchedule.parse(stepBatchSizeSchedule, seqLength);
        }
        BatchConfig batch = new BatchConfig(microBatchSize, global, 1, batchSchedule);
        ScheduleConfig schedule = new ScheduleConfig(trainIters, trainSamples, lr, minLr, DecayStyle.parse(lrDecayStyle),
                lrDecayIters, lrDecaySamples, lrWarmupFraction == null ? Double.NaN : lrWarmupFraction,
                lrWarmupIters, lrWarmupSamples, WsdDecay.Style.parse(lrWsdDecayStyle), lrWsdDecayIters, lrWsdDecaySamples,
                weightDecayIncrement(), decoupledLr == null ? null
                        : new ScheduleConfig.DecoupledLr(decoupledLr, decoupledMinLr == null ? Double.NaN : decoupledMinLr),
                lrWarmupInit);
        if (decoupledLr == null && decoupledMinLr != null) {
            throw new IllegalArgumentException("--decoupled-min-lr needs --decoupled-lr");
        }
        OptimizerConfig opt = new OptimizerConfig(OptimizerType.parse(optimizer), weightDecay, adamBeta1, adamBeta2, adamEps,
                sgdMomentum, clipGrad);
        TensorBoardLog.Config tensorboard = tensorboardDir == null ? null : new TensorBoardLog.Config(tensorboardDir,
                tensorboardLogInterval, logTimersToTensorboard, logValidationPplToTensorboard, !noLogLossScaleToTensorboard,
                logWorldSizeToTensorboard, worldSize, logMemoryToTensorboard, moePerLayerLogging);
        if (checkWeightHashInterval < 0) {
            throw new IllegalArgumentException("--check-weight-hash-across-dp-replicas-interval must be >= 0, got "
                    + checkWeightHashInterval);
        }
        if (saveRetainInterval < 0) {
            throw new IllegalArgumentException("--save-retain-interval must be >= 0, got " + saveRetainInterval);
        }
        if (logMemoryInterval != null && (logMemoryInterval < 1 || logMemoryInterval % logInterval != 0)) {
            throw new IllegalArgumentException("--log-memory-interval " + logMemoryInterval + " must be a positive multiple of"
                    + " --log-interval " + logInterval);
        }
        LoggingConfig logging = new LoggingConfig(logInterval, evalInterval, evalIters, logLossTo, timingLogLevel, logThroughput,
                logParamsNorm, logNumZerosInGrad, tensorboard, evalMicroBatchSize, evalGlobalBatchSize, skipTrain,
                Timers.LogOption.parse(timingLogOption));
        int evalMicro = logging.evalMicroBatchSize(batch), evalGlobal = logging.evalGlobalBatchSize(batch);
        boolean evalSizesGiven = evalMicroBatchSize != 0 || evalGlobalBatchSize != 0;   // else the training sizes' check speaks
        if (evalSizesGiven && (evalMicro < 1 || evalGlobal < 1 || evalGlobal % (evalMicro * dataParallelSize) != 0)) {
            throw new IllegalArgumentException("eval_global_batch_size (" + evalGlobal + ") must be divisible by"
                    + " eval_micro_batch_size (" + evalMicro + ") * data_parallel_size (" + dataParallelSize + ")");
        }
        if (ckptFormat != null) {
            throw new IllegalArgumentException("--ckpt-format " + ckptFormat + ": Megatron-J's training saves and loads its own"
                    + " checkpoint format (Megatron's folder layout with safetensors tensors and a metadata.json), not Megatron-LM's;"
                    + " leave the flag out. 'megatron checkpoint import-torch' and 'export-torch' convert Megatron-LM's checkpoints"
                    + " (import-torch reads --ckpt-format torch and torch_dist, export-torch writes torch), 'import-hf' and 'export-hf'"
                    + " Hugging Face ones");
        }
        if (overrideOptParamScheduler && useCheckpointOptParamScheduler) {
            throw new IllegalArgumentException("--override-opt_param-scheduler and --use-checkpoint-opt_param-scheduler"
                    + " contradict each other; give at most one");
        }
        CheckpointConfig ckpt = new CheckpointConfig(save, saveInterval, load, finetune, noLoadOptim, noLoadRng,
                overrideOptParamScheduler ? OptimizerParamScheduler.OnLoad.OVERRIDE
                        : useCheckpointOptParamScheduler ? OptimizerParamScheduler.OnLoad.USE_CHECKPOINT
                        : OptimizerParamScheduler.OnLoad.CHECK, exitOnMissingCheckpoint, ckptStep, noSaveOptim, noSaveRng,
                asyncSave && usePersistentCkptWorker);
        ExitConfig exit = new ExitConfig(exitInterval, exitDurationInMins, exitSignalHandler);
        return new TrainingConfig(batch, schedule, opt, logging, ckpt, exit, seed, !noCheckForNanInLossAndGrad,
                calculatePerTokenLoss);
    }

    /**
     * Megatron's warning when {@code --async-save} comes without {@code --use-persistent-ckpt-worker} (it then saves in
     * place, as Megatron's {@code validate_args} turns async saving off for its distributed checkpoints), else null.
     */
    String asyncSaveWarning() {
        return asyncSave && !usePersistentCkptWorker
                ? "WARNING: --async-save is not supported without --use-persistent-ckpt-worker. Disabling --async-save." : null;
    }

    /** Whether {@code --use-checkpoint-args} may take the tokenizer from the checkpoint (Megatron's default). */
    boolean tokenizerFromCheckpointArgs() {
        return !noUseTokenizerModelFromCheckpointArgs;
    }

    /**
     * {@code --log-progress}'s log, which says "Starting job" now; null without the flag or without {@code --save} (Megatron
     * writes nothing then either).
     */
    ProgressLog startProgressLog(int worldSize, int seqLength) {
        if (!logProgress || save == null) {
            return null;
        }
        ProgressLog log = new ProgressLog(save, worldSize, seqLength);
        log.startingJob();
        return log;
    }

    /** {@code --dist-ckpt-strictness}, checked. */
    CheckpointStrictness checkpointStrictness() {
        return CheckpointStrictness.parse(distCkptStrictness);
    }

    /** {@code --log-memory-interval}, or 0 (checked by {@link #toConfig}). */
    int logMemoryInterval() {
        return logMemoryInterval == null ? 0 : logMemoryInterval;
    }

    /**
     * What {@code --profile} records: into {@code file}, over the whole run, or over a window of iterations (after
     * {@code stepStart} up to {@code stepEnd}).
     */
    record Profile(Path file, boolean window, int stepStart, int stepEnd) {
    }

    /**
     * {@code --profile}, or null; its folder must exist (checked here, before the run, rather than when the recording
     * starts). Without a file it is Megatron's switch: the iterations after {@code --profile-step-start} (10) to
     * {@code --profile-step-end} (12); with one, the whole run unless the step flags are given.
     */
    Profile profile() {
        if (profile == null) {
            if (profileStepStart != null || profileStepEnd != null || usePytorchProfiler) {
                throw new IllegalArgumentException("--profile-step-start, --profile-step-end and --use-pytorch-profiler need"
                        + " --profile");
            }
            return null;
        }
        Path file = !profile.isEmpty() ? Path.of(profile)
                : (tensorboardDir != null ? tensorboardDir : Path.of("")).resolve("megatron-profile.jfr");
        Path folder = file.toAbsolutePath().getParent();
        if (folder != null && !Files.isDirectory(folder) && !(profile.isEmpty() && tensorboardDir != null)) {
            throw new IllegalArgumentException("--profile " + profile + ": folder " + folder + " does not exist");
        }
        boolean window = profile.isEmpty() || profileStepStart != null || profileStepEnd != null;
        int start = profileStepStart == null ? 10 : profileStepStart;
        int end = profileStepEnd == null ? 12 : profileStepEnd;
        if (window && (start < 0 || end <= start)) {
            throw new IllegalArgumentException("--profile-step-start " + start + " and --profile-step-end " + end
                    + ": expected 0 <= start < end");
        }
        return new Profile(file, window, start, end);
    }
}
