package org.megatronj.io.tokenizer;

import org.megatronj.io.JsonErrors;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;

/**
 * GPT-2's byte-level BPE ({@code GPT2BPETokenizer}): text is split by {@link Gpt2PreTokenizer},
 * each piece is UTF-8 encoded, its bytes become symbols, and merges from the merges file are
 * applied lowest rank first, every occurrence of the chosen pair left to right, exactly as
 * OpenAI's {@code encoder.py} and Megatron's {@code gpt2_tokenization.py} do. The text
 * {@code <|endoftext|>} inside a document is ordinary text here, as in those two; the EOD id is
 * only appended by preprocessing.
 *
 * <p>Symbols are ints (a vocabulary string's index), merges a primitive hash table, and the
 * result of each piece is cached per thread, so common words cost one hash lookup.
 */
public final class Gpt2BpeTokenizer implements Tokenizer {
    public static final String EOD_TOKEN = "<|endoftext|>";
    private static final int CACHE_SLOTS = 1 << 17;

    private final int vocabSize;
    private final int eod;
    /** Symbol index -> vocabulary id (-1: a string only merges produce, absent from the vocabulary). */
    private final int[] symbolToId;
    private final String[] symbolText;
    private final int[] byteSymbol = new int[256];
    private final byte[][] idToBytes;
    private final PairRankTable merges;
    private final ThreadLocal<PieceCache> cache = ThreadLocal.withInitial(() -> new PieceCache(CACHE_SLOTS));
    private final ThreadLocal<Scratch> scratch = ThreadLocal.withInitial(Scratch::new);

    private Gpt2BpeTokenizer(Map<String, Integer> vocab, List<String[]> mergeList, Path vocabFile) {
        int maxId = -1;
        for (int id : vocab.values()) maxId = Math.max(maxId, id);
        this.vocabSize = vocab.size();
        Integer eodId = vocab.get(EOD_TOKEN);
        if (eodId == null) {
            throw new TokenizerException(vocabFile + " has no " + EOD_TOKEN + " entry: a GPT-2 vocabulary needs it as the end-of-document token");
        }
        this.eod = eodId;
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
        this.merges = new PairRankTable(mergeList.size());
        for (int rank = 0; rank < mergeList.size(); rank++) {
            String[] m = mergeList.get(rank);
            int left = symbol(m[0], symbols, texts, ids);
            int right = symbol(m[1], symbols, texts, ids);
            merges.put(left, right, rank, symbol(m[0] + m[1], symbols, texts, ids));
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

    /** Loads {@code --vocab-file} (OpenAI's encoder.json) and {@code --merge-file} (vocab.bpe). */
    public static Gpt2BpeTokenizer load(Path vocabFile, Path mergeFile) {
        return new Gpt2BpeTokenizer(readVocab(vocabFile), readMerges(mergeFile), vocabFile);
    }

    @Override
    public String typeName() {
        return "GPT2BPETokenizer";
    }

    @Override
    public int vocabSize() {
        return vocabSize;
    }

    @Override
    public int eod() {
        return eod;
    }

    @Override
    public int[] tokenize(String text) {
        IntList out = scratch.get().ids;
        out.clear();
        tokenize(text, out);
        return out.toArray();
    }

    @Override
    public void tokenize(String text, IntList out) {
        PieceCache pieces = cache.get();
        Scratch s = scratch.get();
        int n = text.length();
        char[] chars = s.chars(n);
        text.getChars(0, n, chars, 0);
        for (int i = 0; i < n; ) {
            int end = Gpt2PreTokenizer.pieceEnd(chars, i, n);
            if (PieceCache.cacheable(i, end)) {
                int h = PieceCache.hash(chars, i, end);
                int[] ids = pieces.get(chars, i, end, h);
                if (ids == null) {
                    ids = encodePiece(chars, i, end, s);
                    pieces.put(chars, i, end, h, ids);
                }
                out.addAll(ids);
            } else {
                out.addAll(encodePiece(chars, i, end, s));
            }
            i = end;
        }
    }

    private int[] encodePiece(char[] text, int start, int end, Scratch s) {
        int length = ByteLevel.utf8(text, start, end, s);
        int[] word = s.word(length);
        for (int k = 0; k < length; k++) word[k] = byteSymbol[s.bytes[k] & 0xFF];
        int count = applyMerges(word, length);
        int[] ids = new int[count];
        for (int k = 0; k < count; k++) {
            ids[k] = symbolToId[word[k]];
            if (ids[k] < 0) {
                throw new TokenizerException("BPE produced the symbol '" + symbolText[word[k]] + "' for '" + new String(text, start, end - start)
                        + "', which the vocabulary does not contain: vocab and merges files do not belong together");
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

    @Override
    public String detokenize(int[] ids) {
        byte[] buf = new byte[Math.max(16, ids.length * 4)];
        int n = 0;
        for (int id : ids) {
            byte[] b = id >= 0 && id < idToBytes.length ? idToBytes[id] : null;
            if (b == null) {
                throw new IllegalArgumentException("token id " + id + " is not in the GPT-2 vocabulary (ids 0.." + (idToBytes.length - 1) + ")");
            }
            if (n + b.length > buf.length) buf = java.util.Arrays.copyOf(buf, Math.max(buf.length * 2, n + b.length));
            System.arraycopy(b, 0, buf, n, b.length);
            n += b.length;
        }
        return new String(buf, 0, n, StandardCharsets.UTF_8);
    }

    /** The bytes of one token (what it decodes to before UTF-8 decoding). */
    public byte[] tokenBytes(int id) {
        return idToBytes[id].clone();
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

    static Map<String, Integer> readVocab(Path file) {
        Map<String, Integer> vocab = new HashMap<>(1 << 17);
        try (JsonParser p = new JsonFactory().createParser(file.toFile())) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw new TokenizerException(file + ": expected a JSON object {\"token\": id, ...} (GPT-2 encoder.json), found " + p.currentToken()
                        + " at " + where(p));
            }
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String token = p.currentName();
                JsonToken v = p.nextToken();
                if (v != JsonToken.VALUE_NUMBER_INT || p.getNumberType() != JsonParser.NumberType.INT || p.getIntValue() < 0) {
                    throw new TokenizerException(file + ": the id of token " + quote(token) + " at " + where(p) + " is " + p.getText()
                            + ", expected a non-negative integer");
                }
                vocab.put(token, p.getIntValue());
            }
            if (p.currentToken() != JsonToken.END_OBJECT || p.nextToken() != null) {
                throw new TokenizerException(file + ": unexpected content at " + where(p) + ", expected the end of the vocabulary object");
            }
        } catch (JsonProcessingException e) {
            throw new TokenizerException(file + " is not valid JSON: " + JsonErrors.describe(e), e);
        } catch (IOException e) {
            throw new TokenizerException("cannot read the vocabulary file " + file + ": " + e, e);
        }
        if (vocab.isEmpty()) {
            throw new TokenizerException(file + " holds an empty vocabulary");
        }
        return vocab;
    }

    /**
     * Reads merges: an optional {@code #version} first line, then one merge per line, two
     * space-separated symbols; blank lines are skipped. Rank = position among the merges.
     */
    static List<String[]> readMerges(Path file) {
        List<String> lines;
        try {
            lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new TokenizerException("cannot read the merges file " + file + " as UTF-8 text: " + e, e);
        }
        List<String[]> merges = new ArrayList<>(lines.size());
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i);
            if ((i == 0 && line.startsWith("#version")) || line.isBlank()) {
                continue;
            }
            String[] parts = splitPair(line.strip());
            if (parts == null) {
                throw new TokenizerException(file + " line " + (i + 1) + ": expected two symbols separated by a space (a BPE merge), found "
                        + quote(line.length() > 80 ? line.substring(0, 80) + "..." : line));
            }
            merges.add(parts);
        }
        return merges;
    }

    /** The two whitespace-separated symbols of a merge line, or null if it has another number of fields. */
    private static String[] splitPair(String line) {
        int a = 0;
        while (a < line.length() && !Character.isWhitespace(line.charAt(a))) a++;
        int b = a;
        while (b < line.length() && Character.isWhitespace(line.charAt(b))) b++;
        if (a == 0 || b == line.length()) return null;
        for (int k = b; k < line.length(); k++) {
            if (Character.isWhitespace(line.charAt(k))) return null;
        }
        return new String[] {line.substring(0, a), line.substring(b)};
    }

    private static String where(JsonParser p) {
        var loc = p.currentLocation();
        return "line " + loc.getLineNr() + ", column " + loc.getColumnNr();
    }

    private static String quote(String s) {
        return "'" + s + "'";
    }
}
