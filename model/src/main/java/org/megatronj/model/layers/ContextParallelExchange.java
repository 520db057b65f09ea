package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.parallel.ContextParallelism;

/**
 * The keys and values of a whole sequence under context parallelism, Megatron's {@code --cp-comm-type allgather}:
 * every CP rank all-gathers the local key (or value) chunks of the others and puts the {@code 2 C} chunks back in
 * sequence order; in backward the full-length key and value gradients are summed over the group and each rank keeps
 * its own two chunks (the inverse reordering, then a reduce-scatter).
 *
 * <p>Scratch shared by all attention layers of a model: nothing here survives from a layer's forward to its
 * backward (backward gathers the keys and values again from the layer's saved local chunks, so a layer keeps only
 * its local share, as without context parallelism). The buffers follow the shape of the last call.
 */
public final class ContextParallelExchange implements AutoCloseable {
    private final Backend backend;
    private final ContextParallelism cp;
    private TensorArena arena;
    private long[] localShape;
    private DType dtype;
    private Tensor rankOrder;        // [C sl, b, ng, d]: the collectives' layout, rank r's two chunks at rows 2r, 2r + 1
    private Tensor keys;             // [S, b, ng, d] in sequence order
    private Tensor values;
    private Tensor keyGrads;         // [S, b, ng, d]: dK summed over this rank's query chunks
    private Tensor valueGrads;
    private Tensor keyGradPrefix;    // [S, b, ng, d]: one query chunk's dK over its key prefix, before the sum
    private Tensor valueGradPrefix;

    public ContextParallelExchange(Backend backend, ContextParallelism cp) {
        if (!cp.active()) {
            throw new IllegalArgumentException("a context-parallel exchange needs more than one context-parallel rank");
        }
        this.backend = backend;
        this.cp = cp;
    }

    public ContextParallelism contextParallelism() {
        return cp;
    }

    /** Gathers the keys and values of the whole sequence from every rank's local chunks {@code [sl, b, ng, d]}. */
    void gather(Tensor localKeys, Tensor localValues) {
        plan(localKeys);
        gatherInSequenceOrder(localKeys, keys);
        gatherInSequenceOrder(localValues, values);
    }

    /** {@code [0, length)} of the sequence's keys (after {@link #gather}). */
    Tensor keyPrefix(long length) {
        return keys.view(0, length);
    }

    Tensor valuePrefix(long length) {
        return values.view(0, length);
    }

    /** Zeroes the full-length key and value gradients before the query chunks add theirs. */
    void startGradients() {
        backend.fill(keyGrads, 0f);
        backend.fill(valueGrads, 0f);
    }

    /** Where attention's backward writes the key gradients of a prefix of {@code length} keys. */
    Tensor keyGradPrefix(long length) {
        return keyGradPrefix.view(0, length);
    }

    Tensor valueGradPrefix(long length) {
        return valueGradPrefix.view(0, length);
    }

    /** Adds the prefix gradients just written ({@link #keyGradPrefix}) into the full-length sums. */
    void accumulatePrefix(long length) {
        backend.add(keyGrads.view(0, length), keyGradPrefix.view(0, length), keyGrads.view(0, length));
        backend.add(valueGrads.view(0, length), valueGradPrefix.view(0, length), valueGrads.view(0, length));
    }

    /** dk, dv {@code [sl, b, ng, d]} (written): this rank's chunks of the key and value gradients summed over the group. */
    void reduceScatterGradients(Tensor localKeyGrads, Tensor localValueGrads) {
        reduceScatterFromSequenceOrder(keyGrads, localKeyGrads);
        reduceScatterFromSequenceOrder(valueGrads, localValueGrads);
    }

    private void gatherInSequenceOrder(Tensor local, Tensor full) {
        cp.group().allGatherFirstDim(local, rankOrder);
        long chunk = local.dim(0) / ContextParallelism.LOCAL_CHUNKS;
        forEachChunk(chunk, (rankRows, sequenceRows) -> backend.copy(rankOrder.view(rankRows, rankRows + chunk),
                full.view(sequenceRows, sequenceRows + chunk)));
    }

    private void reduceScatterFromSequenceOrder(Tensor full, Tensor local) {
        long chunk = local.dim(0) / ContextParallelism.LOCAL_CHUNKS;
        forEachChunk(chunk, (rankRows, sequenceRows) -> backend.copy(full.view(sequenceRows, sequenceRows + chunk),
                rankOrder.view(rankRows, rankRows + chunk)));
        cp.group().reduceScatterFirstDim(rankOrder, local);
    }

    @FunctionalInterface
    private interface ChunkPlacement {
        void place(long rankOrderRow, long sequenceRow);
    }

    /** Each of the 2C chunks: its first row in the collectives' rank order and in the sequence. */
    private void forEachChunk(long chunk, ChunkPlacement placement) {
        int size = cp.size();
        for (int r = 0; r < size; r++) {
            for (int j = 0; j < ContextParallelism.LOCAL_CHUNKS; j++) {
                long rankRow = (long) (r * ContextParallelism.LOCAL_CHUNKS + j) * chunk;
                placement.place(rankRow, ContextParallelism.globalChunk(r, size, j) * chunk);
            }
        }
    }

    private void plan(Tensor local) {
        if (arena != null && java.util.Arrays.equals(localShape, local.shape()) && dtype == local.dtype()) {
            return;
        }
        close();
        if (local.dim(0) % ContextParallelism.LOCAL_CHUNKS != 0) {
            throw new IllegalArgumentException("context parallelism: a rank's " + local.dim(0)
                    + " positions are not its two equal chunks");
        }
        localShape = local.shape().clone();
        dtype = local.dtype();
        long[] full = localShape.clone();
        full[0] *= cp.size();
        arena = TensorArena.named("context-parallel-kv");
        rankOrder = backend.allocate(arena, dtype, full);
        keys = backend.allocate(arena, dtype, full);
        values = backend.allocate(arena, dtype, full);
        keyGrads = backend.allocate(arena, dtype, full);
        valueGrads = backend.allocate(arena, dtype, full);
        keyGradPrefix = backend.allocate(arena, dtype, full);
        valueGradPrefix = backend.allocate(arena, dtype, full);
    }

    @Override
    public void close() {
        if (arena != null) {
            backend.synchronize();   // queued collectives and copies may still read the buffers
            arena.close();
            arena = null;
        }
    }
}
