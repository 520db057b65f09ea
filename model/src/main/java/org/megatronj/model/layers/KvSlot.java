package org.megatronj.model.layers;

import org.megatronj.memory.Tensor;

/**
 * One layer's key/value cache for incremental decoding: keys and values (after rope) of every
 * position so far, {@code [maxSeq, b, ng, d]} each. A forward at positions {@code [start, start + s)}
 * writes rows {@code [start, start + s)} and attends over rows {@code [0, start + s)}.
 */
public record KvSlot(Tensor keys, Tensor values) {
}
