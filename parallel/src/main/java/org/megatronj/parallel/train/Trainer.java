package org.megatronj.parallel.train;

import org.megatronj.io.checkpoint.CheckpointLayout;
import org.megatronj.model.LossResult;
import org.megatronj.model.MicroBatch;
import org.megatronj.model.optim.LossScaler;
import org.megatronj.model.optim.OptimizerParamScheduler;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Locale;
import java.util.function.Consumer;
import java.util.function.IntToDoubleFunction;

/**
 * Megatron's pretraining loop ({@code training.py: train}) for one rank: per iteration, the
 * micro-batches of the (possibly ramping) global batch run forward and backward with their
 * gradients accumulating, the global gradient norm is clipped, the optimizer steps at the
 * scheduler's learning rate; then logging, evaluation, checkpoints and exits at their intervals.
 *
 * <p>Data parallelism slots in at two points: each rank reads its own slice of the global batch
 * (the sample offset), and the gradients are reduced before the clip. Both are identities here.
 *
 * <p>Mixed precision, as Megatron's {@code train_step} and {@code MixedPrecisionOptimizer.step}:
 * with a loss scaler ({@link TrainingOptimizer#lossScaler()}) the loss is multiplied by the scale
 * before backward, the main gradients are unscaled and checked for inf/NaN, the scaler is told
 * the outcome, and an iteration with inf/NaN skips its step: no clip, no update, and the learning
 * rate scheduler does not advance (the consumed samples and the iteration count do). The log
 * shows the scale after the update and counts skipped iterations, and among them those whose
 * loss was inf/NaN.
 *
 * <p>Every randomness is a function of the counters (data order of the consumed samples, dropout
 * of the RNG stream, iteration and micro-batch), so a run resumed from a checkpoint repeats the
 * losses of an uninterrupted run bit for bit.
 */
public final class Trainer {
    /**
     * Timer names in the order Megatron logs them. Levels as Megatron's: forward-backward, all-grads-sync
     * (parallel runs), optimizer and the optimizer's parts 1; batch-generator, the model's forward-compute and backward-compute and the
     * pipeline's sends and receives 2; evaluate and save-checkpoint 0.
     */
    private static final List<String> TIMERS_TO_LOG = List.of("forward-backward", "all-grads-sync", "optimizer-unscale-and-check-inf",
            "optimizer-clip-main-grad", "optimizer-count-zeros", "optimizer-inner-step", "optimizer", "batch-generator", "forward-compute",
            "backward-compute", "forward-recv", "forward-send", "backward-recv", "backward-send");

    private final TrainingConfig config;
    private final TrainableModel model;
    private final TrainingOptimizer optimizer;
    private final OptimizerParamScheduler scheduler;
    private final SampleSource train;
    private final SampleSource valid;
    private final SampleSource test;
    private final TrainingCheckpoints checkpointer;
    private final ExitSignal exitSignal;
    private final Consumer<String> log;
    private final Timers timers;
    private IntervalStats interval = new IntervalStats();
    private final long trainIters;
    private TensorBoardLog tensorboard;           // --tensorboard-dir, open while train() runs
    private IntToDoubleFunction modelFlops;       // the model FLOPs of an iteration of a global batch size, or null
    private int ranks = 1;
    private MemoryReport memoryReport;            // Megatron's memory report at log lines, or null
    private ProgressLog progress;                 // --log-progress on rank 0, or null
    private StepProfiler profiler;                // --profile's window, or null
    private int weightHashInterval;               // --check-weight-hash-across-dp-replicas-interval, or 0
    private TrainingCheckpoints.PendingSave pendingSave;   // --async-save: the save being written, or null
    private long pendingIteration;
    private TrainingEvents.CheckpointSave pendingEvent;
    private long startIteration;                  // where train() began: the loaded iteration, or 0

    private ResumePoint position;
    private long lastSavedIteration = -1;

    /**
     * @param valid, test  null when there is no such split
     * @param checkpointer null when nothing is saved or loaded
     * @param exitSignal   the SIGTERM flag, or null
     * @param log          receives every log line (the CLI prints them to stdout)
     */
    public Trainer(TrainingConfig config, TrainableModel model, TrainingOptimizer optimizer, SampleSource train,
                   SampleSource valid, SampleSource test, TrainingCheckpoints checkpointer, ExitSignal exitSignal,
                   Consumer<String> log) {
        this.config = config;
        this.model = model;
        this.optimizer = optimizer;
        this.scheduler = config.schedule().scheduler(config.batch(), config.checkpoint().schedulerOnLoad());
        this.train = train;
        this.valid = valid;
        this.test = test;
        this.checkpointer = checkpointer;
        this.exitSignal = exitSignal;
        this.log = log;
        this.timers = new Timers(config.logging().timingLogLevel());
        model.setPhaseTimers(timers::phases);
        this.trainIters = config.totalIterations();
        this.position = ResumePoint.fresh(config.seed());
        if ((config.checkpoint().save() != null || config.checkpoint().load() != null) && checkpointer == null) {
            throw new IllegalArgumentException("--save/--load given but no checkpointer");
        }
    }

    public OptimizerParamScheduler scheduler() {
        return scheduler;
    }

    /** The counters now (after {@link #loadCheckpoint()} or {@link #train()}). */
    public ResumePoint position() {
        return position;
    }

    /** Applies {@code --load} if given; a missing tracker under {@code --load} starts from scratch, as Megatron does. */
    public void loadCheckpoint() {
        CheckpointConfig c = config.checkpoint();
        if (c.load() == null) {
            return;
        }
        if (!Files.exists(CheckpointLayout.trackerFile(c.load()))
                && !Files.isDirectory(c.load().resolve(TrainingCheckpointer.RANK_DIR))) {
            log.accept("WARNING: could not find the metadata file " + CheckpointLayout.trackerFile(c.load())
                    + "\n    will not load any checkpoints and will start from random");
            if (c.exitOnMissingCheckpoint()) {   // Megatron's message; it exits non-zero
                throw new IllegalStateException(">> '--exit-on-missing-checkpoint' is set but no checkpoint was found under"
                        + " load directory '" + c.load() + "' (missing metadata/tracker file '"
                        + CheckpointLayout.trackerFile(c.load()) + "'). Exiting with a non-zero status. <<");
            }
            return;
        }
        Path dir = c.loadDir();
        if (!Files.isDirectory(dir)) {
            throw new IllegalStateException("--ckpt-step " + c.ckptStep() + ": " + dir + " does not exist (" + c.load()
                    + " holds " + CheckpointLayout.iterationDirNames(c.load()) + ")");
        }
        log.accept(" loading checkpoint from " + c.load());
        position = checkpointer.load(dir, model, optimizer, scheduler, c.finetune(), c.noLoadOptim(), c.noLoadRng(),
                config.seed());
        model.refreshComputeWeights();
        if (c.load().equals(c.save())) {
            lastSavedIteration = position.iteration();   // a finished run restarted does not rewrite its last checkpoint
        }
        log.accept(String.format(Locale.ROOT, "  successfully loaded checkpoint from %s %s at iteration %d",
                c.load(), checkpointer.rankLabel(), position.iteration()));
    }

    /** Runs until the iteration budget is spent or an exit condition holds. */
    public TrainingResult train() {
        long startNanos = System.nanoTime();
        List<Double> losses = new ArrayList<>();
        interval = new IntervalStats();
        double lastValid = Double.NaN;
        long iteration = position.iteration();
        startIteration = iteration;
        if (progress != null) {
            progress.trainingStarts(position.floatingPointOperationsSoFar());
        }
        if (weightHashInterval > 0) {
            checkWeightHashes();   // as Megatron, once before training too
        }
        long consumed = position.consumedTrainSamples();
        boolean skip = config.logging().skipTrain();   // Megatron writes nothing to TensorBoard then
        tensorboard = config.logging().tensorboard() == null || skip ? null : new TensorBoardLog(config.logging().tensorboard());
        log.accept(skip ? "skipping training (--skip-train is on) ..." : "training ...");
        LossCsvWriter csv = config.logging().logLossTo() == null ? null : new LossCsvWriter(config.logging().logLossTo(),
                position.iteration());
        try {
            while (!skip && iteration < trainIters) {
                finalizeAsyncSave(false);
                if (profiler != null) {
                    profiler.beforeIteration(iteration);
                }
                TrainingEvents.TrainStep event = new TrainingEvents.TrainStep();
                event.begin();
                int globalBatch = config.batch().globalBatchSizeAt(consumed);
                StepOutcome step = trainStep(iteration + 1, consumed, globalBatch);
                iteration++;
                consumed += globalBatch;
                position = new ResumePoint(iteration, consumed, position.consumedValidSamples(), position.rngStream(),
                        position.floatingPointOperationsSoFar() + (modelFlops == null ? 0 : modelFlops.applyAsDouble(globalBatch)));
                double lr = scheduler.currentLr();
                losses.add(step.loss);
                double paramsNorm = paramsNorm();
                interval.add(step, paramsNorm);
                if (csv != null) {
                    csv.train(iteration, consumed, step.loss, lr, step.gradNorm);
                }
                if (tensorboard != null) {
                    LossScaler scaler = optimizer.lossScaler();
                    tensorboard.iteration(iteration, consumed, lr, globalBatch, step.loss, scaler == null ? 1.0 : scaler.scale(),
                            step.gradNorm, step.numZeros, paramsNorm, memoryReport == null ? null : memoryReport.stats());
                    tensorboard.moeLosses(iteration, step.moeLosses());
                }
                event.iteration = iteration;
                event.loss = step.loss;
                event.learningRate = lr;
                event.gradNorm = step.gradNorm;
                event.globalBatchSize = globalBatch;
                event.tokens = step.tokens;
                event.dataWait = step.dataWaitNanos;
                event.commit();
                if (profiler != null) {
                    profiler.afterIteration(iteration);
                }
                if (weightHashInterval > 0 && iteration % weightHashInterval == 0) {
                    checkWeightHashes();
                    log.accept(">>> Weight hashes match after " + iteration + " iterations...");
                }

                if (iteration % config.logging().logInterval() == 0) {
                    logInterval(interval, iteration, consumed, lr, globalBatch);
                    interval = new IntervalStats();
                }
                if (config.logging().evaluates() && valid != null && iteration % config.logging().evalInterval() == 0) {
                    lastValid = evaluate(valid, "valid", "iteration " + iteration, iteration, csv);
                }
                TrainingResult.ExitReason exit = checkpointAndCheckExit(iteration, startNanos);
                if (exit != null) {
                    finalizeAsyncSave(true);
                    return new TrainingResult(iteration, consumed, losses, lastValid, exit);
                }
            }
            if (!skip && config.checkpoint().save() != null && iteration > 0 && lastSavedIteration != iteration) {
                save(iteration);
            }
            finalizeAsyncSave(true);
            if (config.logging().evalIters() > 0 && valid != null) {
                lastValid = evaluate(valid, "valid", "iteration " + iteration + " on validation set", iteration, csv);
            }
            if (config.logging().evalIters() > 0 && test != null) {
                evaluate(test, "test", "iteration " + iteration + " on test set", iteration, csv);
            }
            return new TrainingResult(iteration, consumed, losses, lastValid, TrainingResult.ExitReason.COMPLETED);
        } finally {
            if (csv != null) {
                csv.close();
            }
            if (tensorboard != null) {
                tensorboard.close();
                tensorboard = null;
            }
        }
    }

    /**
     * The gradient scale of each micro-batch of a global batch: Megatron's {@code lossScale / micro-batches}, or with
     * {@code --calculate-per-token-loss} {@code lossScale * tokens_j / tokens}, so that the gradients are those of the
     * global batch's token mean (Megatron's sum of losses over the counted tokens, divided by their number over the
     * data-parallel ranks in {@code finalize_model_grads}).
     */
    private float[] gradScales(List<MicroBatch> batches, float lossScale) {
        float[] scales = new float[batches.size()];
        if (!config.calculatePerTokenLoss()) {
            java.util.Arrays.fill(scales, lossScale / batches.size());
            return scales;
        }
        long[] counted = new long[batches.size()];
        long total = 0;
        for (int j = 0; j < counted.length; j++) {
            for (float m : batches.get(j).lossMask()) {
                counted[j] += m != 0f ? 1 : 0;
            }
            total += counted[j];
        }
        for (int j = 0; j < scales.length; j++) {
            scales[j] = (float) ((double) lossScale * counted[j] / Math.max(total, 1));
        }
        return scales;
    }

    /**
     * The MoE auxiliary losses' gradient scale with {@code --calculate-per-token-loss}: Megatron multiplies each
     * micro-batch's auxiliary loss by its tokens (all of them, masked or not) and, like every gradient, divides it by
     * the global batch's counted tokens in {@code finalize_model_grads}: {@code lossScale x tokens of a micro-batch /
     * counted tokens} (every micro-batch has the same shape). Without masked tokens this is {@code lossScale /
     * micro-batches}, the scale without per-token loss.
     */
    static float perTokenAuxLossScale(List<MicroBatch> batches, float lossScale) {
        long counted = 0;
        for (MicroBatch b : batches) {
            for (float m : b.lossMask()) {
                counted += m != 0f ? 1 : 0;
            }
        }
        long microBatchTokens = (long) batches.getFirst().batchSize() * batches.getFirst().seqLength();
        return (float) ((double) lossScale * microBatchTokens / Math.max(counted, 1));
    }

    /** The losses and norms of one iteration. */
    record StepOutcome(double loss, long tokens, double gradNorm, double numZeros, boolean skipped, long dataWaitNanos,
                       org.megatronj.model.MoeMetrics.Report moeLosses) {
    }

    private StepOutcome trainStep(long iteration, long consumed, int globalBatch) {
        int micro = config.batch().microBatchSize();
        int numMicro = config.batch().numMicroBatchesAt(consumed);
        LossScaler scaler = optimizer.lossScaler();
        float lossScale = scaler == null ? 1f : (float) scaler.scale();
        Timers.Timer fb = timers.timer("forward-backward", 1);
        Timers.Timer batchTimer = timers.timer("batch-generator", 2);
        model.zeroGrad();
        model.setMoeAuxLossScale(lossScale / numMicro);   // Megatron's MoEAuxLossAutoScaler.set_loss_scale
        double lossSum = 0;
        long tokens = 0;
        long dataWait = 0;
        fb.start();
        // a pipeline schedule / data-parallel ranks run them together, and per-token loss weighs each by the tokens of all
        boolean together = model.schedulesMicroBatches() || config.calculatePerTokenLoss();
        List<MicroBatch> scheduled = together ? new ArrayList<>() : null;
        for (int j = 0; j < numMicro; j++) {
            TrainingEvents.DataWait wait = new TrainingEvents.DataWait();
            wait.begin();
            batchTimer.start();
            long t0 = System.nanoTime();
            MicroBatch batch = train.microBatch(consumed + (long) j * micro, micro);
            dataWait += System.nanoTime() - t0;
            batchTimer.stop();
            wait.iteration = iteration;
            wait.samples = micro;
            wait.commit();
            if (scheduled != null) {
                scheduled.add(batch);   // run below, once all are read
                continue;
            }

            TrainingEvents.ForwardBackward fbEvent = new TrainingEvents.ForwardBackward();
            fbEvent.begin();
            // Megatron divides each micro-batch's mean loss by the number of micro-batches, then applies the loss scale.
            LossResult r = model.forwardBackward(batch, lossScale / numMicro, rngOffset(iteration, j));
            fbEvent.iteration = iteration;
            fbEvent.microBatch = j;
            fbEvent.tokens = r.tokens();
            fbEvent.commit();
            lossSum += r.lossSum();
            tokens += r.tokens();
        }
        if (scheduled != null) {
            long[] offsets = new long[numMicro];
            for (int j = 0; j < numMicro; j++) {
                offsets[j] = rngOffset(iteration, j);
            }
            if (config.calculatePerTokenLoss()) {
                model.setMoeAuxLossScale(perTokenAuxLossScale(scheduled, lossScale));
            }
            TrainingEvents.ForwardBackward fbEvent = new TrainingEvents.ForwardBackward();
            fbEvent.begin();
            LossResult r = model.forwardBackwardAll(scheduled, gradScales(scheduled, lossScale), offsets);
            fbEvent.iteration = iteration;
            fbEvent.microBatch = -1;   // all of the iteration's micro-batches in one schedule
            fbEvent.tokens = r.tokens();
            fbEvent.commit();
            lossSum = r.lossSum();
            tokens = r.tokens();
        }
        fb.stop();
        model.updateMoeExpertBias();
        org.megatronj.model.MoeMetrics.Report moeLosses = model.takeMoeMetrics(numMicro);   // a collective in a parallel run
        double loss = tokens == 0 ? Double.NaN : lossSum / tokens;
        if (config.checkForNanInLoss() && !Double.isFinite(loss)) {
            // Megatron's loss check (fatal by default): a diverged run would otherwise skip every step from here on
            throw new IllegalStateException(String.format(Locale.ROOT, "iteration %d: found %s in the training loss"
                    + " (Megatron's 'found NaN/Inf in local forward loss calculation'); the run stops here, before the"
                    + " optimizer step. Lower --lr or resume from an earlier checkpoint; --no-check-for-nan-in-loss-and-grad"
                    + " skips such iterations instead", iteration, Double.isNaN(loss) ? "NaN" : "Inf"));
        }

        Timers.Timer opt = timers.timer("optimizer", 1);
        TrainingEvents.OptimizerStep optEvent = new TrainingEvents.OptimizerStep();
        optEvent.begin();
        opt.start();
        boolean foundInfOrNan = false;
        if (scaler != null) {
            Timers.Timer unscale = timers.timer("optimizer-unscale-and-check-inf", 1);
            unscale.start();
            foundInfOrNan = optimizer.unscaleAndCheckForInfOrNan(scaler.inverseScale());
            unscale.stop();
            scaler.update(foundInfOrNan);
        }
        double norm = Double.NaN;   // Megatron logs no grad norm, nor zeros, for a skipped step
        double numZeros = Double.NaN;
        if (!foundInfOrNan) {
            Timers.Timer clip = timers.timer("optimizer-clip-main-grad", 1);
            clip.start();
            norm = optimizer.clipGradNorm(config.optimizer().clipGrad());
            clip.stop();
            if (config.logging().logNumZerosInGrad()) {   // a collective: every rank counts at every step
                Timers.Timer count = timers.timer("optimizer-count-zeros", 1);
                count.start();
                numZeros = optimizer.zerosInGradients();
                count.stop();
            }
        }
        boolean skipped = foundInfOrNan || !Double.isFinite(norm);
        if (!skipped) {
            Timers.Timer inner = timers.timer("optimizer-inner-step", 1);
            inner.start();
            if (scheduler.weightDecaySchedule() != null) {
                optimizer.setWeightDecay(scheduler.currentWeightDecay());
            }
            if (scheduler.hasDecoupledLr()) {
                optimizer.setDecoupledLr(scheduler.currentDecoupledLr());
            }
            optimizer.step(scheduler.currentLr());
            inner.stop();
            scheduler.step(globalBatch);
        }
        opt.stop();
        optEvent.iteration = iteration;
        optEvent.skipped = skipped;
        optEvent.commit();
        return new StepOutcome(loss, tokens, norm, numZeros, skipped, dataWait, moeLosses);
    }

    /**
     * Dropout offset of micro-batch {@code j} of {@code iteration} in the run's RNG stream: a pure
     * function of the counters, so a resumed run draws the same masks.
     */
    long rngOffset(long iteration, int j) {
        return position.rngStream() * 0x9E3779B97F4A7C15L + (iteration << 16) + j;
    }

    /** Token-weighted mean loss over {@code --eval-iters} global batches; prints Megatron's validation block. */
    private double evaluate(SampleSource source, String split, String where, long iteration, LossCsvWriter csv) {
        TrainingEvents.Evaluation event = new TrainingEvents.Evaluation();
        event.begin();
        double loss = untimed("evaluate", () -> evaluationLoss(source, split));
        log.accept(TrainingLog.validationBlock(where, loss));
        if (csv != null) {
            csv.eval(split, iteration, position.consumedTrainSamples(), loss);
        }
        if (tensorboard != null && isValidation(split)) {   // as Megatron's "lm loss validation"; test losses are not written
            tensorboard.validation(iteration, position.consumedTrainSamples(), loss);
        }
        event.iteration = iteration;
        event.split = split;
        event.loss = loss;
        event.commit();
        return loss;
    }

    /** The mean loss over {@code --eval-iters} global batches; advances the validation position. */
    private double evaluationLoss(SampleSource source, String split) {
        int micro = config.logging().evalMicroBatchSize(config.batch());
        int globalBatch = config.logging().evalGlobalBatchSize(config.batch());
        boolean isValid = split.equals("valid");
        long offset = isValid ? position.consumedValidSamples() : 0;
        double lossSum = 0;
        long tokens = 0;
        for (int k = 0; k < config.logging().evalIters(); k++) {
            List<MicroBatch> batches = new ArrayList<>();
            for (int j = 0; j < globalBatch / micro; j++) {
                batches.add(source.microBatch(offset + (long) j * micro, micro));
            }
            LossResult r = model.forwardLossAll(batches);
            lossSum += r.lossSum();
            tokens += r.tokens();
            offset += globalBatch;
        }
        if (isValid) {
            position = new ResumePoint(position.iteration(), position.consumedTrainSamples(), offset, position.rngStream(),
                    position.floatingPointOperationsSoFar());
        }
        return tokens == 0 ? Double.NaN : lossSum / tokens;
    }

    /** Megatron's order after each iteration: signal, save interval, duration, exit interval. */
    private TrainingResult.ExitReason checkpointAndCheckExit(long iteration, long startNanos) {
        CheckpointConfig c = config.checkpoint();
        ExitConfig e = config.exit();
        if (e.exitOnSignal() && exitSignal != null && exitSignal.received()) {
            saveIfConfigured(iteration);
            log.accept("exiting program after receiving SIGTERM.");
            return TrainingResult.ExitReason.SIGNAL;
        }
        if (c.save() != null && c.saveInterval() > 0 && iteration % c.saveInterval() == 0) {
            save(iteration);
        }
        if (e.exitDurationInMins() > 0) {
            // the slowest rank's clock, as Megatron's all-reduce MAX: every rank stops at the same iteration
            double minutes = model.maxOverRanks(new double[] {(System.nanoTime() - startNanos) / 60e9})[0];
            if (minutes > e.exitDurationInMins()) {
                saveIfConfigured(iteration);
                log.accept(String.format(Locale.ROOT, "exiting program after %.2f minutes", minutes));
                return TrainingResult.ExitReason.DURATION;
            }
        }
        if (e.exitInterval() > 0 && iteration % e.exitInterval() == 0) {
            saveIfConfigured(iteration);
            log.accept("exiting program at iteration " + iteration);
            return TrainingResult.ExitReason.EXIT_INTERVAL;
        }
        return null;
    }

    private void saveIfConfigured(long iteration) {
        if (config.checkpoint().save() != null && lastSavedIteration != iteration) {
            save(iteration);
        }
    }

    private void save(long iteration) {
        CheckpointConfig c = config.checkpoint();
        if (c.asyncSave() && pendingSave != null) {   // one save in flight at a time
            if (!allRanksWritten()) {
                log.accept("WARNING: Starting a checkpoint save before previous has finished. Consider increasing the"
                        + " checkpoint interval.");
            }
            finishPendingSave();
        }
        TrainingEvents.CheckpointSave event = new TrainingEvents.CheckpointSave();
        event.begin();
        log.accept(String.format(Locale.ROOT, " saving checkpoint at iteration %7d to %s", iteration, c.save()));
        lastSavedIteration = iteration;
        if (c.asyncSave()) {
            pendingSave = untimed("save-checkpoint", () -> checkpointer.saveAsync(c.save(), position, model, optimizer,
                    scheduler, c.saveContents()));
            pendingIteration = iteration;
            pendingEvent = event;
            if (progress != null) {
                progress.savedCheckpoint(position, true);
            }
            return;
        }
        long bytes = untimed("save-checkpoint", () -> checkpointer.save(c.save(), position, model, optimizer, scheduler,
                c.saveContents()));
        logSaved(iteration, bytes, event);
        if (progress != null) {
            progress.savedCheckpoint(position, false);
        }
    }

    private void logSaved(long iteration, long bytes, TrainingEvents.CheckpointSave event) {
        Path dir = config.checkpoint().save();
        log.accept(String.format(Locale.ROOT, "  successfully saved checkpoint from iteration %7d to %s %s",
                iteration, dir, checkpointer.rankLabel()));
        event.iteration = iteration;
        event.bytes = bytes;
        event.directory = dir.toString();
        event.commit();
    }

    /**
     * {@code --async-save}: publishes the save in flight once every rank's files are written, as Megatron's
     * {@code maybe_finalize_async_save}; {@code blocking} waits for them (at the end of training and on exits).
     */
    private void finalizeAsyncSave(boolean blocking) {
        if (pendingSave == null) {
            return;
        }
        if (blocking) {
            log.accept("Unfinalized async checkpoint saves. Finalizing them synchronously now.");
        } else if (!allRanksWritten()) {
            return;
        }
        finishPendingSave();
    }

    /** Whether every rank's writer is done: a collective in a parallel run, which all ranks reach at the same iteration. */
    private boolean allRanksWritten() {
        return model.maxOverRanks(new double[] {pendingSave.written() ? 0 : 1})[0] == 0;
    }

    private void finishPendingSave() {
        TrainingCheckpoints.PendingSave save = pendingSave;
        pendingSave = null;
        logSaved(pendingIteration, save.finish(), pendingEvent);
        if (progress != null) {
            progress.savedAsyncCheckpoint(pendingIteration);
        }
    }

    /**
     * Runs an evaluation or a checkpoint save outside the interval's clock, as Megatron stops its
     * interval-time timer around them: the logged time per iteration is training time only. The
     * timer {@code name} is logged right after, as Megatron logs it.
     */
    private <T> T untimed(String name, java.util.function.Supplier<T> work) {
        Timers.Timer timer = timers.timer(name, 0);
        long start = System.nanoTime();
        timer.start();
        T result = work.get();
        timer.stop();
        interval.excludedNanos += System.nanoTime() - start;
        String timing = timers.log(List.of(name), 1, model::gatherOverRanks, config.logging().timingLogOption());
        if (!timing.isEmpty()) {
            log.accept(timing);
        }
        return result;
    }

    private void logInterval(IntervalStats s, long iteration, long consumed, double lr, int globalBatch) {
        double elapsedMs = (System.nanoTime() - s.startNanos - s.excludedNanos) / 1e6 / Math.max(1, s.iterations);
        // Megatron's throughput: the iteration's model FLOPs over its time and the ranks, in TFLOP/s per rank
        double throughput = !config.logging().logThroughput() || modelFlops == null ? Double.NaN
                : modelFlops.applyAsDouble(globalBatch) / (elapsedMs / 1000.0 * 1e12 * ranks);
        LossScaler scaler = optimizer.lossScaler();
        TrainingLog.IterationStats stats = new TrainingLog.IterationStats(LocalDateTime.now(), iteration, trainIters,
                consumed, elapsedMs, throughput,
                lr, globalBatch, s.meanLoss(), s.meanMoeLosses(), scaler == null ? 1.0 : scaler.scale(), s.lastGradNorm,
                s.lastNumZeros, s.lastParamsNorm, s.skipped, s.nan);
        log.accept(TrainingLog.iterationLine(stats));
        if (memoryReport != null) {
            memoryReport.atLogLine(iteration, startIteration);
        }
        Map<String, double[]> timing = timers.measure(TIMERS_TO_LOG, s.iterations, model::gatherOverRanks);
        if (!timing.isEmpty()) {
            log.accept(Timers.format(timing, config.logging().timingLogOption()));
        }
        if (tensorboard != null) {
            tensorboard.logLine(iteration, elapsedMs / 1000.0, throughput, timing);
        }
    }

    /**
     * The model FLOPs of an iteration of a global batch size, and the run's ranks: with {@code --log-throughput}
     * the log line gains Megatron's {@code throughput per GPU (TFLOP/s/GPU)}, those FLOPs over the iteration's
     * time and the ranks.
     */
    public void setModelFlops(IntToDoubleFunction flopsPerIteration, int ranks) {
        this.modelFlops = flopsPerIteration;
        this.ranks = ranks;
    }

    /**
     * Megatron's {@code --check-weight-hash-across-dp-replicas-interval N}: before training and every N iterations the
     * data-parallel replicas' weights must be equal, or the run stops naming the parameters (0: no check).
     */
    public void setWeightHashCheckInterval(int interval) {
        if (interval < 0) {
            throw new IllegalArgumentException("--check-weight-hash-across-dp-replicas-interval must be positive, got " + interval);
        }
        this.weightHashInterval = interval;
    }

    private void checkWeightHashes() {
        List<String> differing = model.parametersDifferingAcrossDataParallel();
        if (!differing.isEmpty()) {
            throw new IllegalStateException("Parameter hashes not matching across DP replicas: " + differing);
        }
    }

    /** Told when each iteration starts and ends ({@code --profile}'s window); null for none. */
    public void setStepProfiler(StepProfiler profiler) {
        this.profiler = profiler;
    }

    /** {@code --log-progress}: the saves' lines in {@code progress.txt} (rank 0's trainer only). */
    public void setProgressLog(ProgressLog log) {
        this.progress = log;
    }

    /** Megatron's memory report at log lines, and the memory {@code --log-memory-to-tensorboard} writes. */
    public void setMemoryReport(MemoryReport report) {
        this.memoryReport = report;
    }

    /**
     * {@code --log-params-norm}: the parameters' norm after this iteration's step, every iteration as Megatron computes
     * it (a collective in a parallel run: every rank asks at every iteration, whatever it writes), else NaN.
     */
    private double paramsNorm() {
        return config.logging().logParamsNorm() ? optimizer.paramsNorm() : Double.NaN;
    }

    private static boolean isValidation(String split) {
        return split.equals("valid");
    }

    /**
     * Megatron's per-interval accumulators ({@code training_log}): the loss averaged over advanced
     * iterations, the skipped iterations, and the nan iterations: skipped ones whose loss is inf/NaN.
     */
    private static final class IntervalStats {
        final long startNanos = System.nanoTime();
        long excludedNanos;   // evaluations and saves within the interval
        double lossSum;
        int advanced;
        int iterations;
        int skipped;
        int nan;
        double lastGradNorm = Double.NaN;
        double lastNumZeros = Double.NaN;
        double lastParamsNorm = Double.NaN;
        final Map<String, Double> moeLosses = new java.util.LinkedHashMap<>();   // summed over every iteration, as Megatron

        void add(StepOutcome step, double paramsNorm) {
            lastParamsNorm = paramsNorm;
            iterations++;
            step.moeLosses().averaged().forEach((name, v) -> moeLosses.merge(name, v, Double::sum));
            if (step.skipped()) {
                skipped++;
                if (!Double.isFinite(step.loss())) {
                    nan++;
                }
            } else if (Double.isFinite(step.loss())) {
                lossSum += step.loss();
                advanced++;
            }
            lastGradNorm = step.gradNorm();
            lastNumZeros = step.numZeros();
        }

        double meanLoss() {
            return advanced == 0 ? Double.NaN : lossSum / advanced;
        }

        /** Megatron's {@code total_loss_dict} entries of the MoE losses over its advanced iterations. */
        Map<String, Double> meanMoeLosses() {
            Map<String, Double> out = new java.util.LinkedHashMap<>();
            moeLosses.forEach((name, v) -> out.put(name, v / Math.max(1, advanced)));
            return out;
        }
    }
}
