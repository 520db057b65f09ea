package org.megatronj.cli;

import java.io.PrintWriter;
import java.util.List;
import java.util.Locale;
import java.util.function.Consumer;
import org.megatronj.io.gpt.GptDataSplits;
import org.megatronj.io.gpt.GptSampleSource;
import org.megatronj.io.gpt.Split;
import org.megatronj.memory.Backend;
import org.megatronj.memory.cpu.CpuBackend;
import org.megatronj.model.PipelineLayout;
import org.megatronj.model.ActivationRecompute;
import org.megatronj.model.FlopCounter;
import org.megatronj.model.GPTModel;
import org.megatronj.model.MicroBatch;
import org.megatronj.model.TransformerConfig;
import org.megatronj.model.optim.AdamW;
import org.megatronj.model.optim.Sgd;
import org.megatronj.parallel.ParallelConfig;
import org.megatronj.parallel.comm.LocalWorld;
import org.megatronj.parallel.comm.ProcessGroups;
import org.megatronj.parallel.comm.RankContext;
import org.megatronj.parallel.pipeline.ParallelCheckpointer;
import org.megatronj.parallel.pipeline.ParallelGptRank;
import org.megatronj.parallel.pipeline.ParallelTraining;
import org.megatronj.parallel.train.BatchConfig;
import org.megatronj.parallel.train.ExitSignal;
import org.megatronj.parallel.train.GptSamples;
import org.megatronj.parallel.train.OptimizerConfig;
import org.megatronj.parallel.train.OptimizerType;
import org.megatronj.parallel.train.ProgressLog;
import org.megatronj.parallel.train.SampleSource;
import org.megatronj.parallel.train.StepProfiler;
import org.megatronj.parallel.train.Trainer;
import org.megatronj.parallel.train.TrainingCheckpointer;
import org.megatronj.parallel.train.TrainingConfig;
import org.megatronj.parallel.train.TrainingResult;

/**
 * {@code megatron pretrain gpt} on several ranks: every rank is a thread of this process with its
 * own CPU backend (the cores shared out), its model chunks ({@link ParallelGptRank}) and the
 * ordinary trainer loop; rank 0 prints the log. All ranks read the same global batches and each
 * runs its data-parallel share, so the losses equal a single-rank run's. Checkpoints are sharded
 * per (tensor, pipeline) rank ({@link ParallelCheckpointer}); another layout needs
 * {@code megatron checkpoint reshard}. {@code --bf16}/{@code --fp16} apply to every layout: each
 * rank computes in 16 bits and keeps F32 main weights, gradients and (distributed) optimizer
 * state; every rank has its own loss scaler, and all skip an overflowing iteration together.
 */
final class ParallelPretraining {
    private final PrintWriter out;
    private final TransformerConfig config;
    private final TrainingConfig training;
    private final ParallelConfig layout;
    private final ParallelOptions options;
    private final ActivationRecompute recompute;
    private final PrecisionOptions precision;
    private final long seed;
    private final TrainingCheckpointer checkpointer;
    private final int logMemoryInterval;
    private final ProgressLog progress;   // --log-progress, kept by rank 0
    private StepProfiler profiler;         // --profile's window, kept by rank 0
    private int weightHashInterval;        // --check-weight-hash-across-dp-replicas-interval, a collective on every rank

    /** @param checkpointer the single-rank checkpointer (model config and arguments); ranks share it in its layout */
    ParallelPretraining(PrintWriter out, TransformerConfig config, TrainingConfig training, ParallelConfig layout,
                        ParallelOptions options, ActivationRecompute recompute, PrecisionOptions precision, long seed,
                        TrainingCheckpointer checkpointer, int logMemoryInterval, ProgressLog progress) {
        this.checkpointer = checkpointer;
        this.logMemoryInterval = logMemoryInterval;
        this.progress = progress;
        this.out = out;
        this.config = config;
        this.training = training;
        this.layout = layout;
        this.options = options;
        this.recompute = recompute;
        this.precision = precision;
        this.seed = seed;
    }

    int run(GptDataSplits splits, int seqLength) {
        try (splits) {
            GptSampleSource trainSplit = splits.get(Split.TRAIN);
            if (trainSplit == null) {
                throw new IllegalArgumentException("no training split: give --data-path with a --split whose first part is > 0,"
                        + " or --train-data-path");
            }
            int vocabLimit = config.paddedVocabSize(layout.tensorModelParallelSize());
            SampleSource train = shared(new GptSamples(trainSplit, seqLength, vocabLimit));
            SampleSource valid = sharedOrNull(splits.get(Split.VALID), seqLength, vocabLimit);
            SampleSource test = sharedOrNull(splits.get(Split.TEST), seqLength, vocabLimit);
            int world = options.worldSize();
            int threads = Math.max(1, Runtime.getRuntime().availableProcessors() / world);
            out.printf(Locale.ROOT, "> %d ranks as threads: tensor-parallel %d, pipeline-parallel %d (%d model chunk(s) per"
                            + " stage), %sdata-parallel %d, sequence-parallel %s, %d CPU thread(s) per rank%n", world,
                    layout.tensorModelParallelSize(), layout.pipelineModelParallelSize(),
                    layout.virtualPipelineModelParallelSize(config.numLayers()),
                    layout.contextParallel() ? "context-parallel " + layout.contextParallelSize() + " (all-gather of keys and"
                            + " values), " : "", options.dataParallelSize(), layout.sequenceParallelActive(), threads);
            PipelineLayout split = layout.pipelineLayout(config.numLayers());
            if (!split.isEven()) {
                out.printf(Locale.ROOT, "> pipeline split %s:%n%s", split.toLayoutString(), split.describe());
            }
            TrainingResult[] result = new TrainingResult[1];
            ExitSignal processSignal = training.exit().exitOnSignal() ? ExitSignal.onSigterm() : null;
            try (processSignal) {
                train(world, threads, processSignal, train, valid, test, result);
            }
            out.printf(Locale.ROOT, "[after training is done] iteration %d, consumed samples %d (%s)%n", result[0].iteration(),
                    result[0].consumedTrainSamples(), result[0].exitReason().name().toLowerCase(Locale.ROOT));
            return 0;
        }
    }

    private void train(int world, int threads, ExitSignal processSignal, SampleSource train, SampleSource valid,
                       SampleSource test, TrainingResult[] result) {
        long[][] parameterCounts = new long[layout.tensorModelParallelSize()][layout.pipelineModelParallelSize()];
        List<String> theoretical = MemoryReports.theoretical(config, training, layout, options, recompute);
        LocalWorld.run(layout, world, ctx -> {
            boolean printer = ctx.rank() == 0;
            Consumer<String> log = printer ? printer(out) : line -> { };
            ExitSignal rankSignal = processSignal == null ? null : ExitSignal.manual();
            try (Backend backend = new CpuBackend(threads, true);
                 ParallelGptRank rank = new ParallelGptRank(config, backend, seed, ctx, rankOptions(),
                         params -> optimizer(params, backend))) {
                logParameterCounts(ctx, rank, parameterCounts, log);
                Trainer trainer = new Trainer(printer ? training : withoutFiles(training), ParallelTraining.model(rank),
                        ParallelTraining.optimizer(rank, training.optimizer().type().flagValue(), processSignal, rankSignal,
                                precision.lossScaler()),
                        train, valid, test, new ParallelCheckpointer(checkpointer, rank), rankSignal, log);
                trainer.setModelFlops(b -> FlopCounter.megatronLoggedFlopsPerIteration(config, b,
                        layout.tensorModelParallelSize()), world);
                trainer.setMemoryReport(MemoryReports.forRank(backend, ctx.rank(), ctx.groups().dataWithContext().rank() == 0 ? printer(out)
                        : null, theoretical, logMemoryInterval));
                if (printer) {
                    trainer.setProgressLog(progress);
                    trainer.setStepProfiler(profiler);
                }
                trainer.setWeightHashCheckInterval(weightHashInterval);
                trainer.loadCheckpoint();
                TrainingResult r = trainer.train();
                if (printer) {
                    result[0] = r;
                }
            }
        });
    }

    /** {@code --check-weight-hash-across-dp-replicas-interval}: every rank's trainer checks together. */
    void checkWeightHashesEvery(int interval) {
        this.weightHashInterval = interval;
    }

    /** {@code --profile}: rank 0's trainer opens and closes its window (null: none). */
    void profileWith(StepProfiler profiler) {
        this.profiler = profiler;
    }

    /** Lines to {@code out} from any rank, whole and at once. */
    private static Consumer<String> printer(PrintWriter out) {
        return line -> {
            synchronized (out) {
                out.println(line);
                out.flush();
            }
        };
    }

    /**
     * Megatron's line per model-parallel rank (each data-parallel rank 0 prints its own): the
     * stages hold different layers and the embedding, so one rank's count is not the others'.
     * Printed by rank 0 in rank order, after all have counted.
     */
    private static void logParameterCounts(RankContext ctx, ParallelGptRank rank, long[][] counts, Consumer<String> log) {
        ProcessGroups g = ctx.groups();
        if (g.dataWithContext().rank() == 0) {   // one writer per (tensor, pipeline) rank: DP and CP ranks hold replicas
            counts[g.tensor().rank()][g.pipeline().rank()] = rank.chunks().stream().mapToLong(GPTModel::parameterCount).sum();
        }
        g.world().barrier();   // every count is written before rank 0 reads them
        for (int p = 0; p < counts[0].length; p++) {
            for (int t = 0; t < counts.length; t++) {
                log.accept(String.format(Locale.ROOT, " > number of parameters on (tensor, pipeline) model parallel rank"
                        + " (%d, %d): %d", t, p, counts[t][p]));
            }
        }
    }

    /** The same settings without {@code --log-loss-to} and {@code --tensorboard-dir}: only rank 0 writes them. */
    private static TrainingConfig withoutFiles(TrainingConfig c) {
        return new TrainingConfig(c.batch(), c.schedule(), c.optimizer(), c.logging().withoutFiles(),
                c.checkpoint(), c.exit(), c.seed(), c.checkForNanInLoss(), c.calculatePerTokenLoss());
    }

    private ParallelGptRank.Options rankOptions() {
        OptimizerConfig o = training.optimizer();
        ParallelGptRank.AdamSettings adam = options.useDistributedOptimizer
                ? new ParallelGptRank.AdamSettings((float) o.adamBeta1(), (float) o.adamBeta2(), (float) o.adamEps(),
                        (float) o.weightDecay())
                : null;
        long bucketSize = options.ddpBucketSize == null ? 0 : options.ddpBucketSize;   // 0: Megatron's default
        return new ParallelGptRank.Options(recompute, options.overlapGradReduce, bucketSize, adam, precision.precision());
    }

    private org.megatronj.model.optim.Optimizer optimizer(List<org.megatronj.model.Parameter> params, Backend backend) {
        OptimizerConfig o = training.optimizer();
        return o.type() == OptimizerType.ADAM
                ? new AdamW(params, backend, (float) o.adamBeta1(), (float) o.adamBeta2(), (float) o.adamEps(),
                        (float) o.weightDecay())
                : new Sgd(params, backend, (float) o.sgdMomentum(), (float) o.weightDecay());
    }

    /** What a multi-rank run cannot do yet, refused up front with the reason. */
    void refuseUnsupported(String device) {
        if (!"cpu".equalsIgnoreCase(device.trim())) {
            throw new IllegalArgumentException("parallel runs (--world-size " + options.worldSize() + ") execute their ranks as"
                    + " threads on the CPU backend; use --device cpu, or one rank on --device " + device);
        }
        if (options.useDistributedOptimizer && training.optimizer().type() != OptimizerType.ADAM) {
            throw new IllegalArgumentException("--use-distributed-optimizer supports --optimizer adam, got --optimizer "
                    + training.optimizer().type().flagValue());
        }
        int micro = training.batch().microBatchSize();
        int global = training.batch().globalBatchSize();
        int dp = options.dataParallelSize();
        if (global % (micro * dp) != 0) {
            throw new IllegalArgumentException("--global-batch-size " + global + " is not divisible by --micro-batch-size "
                    + micro + " x data-parallel size " + dp);
        }
        // The trainer's batch config counts one rank (the ranks split each global batch among them), so
        // its schedule's checks are rerun here at this DP size: a batch size that does not split would
        // otherwise fail the run in the middle of training.
        BatchConfig.BatchSchedule batchSchedule = training.batch().schedule();
        BatchConfig batch = new BatchConfig(micro, global, dp, batchSchedule);
        int pp = layout.pipelineModelParallelSize();
        int microBatches = global / (micro * dp);
        if (layout.interleaved() && microBatches % pp != 0) {
            throw new IllegalArgumentException("the interleaved schedule needs the micro-batches per data-parallel rank ("
                    + microBatches + ") divisible by --pipeline-model-parallel-size " + pp);
        }
        if (layout.interleaved() && batchSchedule != null && batch.batchSizes().anyMatch(b -> b / (micro * dp) % pp != 0)) {
            throw new IllegalArgumentException("the interleaved schedule needs the micro-batches per data-parallel rank"
                    + " divisible by --pipeline-model-parallel-size " + pp + " at every step of " + batchSchedule.flag()
                    + ": every global batch size must be a multiple of --micro-batch-size " + micro + " x data-parallel size "
                    + dp + " x " + pp + " = " + micro * dp * pp);
        }
    }

    private static SampleSource sharedOrNull(GptSampleSource split, int seqLength, int vocabLimit) {
        return split == null || split.size() == 0 ? null : shared(new GptSamples(split, seqLength, vocabLimit));
    }

    /** One dataset read by every rank thread: reads are serialised (each rank asks for the same global batches). */
    private static SampleSource shared(SampleSource source) {
        return new SampleSource() {
            @Override
            public long size() {
                return source.size();
            }

            @Override
            public synchronized MicroBatch microBatch(long first, int batchSize) {
                return source.microBatch(first, batchSize);
            }
        };
    }
}
