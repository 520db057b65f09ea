package org.megatronj.parallel.pipeline;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;
import org.megatronj.model.ActivationRecompute;
import org.megatronj.model.GPTModel;
import org.megatronj.model.LossResult;
import org.megatronj.model.MicroBatch;
import org.megatronj.model.ModelChunk;
import org.megatronj.model.PipelineLayout;
import org.megatronj.model.Parameter;
import org.megatronj.model.PhaseTimers;
import org.megatronj.model.Precision;
import org.megatronj.model.TransformerConfig;
import org.megatronj.model.layers.HostTransfer;
import org.megatronj.model.optim.Optimizer;
import org.megatronj.model.parallel.ContextParallelism;
import org.megatronj.model.parallel.TensorParallelism;
import org.megatronj.parallel.ParallelConfig;
import org.megatronj.parallel.comm.ProcessGroups;
import org.megatronj.parallel.comm.RankContext;
import org.megatronj.parallel.context.ContextParallelBatches;
import org.megatronj.parallel.optim.DistributedAdam;
import org.megatronj.parallel.optim.FlatShard;
import org.megatronj.parallel.optim.ParallelGradients;
import org.megatronj.parallel.tensor.CommunicatorTensorParallelGroup;

/**
 * One rank of a parallel GPT training run: its model chunks (TP shard of its pipeline stage(s)),
 * the pipeline schedule, the gradient synchronisation and the optimizer, and one training
 * iteration over a global batch ({@link #trainStep}) with Megatron's semantics: each data-parallel
 * rank takes its consecutive share of the micro-batches, every micro-batch loss is scaled by
 * 1 / (its rank's micro-batches), gradients are averaged over DP, clipped by the global norm and
 * stepped. The result equals the single-rank iteration over the same global batch.
 *
 * <p>With context parallelism the CP ranks of a data-parallel index run the same micro-batches, each on its two
 * chunks of every sequence ({@link ContextParallelBatches}); a micro-batch's gradient scale is weighted by the
 * rank's share of its tokens, so the CP ranks' gradients add up to the gradient of the whole sequence's mean, and
 * gradients are averaged over DP x CP (each rank's scale multiplied by DP x CP, as by DP alone without CP).
 *
 * <p>With mixed precision ({@link Options#precision()}) every chunk computes in BF16/F16 from a
 * 16-bit copy of its F32 main weights, refreshed after each optimizer step (after the distributed
 * optimizer's all-gather of the F32 shards); gradients, their reductions, the norm and the
 * optimizer stay F32. Activations crossing ranks (tensor-parallel collectives, pipeline P2P)
 * travel in the compute dtype, as in Megatron.
 */
public final class ParallelGptRank implements AutoCloseable {

    /** Adam's settings ({@code --adam-beta1/2 --adam-eps --weight-decay}) for the distributed optimizer. */
    public record AdamSettings(float beta1, float beta2, float eps, float weightDecay) {
    }

    /**
     * How this rank trains, with Megatron's flags.
     *
     * @param recompute         {@code --recompute-granularity/-method/-num-layers}, {@code --recompute-activations}
     * @param overlapGradReduce {@code --overlap-grad-reduce}: reduce gradient buckets during the last backward
     * @param bucketSize        {@code --ddp-bucket-size} in elements ({@code <= 0}: Megatron's default)
     * @param distributedAdam   {@code --use-distributed-optimizer} with these Adam settings, or null for the
     *                          optimizer of the factory over all parameters
     * @param precision         {@code --bf16}/{@code --fp16}: the dtype the chunks compute in
     */
    public record Options(ActivationRecompute recompute, boolean overlapGradReduce, long bucketSize,
                          AdamSettings distributedAdam, Precision precision) {
        public Options {
            if (recompute == null) {
                throw new IllegalArgumentException("recompute must not be null (use ActivationRecompute.none())");
            }
            if (precision == null) {
                throw new IllegalArgumentException("precision must not be null (use Precision.FP32)");
            }
        }

        /** fp32 training. */
        public Options(ActivationRecompute recompute, boolean overlapGradReduce, long bucketSize,
                       AdamSettings distributedAdam) {
            this(recompute, overlapGradReduce, bucketSize, distributedAdam, Precision.FP32);
        }
    }

    /** One iteration as the log shows it: the mean loss over the global batch and the gradient norm before clipping. */
    public record StepResult(double loss, double gradNorm) {
    }

    private final RankContext ctx;
    private final List<GPTModel> chunks = new ArrayList<>();
    private final PipelineLayout pipelineLayout;
    private final PipelineChannels channels;
    private final PipelineSchedule schedule;
    private final ParallelGradients gradients;
    private final Optimizer optimizer;
    private PhaseTimers syncTimers = PhaseTimers.NONE;

    /**
     * @param optimizerFactory builds the optimizer over this rank's parameters (all chunks) when
     *        {@code distributedAdam} is null; otherwise the distributed optimizer with those settings
     */
    public ParallelGptRank(TransformerConfig config, Backend backend, long seed, RankContext ctx, Options options,
                           Function<List<Parameter>, Optimizer> optimizerFactory) {
        AdamSettings distributedAdam = options.distributedAdam();
        this.ctx = ctx;
        ParallelConfig pc = ctx.state().config();
        pc.validateForModel(config.numLayers(), config.numAttentionHeads(), config.numQueryGroups(), config.ffnHiddenSize(),
                config.seqLength());
        ProcessGroups groups = ctx.groups();
        int replicas = groups.dataWithContext().size();   // the ranks that hold these weights too: DP x CP
        PipelineLayout layout = pc.pipelineLayout(config.numLayers());
        this.pipelineLayout = layout;
        int chunksPerStage = layout.chunksPerStage();
        var tp = new TensorParallelism(CommunicatorTensorParallelGroup.of(groups.tensor()), pc.sequenceParallelActive());
        var cp = new ContextParallelism(CommunicatorTensorParallelGroup.of(groups.context()));
        this.channels = PipelineChannels.create(groups.world(), ctx.state());
        try {
            for (int v = 0; v < chunksPerStage; v++) {
                ModelChunk chunk = layout.chunk(groups.pipeline().rank(), v);
                GPTModel model = new GPTModel(config, backend, seed, tp, replicas, chunk, options.precision(), cp);
                model.setRecompute(options.recompute());
                chunks.add(model);
            }
            this.gradients = new ParallelGradients(chunks, groups, distributedAdam != null, options.overlapGradReduce(),
                    options.bucketSize());
            List<FlatShard> shards = gradients.shards();
            this.optimizer = distributedAdam == null
                    ? optimizerFactory.apply(parameters())
                    : new DistributedAdam(shards, chunks.stream().map(m -> m.parameterStore().flatData()).toList(),
                            groups.dataWithContext(), backend, distributedAdam.beta1(), distributedAdam.beta2(), distributedAdam.eps(),
                            distributedAdam.weightDecay());
            this.schedule = new PipelineSchedule(chunks, channels);
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /** This rank's place and communicators. */
    /** Which layers every stage's chunks hold (this rank's are {@link #chunks()}). */
    public PipelineLayout pipelineLayout() {
        return pipelineLayout;
    }

    public RankContext context() {
        return ctx;
    }

    /** This rank's model chunks (one unless the schedule is interleaved). */
    public List<GPTModel> chunks() {
        return chunks;
    }

    /** This rank's parameters over all its chunks, in chunk order. */
    public List<Parameter> parameters() {
        return chunks.stream().flatMap(m -> m.parameters().stream()).toList();
    }

    public Optimizer optimizer() {
        return optimizer;
    }

    /**
     * One training iteration over {@code globalBatch} (the micro-batches of all DP ranks, in
     * order; this rank runs its DP share). {@code rngOffsets[i]} selects the dropout masks of
     * micro-batch i. Every rank returns the same loss (token-weighted mean over the global batch)
     * and norm.
     */
    public StepResult trainStep(List<MicroBatch> globalBatch, long[] rngOffsets, float lr, double clipGrad) {
        LossResult loss = forwardBackward(globalBatch, rngOffsets);
        double norm = clipGradients(clipGrad);
        step(lr);
        return new StepResult(loss.meanLoss(), norm);
    }

    /** {@link #forwardBackward(List, long[], float)} without loss scaling. */
    public LossResult forwardBackward(List<MicroBatch> globalBatch, long[] rngOffsets) {
        return forwardBackward(globalBatch, rngOffsets, 1f);
    }

    /**
     * Zeroes the gradients, runs forward and backward of this rank's DP share of
     * {@code globalBatch} under the pipeline schedule, each micro-batch's mean loss scaled by
     * {@code lossScale} / (this rank's micro-batches) as Megatron, then synchronises the gradients
     * over the ranks (data-parallel mean, sequence-parallel and tied embedding sums: Megatron's
     * {@code finalize_model_grads}). Returns the unscaled loss summed over the whole global batch
     * (all DP ranks), the same on every rank.
     */
    public LossResult forwardBackward(List<MicroBatch> globalBatch, long[] rngOffsets, float lossScale) {
        float[] scales = new float[globalBatch.size()];
        java.util.Arrays.fill(scales, lossScale / globalBatch.size());
        return forwardBackward(globalBatch, rngOffsets, scales);
    }

    /**
     * As {@link #forwardBackward(List, long[], float)} with the gradient scale of each micro-batch of the whole
     * global batch given ({@code lossScale / micro-batches} each by default, token-weighted with
     * {@code --calculate-per-token-loss}); this rank scales its share by the data-parallel size (DP x CP), which
     * the mean of the synchronisation over DP x CP divides out again. Under context parallelism each scale is also
     * weighted by this rank's share of the micro-batch's loss tokens: the local loss is a mean over those alone.
     */
    public LossResult forwardBackward(List<MicroBatch> globalBatch, long[] rngOffsets, float[] gradScales) {
        int perRank = share(globalBatch);
        int replicas = ctx.groups().dataWithContext().size();
        int from = ctx.groups().data().rank() * perRank;
        long[] offsets = java.util.Arrays.copyOfRange(rngOffsets, from, from + perRank);
        List<MicroBatch> mine = contextShare(globalBatch.subList(from, from + perRank));
        float[] scales = new float[perRank];
        for (int j = 0; j < perRank; j++) {
            scales[j] = (float) (gradScales[from + j] * replicas * tokenShare(mine.get(j), globalBatch.get(from + j)));
        }
        chunks.forEach(GPTModel::zeroGrad);
        List<LossResult> losses = schedule.run(mine, offsets, scales, gradients::armLastBackward);
        syncTimers.start("all-grads-sync");
        gradients.synchronize();
        syncTimers.stop("all-grads-sync");
        updateMoeExpertBias();
        return globalSum(losses);
    }

    /** Where {@link #forwardBackward} reports the time of its gradient synchronisation (Megatron's all-grads-sync). */
    public void setGradientSyncTimers(PhaseTimers timers) {
        this.syncTimers = timers;
    }

    /**
     * Clips the synchronised gradients ({@link #forwardBackward}) to {@code maxNorm}
     * ({@code <= 0}: no clipping); returns the global norm before clipping.
     */
    public double clipGradients(double maxNorm) {
        return gradients.clip(maxNorm);
    }

    /** Megatron's {@code calc_params_l2_norm}: the L2 norm of the fp32 parameters over the world (a collective). */
    public double paramsNorm() {
        return gradients.globalNorm(org.megatronj.model.Parameter::data);
    }

    /**
     * Megatron's {@code check_param_hashes_across_dp_replicas} with its cross check: the names of this rank's parameters
     * whose values differ between data-parallel replicas (a SHA-1 of each, all-gathered over the data-parallel group;
     * the same list on every rank of the group). Empty when the replicas agree.
     */
    public List<String> parametersDifferingAcrossDataParallel() {
        List<Parameter> params = parameters();
        double[] local = new double[2 * params.size()];
        for (int i = 0; i < params.size(); i++) {
            byte[] digest = sha1(HostTransfer.downloadFloats(chunks.getFirst().backend(), params.get(i).data()));
            local[2 * i] = bits52(digest, 0);        // 52-bit halves: exact in a double, 104 bits in all
            local[2 * i + 1] = bits52(digest, 8);
        }
        double[][] all = ParallelGradients.allGather(ctx.groups().data(), local);
        List<String> differing = new ArrayList<>();
        for (int i = 0; i < params.size(); i++) {
            for (double[] replica : all) {
                if (replica[2 * i] != all[0][2 * i] || replica[2 * i + 1] != all[0][2 * i + 1]) {
                    differing.add(params.get(i).name());
                    break;
                }
            }
        }
        return differing;
    }

    private static byte[] sha1(float[] values) {
        java.nio.ByteBuffer bytes = java.nio.ByteBuffer.allocate(values.length * Float.BYTES).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            bytes.putFloat(v);
        }
        try {
            return java.security.MessageDigest.getInstance("SHA-1").digest(bytes.array());
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JVM has no SHA-1", e);
        }
    }

    private static double bits52(byte[] digest, int from) {
        long v = 0;
        for (int i = 0; i < 8; i++) {
            v = (v << 8) | (digest[from + i] & 0xff);
        }
        return (double) (v >>> 12);
    }

    /** Megatron's {@code count_zeros_fp32}: the zero gradient elements over the world (a collective). */
    public long zerosInGradients() {
        return gradients.zerosInGradients();
    }

    /**
     * Megatron's unscale and inf check after a loss-scaled backward: multiplies this rank's
     * synchronised main gradients by {@code inverseScale} and returns, on every rank alike,
     * whether any rank holds an inf or NaN gradient (so that all skip the step together). The
     * whole flat gradient store of each chunk is checked, which covers the distributed optimizer's
     * shard and every local contribution to the other ranks' shards.
     */
    public boolean unscaleAndCheckForInfOrNan(float inverseScale) {
        boolean found = false;
        for (GPTModel chunk : chunks) {
            Tensor flatGrad = chunk.parameterStore().flatGrad();
            if (inverseScale != 1f) {
                chunk.backend().scale(flatGrad, inverseScale);
            }
            found |= chunk.backend().hasInfOrNan(flatGrad);
        }
        return anyRank(found);
    }

    /** One optimizer step at {@code lr}, then each chunk's compute weights refreshed from its updated main weights. */
    public void step(float lr) {
        optimizer.step(lr);
        refreshComputeWeights();
    }

    /** Casts every chunk's main weights into its compute copy (after a step or a checkpoint load; nothing in fp32). */
    public void refreshComputeWeights() {
        chunks.forEach(GPTModel::refreshComputeWeights);
    }

    /** True on every rank when {@code flag} is true on any rank (a collective over the world). */
    public boolean anyRank(boolean flag) {
        return ParallelGradients.allReduceSum(ctx.groups().world(), flag ? 1 : 0) > 0;
    }

    /** How many of the global batch's micro-batches each DP rank runs. */
    private int share(List<MicroBatch> globalBatch) {
        int dp = ctx.groups().data().size();
        if (globalBatch.size() % dp != 0) {
            throw new IllegalArgumentException(globalBatch.size() + " micro-batches per global batch do not split evenly over "
                    + dp + " data-parallel ranks: --global-batch-size must be a multiple of --micro-batch-size x " + dp);
        }
        return globalBatch.size() / dp;
    }

    /** This context-parallel rank's chunks of each micro-batch (the micro-batches themselves without CP). */
    private List<MicroBatch> contextShare(List<MicroBatch> batches) {
        int size = ctx.groups().context().size();
        int rank = ctx.groups().context().rank();
        return batches.stream().map(b -> ContextParallelBatches.slice(b, size, rank)).toList();
    }

    /**
     * The part of {@code whole}'s loss tokens in this rank's chunks {@code local} (1 without CP): the local loss is
     * the mean over the local tokens, and this weight makes it count as their part of the whole sequence's mean.
     */
    private static double tokenShare(MicroBatch local, MicroBatch whole) {
        if (local == whole) {
            return 1.0;
        }
        double tokens = ContextParallelBatches.maskSum(whole);
        return tokens == 0 ? 0.0 : ContextParallelBatches.maskSum(local) / tokens;
    }

    /** The losses this rank saw (last stage only), summed over CP and DP ranks and made known to every stage. */
    private LossResult globalSum(List<LossResult> local) {
        ProcessGroups groups = ctx.groups();
        double lossSum = 0;
        double tokens = 0;
        for (LossResult r : local) {
            lossSum += r.lossSum();
            tokens += r.tokens();
        }
        // Stages without the loss contribute zeros; sum over CP (a sequence's chunks), over DP, then over the pipeline.
        lossSum = sumOverContextDataPipeline(groups, lossSum);
        tokens = sumOverContextDataPipeline(groups, tokens);
        return new LossResult(lossSum, Math.round(tokens));
    }

    /** The MTP acceptance rates' cumulative counts since this process started (Megatron's process-local tracker). */
    private final org.megatronj.model.MtpMetrics.Acceptance mtpAcceptance = new org.megatronj.model.MtpMetrics.Acceptance();

    /**
     * The mixture-of-experts losses of the last iteration as Megatron's log shows them ({@link
     * org.megatronj.model.MoeMetrics}), then the MTP depths' ({@link org.megatronj.model.MtpMetrics}): summed over the pipeline stages (each has its own layers) and averaged over the
     * data-parallel ranks; every tensor rank routes all of its group's tokens, so it holds the whole value already.
     * A collective: every rank calls it at every iteration.
     */
    public org.megatronj.model.MoeMetrics.Report moeMetrics(int microBatches) {
        Map<String, double[]> local = org.megatronj.model.MoeMetrics.take(chunks);
        Map<String, double[]> out = new java.util.LinkedHashMap<>();
        ProcessGroups groups = ctx.groups();
        for (Map.Entry<String, double[]> e : local.entrySet()) {
            double[] overData = ParallelGradients.allReduceSum(groups.data(), e.getValue());
            for (int l = 0; l < overData.length; l++) {
                overData[l] /= groups.data().size();
            }
            out.put(e.getKey(), ParallelGradients.allReduceSum(groups.pipeline(), overData));
        }
        // Megatron scales by its micro-batches per data-parallel rank
        int perRank = microBatches / groups.data().size();
        org.megatronj.model.MoeMetrics.Report moe = org.megatronj.model.MoeMetrics.report(out, chunks.getFirst().config(),
                perRank);
        // MTP losses: the last stage's, averaged over the data-parallel ranks (every tensor rank holds the whole value)
        double[] mtp = org.megatronj.model.MtpMetrics.take(chunks);
        if (mtp.length > 0) {
            mtp = ParallelGradients.allReduceSum(groups.data(), mtp);
            for (int k = 0; k < mtp.length; k++) {
                mtp[k] /= groups.data().size();
            }
            mtp = ParallelGradients.allReduceSum(groups.pipeline(), mtp);
        }
        // acceptance counts: summed over the data-parallel ranks (Megatron's SUM over its avg group) and the stages
        double[] counts = org.megatronj.model.MtpMetrics.takeAcceptanceCounts(chunks);
        if (counts.length > 0) {
            counts = ParallelGradients.allReduceSum(groups.pipeline(), ParallelGradients.allReduceSum(groups.data(), counts));
        }
        return mtpAcceptance.addTo(org.megatronj.model.MtpMetrics.withLosses(moe, mtp, perRank), counts);
    }

    /**
     * {@code --moe-router-enable-expert-bias}: the tokens each expert received in this iteration, summed over the
     * data-parallel ranks (every tensor rank counts all of its group's tokens), move the biases as Megatron's
     * {@code finalize_model_grads} does; the same on every rank. A collective over the data-parallel group.
     */
    private void updateMoeExpertBias() {
        List<org.megatronj.model.layers.MoeLayer> layers = new ArrayList<>();
        for (GPTModel chunk : chunks) {
            chunk.moeLayers().stream().filter(org.megatronj.model.layers.MoeLayer::hasExpertBias).forEach(layers::add);
        }
        if (layers.isEmpty()) {
            return;
        }
        int e = chunks.getFirst().config().moe().numExperts();
        double[] counts = new double[layers.size() * e];
        for (int l = 0; l < layers.size(); l++) {
            System.arraycopy(layers.get(l).takeTokensPerExpert(), 0, counts, l * e, e);
        }
        double[] total = ParallelGradients.allReduceSum(ctx.groups().data(), counts);
        for (int l = 0; l < layers.size(); l++) {
            layers.get(l).updateExpertBias(java.util.Arrays.copyOfRange(total, l * e, (l + 1) * e));
        }
    }

    /**
     * The gradient scale of the MoE auxiliary losses given the trainer's loss scale over the global batch's
     * micro-batches: this rank runs its share of them, so the scale is multiplied by the data-parallel size (DP x CP),
     * as {@link #forwardBackward(List, long[], float[])} does the loss's (Megatron: the loss scale over this rank's
     * micro-batches).
     */
    public void setMoeAuxLossScale(float scale) {
        float perRank = scale * ctx.groups().dataWithContext().size();
        chunks.forEach(m -> m.setMoeAuxLossScale(perRank));
    }

    private static double sumOverContextDataPipeline(ProcessGroups groups, double value) {
        double overContext = ParallelGradients.allReduceSum(groups.context(), value);
        return ParallelGradients.allReduceSum(groups.pipeline(), ParallelGradients.allReduceSum(groups.data(), overContext));
    }

    /**
     * The loss over {@code globalBatch} without dropout or gradients (Megatron's evaluation: each
     * DP rank its share), summed over the whole global batch, the same on every rank.
     */
    public LossResult evaluate(List<MicroBatch> globalBatch) {
        int perRank = share(globalBatch);
        int from = ctx.groups().data().rank() * perRank;
        return globalSum(schedule.forwardOnly(contextShare(globalBatch.subList(from, from + perRank))));
    }

    @Override
    public void close() {
        if (optimizer instanceof AutoCloseable c) {
            try {
                c.close();
            } catch (Exception e) {
                throw new IllegalStateException("closing the optimizer failed", e);
            }
        }
        chunks.forEach(GPTModel::close);
        channels.close();
    }
}
