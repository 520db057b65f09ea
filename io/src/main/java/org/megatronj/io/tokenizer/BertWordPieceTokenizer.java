package org.megatronj.io.tokenizer;

import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Megatron's {@code BertWordPieceLowerCase} / {@code BertWordPieceCase}: {@link BertBasicTokenizer}
 * then greedy longest-match-first WordPiece ({@code ##} marks a word's continuation pieces; a word
 * over 200 characters, or one no pieces cover, becomes {@code [UNK]}). The vocabulary file holds
 * one token per line, id = line number. As in Megatron, {@code [BOS]}, {@code [EOS]} and
 * {@code --vocab-extra-ids} sentinels {@code <extra_id_0>}, ... are appended when absent.
 * BERT has no end-of-document token: {@link #eod()} throws, as Megatron's does.
 */
public final class BertWordPieceTokenizer implements Tokenizer {
    static final int MAX_INPUT_CHARS_PER_WORD = 200;

    private final boolean lowerCase;
    private final BertBasicTokenizer basic;
    private final Map<String, Integer> vocab;
    private final String[] idToToken;
    private final int unk, cls, sep, pad, mask, bos, eos;
    private final List<Integer> extraIds;
    /** Ids of recent whitespace-separated tokens, per thread; emptied when it reaches {@link #WORD_CACHE_LIMIT} entries. */
    private final ThreadLocal<Map<String, int[]>> wordCache = ThreadLocal.withInitial(HashMap::new);
    private static final int WORD_CACHE_LIMIT = 1 << 16;

    private BertWordPieceTokenizer(Map<String, Integer> vocab, boolean lowerCase, int vocabExtraIds, Path file) {
        this.lowerCase = lowerCase;
        this.basic = new BertBasicTokenizer(lowerCase);
        this.vocab = vocab;
        this.unk = required(file, "[UNK]");
        this.cls = required(file, "[CLS]");
        this.sep = required(file, "[SEP]");
        this.pad = required(file, "[PAD]");
        this.mask = required(file, "[MASK]");
        this.bos = addToken("[BOS]");
        this.eos = addToken("[EOS]");
        List<Integer> extras = new ArrayList<>(vocabExtraIds);
        for (int i = 0; i < vocabExtraIds; i++) {
            extras.add(addToken("<extra_id_" + i + ">"));
        }
        this.extraIds = List.copyOf(extras);
        int maxId = vocab.values().stream().mapToInt(Integer::intValue).max().orElse(0);
        this.idToToken = new String[maxId + 1];
        vocab.forEach((token, id) -> idToToken[id] = token);
    }

    /**
     * Loads a BERT vocabulary ({@code vocab.txt}).
     *
     * @param lowerCase      {@code BertWordPieceLowerCase} (true) or {@code BertWordPieceCase}
     * @param vocabExtraIds  number of T5 sentinel tokens to add
     */
    public static BertWordPieceTokenizer load(Path vocabFile, boolean lowerCase, int vocabExtraIds) {
        if (vocabExtraIds < 0) {
            throw new IllegalArgumentException("--vocab-extra-ids must be >= 0, got " + vocabExtraIds);
        }
        String content;
        try {
            content = StandardCharsets.UTF_8.newDecoder().decode(java.nio.ByteBuffer.wrap(Files.readAllBytes(vocabFile))).toString();
        } catch (CharacterCodingException e) {
            throw new TokenizerException(vocabFile + " is not UTF-8 text: a BERT vocabulary holds one token per line", e);
        } catch (IOException e) {
            throw new TokenizerException("cannot read the vocabulary file " + vocabFile + ": " + e, e);
        }
        Map<String, Integer> vocab = new HashMap<>();
        int index = 0;
        for (String line : (Iterable<String>) content.lines()::iterator) {
            vocab.put(line.strip(), index++);  // like Megatron's load_vocab: a repeated token keeps its last line
        }
        if (content.startsWith("{")) {
            throw new TokenizerException(vocabFile + " looks like JSON: BERT tokenizers need a vocab.txt with one token per line"
                    + " (did you mean --tokenizer-type GPT2BPETokenizer?)");
        }
        return new BertWordPieceTokenizer(vocab, lowerCase, vocabExtraIds, vocabFile);
    }

    private int required(Path file, String token) {
        Integer id = vocab.get(token);
        if (id == null) {
            throw new TokenizerException(file + " has no " + token + " line: a BERT WordPiece vocabulary needs [UNK], [CLS], [SEP], [PAD] and [MASK]");
        }
        return id;
    }

    /** Megatron's {@code add_token}: a token not yet in the vocabulary gets id = current vocabulary size. */
    private int addToken(String token) {
        return vocab.computeIfAbsent(token, t -> vocab.size());
    }

    @Override
    public String typeName() {
        return lowerCase ? "BertWordPieceLowerCase" : "BertWordPieceCase";
    }

    @Override
    public int vocabSize() {
        return vocab.size();
    }

    @Override
    public int[] tokenize(String text) {
        IntList out = new IntList(text.length() / 4 + 8);
        tokenize(text, out);
        return out.toArray();
    }

    @Override
    public void tokenize(String text, IntList out) {
        Map<String, int[]> cache = wordCache.get();
        BertBasicTokenizer.forEachToken(text, token -> {
            int[] ids = cache.get(token);
            if (ids == null) {
                IntList pieces = new IntList(4);
                for (String word : basic.words(token)) {
                    wordPiece(word, pieces);
                }
                ids = pieces.toArray();
                if (cache.size() >= WORD_CACHE_LIMIT) cache.clear();
                cache.put(token, ids);
            }
            out.addAll(ids);
        });
    }

    /** Greedy longest-match-first pieces of one word, appended to {@code out}. */
    private void wordPiece(String word, IntList out) {
        if (word.codePointCount(0, word.length()) > MAX_INPUT_CHARS_PER_WORD) {
            out.add(unk);
            return;
        }
        int mark = out.size();
        int start = 0;
        while (start < word.length()) {
            int end = word.length();
            Integer id = null;
            while (start < end) {
                String sub = start > 0 ? "##" + word.substring(start, end) : word.substring(start, end);
                id = vocab.get(sub);
                if (id != null) break;
                end = word.offsetByCodePoints(end, -1);
            }
            if (id == null) {
                while (out.size() > mark) out.removeLast();
                out.add(unk);
                return;
            }
            out.add(id);
            start = end;
        }
    }

    /** Megatron's {@code decode}: tokens joined by spaces, {@code ##} continuations glued, English spacing cleaned up. */
    @Override
    public String detokenize(int[] ids) {
        StringBuilder sb = new StringBuilder();
        for (int id : ids) {
            String t = id >= 0 && id < idToToken.length ? idToToken[id] : null;
            if (t == null) {
                throw new IllegalArgumentException("token id " + id + " is not in the vocabulary (size " + vocabSize() + ")");
            }
            if (!sb.isEmpty()) sb.append(' ');
            sb.append(t);
        }
        String text = sb.toString().replace(" ##", "").strip();
        return text.replace(" .", ".").replace(" ?", "?").replace(" !", "!").replace(" ,", ",").replace(" ' ", "'")
                .replace(" n't", "n't").replace(" 'm", "'m").replace(" 's", "'s").replace(" 've", "'ve").replace(" 're", "'re");
    }

    /** The vocabulary string of an id. */
    public String token(int id) {
        return idToToken[id];
    }

    @Override
    public int eod() {
        throw new UnsupportedOperationException(typeName() + " has no end-of-document token (Megatron's BERT tokenizer defines none):"
                + " it cannot end documents (preprocess without --append-eod) nor train or run a GPT (use GPT2BPETokenizer"
                + " or NullTokenizer)");
    }

    @Override public int cls() { return cls; }
    @Override public int sep() { return sep; }
    @Override public int pad() { return pad; }
    @Override public int mask() { return mask; }
    @Override public int bos() { return bos; }
    @Override public int eos() { return eos; }

    /** Id of {@code [UNK]}. */
    public int unk() {
        return unk;
    }

    @Override
    public List<Integer> additionalSpecialTokenIds() {
        return extraIds;
    }
}
