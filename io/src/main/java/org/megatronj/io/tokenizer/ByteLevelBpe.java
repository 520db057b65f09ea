package org.megatronj.io.tokenizer;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Byte-level BPE over one pre-tokenized piece: the piece is UTF-8 encoded, its bytes become
 * symbols (GPT-2's {@link ByteLevel} characters), and merges are applied lowest rank first, every
 * occurrence of the chosen pair left to right, as OpenAI's {@code encoder.py} and the Hugging Face
 * {@code tokenizers} BPE model do. With {@code ignoreMerges} (Hugging Face's {@code ignore_merges},
 * Llama 3's tokenizer) a piece that is itself a vocabulary entry is that entry, merges or not.
 *
 * <p>Symbols are ints (a vocabulary string's index), merges a primitive hash table, and the
 * result of each piece is cached per thread, so common words cost one hash lookup.
 */
final class ByteLevelBpe {
    private static final int CACHE_SLOTS = 1 << 17;

    private final String source;
    private final boolean ignoreMerges;
    private final Map<String, Integer> vocab;
    /** Symbol index -> vocabulary id (-1: a string only merges produce, absent from the vocabulary). */
    private final int[] symbolToId;
    private final String[] symbolText;
    private final int[] byteSymbol = new int[256];
    private final byte[][] idToBytes;
    private final PairRankTable merges;
    private final ThreadLocal<PieceCache> cache = ThreadLocal.withInitial(() -> new PieceCache(CACHE_SLOTS));
    private final ThreadLocal<Scratch> scratch = ThreadLocal.withInitial(Scratch::new);

    /**
     * @param vocab  vocabulary string (in {@link ByteLevel} characters) to id
     * @param merges pairs of vocabulary strings, by rank
     * @param source the file they came from, for error messages
     */
    ByteLevelBpe(Map<String, Integer> vocab, List<String[]> merges, boolean ignoreMerges, String source) {
        this.source = source;
        this.ignoreMerges = ignoreMerges;
        this.vocab = vocab;
        int maxId = -1;
        for (int id : vocab.values()) maxId = Math.max(maxId, id);
        Map<String, Integer> symbols = new HashMap<>(vocab.size() * 2);
        List<String> texts = new ArrayList<>(vocab.size() + 16);
        List<Integer> ids = new ArrayList<>(vocab.size() + 16);
        idToBytes = new byte[maxId + 1][];
        for (var e : vocab.entrySet()) {
            symbols.put(e.getKey(), texts.size());
            texts.add(e.getKey());
            ids.add(e.getValue());
            idToBytes[e.getValue()] = ByteLevel.decode(e.getKey());
        }
        for (int b = 0; b < 256; b++) {
            byteSymbol[b] = symbol(String.valueOf(ByteLevel.byteToChar(b)), symbols, texts, ids);
        }
        this.merges = new PairRankTable(merges.size());
        for (int rank = 0; rank < merges.size(); rank++) {
            String[] m = merges.get(rank);
            int left = symbol(m[0], symbols, texts, ids);
            int right = symbol(m[1], symbols, texts, ids);
            this.merges.put(left, right, rank, symbol(m[0] + m[1], symbols, texts, ids));
        }
        this.symbolToId = ids.stream().mapToInt(Integer::intValue).toArray();
        this.symbolText = texts.toArray(String[]::new);
    }

    private static int symbol(String s, Map<String, Integer> symbols, List<String> texts, List<Integer> ids) {
        return symbols.computeIfAbsent(s, k -> {
            texts.add(k);
            ids.add(-1);
            return texts.size() - 1;
        });
    }

    /** The id of a vocabulary string, or null. */
    Integer id(String token) {
        return vocab.get(token);
    }

    /** One past the largest id. */
    int idLimit() {
        return idToBytes.length;
    }

    /** The bytes of one vocabulary id, or null when no entry has it. */
    byte[] bytes(int id) {
        return id >= 0 && id < idToBytes.length ? idToBytes[id] : null;
    }

    /** Appends the ids of the piece {@code text[start, end)}. */
    void encode(char[] text, int start, int end, IntList out) {
        if (!PieceCache.cacheable(start, end)) {
            out.addAll(encodePiece(text, start, end, scratch.get()));
            return;
        }
        PieceCache pieces = cache.get();
        int h = PieceCache.hash(text, start, end);
        int[] ids = pieces.get(text, start, end, h);
        if (ids == null) {
            ids = encodePiece(text, start, end, scratch.get());
            pieces.put(text, start, end, h, ids);
        }
        out.addAll(ids);
    }

    /** Appends the ids of the whole string {@code piece}. */
    void encode(String piece, IntList out) {
        char[] chars = scratch.get().chars(piece.length());
        piece.getChars(0, piece.length(), chars, 0);
        encode(chars, 0, piece.length(), out);
    }

    private int[] encodePiece(char[] text, int start, int end, Scratch s) {
        int length = ByteLevel.utf8(text, start, end, s);
        if (ignoreMerges) {
            StringBuilder word = new StringBuilder(length);
            for (int k = 0; k < length; k++) word.append(ByteLevel.byteToChar(s.bytes[k] & 0xFF));
            Integer whole = vocab.get(word.toString());
            if (whole != null) {
                return new int[] {whole};
            }
        }
        int[] word = s.word(length);
        for (int k = 0; k < length; k++) word[k] = byteSymbol[s.bytes[k] & 0xFF];
        int count = applyMerges(word, length);
        int[] ids = new int[count];
        for (int k = 0; k < count; k++) {
            ids[k] = symbolToId[word[k]];
            if (ids[k] < 0) {
                throw new TokenizerException("BPE produced the symbol '" + symbolText[word[k]] + "' for '" + new String(text, start, end - start)
                        + "', which the vocabulary of " + source + " does not contain: its vocabulary and merges do not belong together");
            }
        }
        return ids;
    }

    /**
     * Applies merges in place: repeatedly take the lowest-ranked adjacent pair and merge all its
     * occurrences left to right; returns the new length.
     */
    private int applyMerges(int[] word, int length) {
        while (length > 1) {
            long best = Long.MAX_VALUE;
            for (int k = 0; k + 1 < length; k++) {
                long m = merges.get(word[k], word[k + 1]);
                if (m != PairRankTable.ABSENT && m < best) best = m;
            }
            if (best == Long.MAX_VALUE) break;
            long bestPair = best;
            int left = -1, right = -1;
            for (int k = 0; k + 1 < length; k++) {
                if (merges.get(word[k], word[k + 1]) == bestPair) {
                    left = word[k];
                    right = word[k + 1];
                    break;
                }
            }
            int merged = (int) best;
            int w = 0;
            for (int k = 0; k < length; ) {
                if (k + 1 < length && word[k] == left && word[k + 1] == right) {
                    word[w++] = merged;
                    k += 2;
                } else {
                    word[w++] = word[k++];
                }
            }
            length = w;
        }
        return length;
    }

    /** Per-thread buffers of the encoder. */
    static final class Scratch {
        byte[] bytes = new byte[256];
        int[] word = new int[256];
        char[] chars = new char[4096];
        final IntList ids = new IntList(1024);

        char[] chars(int length) {
            if (chars.length < length) chars = new char[Math.max(length, chars.length * 2)];
            return chars;
        }

        int[] word(int length) {
            if (word.length < length) word = new int[length * 2];
            return word;
        }
    }
}
