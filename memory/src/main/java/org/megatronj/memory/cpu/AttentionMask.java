package org.megatronj.memory.cpu;

/**
 * The keys each query row of an attention call sees, {@code [start, end)}: causal with the
 * {@code sk - s} offset, up to the key length of its batch entry (padding), and from the key start
 * of its row on (documents, {@code --reset-attention-mask}). Null arrays mean no such mask.
 *
 * @param keyLengths {@code [b]}: keys at or past {@code keyLengths[b]} are hidden
 * @param keyStarts  {@code [b * s]}: query i of entry b sees no key below {@code keyStarts[b * s + i]}
 */
record AttentionMask(boolean causal, int[] keyLengths, int[] keyStarts) {

    /** The first key query i of batch entry b sees. */
    int start(AttentionShape a, int b, int i) {
        return keyStarts == null ? 0 : keyStarts[b * a.s() + i];
    }

    /** One past the last key query i of batch entry b sees. */
    int end(AttentionShape a, int b, int i) {
        int end = keyLength(a, b);
        if (causal) {
            end = (int) Math.min(end, Math.max(0L, (long) i + (a.sk() - a.s()) + 1));
        }
        return Math.max(end, 0);
    }

    /** The keys of batch entry b that any row may see: {@code [0, keyLength)}. */
    int keyLength(AttentionShape a, int b) {
        return keyLengths == null ? a.sk() : keyLengths[b];
    }
}
