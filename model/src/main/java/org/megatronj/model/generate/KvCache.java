package org.megatronj.model.generate;

import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.TransformerConfig;
import org.megatronj.model.layers.KvSlot;

/**
 * Keys and values of every layer for {@code maxSequence} positions of {@code batchSize}
 * sequences, allocated once: per layer {@code [maxSequence, b, ng, d]} K and V (after rope).
 * GQA/MQA shrink it by {@code np / ng}.
 */
public final class KvCache implements AutoCloseable {
    private final TensorArena arena = TensorArena.named("kv-cache");
    private final KvSlot[] slots;
    private final int maxSequence;
    private final int batchSize;

    public KvCache(Backend backend, TransformerConfig config, int maxSequence, int batchSize) {
        if (maxSequence < 1 || maxSequence > config.maxPositionEmbeddings()) {
            throw new IllegalArgumentException("KV cache length " + maxSequence + " must be in [1, --max-position-embeddings "
                    + config.maxPositionEmbeddings() + "]");
        }
        this.maxSequence = maxSequence;
        this.batchSize = batchSize;
        this.slots = new KvSlot[config.numLayers()];
        long g = config.numQueryGroups();
        long d = config.kvChannels();
        for (int l = 0; l < slots.length; l++) {
            slots[l] = new KvSlot(backend.allocate(arena, DType.F32, maxSequence, batchSize, g, d),
                    backend.allocate(arena, DType.F32, maxSequence, batchSize, g, d));
        }
    }

    public KvSlot layer(int l) {
        return slots[l];
    }

    public int maxSequence() {
        return maxSequence;
    }

    public int batchSize() {
        return batchSize;
    }

    /** Bytes held (both K and V, all layers). */
    public long bytes() {
        return arena.bytesAllocated();
    }

    @Override
    public void close() {
        arena.close();
    }
}
