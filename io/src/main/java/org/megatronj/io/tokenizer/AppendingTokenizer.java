package org.megatronj.io.tokenizer;

/** A tokenizer whose work is in {@link #tokenize(String, IntList)}: {@link #tokenize(String)} collects what it appends. */
interface AppendingTokenizer extends Tokenizer {
    @Override
    void tokenize(String text, IntList out);

    @Override
    default int[] tokenize(String text) {
        IntList out = new IntList(Math.max(16, text.length() / 3));
        tokenize(text, out);
        return out.toArray();
    }
}
