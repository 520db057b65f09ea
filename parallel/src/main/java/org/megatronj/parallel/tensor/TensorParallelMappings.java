package org.megatronj.parallel.tensor;

import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;
import org.megatronj.parallel.comm.Communicator;

/**
 * The public facade of tensor-parallel communication (Megatron-core's
 * {@code copy_to_tensor_model_parallel_region} etc.) for one rank and its TP group. The mappings
 * come in conjugate pairs, the backward of each being the forward of its partner:
 * <pre>
 *   copyTo  (fwd identity,     bwd all-reduce)      /  reduceFrom (fwd all-reduce,    bwd identity)
 *   scatterTo (fwd split last, bwd gather last)     /  gatherFrom (fwd gather last,   bwd split last)
 *   scatterToSequenceParallel (fwd split first, bwd all-gather first)
 *   gatherFromSequenceParallel (fwd all-gather first, bwd reduce-scatter first, or split when the
 *                               consumer's output gradient is not tensor-parallel)
 *   reduceScatterToSequenceParallel (fwd reduce-scatter first, bwd all-gather first)
 * </pre>
 * A column-parallel linear is {@code copyTo -> local gemm [-> gatherFrom]}; a row-parallel linear
 * {@code [scatterTo ->] local gemm -> reduceFrom}. Under sequence parallelism copyTo becomes
 * gatherFromSequenceParallel and reduceFrom becomes reduceScatterToSequenceParallel.
 *
 * <p>Tensors are {@code [s, b, h]}: "first" is the sequence dim 0, "last" the hidden dim. Not
 * thread-safe: one instance per rank. Holds one scratch buffer, freed by {@link #close}.
 */
public final class TensorParallelMappings implements AutoCloseable {
    private final MappingPrimitives ops;
    private final ScratchBuffer scratch;

    /** Mappings over {@code tensorParallelGroup}, copying and allocating temporaries with {@code backend}. */
    public TensorParallelMappings(Communicator tensorParallelGroup, Backend backend) {
        this.scratch = new ScratchBuffer("tp-mappings-" + tensorParallelGroup.name());
        this.ops = new MappingPrimitives(tensorParallelGroup, backend, scratch);
    }

    public int tensorParallelSize() {
        return ops.size();
    }

    public RegionMapping copyToTensorParallelRegion() {
        return new Pair("copyToTensorParallelRegion", Shape.SAME, ops::copyUnlessSame, ops::reduce);
    }

    public RegionMapping reduceFromTensorParallelRegion() {
        return new Pair("reduceFromTensorParallelRegion", Shape.SAME, ops::reduce, ops::copyUnlessSame);
    }

    public RegionMapping scatterToTensorParallelRegion() {
        return new Pair("scatterToTensorParallelRegion", Shape.SPLIT_LAST, ops::splitAlongLastDim, ops::gatherAlongLastDim);
    }

    public RegionMapping gatherFromTensorParallelRegion() {
        return new Pair("gatherFromTensorParallelRegion", Shape.GATHER_LAST, ops::gatherAlongLastDim, ops::splitAlongLastDim);
    }

    public RegionMapping scatterToSequenceParallelRegion() {
        return new Pair("scatterToSequenceParallelRegion", Shape.SPLIT_FIRST, ops::splitAlongFirstDim, ops::gatherAlongFirstDim);
    }

    /**
     * All-gather of the sequence shards before a tensor-parallel region.
     *
     * @param tensorParallelOutputGrad true when the gradient arriving in backward is a per-rank
     *        partial sum (the consumer is a column-parallel linear): backward reduce-scatters it.
     *        False when it is already complete on every rank: backward just takes this rank's rows.
     */
    public RegionMapping gatherFromSequenceParallelRegion(boolean tensorParallelOutputGrad) {
        return new Pair("gatherFromSequenceParallelRegion", Shape.GATHER_FIRST, ops::gatherAlongFirstDim,
                tensorParallelOutputGrad ? ops::reduceScatterAlongFirstDim : ops::splitAlongFirstDim);
    }

    public RegionMapping reduceScatterToSequenceParallelRegion() {
        return new Pair("reduceScatterToSequenceParallelRegion", Shape.SPLIT_FIRST, ops::reduceScatterAlongFirstDim,
                ops::gatherAlongFirstDim);
    }

    @Override
    public void close() {
        scratch.close();
    }

    // ---------------------------------------------------------------- the pairs

    private interface Step {
        void apply(Tensor input, Tensor output);
    }

    private enum Shape {
        SAME, SPLIT_LAST, GATHER_LAST, SPLIT_FIRST, GATHER_FIRST
    }

    private final class Pair implements RegionMapping {
        private final String name;
        private final Shape shape;
        private final Step forward;
        private final Step backward;

        Pair(String name, Shape shape, Step forward, Step backward) {
            this.name = name;
            this.shape = shape;
            this.forward = forward;
            this.backward = backward;
        }

        @Override
        public String name() {
            return name;
        }

        @Override
        public long[] outputShape(long[] in) {
            int t = ops.size();
            int last = in.length - 1;
            return switch (shape) {
                case SAME -> in.clone();
                case SPLIT_LAST -> MappingPrimitives.withDim(in, last, divide(in[last], t, "last"));
                case GATHER_LAST -> MappingPrimitives.withDim(in, last, in[last] * t);
                case SPLIT_FIRST -> MappingPrimitives.withDim(in, 0, divide(in[0], t, "first"));
                case GATHER_FIRST -> MappingPrimitives.withDim(in, 0, in[0] * t);
            };
        }

        private long divide(long dim, int t, String which) {
            if (dim % t != 0) {
                throw new IllegalArgumentException(name + ": " + which + " dimension " + dim
                        + " is not divisible by the tensor-parallel size " + t);
            }
            return dim / t;
        }

        @Override
        public void forward(Tensor input, Tensor output) {
            forward.apply(input, output);
        }

        @Override
        public void backward(Tensor gradOutput, Tensor gradInput) {
            backward.apply(gradOutput, gradInput);
        }

        @Override
        public String toString() {
            return name;
        }
    }
}
