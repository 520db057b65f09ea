package org.megatronj.io.tokenizer;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;

/**
 * A SentencePiece {@code .model} file (the {@code ModelProto} protobuf) and Google's
 * {@code sentencepiece} library's encoding and decoding, for BPE models (Llama 2, Mistral) and
 * Unigram models (T5's): normalization as the library's, with the model's precompiled character map
 * where it has one ({@code nmt_nfkc} and the like, see {@link PrecompiledCharsMap}) and the
 * whitespace handling that the normalizer spec says (dummy prefix, extra whitespace, {@code ▁}
 * escapes), user-defined symbols kept whole and unnormalized, BPE's highest-score merges (ties
 * leftmost), Unigram's Viterbi in float as the library's optimized encoder, and byte fallback
 * ({@code <0xE9>} pieces) or {@code <unk>} for what the vocabulary lacks. WORD and CHAR models,
 * whitespace as a suffix and a denormalizer's map (decoding's own normalization) are refused.
 */
final class SentencePieceModel {
    static final char SPACE = '\u2581';
    private static final float UNK_PENALTY = 10.0f;
    private static final int NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6;

    private final String source;
    private final String[] pieces;
    private final float[] scores;
    private final int[] types;
    private final boolean bpe;
    private final boolean byteFallback;
    private final boolean addDummyPrefix;
    private final boolean removeExtraWhitespaces;
    private final boolean escapeWhitespaces;
    /** The normalization map, null for the identity rule's empty one. */
    private final PrecompiledCharsMap charsMap;
    private final String unkSurface;
    private final String unkPiece, bosPiece, eosPiece, padPiece;
    /** Normal, user-defined and unused pieces (what merges and the lattice may produce). */
    private final Map<String, Integer> normalPieces = new HashMap<>();
    /** Control, unknown and byte pieces. */
    private final Map<String, Integer> reservedPieces = new HashMap<>();
    /** User-defined symbols by their first char, longest first. */
    private final Map<Character, List<String>> userDefined = new HashMap<>();
    private final int unkId;
    private final int maxPieceLength;
    private final float minScore, maxScore;

    private SentencePieceModel(Path file, byte[] data) {
        this.source = file.toString();
        Proto model = new Proto(data, source);
        List<String> text = new ArrayList<>();
        List<Float> score = new ArrayList<>();
        List<Integer> type = new ArrayList<>();
        Proto trainer = null, normalizer = null, denormalizer = null;
        while (model.more()) {
            int field = model.field();
            switch (field) {
                case 1 -> {
                    Proto p = model.message();
                    String piece = "";
                    float s = 0;
                    int t = NORMAL;
                    while (p.more()) {
                        switch (p.field()) {
                            case 1 -> piece = p.string();
                            case 2 -> s = p.float32();
                            case 3 -> t = (int) p.varint();
                            default -> p.skip();
                        }
                    }
                    text.add(piece);
                    score.add(s);
                    type.add(t);
                }
                case 2 -> trainer = model.message();
                case 3 -> normalizer = model.message();
                case 5 -> denormalizer = model.message();
                default -> model.skip();
            }
        }
        if (text.isEmpty()) {
            throw new TokenizerException(source + " holds no pieces: not a SentencePiece model");
        }
        int modelType = 1;   // UNIGRAM
        boolean fallback = false, suffix = false;
        String surface = " \u2047 ", unk = "<unk>", bos = "<s>", eos = "</s>", pad = "<pad>";
        while (trainer != null && trainer.more()) {
            switch (trainer.field()) {
                case 3 -> modelType = (int) trainer.varint();
                case 24 -> suffix = trainer.varint() != 0;
                case 35 -> fallback = trainer.varint() != 0;
                case 44 -> surface = trainer.string();
                case 45 -> unk = trainer.string();
                case 46 -> bos = trainer.string();
                case 47 -> eos = trainer.string();
                case 48 -> pad = trainer.string();
                default -> trainer.skip();
            }
        }
        boolean dummy = true, removeExtra = true, escape = true;
        byte[] map = {};
        while (normalizer != null && normalizer.more()) {
            switch (normalizer.field()) {
                case 2 -> map = normalizer.bytes();
                case 3 -> dummy = normalizer.varint() != 0;
                case 4 -> removeExtra = normalizer.varint() != 0;
                case 5 -> escape = normalizer.varint() != 0;
                default -> normalizer.skip();
            }
        }
        if (modelType != 1 && modelType != 2) {
            throw new TokenizerException(source + ": SentencePiece model type " + (modelType == 3 ? "WORD" : modelType == 4
                    ? "CHAR" : modelType) + " is not supported; Megatron-J reads BPE and Unigram models");
        }
        if (suffix) {
            throw new TokenizerException(source + ": treat_whitespace_as_suffix is not supported");
        }
        if (hasCharsMap(denormalizer)) {
            throw new TokenizerException(source + ": a denormalizer_spec with a precompiled map (denormalization_rule_tsv)"
                    + " is not supported");
        }
        this.charsMap = map.length == 0 ? null : PrecompiledCharsMap.parse(map, source);
        this.pieces = text.toArray(String[]::new);
        this.scores = new float[pieces.length];
        this.types = new int[pieces.length];
        int unkIndex = -1, longest = 1;
        float min = Float.MAX_VALUE, max = Float.MIN_VALUE;   // the library's FLT_MAX and FLT_MIN
        for (int i = 0; i < pieces.length; i++) {
            scores[i] = score.get(i);
            types[i] = type.get(i);
            if (pieces[i].isEmpty()) {
                throw new TokenizerException(source + ": piece " + i + " is empty");
            }
            boolean normal = types[i] == NORMAL || types[i] == USER_DEFINED || types[i] == UNUSED;
            (normal ? normalPieces : reservedPieces).put(pieces[i], i);
            if (types[i] == USER_DEFINED) {
                userDefined.computeIfAbsent(pieces[i].charAt(0), c -> new ArrayList<>()).add(pieces[i]);
            }
            if (types[i] == UNKNOWN) {
                unkIndex = i;
            }
            if (types[i] == NORMAL) {
                min = Math.min(min, scores[i]);
                max = Math.max(max, scores[i]);
            }
            longest = Math.max(longest, pieces[i].length());
        }
        if (unkIndex < 0) {
            throw new TokenizerException(source + " has no unknown piece (" + unk + ")");
        }
        userDefined.values().forEach(symbols -> symbols.sort(Comparator.comparingInt(String::length).reversed()));
        this.unkId = unkIndex;
        this.maxPieceLength = longest;
        this.minScore = min;
        this.maxScore = max;
        this.bpe = modelType == 2;
        this.byteFallback = fallback;
        this.addDummyPrefix = dummy;
        this.removeExtraWhitespaces = removeExtra;
        this.escapeWhitespaces = escape;
        this.unkSurface = surface;
        this.unkPiece = unk;
        this.bosPiece = bos;
        this.eosPiece = eos;
        this.padPiece = pad;
    }

    /** Whether a normalizer spec has a non-empty precompiled_charsmap (field 2). */
    private static boolean hasCharsMap(Proto spec) {
        boolean map = false;
        while (spec != null && spec.more()) {
            if (spec.field() == 2) {
                map |= spec.bytes().length > 0;
            } else {
                spec.skip();
            }
        }
        return map;
    }

    static SentencePieceModel load(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new TokenizerException("--tokenizer-model " + file + ": no such file (expected a SentencePiece tokenizer.model)");
        }
        try {
            return new SentencePieceModel(file, Files.readAllBytes(file));
        } catch (IOException e) {
            throw new TokenizerException("cannot read " + file + ": " + e.getMessage(), e);
        }
    }

    int size() {
        return pieces.length;
    }

    String piece(int id) {
        return pieces[id];
    }

    /** The library's PieceToId: reserved pieces first, then the others, else the unknown id. */
    int pieceToId(String piece) {
        Integer id = reservedPieces.get(piece);
        if (id == null) {
            id = normalPieces.get(piece);
        }
        return id == null ? unkId : id;
    }

    /** The id of a control piece ({@code <s>}, {@code </s>}, {@code <pad>}) as the library's bos_id() and so on, or -1. */
    private int controlId(String piece) {
        int id = pieceToId(piece);
        return types[id] == CONTROL ? id : -1;
    }

    int bosId() {
        return controlId(bosPiece);
    }

    int eosId() {
        return controlId(eosPiece);
    }

    int padId() {
        return controlId(padPiece);
    }

    int unkId() {
        return types[pieceToId(unkPiece)] == UNKNOWN ? pieceToId(unkPiece) : -1;
    }

    // ------------------------------------------------------------------ encode

    /** {@code encode_as_ids(text)}. */
    void encode(String text, IntList out) {
        String normalized = normalize(text);
        if (normalized.isEmpty()) {
            return;
        }
        List<String> result = bpe ? encodeBpe(normalized) : encodeUnigram(normalized);
        boolean prevUnknown = false;
        for (String piece : result) {
            int id = pieceToId(piece);
            boolean unknown = id == unkId;
            if (unknown && byteFallback) {
                for (byte b : piece.getBytes(StandardCharsets.UTF_8)) {
                    out.add(pieceToId(String.format("<0x%02X>", b & 0xFF)));
                }
            } else if (!(unknown && prevUnknown)) {   // a run of unknown pieces is one <unk>
                out.add(id);
            }
            prevUnknown = unknown;
        }
    }

    /**
     * The library's {@code Normalizer::Normalize}: piece by piece ({@link #prefix}), leading whitespace skipped, the
     * leading spaces of a piece dropped after one that ended in a space (all as the map's output, so a full-width
     * space that the map makes ' ' counts as one), ' ' escaped to {@code ▁}, a dummy prefix and no trailing space.
     */
    String normalize(String text) {
        checkSurrogates(text);
        int[] end = new int[1];
        int i = 0;
        if (removeExtraWhitespaces) {
            for (; i < text.length(); i = end[0]) {
                String piece = prefix(text, i, end);
                boolean space = piece == null ? text.charAt(i) == ' ' : piece.equals(" ");
                if (!space) {
                    break;
                }
            }
        }
        if (i == text.length()) {
            return "";
        }
        StringBuilder out = new StringBuilder(text.length() + 1);
        char space = escapeWhitespaces ? SPACE : ' ';
        if (addDummyPrefix) {
            out.append(space);
        }
        boolean prevSpace = removeExtraWhitespaces;
        for (; i < text.length(); i = end[0]) {
            String piece = prefix(text, i, end);
            prevSpace = piece == null ? append(out, text, i, end[0], prevSpace) : append(out, piece, 0, piece.length(), prevSpace);
            prevSpace &= removeExtraWhitespaces;
        }
        if (removeExtraWhitespaces) {
            while (!out.isEmpty() && out.charAt(out.length() - 1) == space) out.setLength(out.length() - 1);
        }
        return out.toString();
    }

    /**
     * The library's {@code NormalizePrefix}: the longest user-defined symbol at {@code at}, as it is; else the
     * replacement of the map's longest key there; else null, for the one character there copied. Its end (a char
     * index) goes to {@code end[0]}.
     */
    private String prefix(String text, int at, int[] end) {
        String user = userDefinedAt(text, at);
        if (user != null) {
            end[0] = at + user.length();
            return user;
        }
        String mapped = charsMap == null ? null : charsMap.longestMatch(text, at, end);
        if (mapped == null) {
            end[0] = at + Character.charCount(text.codePointAt(at));
        }
        return mapped;
    }

    /** Appends a normalized piece, without its leading spaces after a space; whether the output now ends in a space. */
    private boolean append(StringBuilder out, CharSequence piece, int from, int to, boolean prevSpace) {
        if (prevSpace) {
            while (from < to && piece.charAt(from) == ' ') from++;
        }
        if (from == to) {
            return prevSpace;
        }
        for (int k = from; k < to; k++) {
            char c = piece.charAt(k);
            out.append(c == ' ' && escapeWhitespaces ? SPACE : c);
        }
        return piece.charAt(to - 1) == ' ';
    }

    /** Text that has no UTF-8 (a lone surrogate) fails, as the library's UTF-8 input cannot hold it. */
    private static void checkSurrogates(String text) {
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            boolean paired = Character.isHighSurrogate(c) && i + 1 < text.length() && Character.isLowSurrogate(text.charAt(i + 1));
            if (paired) {
                i++;
            } else if (Character.isSurrogate(c)) {
                throw new TokenizerException(String.format("the text holds a lone surrogate U+%04X at char %d, which has no"
                        + " UTF-8 encoding; fix the input's \\u escapes", (int) c, i));
            }
        }
    }

    /** The longest user-defined symbol at {@code at}, or null: the library's prefix matcher (normalization and BPE keep it whole). */
    private String userDefinedAt(String s, int at) {
        List<String> candidates = userDefined.isEmpty() ? null : userDefined.get(s.charAt(at));
        if (candidates != null) {
            for (String u : candidates) {
                if (s.startsWith(u, at)) {
                    return u;
                }
            }
        }
        return null;
    }

    private record Pair(int left, int right, float score, int length) {
    }

    /** BPE: merge the adjacent pair whose concatenation is a piece of the highest score, leftmost on ties. */
    private List<String> encodeBpe(String s) {
        List<String> symbols = new ArrayList<>();
        List<Boolean> frozen = new ArrayList<>();
        for (int i = 0; i < s.length(); ) {
            String user = userDefinedAt(s, i);
            String symbol = user != null ? user : s.substring(i, i + Character.charCount(s.codePointAt(i)));
            symbols.add(symbol);
            frozen.add(user != null);
            i += symbol.length();
        }
        int count = symbols.size();
        int[] prev = new int[count], next = new int[count];
        for (int i = 0; i < count; i++) {
            prev[i] = i - 1;
            next[i] = i + 1 < count ? i + 1 : -1;
        }
        String[] piece = symbols.toArray(String[]::new);
        Map<String, String[]> revMerge = new HashMap<>();
        PriorityQueue<Pair> agenda = new PriorityQueue<>((a, b) -> a.score != b.score ? Float.compare(b.score, a.score)
                : Integer.compare(a.left, b.left));
        java.util.function.BiConsumer<Integer, Integer> maybeAdd = (left, right) -> {
            if (left == -1 || right == -1 || frozen.get(left) || frozen.get(right)) {
                return;
            }
            String merged = piece[left] + piece[right];
            Integer id = normalPieces.get(merged);
            if (id == null) {
                return;
            }
            agenda.add(new Pair(left, right, scores[id], merged.length()));
            if (types[id] == UNUSED) {
                revMerge.put(merged, new String[] {piece[left], piece[right]});
            }
        };
        for (int i = 1; i < count; i++) {
            maybeAdd.accept(i - 1, i);
        }
        while (!agenda.isEmpty()) {
            Pair top = agenda.poll();
            if (piece[top.left].isEmpty() || piece[top.right].isEmpty()
                    || piece[top.left].length() + piece[top.right].length() != top.length) {
                continue;   // one side was merged away since
            }
            piece[top.left] = piece[top.left] + piece[top.right];
            next[top.left] = next[top.right];
            if (next[top.right] >= 0) {
                prev[next[top.right]] = top.left;
            }
            piece[top.right] = "";
            maybeAdd.accept(prev[top.left], top.left);
            maybeAdd.accept(top.left, next[top.left]);
        }
        List<String> out = new ArrayList<>();
        for (int i = 0; i != -1; i = next[i]) {
            resegment(piece[i], revMerge, out);
        }
        return out;
    }

    /** An unused piece that merges produced is split back into the pieces it was made of. */
    private void resegment(String w, Map<String, String[]> revMerge, List<String> out) {
        Integer id = normalPieces.get(w);
        String[] parts = id != null && types[id] == UNUSED ? revMerge.get(w) : null;
        if (parts == null) {
            out.add(w);
            return;
        }
        resegment(parts[0], revMerge, out);
        resegment(parts[1], revMerge, out);
    }

    /**
     * Unigram: the best-scoring segmentation, as the library's optimized Viterbi: positions in UTF-8 bytes, float
     * sums, a later path replacing an earlier one only when strictly better, user-defined pieces scored
     * {@code bytes * maxScore - 0.1}, and an unknown single character at {@code minScore - 10}.
     */
    private List<String> encodeUnigram(String s) {
        int n = s.length();
        float[] best = new float[n + 1];
        int[] startOf = new int[n + 1];
        java.util.Arrays.fill(startOf, -1);
        startOf[0] = 0;   // the empty path
        float unkScore = minScore - UNK_PENALTY;
        for (int start = 0; start < n; start += Character.charCount(s.codePointAt(start))) {
            int charLen = Character.charCount(s.codePointAt(start));
            boolean single = false;
            int end = start;
            for (int k = 0; k < maxPieceLength && end < n; k++) {
                end += Character.charCount(s.codePointAt(end));
                Integer id = normalPieces.get(s.substring(start, end));
                if (id == null || types[id] == UNUSED) {
                    continue;
                }
                // the library's arithmetic: a user-defined piece's bonus is a double, the other scores float sums
                double candidate = types[id] == USER_DEFINED ? (utf8Length(s, start, end) * maxScore - 0.1) + best[start]
                        : scores[id] + best[start];
                if (startOf[end] == -1 || candidate > best[end]) {
                    best[end] = (float) candidate;
                    startOf[end] = start;
                }
                single |= end - start == charLen;
            }
            if (!single) {   // no piece covers this character: an unknown one
                int unkEnd = start + charLen;
                float candidate = unkScore + best[start];
                if (startOf[unkEnd] == -1 || candidate > best[unkEnd]) {
                    best[unkEnd] = candidate;
                    startOf[unkEnd] = start;
                }
            }
        }
        List<String> out = new ArrayList<>();
        for (int end = n; end > 0; end = startOf[end]) {
            out.add(s.substring(startOf[end], end));
        }
        java.util.Collections.reverse(out);
        return out;
    }

    private static int utf8Length(String s, int start, int end) {
        return s.substring(start, end).getBytes(StandardCharsets.UTF_8).length;
    }

    // ------------------------------------------------------------------ decode

    /**
     * {@code decode_ids(ids)}: controls vanish, {@code <unk>} reads as the unknown surface ({@code " ⁇ "}), runs of
     * byte pieces become their UTF-8 (U+FFFD for each malformed byte), {@code ▁} a space, and the dummy prefix's space
     * of the first piece is dropped.
     */
    String decode(int[] ids) {
        StringBuilder text = new StringBuilder();
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        boolean bosWhitespace = true;   // the first text piece may still carry the dummy prefix
        boolean bosWhitespaceSeen = false;
        for (int id : ids) {
            if (id < 0 || id >= pieces.length) {
                throw new IllegalArgumentException("token id " + id + " is not in the SentencePiece model " + source
                        + " (ids 0.." + (pieces.length - 1) + ")");
            }
            if (types[id] == BYTE) {
                bytes.write(Integer.parseInt(pieces[id].substring(3, 5), 16));
                continue;
            }
            flushBytes(bytes, text);
            if (bosWhitespaceSeen || !text.isEmpty()) {
                bosWhitespace = false;
            }
            bosWhitespaceSeen = false;
            String piece = pieces[id];
            if (types[id] == CONTROL) {
                continue;
            }
            if (types[id] == UNKNOWN) {
                text.append(unkSurface);
                continue;
            }
            if (bosWhitespace && (addDummyPrefix || removeExtraWhitespaces) && piece.charAt(0) == SPACE) {
                piece = piece.substring(1);
                bosWhitespaceSeen = !removeExtraWhitespaces;
            }
            text.append(piece.replace(SPACE, ' '));
        }
        flushBytes(bytes, text);
        return text.toString();
    }

    /** Byte pieces as UTF-8, each malformed byte a U+FFFD (the library's decoder takes one byte at a time then). */
    private static void flushBytes(ByteArrayOutputStream bytes, StringBuilder text) {
        if (bytes.size() == 0) {
            return;
        }
        byte[] b = bytes.toByteArray();
        bytes.reset();
        int i = 0;
        while (i < b.length) {
            int len = validUtf8Length(b, i);
            if (len == 0) {
                text.append('\uFFFD');
                i++;
            } else {
                text.append(new String(b, i, len, StandardCharsets.UTF_8));
                i += len;
            }
        }
    }

    /** The length of the well-formed UTF-8 character at {@code i}, or 0. */
    private static int validUtf8Length(byte[] b, int i) {
        int c = b[i] & 0xFF;
        int len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (len == 0 || i + len > b.length) {
            return 0;
        }
        for (int k = 1; k < len; k++) {
            if ((b[i + k] & 0xC0) != 0x80) {
                return 0;
            }
        }
        int second = len > 1 ? b[i + 1] & 0xFF : 0;
        if (len == 3 && (c == 0xE0 && second < 0xA0 || c == 0xED && second > 0x9F)
                || len == 4 && (c == 0xF0 && second < 0x90 || c == 0xF4 && second > 0x8F)) {
            return 0;   // overlong, surrogate or past U+10FFFF
        }
        return len;
    }

    /** A protobuf message's fields, read in order (just the wire types a ModelProto uses). */
    private static final class Proto {
        private final byte[] data;
        private final String source;
        private int pos;
        private final int end;
        private int wireType;

        Proto(byte[] data, String source) {
            this(data, 0, data.length, source);
        }

        private Proto(byte[] data, int from, int to, String source) {
            this.data = data;
            this.pos = from;
            this.end = to;
            this.source = source;
        }

        boolean more() {
            return pos < end;
        }

        int field() {
            long key = varint();
            wireType = (int) (key & 7);
            return (int) (key >>> 3);
        }

        long varint() {
            long v = 0;
            for (int shift = 0; shift < 64; shift += 7) {
                if (pos >= end) {
                    throw corrupt();
                }
                byte b = data[pos++];
                v |= (long) (b & 0x7F) << shift;
                if (b >= 0) {
                    return v;
                }
            }
            throw corrupt();
        }

        float float32() {
            if (wireType != 5 || pos + 4 > end) {
                throw corrupt();
            }
            int bits = (data[pos] & 0xFF) | (data[pos + 1] & 0xFF) << 8 | (data[pos + 2] & 0xFF) << 16 | (data[pos + 3] & 0xFF) << 24;
            pos += 4;
            return Float.intBitsToFloat(bits);
        }

        byte[] bytes() {
            int len = length();
            byte[] out = java.util.Arrays.copyOfRange(data, pos, pos + len);
            pos += len;
            return out;
        }

        String string() {
            return new String(bytes(), StandardCharsets.UTF_8);
        }

        Proto message() {
            int len = length();
            Proto p = new Proto(data, pos, pos + len, source);
            pos += len;
            return p;
        }

        private int length() {
            if (wireType != 2) {
                throw corrupt();
            }
            long len = varint();
            if (len < 0 || pos + len > end) {
                throw corrupt();
            }
            return (int) len;
        }

        void skip() {
            switch (wireType) {
                case 0 -> varint();
                case 1 -> pos += 8;
                case 2 -> {
                    int len = length();   // (pos += length() would add to pos as it was before the length's varint)
                    pos += len;
                }
                case 5 -> pos += 4;
                default -> throw corrupt();
            }
            if (pos > end) {
                throw corrupt();
            }
        }

        private TokenizerException corrupt() {
            return new TokenizerException(source + " is not a valid SentencePiece model (malformed protobuf at byte " + pos + ")");
        }
    }
}
