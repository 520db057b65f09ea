package org.megatronj.parallel.data;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.megatronj.memory.Backend;
import org.megatronj.parallel.comm.CommException;
import org.megatronj.parallel.comm.CommHandle;
import org.megatronj.parallel.comm.Communicator;
import org.megatronj.parallel.comm.ReduceOp;

/**
 * Data-parallel gradient reduction over the buckets of a {@link GradBuffer}, as Megatron's
 * {@code DistributedDataParallel}: each bucket is scaled by 1/DP (so the sum is the average over
 * DP ranks) and then all-reduced, or, with the distributed optimizer, reduce-scattered so that
 * each DP rank ends with the averaged gradients of its own shard.
 *
 * <p>Without {@code --overlap-grad-reduce} the trainer calls {@link #finishGradSync} after the last
 * backward, which reduces every bucket. With it, backward calls {@link #registerGradReady} as
 * each parameter's gradient becomes final (last micro-batch only), a bucket's reduction starts
 * asynchronously when all its parameters are ready, and {@link #finishGradSync} waits for them.
 */
public final class GradReducer {
    private final GradBuffer buffer;
    private final Communicator dataParallel;
    private final Backend backend;
    private final DdpConfig config;
    private final List<Set<String>> ready = new ArrayList<>();
    private final CommHandle[] handles;
    private boolean lastMicroBatch = true;

    public GradReducer(GradBuffer buffer, Communicator dataParallel, Backend backend, DdpConfig config) {
        GradBufferLayout layout = buffer.layout();
        if (layout.dataParallelSize() != dataParallel.size()) {
            throw new IllegalArgumentException("gradient buffer planned for DP " + layout.dataParallelSize()
                    + " but the data-parallel group '" + dataParallel.name() + "' has " + dataParallel.size() + " ranks");
        }
        if (layout.distributedOptimizer() != config.useDistributedOptimizer()) {
            throw new IllegalArgumentException("gradient buffer planned " + (layout.distributedOptimizer() ? "with" : "without")
                    + " the distributed optimizer but --use-distributed-optimizer is " + config.useDistributedOptimizer());
        }
        this.buffer = buffer;
        this.dataParallel = dataParallel;
        this.backend = backend;
        this.config = config;
        this.handles = new CommHandle[layout.buckets().size()];
        for (int i = 0; i < handles.length; i++) {
            ready.add(new HashSet<>());
        }
    }

    /**
     * Whether the coming backward is the last micro-batch of the iteration. Megatron's
     * {@code no_sync}: gradients of earlier micro-batches only accumulate, so their readiness is
     * not registered.
     */
    public void setLastMicroBatch(boolean last) {
        this.lastMicroBatch = last;
    }

    /** Marks {@code name}'s gradient final; with overlap, starts its bucket's reduction once the bucket is complete. */
    public void registerGradReady(String name) {
        if (!config.overlapGradReduce()) {
            throw new IllegalStateException("registerGradReady('" + name + "') is only used with --overlap-grad-reduce");
        }
        if (!lastMicroBatch) {
            return;
        }
        int bucket = buffer.layout().range(name).bucket();
        Set<String> bucketReady = ready.get(bucket);
        if (!bucketReady.add(name)) {
            throw new IllegalStateException(self() + ": gradient of '" + name + "' registered ready twice in one iteration");
        }
        if (bucketReady.size() == buffer.layout().buckets().get(bucket).params().size()) {
            startBucket(bucket);
        }
    }

    /** Starts the reduction of every bucket not started yet (asynchronously). */
    public void startGradSync() {
        for (int b = 0; b < handles.length; b++) {
            if (handles[b] == null) {
                startBucket(b);
            }
        }
    }

    /**
     * Completes the reduction: without overlap it reduces every bucket now; with overlap every
     * bucket must have been started by {@link #registerGradReady}, and this waits for them.
     */
    public void finishGradSync() {
        if (!config.overlapGradReduce()) {
            startGradSync();
        }
        for (int b = 0; b < handles.length; b++) {
            if (handles[b] == null) {
                GradBufferLayout.Bucket bucket = buffer.layout().buckets().get(b);
                List<String> missing = new ArrayList<>(bucket.params());
                missing.removeAll(ready.get(b));
                throw new CommException(self() + ": gradient reduction of bucket " + b + " was never started: " + ready.get(b).size()
                        + "/" + bucket.params().size() + " parameters registered ready; missing " + missing);
            }
        }
        CommHandle.awaitAll(List.of(handles));
    }

    /** Forgets readiness and handles, and zeroes the gradients: the start of an iteration. */
    public void reset() {
        for (int b = 0; b < handles.length; b++) {
            handles[b] = null;
            ready.get(b).clear();
        }
        lastMicroBatch = true;
        buffer.zero();
    }

    private void startBucket(int b) {
        if (handles[b] != null) {
            return;
        }
        var grads = buffer.bucket(b);
        if (dataParallel.size() > 1) {
            backend.scale(grads, 1f / dataParallel.size());
        }
        handles[b] = config.useDistributedOptimizer()
                ? dataParallel.reduceScatterAsync(grads, buffer.shard(b, dataParallel.rank()), ReduceOp.SUM)
                : dataParallel.allReduceAsync(grads, ReduceOp.SUM);
    }

    private String self() {
        return dataParallel.describeMember(dataParallel.rank());
    }

    /** True once bucket {@code b}'s reduction was issued. */
    public boolean started(int b) {
        return handles[b] != null;
    }
}
