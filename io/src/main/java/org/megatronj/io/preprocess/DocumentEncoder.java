package org.megatronj.io.preprocess;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import org.megatronj.io.JsonErrors;
import org.megatronj.io.tokenizer.IntList;
import org.megatronj.io.tokenizer.Tokenizer;

/**
 * Turns a batch of JSON lines into token ids, as Megatron's {@code Encoder.encode} does per line:
 * each key's value is a string (one text) or a list of strings (texts already split into
 * sentences); every non-empty text is one sequence; with {@code --append-eod} the EOD id ends the
 * last sequence of a document that has tokens. Blank lines are skipped. Thread-safe.
 */
final class DocumentEncoder {
    /** Megatron splits sentences in chunks of this many characters, so that NLTK never sees a giant text. */
    static final int SPLIT_CHUNK_CODE_POINTS = 1_000_000;

    private final PreprocessConfig config;
    private final Tokenizer tokenizer;
    private final SentenceSplitter splitter;
    private final String[] keys;
    private final int eod;
    private final JsonFactory json;

    DocumentEncoder(PreprocessConfig config, Tokenizer tokenizer, SentenceSplitter splitter) {
        this.config = config;
        this.tokenizer = tokenizer;
        this.splitter = splitter;
        this.keys = config.jsonKeys().toArray(String[]::new);
        this.eod = config.appendEod() ? tokenizer.eod() : -1;
        this.json = JsonFactory.builder()
                .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)  // Python's json.loads reads NaN and Infinity
                .streamReadConstraints(StreamReadConstraints.builder()
                        .maxStringLength(Integer.MAX_VALUE).maxNumberLength(Integer.MAX_VALUE).maxNestingDepth(1000).build())
                .build();
    }

    EncodedBatch encode(LineBatch batch) {
        byte[] data = batch.data();
        EncodedBatch out = new EncodedBatch(keys.length, batch.length() / 3, batch.endOffset(), batch.firstLine());
        Object[] values = new Object[keys.length];
        long line = batch.firstLine();
        for (int start = 0; start < batch.length(); line++) {
            int end = start;
            while (end < batch.length() && data[end] != '\n') end++;
            if (!isBlank(data, start, end)) {
                parse(data, start, end - start, line, values);
                for (int k = 0; k < keys.length; k++) {
                    encodeDocument(values[k], k, out, line);
                }
                out.documentLineOffsets.add((int) (line - batch.firstLine()));
                out.documents++;
            }
            start = end + 1;
        }
        return out;
    }

    private void encodeDocument(Object value, int k, EncodedBatch out, long line) {
        IntList tokens = out.tokens[k];
        IntList lengths = out.sequenceLengths[k];
        int sequences = 0;
        int before = tokens.size();
        try {
            for (String text : texts(value)) {
                int start = tokens.size();
                tokenizer.tokenize(text, tokens);
                if (tokens.size() > start) {
                    lengths.add(tokens.size() - start);
                    sequences++;
                }
            }
        } catch (RuntimeException e) {
            throw new PreprocessException(where(line) + ": cannot tokenize the value of \"" + keys[k] + "\": " + e.getMessage(), e);
        }
        if (sequences > 0 && eod >= 0) {
            tokens.add(eod);
            lengths.add(lengths.removeLast() + 1);
        }
        out.sequencesPerDocument[k].add(sequences);
        out.tokenCount += tokens.size() - before;
    }

    @SuppressWarnings("unchecked")
    private List<String> texts(Object value) {
        List<String> texts = value instanceof String s ? List.of(s) : (List<String>) value;
        if (splitter == null) {
            return texts;
        }
        List<String> sentences = new ArrayList<>();
        for (String text : texts) {
            for (int from = 0; from < text.length(); ) {
                int to = text.length() - from > SPLIT_CHUNK_CODE_POINTS
                        ? offsetByCodePointsOrEnd(text, from, SPLIT_CHUNK_CODE_POINTS) : text.length();
                sentences.addAll(splitter.split(text.substring(from, to)));
                from = to;
            }
        }
        return sentences;
    }

    private static int offsetByCodePointsOrEnd(String text, int from, int count) {
        try {
            return text.offsetByCodePoints(from, count);
        } catch (IndexOutOfBoundsException e) {
            return text.length();
        }
    }

    /** Parses one line into {@code values} (a String or a List of Strings per key). */
    private void parse(byte[] data, int offset, int length, long line, Object[] values) {
        java.util.Arrays.fill(values, null);
        try (JsonParser p = json.createParser(data, offset, length)) {
            JsonToken t = p.nextToken();
            if (t != JsonToken.START_OBJECT) {
                throw new PreprocessException(where(line) + ": expected a JSON object {\"" + keys[0] + "\": \"...\"}, found "
                        + describe(t) + " (the input must be loose JSON: one object per line)");
            }
            while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
                int k = keyIndex(p.currentName());
                JsonToken v = p.nextToken();
                if (k < 0) {
                    p.skipChildren();
                } else if (v == JsonToken.VALUE_STRING) {
                    values[k] = p.getText();   // a repeated key keeps its last value, as in Python
                } else if (v == JsonToken.START_ARRAY) {
                    List<String> list = new ArrayList<>();
                    while ((v = p.nextToken()) != JsonToken.END_ARRAY) {
                        if (v != JsonToken.VALUE_STRING) {
                            throw new PreprocessException(where(line) + ", column " + p.currentLocation().getColumnNr() + ": the list under \""
                                    + keys[k] + "\" holds " + describe(v) + ", expected only strings (sentences)");
                        }
                        list.add(p.getText());
                    }
                    values[k] = list;
                } else {
                    throw new PreprocessException(where(line) + ", column " + p.currentLocation().getColumnNr() + ": \"" + keys[k] + "\" holds "
                            + describe(v) + ", expected a string (or a list of strings)");
                }
            }
            if (p.nextToken() != null) {
                throw new PreprocessException(where(line) + ", column " + p.currentLocation().getColumnNr()
                        + ": extra data after the JSON object (expected one object per line)");
            }
        } catch (JsonProcessingException e) {
            var loc = e.getLocation();
            // The parser sees one line, so its own line numbers are always 1: keep only the columns,
            // and no cause, which would repeat the message with that wrong "line 1".
            var error = new PreprocessException(where(line) + (loc == null ? "" : ", column " + loc.getColumnNr())
                    + ": invalid JSON: " + JsonErrors.message(e).replace("line 1, column ", "column "));
            error.addSuppressed(e);
            throw error;
        } catch (IOException e) {
            throw new PreprocessException(where(line) + ": " + e.getMessage(), e);
        }
        for (int k = 0; k < keys.length; k++) {
            if (values[k] == null) {
                throw new PreprocessException(where(line) + ": the object has no key \"" + keys[k] + "\" (--json-keys " + String.join(" ", keys) + ")");
            }
        }
    }

    private int keyIndex(String name) {
        for (int k = 0; k < keys.length; k++) {
            if (keys[k].equals(name)) return k;
        }
        return -1;
    }

    private String where(long line) {
        return config.input() + " line " + line;
    }

    private static String describe(JsonToken t) {
        if (t == null) return "nothing";
        return switch (t) {
            case START_OBJECT -> "an object";
            case START_ARRAY -> "a list";
            case VALUE_STRING -> "a string";
            case VALUE_NUMBER_INT, VALUE_NUMBER_FLOAT -> "a number";
            case VALUE_TRUE, VALUE_FALSE -> "a boolean";
            case VALUE_NULL -> "null";
            default -> t.toString();
        };
    }

    private static boolean isBlank(byte[] data, int start, int end) {
        for (int i = start; i < end; i++) {
            byte b = data[i];
            if (b != ' ' && b != '\t' && b != '\r') return false;
        }
        return true;
    }
}
