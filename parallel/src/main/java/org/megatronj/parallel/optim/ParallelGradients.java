package org.megatronj.parallel.optim;

import java.lang.foreign.ValueLayout;
import java.util.function.Predicate;
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
    private final GPTModel model;
    private final Backend backend;
    private final ProcessGroups groups;
    private final FlatShard shard;              // null without the distributed optimizer
    private final Predicate<Parameter> counted; // whether this rank counts a parameter in the norm

    /**
     * @param shard this rank's distributed-optimizer shard, or null to all-reduce every gradient
     * @param sharedEmbedding true when this stage's word embedding is tied to a copy on another
     *        pipeline stage (PP &gt; 1 and tied output weights) and this is not the first stage
     */
    public ParallelGradients(GPTModel model, ProcessGroups groups, FlatShard shard, boolean sharedEmbedding) {
        this.model = model;
        this.backend = model.backend();
        this.groups = groups;
        this.shard = shard;
        int tpRank = groups.tensor().rank();
        this.counted = p -> {
            ParameterSpec spec = specOf(p);
            if (spec.split() == ParameterSpec.TensorSplit.REPLICATED && tpRank != 0) {
                return false;
            }
            return !(sharedEmbedding && p.name().equals("embedding.word_embeddings.weight"));
        };
    }

    private ParameterSpec specOf(Parameter p) {
        for (ParameterSpec s : model.parameterSpecs()) {
            if (s.name().equals(p.name())) {
                return s;
            }
        }
        throw new IllegalStateException("no spec for parameter " + p.name());
    }

    /** Steps 1-3: after the last micro-batch's backward, before the norm. */
    public void synchronize() {
        if (model.tensorParallelism().sequenceParallel()) {
            for (ParameterSpec spec : model.parameterSpecs()) {
                if (spec.sequenceParallelGrad()) {
                    groups.tensor().allReduce(model.parameter(spec.name()).grad(), ReduceOp.SUM);
                }
            }
        }
        Communicator embedding = groups.embedding();
        if (embedding != null && embedding.size() > 1 && !model.config().untieEmbeddingsAndOutputWeights()) {
            embedding.allReduce(model.parameter("embedding.word_embeddings.weight").grad(), ReduceOp.SUM);
        }
        Communicator data = groups.data();
        if (data.size() > 1) {
            Tensor flat = model.parameterStore().flatGrad();
            backend.scale(flat, 1f / data.size());
            if (shard != null) {
                data.reduceScatter(flat, flat.view(shard.start(), shard.end()), ReduceOp.SUM);
            } else {
                data.allReduce(flat, ReduceOp.SUM);
            }
        }
    }

    /** The global L2 norm of the (synchronised) gradients, each element counted once over the world. */
    public double globalNorm() {
        double sum = 0;
        if (shard == null) {
            for (Parameter p : model.parameters()) {
                if (counted.test(p)) {
                    sum += backend.sumOfSquares(p.grad());
                }
            }
        } else {
            for (FlatShard.Segment s : shard.segments()) {
                if (counted.test(s.parameter())) {
                    sum += backend.sumOfSquares(flat(s.parameter().grad()).view(s.from(), s.to()));
                }
            }
        }
        double total = allReduceSum(groups.modelParallel(), sum);
        if (shard != null) {
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
            if (shard == null) {
                for (Parameter p : model.parameters()) {
                    backend.scale(p.grad(), (float) coefficient);
                }
            } else {
                backend.scale(model.parameterStore().flatGrad().view(shard.start(), shard.end()), (float) coefficient);
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
