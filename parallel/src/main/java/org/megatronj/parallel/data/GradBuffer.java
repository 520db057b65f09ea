package org.megatronj.parallel.data;

import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

/**
 * One contiguous fp32 buffer holding every parameter's main gradient (Megatron's
 * {@code main_grad}), laid out by a {@link GradBufferLayout}. Parameters' gradient tensors are
 * views into it, so backward accumulates straight into the buckets that
 * {@link GradReducer} reduces; the padding stays zero.
 */
public final class GradBuffer implements AutoCloseable {
    private final GradBufferLayout layout;
    private final Backend backend;
    private final TensorArena arena;
    private final Tensor data;

    /** Allocates the zeroed buffer on {@code backend}'s device; freed by {@link #close}. */
    public GradBuffer(GradBufferLayout layout, Backend backend) {
        this.layout = layout;
        this.backend = backend;
        this.arena = new TensorArena("grad-buffer");
        this.data = backend.allocate(arena, DType.F32, layout.numel()); // [numel]
    }

    public GradBufferLayout layout() {
        return layout;
    }

    /** The whole flat buffer, padding included. */
    public Tensor data() {
        return data;
    }

    /** The flat gradient slot of parameter {@code name} (reshape it to the parameter's shape). */
    public Tensor grad(String name) {
        GradBufferLayout.ParamRange r = layout.range(name);
        return data.view(r.start(), r.end());
    }

    /** The flat gradient of parameter {@code name} seen with the parameter's shape. */
    public Tensor grad(String name, long... shape) {
        return grad(name).reshape(shape);
    }

    /** Bucket {@code index}'s elements, padding included. */
    public Tensor bucket(int index) {
        GradBufferLayout.Bucket b = layout.buckets().get(index);
        return data.view(b.start(), b.end());
    }

    /** DP rank {@code dpRank}'s shard of bucket {@code index} (distributed optimizer). */
    public Tensor shard(int index, int dpRank) {
        GradBufferLayout.ShardRange s = layout.shard(index, dpRank);
        return data.view(s.start(), s.end());
    }

    /** Zeroes every gradient: the start of an iteration. */
    public void zero() {
        backend.fill(data, 0f);
    }

    @Override
    public void close() {
        arena.close();
    }
}
