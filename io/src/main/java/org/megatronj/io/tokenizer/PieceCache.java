package org.megatronj.io.tokenizer;

import java.util.Arrays;

/**
 * The BPE result of each distinct pre-token piece, looked up by the piece's chars in place (no
 * substring per lookup). One cache per thread; it empties itself when full, so memory stays
 * bounded on corpora with unbounded vocabularies of words.
 */
final class PieceCache {
    private static final int MAX_PIECE_CHARS = 64;

    private final char[][] keys;
    private final int[] hashes;
    private final int[][] values;
    private final int mask;
    private final int limit;
    private int size;

    PieceCache(int capacityPowerOfTwo) {
        keys = new char[capacityPowerOfTwo][];
        hashes = new int[capacityPowerOfTwo];
        values = new int[capacityPowerOfTwo][];
        mask = capacityPowerOfTwo - 1;
        limit = capacityPowerOfTwo / 2;
    }

    static boolean cacheable(int start, int end) {
        return end - start <= MAX_PIECE_CHARS;
    }

    static int hash(char[] text, int start, int end) {
        int h = 0;
        for (int i = start; i < end; i++) h = 31 * h + text[i];
        return h ^ (h >>> 16);
    }

    int[] get(char[] text, int start, int end, int hash) {
        int s = hash & mask;
        int len = end - start;
        while (true) {
            char[] k = keys[s];
            if (k == null) return null;
            if (hashes[s] == hash && k.length == len && Arrays.equals(k, 0, len, text, start, end)) return values[s];
            s = (s + 1) & mask;
        }
    }

    void put(char[] text, int start, int end, int hash, int[] ids) {
        if (size >= limit) {
            Arrays.fill(keys, null);
            Arrays.fill(values, null);
            size = 0;
        }
        int s = hash & mask;
        while (keys[s] != null) s = (s + 1) & mask;
        char[] k = Arrays.copyOfRange(text, start, end);
        keys[s] = k;
        hashes[s] = hash;
        values[s] = ids;
        size++;
    }
}
