package org.megatronj.cli.serve;

import org.megatronj.io.tokenizer.Tokenizer;

/**
 * The token ids Megatron's generation rules look at. Megatron hard-codes GPT-2's 198 ("\n") and 628
 * ("\n\n") for {@code stop_on_eol}/{@code stop_on_double_eol}; we ask the tokenizer, which gives the same
 * ids for GPT-2 and works for other vocabularies. -1 = the tokenizer has no single token for it.
 */
public record SpecialTokens(int eod, int newline, int doubleNewline, int colon) {

    public static SpecialTokens of(Tokenizer tokenizer) {
        return new SpecialTokens(tokenizer.eod(), single(tokenizer, "\n"), single(tokenizer, "\n\n"),
                first(tokenizer, ":"));
    }

    private static int single(Tokenizer tokenizer, String text) {
        int[] ids = tryTokenize(tokenizer, text);
        return ids.length == 1 ? ids[0] : -1;
    }

    /** Megatron uses {@code tokenize(':')[0]}. */
    private static int first(Tokenizer tokenizer, String text) {
        int[] ids = tryTokenize(tokenizer, text);
        return ids.length >= 1 ? ids[0] : -1;
    }

    private static int[] tryTokenize(Tokenizer tokenizer, String text) {
        try {
            return tokenizer.tokenize(text);
        } catch (RuntimeException e) {   // e.g. the null tokenizer reads only integers
            return new int[0];
        }
    }
}
