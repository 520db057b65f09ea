package org.megatronj.io.tokenizer;

import java.nio.file.Path;
import java.util.List;

/**
 * Megatron's tokenizer arguments, as its {@code build_tokenizer(args)} reads them; each type uses its own and
 * {@link TokenizerType#create} checks that they are there.
 *
 * @param vocabFile              {@code --vocab-file} (GPT-2 and BERT)
 * @param mergeFile              {@code --merge-file} (GPT-2)
 * @param vocabSize              {@code --vocab-size} (NullTokenizer; TikTokenizer's total), or null
 * @param vocabExtraIds          {@code --vocab-extra-ids} (BERT, SentencePieceTokenizer; T5's sentinels)
 * @param tokenizerModel         {@code --tokenizer-model} (HuggingFaceTokenizer: tokenizer.json or its folder; the
 *                               SentencePiece types: tokenizer.model; TikTokenizer: its vocabulary JSON)
 * @param hfIncludeSpecialTokens HuggingFaceTokenizer: the post-processor's special tokens, unless
 *                               {@code --tokenizer-hf-no-include-special-tokens}
 * @param nullForm               NullTokenizer: today's (with {@code --null-tokenizer-eod-id/-pad-id}) or the legacy one
 * @param legacy                 Megatron's legacy tokenizer classes ({@code --legacy-tokenizer} or an older Megatron)
 * @param tiktokenPattern        {@code --tiktoken-pattern} v1 or v2 (null: v2, which the legacy class requires given)
 * @param tiktokenNumSpecialTokens {@code --tiktoken-num-special-tokens}
 * @param specialTokens          {@code --tokenizer-special-tokens} (TikTokenizer's; null: its defaults)
 */
public record TokenizerArgs(Path vocabFile, Path mergeFile, Integer vocabSize, int vocabExtraIds, Path tokenizerModel,
                            boolean hfIncludeSpecialTokens, NullTokenizer.Form nullForm, boolean legacy,
                            String tiktokenPattern, int tiktokenNumSpecialTokens, List<String> specialTokens) {

    /** The files and sizes only, everything else at Megatron's defaults (today's tokenizers). */
    public static TokenizerArgs of(Path vocabFile, Path mergeFile, Integer vocabSize, int vocabExtraIds, Path tokenizerModel) {
        return new TokenizerArgs(vocabFile, mergeFile, vocabSize, vocabExtraIds, tokenizerModel, true, NullTokenizer.Form.TODAY,
                false, null, TikTokenizer.DEFAULT_NUM_SPECIAL_TOKENS, null);
    }
}
