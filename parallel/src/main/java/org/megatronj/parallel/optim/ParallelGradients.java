package org.megatronj.parallel.optim;

import java.lang.foreign.ValueLayout;
import java.util.List;
import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.GPTModel;
import org.megatronj.model.Parameter;
import org.megatronj.model.ParameterSpec;
import org.megatronj.parallel.comm.Communicator;
import org.megatronj.parallel.comm.ProcessGroups;
import org.megatronj.parallel.comm.ReduceOp;

/**
 * What happens to one rank's gradients between the last backward of an iteration and the
 * optimizer step, as Megatron's {@code finalize_model_grads} and {@code clip_grad_norm}:
 * <ol>
 *   <li>sequence parallelism: the norm weights/biases and row-parallel biases, computed from each
 *       rank's sequence shard, are summed over the TP group;</li>
 *   <li>tied embeddings across pipeline stages: the word-embedding gradients of the first and
 *       last stage are summed over the embedding group;</li>
 *   <li>data parallelism: the flat gradient buffer is scaled by 1/DP and all-reduced (the mean over
 *       DP ranks), or reduce-scattered so that each rank holds the mean of its own shard
 *       (distributed optimizer);</li>
 *   <li>the global gradient norm: each gradient element counted once over the whole world
 *       (TP-replicated parameters on TP rank 0 only, the tied output weight on the first stage
 *       only, with the distributed optimizer each rank's shard), then clipping.</li>
 * </ol>
 */
public final class ParallelGradients {
    private final List<GPTModel> chunks;
    private final Backend backend;
    private final ProcessGroups groups;
    private final List<FlatShard> shards;       // one per chunk with the distributed optimizer, else null

    /**
     * @param chunks this rank's model chunks (one without virtual pipeline stages)
     * @param shards this rank's distributed-optimizer shard of each chunk's store, or null to
     *        all-reduce every gradient
     */
    public ParallelGradients(List<GPTModel> chunks, ProcessGroups groups, List<FlatShard> shards) {
        if (shards != null && shards.size() != chunks.size()) {
            throw new IllegalArgumentException(shards.size() + " optimizer shards for " + chunks.size() + " model chunks");
        }
        this.chunks = List.copyOf(chunks);
        this.backend = chunks.getFirst().backend();
        this.groups = groups;
        this.shards = shards == null ? null : List.copyOf(shards);
    }

    /** Whether this rank counts {@code p} of {@code model} in the global norm (each element once over the world). */
    private boolean counted(GPTModel model, Parameter p) {
        ParameterSpec spec = specOf(model, p);
        if (spec.split() == ParameterSpec.TensorSplit.REPLICATED && groups.tensor().rank() != 0) {
            return false;      // the same values live on every TP rank
        }
        // The last stage's copy of a tied word embedding duplicates the first stage's.
        return !(p.name().equals(WORD_EMBEDDING) && !model.chunk().preProcess());
    }

    private static final String WORD_EMBEDDING = "embedding.word_embeddings.weight";

    private static ParameterSpec specOf(GPTModel model, Parameter p) {
        for (ParameterSpec s : model.parameterSpecs()) {
            if (s.name().equals(p.name())) {
                return s;
            }
        }
        throw new IllegalStateException("no spec for parameter " + p.name());
    }

    /** Steps 1-3: after the last micro-batch's backward, before the norm. */
    public void synchronize() {
        for (GPTModel model : chunks) {
            if (model.tensorParallelism().sequenceParallel()) {
                for (ParameterSpec spec : model.parameterSpecs()) {
                    if (spec.sequenceParallelGrad()) {
                        groups.tensor().allReduce(model.parameter(spec.name()).grad(), ReduceOp.SUM);
                    }
                }
            }
        }
        Communicator embedding = groups.embedding();
        if (embedding != null && embedding.size() > 1 && !chunks.getFirst().config().untieEmbeddingsAndOutputWeights()) {
            // First stage: chunk 0 holds the embedding; last stage: the last chunk holds the output copy.
            GPTModel holder = groups.pipeline().rank() == 0 ? chunks.getFirst() : chunks.getLast();
            embedding.allReduce(holder.parameter(WORD_EMBEDDING).grad(), ReduceOp.SUM);
        }
        Communicator data = groups.data();
        if (data.size() > 1) {
            for (int c = 0; c < chunks.size(); c++) {
                Tensor flat = chunks.get(c).parameterStore().flatGrad();
                backend.scale(flat, 1f / data.size());
                if (shards != null) {
                    FlatShard shard = shards.get(c);
                    data.reduceScatter(flat, flat.view(shard.start(), shard.end()), ReduceOp.SUM);
                } else {
                    data.allReduce(flat, ReduceOp.SUM);
                }
            }
        }
    }

    /** The global L2 norm of the (synchronised) gradients, each element counted once over the world. */
    public double globalNorm() {
        double sum = 0;
        for (int c = 0; c < chunks.size(); c++) {
            GPTModel model = chunks.get(c);
            if (shards == null) {
                for (Parameter p : model.parameters()) {
                    if (counted(model, p)) {
                        sum += backend.sumOfSquares(p.grad());
                    }
                }
            } else {
                for (FlatShard.Segment s : shards.get(c).segments()) {
                    if (counted(model, s.parameter())) {
                        sum += backend.sumOfSquares(flat(s.parameter().grad()).view(s.from(), s.to()));
                    }
                }
            }
        }
        double total = allReduceSum(groups.modelParallel(), sum);
        if (shards != null) {
            total = allReduceSum(groups.data(), total);
        }
        return Math.sqrt(total);
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
                    FlatShard shard = shards.get(c);
                    backend.scale(model.parameterStore().flatGrad().view(shard.start(), shard.end()), (float) coefficient);
                }
            }
        }
        return norm;
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
