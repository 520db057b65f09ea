package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;
import org.megatronj.model.parallel.ContextParallelism;

/**
 * Core attention of one layer when the sequence is split over the context-parallel group
 * ({@link ContextParallelism}): this rank holds queries, keys and values of its two chunks, {@code r} and
 * {@code 2C - 1 - r} of the {@code 2C} equal chunks. The keys and values of the whole sequence are all-gathered
 * ({@link ContextParallelExchange}); the queries of global chunk g attend to keys {@code [0, (g + 1) c)} with the
 * causal flag: attention's bottom-right alignment ({@code Backend#attentionForward}: query i sees keys
 * {@code j <= i + (sk - s)}) then makes query i of the chunk see exactly the keys up to its global position
 * {@code g c + i}. The result equals the attention of the whole sequence row for row.
 *
 * <p>Backward runs each chunk's attention backward, whose key and value gradients cover its key prefix; they are
 * summed over the chunks and over the group and scattered back to the chunks' owners.
 *
 * <p>Rope rotates each local chunk by its global positions. Attention-probability dropout draws masks of its own
 * for each (CP rank, chunk): not the masks of a run without context parallelism (whose counters follow the whole
 * {@code [s, s]} score matrix), independent and reproducible all the same.
 */
public final class ContextParallelAttention {
    /** Counters between the dropout masks of a rank's two query chunks: half of a layer's range. */
    static final long CHUNK_DROPOUT_STRIDE = DropoutKey.PROBS_STRIDE / ContextParallelism.LOCAL_CHUNKS;

    private final Backend backend;
    private final ContextParallelExchange exchange;
    private final ContextParallelism cp;
    private final float softmaxScale;
    private final float attentionDropout;
    private final long firstHead;

    /** {@code firstHead}: the global index of this rank's first query head (for the dropout counters). */
    public ContextParallelAttention(Backend backend, ContextParallelExchange exchange, float softmaxScale,
                                    float attentionDropout, long firstHead) {
        this.backend = backend;
        this.exchange = exchange;
        this.cp = exchange.contextParallelism();
        this.softmaxScale = softmaxScale;
        this.attentionDropout = attentionDropout;
        this.firstHead = firstHead;
    }

    /** x {@code [sl, b, heads, d]} rotated in place, each local chunk by its global positions. */
    void ropeForward(RotaryEmbedding rope, Tensor x) {
        long chunk = chunkLength(x);
        for (int j = 0; j < ContextParallelism.LOCAL_CHUNKS; j++) {
            rope.forward(x.view(j * chunk, (j + 1) * chunk), Math.toIntExact(cp.globalChunk(j) * chunk));
        }
    }

    /** The inverse of {@link #ropeForward} on a gradient. */
    void ropeBackward(RotaryEmbedding rope, Tensor dx) {
        long chunk = chunkLength(dx);
        for (int j = 0; j < ContextParallelism.LOCAL_CHUNKS; j++) {
            rope.backward(dx.view(j * chunk, (j + 1) * chunk), Math.toIntExact(cp.globalChunk(j) * chunk));
        }
    }

    /**
     * q {@code [sl, b, np, d]}, k and v {@code [sl, b, ng, d]} (this rank's chunks, after rope) -> out
     * {@code [sl, b, np, d]} and lse (F32, {@code b np sl} flat: each chunk's {@code [b, np, c]} in turn) written.
     * {@code probsKey}: the layer's attention-probabilities dropout key, null = no dropout.
     */
    void forward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, DropoutKey probsKey) {
        exchange.gather(k, v);
        long chunk = chunkLength(q);
        for (int j = 0; j < ContextParallelism.LOCAL_CHUNKS; j++) {
            long keys = keysSeenBy(j, chunk);
            Tensor qj = q.view(j * chunk, (j + 1) * chunk);
            backend.attentionForward(qj, exchange.keyPrefix(keys), exchange.valuePrefix(keys),
                    out.view(j * chunk, (j + 1) * chunk), lseOf(lse, q, j), softmaxScale, true, null, null,
                    dropout(probsKey), seed(probsKey), offset(probsKey, j, qj, keys));
        }
    }

    /** Gradients of {@link #forward}: dq {@code [sl, b, np, d]}, dk and dv {@code [sl, b, ng, d]} written. */
    void backward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Tensor dq, Tensor dk, Tensor dv,
                  DropoutKey probsKey) {
        exchange.gather(k, v);
        exchange.startGradients();
        long chunk = chunkLength(q);
        for (int j = 0; j < ContextParallelism.LOCAL_CHUNKS; j++) {
            long keys = keysSeenBy(j, chunk);
            Tensor qj = q.view(j * chunk, (j + 1) * chunk);
            backend.attentionBackward(dOut.view(j * chunk, (j + 1) * chunk), qj, exchange.keyPrefix(keys),
                    exchange.valuePrefix(keys), out.view(j * chunk, (j + 1) * chunk), lseOf(lse, q, j),
                    dq.view(j * chunk, (j + 1) * chunk), exchange.keyGradPrefix(keys), exchange.valueGradPrefix(keys),
                    softmaxScale, true, null, null, dropout(probsKey), seed(probsKey), offset(probsKey, j, qj, keys));
            exchange.accumulatePrefix(keys);
        }
        exchange.reduceScatterGradients(dk, dv);
    }

    /** Keys up to the end of local chunk j's global chunk: all that its queries may see. */
    private long keysSeenBy(int j, long chunk) {
        return (cp.globalChunk(j) + 1L) * chunk;
    }

    private static long chunkLength(Tensor x) {
        if (x.dim(0) % ContextParallelism.LOCAL_CHUNKS != 0) {
            throw new IllegalArgumentException("context parallelism: " + x.dim(0) + " local positions are not two equal chunks");
        }
        return x.dim(0) / ContextParallelism.LOCAL_CHUNKS;
    }

    /** Chunk j's log-sum-exp {@code [b, np, c]}: the j-th half of the flat buffer. */
    private static Tensor lseOf(Tensor lse, Tensor q, int j) {
        long half = lse.numel() / ContextParallelism.LOCAL_CHUNKS;
        return lse.reshape(-1).view(j * half, (j + 1) * half).reshape(q.dim(1), q.dim(2), q.dim(0) / ContextParallelism.LOCAL_CHUNKS);
    }

    private float dropout(DropoutKey key) {
        return key == null ? 0f : attentionDropout;
    }

    private static long seed(DropoutKey key) {
        return key == null ? 0L : key.seed();
    }

    /** Counter of probability (head 0, batch 0, row 0, key 0) of local chunk j: its own half of the layer's range. */
    private long offset(DropoutKey key, int j, Tensor qj, long keys) {
        return key == null ? 0L : key.offset() + j * CHUNK_DROPOUT_STRIDE + firstHead * qj.dim(1) * qj.dim(0) * keys;
    }
}
