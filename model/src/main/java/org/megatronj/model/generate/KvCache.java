package org.megatronj.model.generate;

import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.TransformerConfig;
import org.megatronj.model.layers.HostTransfer;
import org.megatronj.model.layers.KvSlot;

/**
 * Keys and values of every layer for {@code maxSequence} positions of {@code batchSize}
 * sequences, allocated once: per layer {@code [maxSequence, b, ng, d]} K and V (after rope), in
 * the model's compute dtype (F32, or BF16/F16 with {@code --bf16}/{@code --fp16}, half the bytes).
 * GQA/MQA shrink it by {@code np / ng}.
 */
public final class KvCache implements AutoCloseable {
    private final TensorArena arena = TensorArena.named("kv-cache");
    private final Backend backend;
    private final KvSlot[] slots;
    private final int maxSequence;
    private final int batchSize;
    private final DType dtype;

    /** An F32 cache (a model computing in fp32). */
    public KvCache(Backend backend, TransformerConfig config, int maxSequence, int batchSize) {
        this(backend, config, maxSequence, batchSize, DType.F32);
    }

    /** A cache in {@code dtype}: the compute dtype of the model that fills it ({@code model.precision().computeDtype()}). */
    public KvCache(Backend backend, TransformerConfig config, int maxSequence, int batchSize, DType dtype) {
        if (maxSequence < 1 || maxSequence > config.maxPositionEmbeddings()) {
            throw new IllegalArgumentException("KV cache length " + maxSequence + " must be in [1, --max-position-embeddings "
                    + config.maxPositionEmbeddings() + "]");
        }
        this.backend = backend;
        this.maxSequence = maxSequence;
        this.batchSize = batchSize;
        this.dtype = dtype;
        this.slots = new KvSlot[config.numLayers()];
        long g = config.attentionKeyValueHeads();   // MLA: every head's key and (padded) value after the up projection
        long d = config.attentionHeadDim();
        for (int l = 0; l < slots.length; l++) {
            slots[l] = new KvSlot(backend.allocate(arena, dtype, maxSequence, batchSize, g, d),
                    backend.allocate(arena, dtype, maxSequence, batchSize, g, d));
        }
    }

    public KvSlot layer(int l) {
        return slots[l];
    }

    public int maxSequence() {
        return maxSequence;
    }

    /** The dtype of the keys and values. */
    public DType dtype() {
        return dtype;
    }

    public int batchSize() {
        return batchSize;
    }

    /**
     * Beam search: sequence {@code r} continues from what sequence {@code sources[r]} cached, for the
     * first {@code length} positions of every layer's keys and values.
     */
    public void reorder(int[] sources, int length) {
        if (sources.length != batchSize) {
            throw new IllegalArgumentException("KV cache reorder: " + sources.length + " sources for " + batchSize + " sequences");
        }
        if (length < 0 || length > maxSequence) {
            throw new IllegalArgumentException("KV cache reorder: length " + length + " outside [0, " + maxSequence + "]");
        }
        for (int s : sources) {
            if (s < 0 || s >= batchSize) {
                throw new IllegalArgumentException("KV cache reorder: source sequence " + s + " outside [0, " + batchSize + ")");
            }
        }
        if (length == 0) {
            return;
        }
        for (KvSlot slot : slots) {
            permute(slot.keys().view(0, length), sources);
            permute(slot.values().view(0, length), sources);
        }
    }

    private void permute(Tensor kv, int[] sources) {                                        // [len, b, g, d]
        float[] old = HostTransfer.downloadFloats(backend, kv);
        float[] permuted = new float[old.length];
        int row = (int) (old.length / (kv.dim(0) * batchSize));
        for (int p = 0; p < kv.dim(0); p++) {
            int base = p * batchSize * row;
            for (int r = 0; r < batchSize; r++) {
                System.arraycopy(old, base + sources[r] * row, permuted, base + r * row, row);
            }
        }
        HostTransfer.uploadFloats(backend, permuted, kv);
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
