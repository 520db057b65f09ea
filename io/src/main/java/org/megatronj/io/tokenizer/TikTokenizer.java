package org.megatronj.io.tokenizer;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * Megatron's {@code TikTokenizer}: OpenAI's tiktoken BPE over a vocabulary JSON ({@code --tokenizer-model}, a list of
 * {@code {"rank", "token_bytes" (base64), "token_str"}}, the first 256 the single bytes, as Mistral's tekken.json
 * vocabulary), after {@code --tiktoken-num-special-tokens} special tokens (ids {@code 0..N-1}: the given or default
 * ones, then {@code <SPECIAL_i>} fillers), the vocabulary cut to {@code --vocab-size} (default 2^17) in all. Text is split
 * by the v1 or v2 pattern ({@code --tiktoken-pattern}) and each piece merged as tiktoken's {@code _byte_pair_merge}:
 * the adjacent pair whose bytes have the lowest rank first, ties leftmost. EOD is {@code </s>}.
 *
 * <p>Megatron's two generations differ: today's (core) recognises special tokens written in the text
 * ({@code allowed_special="all"}) and has seven default ones ({@code <unk> <s> </s> <mask> <pad> <cls> <sep>}); the
 * legacy {@code CustomTikTokenizer} encodes text as ordinary text ({@code encode_ordinary}) and has three.
 */
public final class TikTokenizer implements AppendingTokenizer {
    /** tiktoken's v1 pattern, as Megatron writes it. */
    static final String PATTERN_V1 = "[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+";
    /** tiktoken's v2 pattern (cased words), as Megatron writes it. */
    static final String PATTERN_V2 = "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
            + "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}"
            + "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    public static final int DEFAULT_VOCAB_SIZE = 1 << 17;
    public static final int DEFAULT_NUM_SPECIAL_TOKENS = 1000;
    static final List<String> CORE_SPECIAL_TOKENS = List.of("<unk>", "<s>", "</s>", "<mask>", "<pad>", "<cls>", "<sep>");
    static final List<String> LEGACY_SPECIAL_TOKENS = List.of("<unk>", "<s>", "</s>");

    private final String source;
    private final boolean legacy;
    private final Pattern split;
    private final Pattern specials;
    private final Map<String, Integer> specialIds = new HashMap<>();
    /** Token bytes (one char per byte, ISO-8859-1) to id (its rank + the special tokens). */
    private final Map<String, Integer> ranks = new HashMap<>();
    private final byte[][] bytesById;
    private final int vocabSize;

    private TikTokenizer(Path file, boolean legacy, String pattern, int vocabSize, int numSpecialTokens, List<String> special) {
        this.source = file.toString();
        this.legacy = legacy;
        this.vocabSize = vocabSize;
        List<String> required = legacy ? LEGACY_SPECIAL_TOKENS : CORE_SPECIAL_TOKENS;
        List<String> given = special == null ? required : special;
        if (given.size() != new java.util.HashSet<>(given).size()) {
            throw new TokenizerException("TikTokenizer: special tokens must be unique: " + given);
        }
        if (!given.containsAll(required)) {
            throw new TokenizerException("TikTokenizer: --tokenizer-special-tokens must include " + required + ", got " + given);
        }
        if (given.size() > numSpecialTokens || numSpecialTokens >= vocabSize) {
            throw new TokenizerException("TikTokenizer: expected " + given.size() + " special tokens <= --tiktoken-num-special-tokens "
                    + numSpecialTokens + " < --vocab-size " + vocabSize);
        }
        List<String> all = new ArrayList<>(given);
        for (int i = given.size(); i < numSpecialTokens; i++) {
            all.add("<SPECIAL_" + i + ">");
        }
        for (int i = 0; i < all.size(); i++) {
            specialIds.put(all.get(i), i);
        }
        this.split = Pattern.compile(pattern(pattern), Pattern.UNICODE_CHARACTER_CLASS);
        this.specials = Pattern.compile(String.join("|", all.stream().map(Pattern::quote).toList()));
        this.bytesById = new byte[vocabSize][];
        for (int i = 0; i < all.size(); i++) {
            bytesById[i] = all.get(i).getBytes(StandardCharsets.UTF_8);
        }
        readVocabulary(file, vocabSize - numSpecialTokens, numSpecialTokens);
    }

    /** The regex of {@code --tiktoken-pattern} v1 or v2. */
    public static String pattern(String name) {
        return switch (name) {
            case "v1" -> PATTERN_V1;
            case "v2" -> PATTERN_V2;
            default -> throw new TokenizerException("--tiktoken-pattern " + name + ": expected v1 or v2");
        };
    }

    /**
     * Loads {@code file}. {@code pattern} "v1" or "v2"; {@code specialTokens} null for Megatron's defaults; {@code legacy}
     * for Megatron's legacy {@code CustomTikTokenizer}.
     */
    public static TikTokenizer load(Path file, boolean legacy, String pattern, int vocabSize, int numSpecialTokens,
                                    List<String> specialTokens) {
        return new TikTokenizer(file, legacy, pattern, vocabSize, numSpecialTokens, specialTokens);
    }

    private void readVocabulary(Path file, int innerSize, int shift) {
        JsonNode vocab;
        try {
            vocab = new ObjectMapper().readTree(Files.newInputStream(file));
        } catch (IOException e) {
            throw new TokenizerException("cannot read the tiktoken vocabulary " + file + ": " + e.getMessage(), e);
        }
        if (vocab == null || !vocab.isArray()) {
            throw new TokenizerException(file + " is not a tiktoken vocabulary: expected a JSON list of {rank, token_bytes,"
                    + " token_str}");
        }
        if (vocab.size() < innerSize) {
            throw new TokenizerException(file + " has " + vocab.size() + " tokens but --vocab-size " + vocabSize + " less "
                    + shift + " special tokens needs " + innerSize);
        }
        for (int i = 0; i < innerSize; i++) {
            JsonNode entry = vocab.get(i);
            if (entry.path("rank").asInt(-1) != i || !entry.has("token_bytes")) {
                throw new TokenizerException(file + ": entry " + i + " is " + entry + "; expected rank " + i + " and token_bytes");
            }
            byte[] bytes;
            try {
                bytes = Base64.getDecoder().decode(entry.get("token_bytes").asText());
            } catch (IllegalArgumentException e) {
                throw new TokenizerException(file + ": entry " + i + "'s token_bytes is not base64", e);
            }
            if (i < 256 && (bytes.length != 1 || (bytes[0] & 0xff) != i)) {
                throw new TokenizerException(file + ": entry " + i + " must be the single byte " + i);
            }
            if (ranks.put(new String(bytes, StandardCharsets.ISO_8859_1), i + shift) != null) {
                throw new TokenizerException(file + ": entry " + i + " repeats an earlier token's bytes");
            }
            bytesById[i + shift] = bytes;
        }
    }

    @Override
    public String typeName() {
        return "TikTokenizer";
    }

    @Override
    public int vocabSize() {
        return vocabSize;
    }

    @Override
    public void tokenize(String text, IntList out) {
        if (legacy) {
            encodeOrdinary(text, out);
            return;
        }
        Matcher m = specials.matcher(text);
        int from = 0;
        while (m.find()) {
            encodeOrdinary(text.substring(from, m.start()), out);
            out.add(specialIds.get(m.group()));
            from = m.end();
        }
        encodeOrdinary(text.substring(from), out);
    }

    private void encodeOrdinary(String text, IntList out) {
        Matcher m = split.matcher(text);
        while (m.find()) {
            String piece = new String(m.group().getBytes(StandardCharsets.UTF_8), StandardCharsets.ISO_8859_1);
            Integer whole = ranks.get(piece);
            if (whole != null) {
                out.add(whole);
            } else {
                bytePairMerge(piece, out);
            }
        }
    }

    /** tiktoken's merge: join the adjacent parts whose joined bytes rank lowest (ties: the leftmost) until none rank. */
    private void bytePairMerge(String piece, IntList out) {
        int n = piece.length();
        int[] starts = new int[n + 1];
        for (int i = 0; i <= n; i++) {
            starts[i] = i;
        }
        int parts = n;
        int[] pairRank = new int[n];
        for (int i = 0; i + 1 < parts; i++) {
            pairRank[i] = rank(piece, starts[i], starts[i + 2]);
        }
        while (parts > 1) {
            int best = -1;
            for (int i = 0; i + 1 < parts; i++) {
                if (pairRank[i] != Integer.MAX_VALUE && (best < 0 || pairRank[i] < pairRank[best])) {
                    best = i;
                }
            }
            if (best < 0) {
                break;
            }
            System.arraycopy(starts, best + 2, starts, best + 1, parts - best - 1);   // drop the boundary inside the pair
            System.arraycopy(pairRank, best + 1, pairRank, best, parts - best - 2);
            parts--;
            if (best + 1 < parts) {
                pairRank[best] = rank(piece, starts[best], starts[best + 2]);
            }
            if (best > 0) {
                pairRank[best - 1] = rank(piece, starts[best - 1], starts[best + 1]);
            }
        }
        for (int i = 0; i < parts; i++) {
            Integer id = ranks.get(piece.substring(starts[i], starts[i + 1]));
            if (id == null) {
                throw new TokenizerException(source + " lacks the byte " + (int) piece.charAt(starts[i]));
            }
            out.add(id);
        }
    }

    private int rank(String piece, int from, int to) {
        Integer r = ranks.get(piece.substring(from, to));
        return r == null ? Integer.MAX_VALUE : r;
    }

    /** tiktoken's decode: the tokens' bytes joined and read as UTF-8, malformed bytes replaced. */
    @Override
    public String detokenize(int[] ids) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(ids.length * 4);
        for (int id : ids) {
            if (id < 0 || id >= vocabSize || bytesById[id] == null) {
                throw new IllegalArgumentException("token id " + id + " is not in the vocabulary of " + source);
            }
            bytes.writeBytes(bytesById[id]);
        }
        return bytes.toString(StandardCharsets.UTF_8);
    }

    @Override
    public int eod() {
        return specialIds.get("</s>");
    }

    @Override
    public int bos() {
        return specialIds.get("<s>");
    }

    @Override
    public int eos() {
        return specialIds.get("</s>");
    }

    @Override
    public int pad() {
        Integer pad = specialIds.get("<pad>");
        if (legacy || pad == null) {   // the legacy class has no pad id
            return AppendingTokenizer.super.pad();
        }
        return pad;
    }

    @Override
    public int mask() {
        Integer mask = specialIds.get("<mask>");
        return mask == null ? AppendingTokenizer.super.mask() : mask;
    }

    @Override
    public int cls() {
        Integer cls = specialIds.get("<cls>");
        return cls == null ? AppendingTokenizer.super.cls() : cls;
    }

    @Override
    public int sep() {
        Integer sep = specialIds.get("<sep>");
        return sep == null ? AppendingTokenizer.super.sep() : sep;
    }
}
