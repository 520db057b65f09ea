package org.megatronj.parallel.optim;

import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.GPTModel;
import org.megatronj.model.Parameter;
import org.megatronj.model.ParameterSpec;
import org.megatronj.parallel.comm.CommHandle;
import org.megatronj.parallel.comm.Communicator;
import org.megatronj.parallel.comm.ProcessGroups;
import org.megatronj.parallel.comm.ReduceOp;

/**
 * What happens to one rank's gradients between backward and the optimizer step, as Megatron's
 * {@code DistributedDataParallel}, {@code finalize_model_grads} and {@code clip_grad_norm}:
 * <ol>
 *   <li>data parallelism: each bucket ({@link GradBuckets}) of a chunk's flat gradient store is
 *       scaled by 1/DP and all-reduced (the mean over DP ranks), or reduce-scattered so that each
 *       rank holds the mean of its own shard (distributed optimizer). Under context parallelism "DP" is
 *       DP x CP ({@link ProcessGroups#dataWithContext()}): every replica of the weights, as Megatron's
 *       data-parallel group with context parallelism. With
 *       {@code --overlap-grad-reduce} a bucket's reduction starts asynchronously during the last
 *       micro-batch's backward, as soon as backward has completed its gradients;</li>
 *   <li>sequence parallelism: the norm weights/biases and row-parallel biases, computed from each
 *       rank's sequence shard, are summed over the TP group;</li>
 *   <li>tied embeddings across pipeline stages: the word-embedding gradients of the first and
 *       last stage are summed over the embedding group (before their own bucket's reduction);</li>
 *   <li>the global gradient norm: each gradient element counted once over the whole world
 *       (TP-replicated parameters on TP rank 0 only, the last stage's copy of the tied embedding
 *       not at all, with the distributed optimizer each rank's shard), then clipping.</li>
 * </ol>
 * All steps are sums, so their order does not change the result; TP peers share store layouts,
 * so the shard regions they sum line up.
 */
public final class ParallelGradients {
    private static final String WORD_EMBEDDING = "embedding.word_embeddings.weight";

    private final List<GPTModel> chunks;
    private final Backend backend;
    private final ProcessGroups groups;
    private final boolean overlap;
    private final List<GradBuckets> buckets = new ArrayList<>();
    private final List<FlatShard> shards;        // one per chunk with the distributed optimizer, else null
    private final List<CommHandle[]> handles = new ArrayList<>();
    private final boolean[] armed;               // per chunk: its last backward of the iteration is running

    /**
     * @param distributedOptimizer reduce-scatter into per-rank shards ({@link #shards()}) instead of all-reduce
     * @param overlapGradReduce    start bucket reductions during the last backward ({@link #armLastBackward})
     * @param bucketSize           elements per bucket with overlap ({@code <= 0}: Megatron's default)
     */
    public ParallelGradients(List<GPTModel> chunks, ProcessGroups groups, boolean distributedOptimizer,
                             boolean overlapGradReduce, long bucketSize) {
        this.chunks = List.copyOf(chunks);
        this.backend = chunks.getFirst().backend();
        this.groups = groups;
        this.overlap = overlapGradReduce;
        int dp = groups.dataWithContext().size();
        long size = !overlapGradReduce ? 0 : bucketSize > 0 ? bucketSize : GradBuckets.defaultBucketSize(dp);
        List<FlatShard> sh = new ArrayList<>();
        for (GPTModel model : this.chunks) {
            long shared = sharesEmbedding(model) ? model.parameter(WORD_EMBEDDING).numel() : 0;
            GradBuckets b = GradBuckets.plan(model.parameterStore(), size, dp, shared);
            buckets.add(b);
            handles.add(new CommHandle[b.buckets().size()]);
            sh.add(FlatShard.of(model.parameterStore(), b, groups.dataWithContext().rank(), dp));
        }
        this.shards = distributedOptimizer ? List.copyOf(sh) : null;
        this.armed = new boolean[this.chunks.size()];
        if (overlap) {
            for (GPTModel model : this.chunks) {
                model.setGradReadyListener(this::gradsReadyFrom);
            }
        }
    }

    /** This rank's distributed-optimizer shard of each chunk, or null without the distributed optimizer. */
    public List<FlatShard> shards() {
        return shards;
    }

    /**
     * Whether this chunk's word embedding is tied to a copy on another pipeline stage: the output layer's, or with
     * Multi-Token Prediction the last stage's, which its depths embed with (Megatron's finalize_model_grads sums the
     * word embedding's gradients over the embedding group in both cases).
     */
    private boolean sharesEmbedding(GPTModel model) {
        return groups.embedding() != null && groups.embedding().size() > 1
                && (!model.config().untieEmbeddingsAndOutputWeights() || model.config().mtp() != null)
                && (model.chunk().preProcess() || model.chunk().postProcess());
    }

    /** Buckets whose reduction has been issued in the current iteration (all of them during {@link #synchronize}). */
    public int bucketsStarted() {
        int n = 0;
        for (CommHandle[] h : handles) {
            for (CommHandle handle : h) {
                n += handle != null ? 1 : 0;
            }
        }
        return n;
    }

    /** Buckets of all chunks. */
    public int bucketCount() {
        return handles.stream().mapToInt(h -> h.length).sum();
    }

    /** Called by the schedule just before the last backward of {@code chunk} in the iteration. */
    public void armLastBackward(int chunk) {
        armed[chunk] = true;
    }

    private void gradsReadyFrom(GPTModel model, long offset) {
        int c = chunks.indexOf(model);
        if (c < 0 || !armed[c]) {
            return;
        }
        GradBuckets b = buckets.get(c);
        for (int i = 0; i < b.buckets().size(); i++) {
            if (i != b.sharedEmbedding() && b.buckets().get(i).start() >= offset) {
                startBucket(c, i);
            }
        }
    }

    private void startBucket(int c, int i) {
        CommHandle[] h = handles.get(c);
        if (h[i] != null) {
            return;
        }
        Communicator data = groups.dataWithContext();
        if (data.size() == 1) {
            h[i] = CommHandle.completed();
            return;
        }
        GradBuckets.Bucket bucket = buckets.get(c).buckets().get(i);
        Tensor grads = chunks.get(c).parameterStore().flatGrad().view(bucket.start(), bucket.end());
        backend.scale(grads, 1f / data.size());
        if (shards != null) {
            long part = bucket.numel() / data.size();
            h[i] = data.reduceScatterAsync(grads, grads.view(data.rank() * part, (data.rank() + 1) * part), ReduceOp.SUM);
        } else {
            h[i] = data.allReduceAsync(grads, ReduceOp.SUM);
        }
    }

    /** Steps 1-3, after the iteration's last backward and before the norm; resets for the next iteration. */
    public void synchronize() {
        for (int c = 0; c < chunks.size(); c++) {
            GradBuckets b = buckets.get(c);
            for (int i = 0; i < b.buckets().size(); i++) {
                if (i != b.sharedEmbedding()) {
                    startBucket(c, i);
                }
            }
        }
        awaitAll();
        for (GPTModel model : chunks) {
            boolean sp = model.tensorParallelism().sequenceParallel();
            for (ParameterSpec spec : model.parameterSpecs()) {
                // MLA's q_layernorm (over the query latent, whole on every rank) is not a per-head norm: Megatron's
                // finalize_model_grads sums every "q_layernorm" under --qk-layernorm, t times MLA's complete gradient
                // without sequence parallelism; here only the standard attention's head norms are summed.
                boolean headPartial = spec.headPartialGrad() && model.config().mla() == null;
                if (groups.tensor().size() > 1 && (sp && spec.sequenceParallelGrad() || headPartial)) {
                    groups.tensor().allReduce(model.parameter(spec.name()).grad(), ReduceOp.SUM);
                }
            }
        }
        for (int c = 0; c < chunks.size(); c++) {
            int shared = buckets.get(c).sharedEmbedding();
            if (shared >= 0) {
                groups.embedding().allReduce(chunks.get(c).parameter(WORD_EMBEDDING).grad(), ReduceOp.SUM);
                startBucket(c, shared);
            }
        }
        awaitAll();
        for (int c = 0; c < chunks.size(); c++) {
            java.util.Arrays.fill(handles.get(c), null);
            armed[c] = false;
        }
    }

    private void awaitAll() {
        for (CommHandle[] h : handles) {
            for (CommHandle handle : h) {
                if (handle != null) {
                    handle.await();
                }
            }
        }
    }

    /** Whether this rank counts {@code p} of {@code model} in the global norm (each element once over the world). */
    private boolean counted(GPTModel model, Parameter p) {
        if (ParameterSpec.isBuffer(p.name())) {
            return false;      // Megatron's norms and counts cover parameters, not buffers
        }
        ParameterSpec spec = specOf(model, p);
        if (spec.split() == ParameterSpec.TensorSplit.REPLICATED && groups.tensor().rank() != 0) {
            return false;      // the same values live on every TP rank
        }
        // The last stage's copy of a tied word embedding duplicates the first stage's.
        return !(p.name().equals(WORD_EMBEDDING) && !model.chunk().preProcess());
    }

    private static ParameterSpec specOf(GPTModel model, Parameter p) {
        for (ParameterSpec s : model.parameterSpecs()) {
            if (s.name().equals(p.name())) {
                return s;
            }
        }
        throw new IllegalStateException("no spec for parameter " + p.name());
    }

    /** The global L2 norm of the (synchronised) gradients, each element counted once over the world. */
    public double globalNorm() {
        return globalNorm(Parameter::grad);
    }

    /**
     * The global L2 norm of one tensor of every parameter ({@code of}: its gradient, or its fp32 values for
     * Megatron's {@code calc_params_l2_norm}), each element counted once over the world.
     */
    public double globalNorm(java.util.function.Function<Parameter, Tensor> of) {
        return Math.sqrt(sumOverWorld(of, backend::sumOfSquares));
    }

    /**
     * Megatron's {@code count_zeros_fp32} ({@code --log-num-zeros-in-grad}): the gradient elements that are zero,
     * each counted once over the world (a collective).
     */
    public long zerosInGradients() {
        return Math.round(sumOverWorld(Parameter::grad, t -> backend.countZeros(t)));
    }

    /** {@code reduce} of one tensor of every parameter, summed with each element counted once over the world. */
    private double sumOverWorld(java.util.function.Function<Parameter, Tensor> of,
                                java.util.function.ToDoubleFunction<Tensor> reduce) {
        double sum = 0;
        for (int c = 0; c < chunks.size(); c++) {
            GPTModel model = chunks.get(c);
            if (shards == null) {
                for (Parameter p : model.parameters()) {
                    if (counted(model, p)) {
                        sum += reduce.applyAsDouble(of.apply(p));
                    }
                }
            } else {
                for (FlatShard.Segment s : shards.get(c).segments()) {
                    if (counted(model, s.parameter())) {
                        sum += reduce.applyAsDouble(flat(of.apply(s.parameter())).view(s.from(), s.to()));
                    }
                }
            }
        }
        double total = allReduceSum(groups.modelParallel(), sum);
        if (shards != null) {
            total = allReduceSum(groups.dataWithContext(), total);
        }
        return total;
    }

    /**
     * Megatron's clip: scales the gradients this rank's optimizer uses by
     * {@code maxNorm / (norm + 1e-6)} when that is below 1; returns the norm before clipping.
     * {@code maxNorm <= 0} only measures.
     */
    public double clip(double maxNorm) {
        double norm = globalNorm();
        double coefficient = maxNorm / (norm + 1e-6);
        if (maxNorm > 0 && coefficient < 1.0) {
            for (int c = 0; c < chunks.size(); c++) {
                GPTModel model = chunks.get(c);
                if (shards == null) {
                    for (Parameter p : model.parameters()) {
                        backend.scale(p.grad(), (float) coefficient);
                    }
                } else {
                    for (FlatShard.Range r : shards.get(c).ranges()) {
                        backend.scale(model.parameterStore().flatGrad().view(r.start(), r.end()), (float) coefficient);
                    }
                }
            }
        }
        return norm;
    }

    /** The element-wise maximum of {@code values} over a group, in double precision. */
    public static double[] allReduceMax(Communicator group, double[] values) {
        double[] max = new double[values.length];
        Arrays.fill(max, Double.NEGATIVE_INFINITY);
        for (double[] rank : allGather(group, values)) {
            for (int i = 0; i < values.length; i++) {
                max[i] = Math.max(max[i], rank[i]);
            }
        }
        return max;
    }

    /** Every member's {@code values}, by group rank, exactly (an all-gather of the bit patterns). */
    public static double[][] allGather(Communicator group, double[] values) {
        if (group.size() == 1) {
            return new double[][] {values.clone()};
        }
        try (TensorArena arena = TensorArena.named("gather-doubles")) {
            Tensor mine = arena.allocate(DType.I64, values.length);
            for (int i = 0; i < values.length; i++) {
                mine.segment().setAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, i, Double.doubleToRawLongBits(values[i]));
            }
            Tensor all = arena.allocate(DType.I64, (long) group.size() * values.length);
            group.allGather(mine, all);
            double[][] gathered = new double[group.size()][values.length];
            for (int r = 0; r < group.size(); r++) {
                for (int i = 0; i < values.length; i++) {
                    long bits = all.segment().getAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, (long) r * values.length + i);
                    gathered[r][i] = Double.longBitsToDouble(bits);
                }
            }
            return gathered;
        }
    }

    /** Each element of {@code values} summed over a group in double precision, in rank order. */
    public static double[] allReduceSum(Communicator group, double[] values) {
        double[] sum = new double[values.length];
        for (double[] rank : allGather(group, values)) {
            for (int i = 0; i < values.length; i++) {
                sum[i] += rank[i];
            }
        }
        return sum;
    }

    /** A double summed over a group in double precision: all-gather the bit patterns, add in rank order. */
    public static double allReduceSum(Communicator group, double value) {
        if (group.size() == 1) {
            return value;
        }
        try (TensorArena arena = TensorArena.named("norm-reduce")) {
            Tensor mine = arena.allocate(DType.I64, 1);
            mine.segment().set(ValueLayout.JAVA_LONG_UNALIGNED, 0, Double.doubleToRawLongBits(value));
            Tensor all = arena.allocate(DType.I64, group.size());
            group.allGather(mine, all);
            double sum = 0;
            for (int r = 0; r < group.size(); r++) {
                sum += Double.longBitsToDouble(all.segment().getAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, r));
            }
            return sum;
        }
    }

    private static Tensor flat(Tensor t) {
        return t.reshape(t.numel());
    }
}
