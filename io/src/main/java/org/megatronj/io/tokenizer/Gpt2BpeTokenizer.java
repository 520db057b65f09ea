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
 * GPT-2's byte-level BPE ({@code GPT2BPETokenizer}): text is split by {@link Gpt2PreTokenizer} and
 * each piece encoded by {@link ByteLevelBpe} with the merges of the merges file, exactly as
 * OpenAI's {@code encoder.py} and Megatron's {@code gpt2_tokenization.py} do. The text
 * {@code <|endoftext|>} inside a document is ordinary text here, as in those two; the EOD id is
 * only appended by preprocessing.
 */
public final class Gpt2BpeTokenizer implements Tokenizer {
    public static final String EOD_TOKEN = "<|endoftext|>";

    private final int vocabSize;
    private final int eod;
    private final ByteLevelBpe bpe;
    private final ThreadLocal<ByteLevelBpe.Scratch> scratch = ThreadLocal.withInitial(ByteLevelBpe.Scratch::new);

    private Gpt2BpeTokenizer(Map<String, Integer> vocab, List<String[]> mergeList, Path vocabFile) {
        this.vocabSize = vocab.size();
        Integer eodId = vocab.get(EOD_TOKEN);
        if (eodId == null) {
            throw new TokenizerException(vocabFile + " has no " + EOD_TOKEN + " entry: a GPT-2 vocabulary needs it as the end-of-document token");
        }
        this.eod = eodId;
        this.bpe = new ByteLevelBpe(vocab, mergeList, false, vocabFile + " and its merges file");
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
        int n = text.length();
        char[] chars = scratch.get().chars(n);
        text.getChars(0, n, chars, 0);
        for (int i = 0; i < n; ) {
            int end = Gpt2PreTokenizer.pieceEnd(chars, i, n);
            bpe.encode(chars, i, end, out);
            i = end;
        }
    }

    @Override
    public String detokenize(int[] ids) {
        byte[] buf = new byte[Math.max(16, ids.length * 4)];
        int n = 0;
        for (int id : ids) {
            byte[] b = bpe.bytes(id);
            if (b == null) {
                throw new IllegalArgumentException("token id " + id + " is not in the GPT-2 vocabulary (ids 0.." + (bpe.idLimit() - 1) + ")");
            }
            if (n + b.length > buf.length) buf = java.util.Arrays.copyOf(buf, Math.max(buf.length * 2, n + b.length));
            System.arraycopy(b, 0, buf, n, b.length);
            n += b.length;
        }
        return new String(buf, 0, n, StandardCharsets.UTF_8);
    }

    /** The bytes of one token (what it decodes to before UTF-8 decoding). */
    public byte[] tokenBytes(int id) {
        return bpe.bytes(id).clone();
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
