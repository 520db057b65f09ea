package org.megatronj.io.tokenizer;

/**
 * BPE merge table: (left symbol, right symbol) -> (rank, merged symbol), an open-addressing hash
 * map over primitive longs so the merge loop allocates nothing.
 */
final class PairRankTable {
    static final long ABSENT = -1;

    private long[] keys;
    private long[] values;
    private int size;
    private int mask;

    PairRankTable(int expected) {
        int capacity = Integer.highestOneBit(Math.max(16, expected * 2) - 1) << 1;
        keys = new long[capacity];
        values = new long[capacity];
        java.util.Arrays.fill(keys, -1L);
        mask = capacity - 1;
    }

    private static long key(int left, int right) {
        return ((long) left << 32) | (right & 0xFFFFFFFFL);
    }

    private static int slot(long key, int mask) {
        long h = key * 0x9E3779B97F4A7C15L;
        return (int) (h >>> 35) & mask;
    }

    /** Sets the merge of a pair; a later call for the same pair wins, as in Python's {@code dict(zip(merges, ranks))}. */
    void put(int left, int right, int rank, int merged) {
        if (size * 2 >= keys.length) grow();
        long k = key(left, right);
        int s = slot(k, mask);
        while (keys[s] != -1L && keys[s] != k) s = (s + 1) & mask;
        if (keys[s] == -1L) size++;
        keys[s] = k;
        values[s] = ((long) rank << 32) | (merged & 0xFFFFFFFFL);
    }

    /** {@code rank << 32 | merged}, or {@link #ABSENT}. */
    long get(int left, int right) {
        long k = key(left, right);
        int s = slot(k, mask);
        while (true) {
            long found = keys[s];
            if (found == k) return values[s];
            if (found == -1L) return ABSENT;
            s = (s + 1) & mask;
        }
    }

    private void grow() {
        long[] oldKeys = keys, oldValues = values;
        keys = new long[oldKeys.length * 2];
        values = new long[oldKeys.length * 2];
        java.util.Arrays.fill(keys, -1L);
        mask = keys.length - 1;
        for (int i = 0; i < oldKeys.length; i++) {
            if (oldKeys[i] != -1L) {
                int s = slot(oldKeys[i], mask);
                while (keys[s] != -1L) s = (s + 1) & mask;
                keys[s] = oldKeys[i];
                values[s] = oldValues[i];
            }
        }
    }
}
