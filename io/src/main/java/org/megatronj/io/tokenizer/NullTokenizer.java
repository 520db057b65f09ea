package org.megatronj.io.tokenizer;

/**
 * Megatron's {@code NullTokenizer}: the text already is token ids separated by single spaces
 * ({@code "17 4 1023"}); ids must be below {@code --vocab-size}, and the EOD id is
 * {@code --vocab-size} itself, so the vocabulary has {@code vocab-size + 1} entries.
 */
public final class NullTokenizer implements Tokenizer {
    private final int vocabSizeWithoutEod;

    public NullTokenizer(int vocabSize) {
        if (vocabSize <= 0) {
            throw new IllegalArgumentException("NullTokenizer needs --vocab-size > 0, got " + vocabSize);
        }
        this.vocabSizeWithoutEod = vocabSize;
    }

    @Override
    public String typeName() {
        return "NullTokenizer";
    }

    @Override
    public int vocabSize() {
        return vocabSizeWithoutEod + 1;
    }

    @Override
    public int eod() {
        return vocabSizeWithoutEod;
    }

    /** Parses {@code text.split(' ')} as integers, as Megatron does (so an empty text or a double space is an error there too). */
    @Override
    public int[] tokenize(String text) {
        IntList ids = new IntList(text.length() / 3 + 1);
        int start = 0;
        while (true) {
            int end = text.indexOf(' ', start);
            String part = (end < 0 ? text.substring(start) : text.substring(start, end)).strip();
            int id;
            try {
                id = Integer.parseInt(part);
            } catch (NumberFormatException e) {
                throw new TokenizerException("NullTokenizer expects token ids separated by single spaces; '" + part
                        + "' at char " + start + " is not an integer");
            }
            if (id < 0 || id > vocabSizeWithoutEod) {
                throw new TokenizerException("NullTokenizer: token id " + id + " at char " + start + " is outside 0.." + vocabSizeWithoutEod
                        + " (--vocab-size " + vocabSizeWithoutEod + ", EOD = " + vocabSizeWithoutEod + ")");
            }
            ids.add(id);
            if (end < 0) break;
            start = end + 1;
        }
        return ids.toArray();
    }

    @Override
    public String detokenize(int[] ids) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < ids.length; i++) {
            if (i > 0) sb.append(' ');
            sb.append(ids[i]);
        }
        return sb.toString();
    }
}
