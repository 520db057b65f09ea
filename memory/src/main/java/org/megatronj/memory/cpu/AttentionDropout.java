package org.megatronj.memory.cpu;

/**
 * Dropout on the attention probabilities: drop probability {@code p}, the Philox key and counter
 * start {@code (seed, offset)}, and the keep scale {@code 1 / (1 - p)} computed once in float as
 * {@link Philox} defines. Probability {@code (h, b, i, j)} is stream element
 * {@code offset + ((h * batch + b) * s + i) * sk + j} ({@link #rowElement}), whatever the tiling.
 */
record AttentionDropout(float p, long seed, long offset, float scale) {

    /** The dropout of probability p, or null for p = 0 (the kernels then run exactly as without dropout). */
    static AttentionDropout of(float p, long seed, long offset) {
        return p == 0f ? null : new AttentionDropout(p, seed, offset, 1f / (1f - p));
    }

    /** The stream element of probability {@code (h, b, i, 0)}; key column j adds j. */
    long rowElement(AttentionShape a, int b, int h, int i) {
        return offset + (((long) h * a.batch() + b) * a.s() + i) * a.sk();
    }

    /** {@code z[zOff + j]} = the multiplier (0 or scale) of key columns {@code [from, from + n)} of row {@code (b, h, i)}. */
    void mask(AttentionShape a, int b, int h, int i, int from, float[] z, int zOff, int n) {
        Philox.mask(seed, rowElement(a, b, h, i) + from, z, zOff, n, p, scale);
    }
}
