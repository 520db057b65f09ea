package org.megatronj.io.tokenizer;

import java.nio.file.Files;
import java.nio.file.Path;

/** Megatron's {@code --tokenizer-type} values that Megatron-J implements, and how each is built from its flags. */
public enum TokenizerType {
    GPT2BPETokenizer,
    BertWordPieceLowerCase,
    BertWordPieceCase,
    HuggingFaceTokenizer,
    SentencePieceTokenizer,
    GPTSentencePieceTokenizer,
    Llama2Tokenizer,
    NullTokenizer;

    /** {@link #create(Path, Path, Integer, int, Path, boolean)} of a type that needs no {@code --tokenizer-model}. */
    public Tokenizer create(Path vocabFile, Path mergeFile, Integer vocabSize, int vocabExtraIds) {
        return create(vocabFile, mergeFile, vocabSize, vocabExtraIds, null, true);
    }

    /** {@link #create(Path, Path, Integer, int, Path, boolean, org.megatronj.io.tokenizer.NullTokenizer.Form)} with today's NullTokenizer. */
    public Tokenizer create(Path vocabFile, Path mergeFile, Integer vocabSize, int vocabExtraIds, Path tokenizerModel,
                            boolean hfIncludeSpecialTokens) {
        return create(vocabFile, mergeFile, vocabSize, vocabExtraIds, tokenizerModel, hfIncludeSpecialTokens,
                org.megatronj.io.tokenizer.NullTokenizer.Form.TODAY);
    }

    /**
     * Builds the tokenizer, checking that the flags it needs are present.
     *
     * @param vocabFile     {@code --vocab-file} (GPT-2 and BERT)
     * @param mergeFile     {@code --merge-file} (GPT-2)
     * @param vocabSize     {@code --vocab-size} (NullTokenizer), or null
     * @param vocabExtraIds {@code --vocab-extra-ids} (BERT; T5's sentinels)
     * @param tokenizerModel {@code --tokenizer-model} (HuggingFaceTokenizer: the folder with tokenizer.json; the
     *                      SentencePiece types: the tokenizer.model file)
     * @param hfIncludeSpecialTokens HuggingFaceTokenizer: add the post-processor's special tokens (BOS, ...), unless
     *                      {@code --tokenizer-hf-no-include-special-tokens}
     * @param nullForm      NullTokenizer: today's (with {@code --null-tokenizer-eod-id/-pad-id}) or the legacy one
     */
    public Tokenizer create(Path vocabFile, Path mergeFile, Integer vocabSize, int vocabExtraIds, Path tokenizerModel,
                            boolean hfIncludeSpecialTokens, org.megatronj.io.tokenizer.NullTokenizer.Form nullForm) {
        return switch (this) {
            case GPT2BPETokenizer -> {
                requireFile("--vocab-file", vocabFile);
                requireFile("--merge-file", mergeFile);
                noExtraIds(vocabExtraIds);
                yield Gpt2BpeTokenizer.load(vocabFile, mergeFile);
            }
            case BertWordPieceLowerCase, BertWordPieceCase -> {
                requireFile("--vocab-file", vocabFile);
                yield BertWordPieceTokenizer.load(vocabFile, this == BertWordPieceLowerCase, vocabExtraIds);
            }
            case HuggingFaceTokenizer -> {
                if (tokenizerModel == null) {
                    throw new IllegalArgumentException("--tokenizer-type HuggingFaceTokenizer needs --tokenizer-model (the folder"
                            + " holding the model's tokenizer.json)");
                }
                noExtraIds(vocabExtraIds);
                yield org.megatronj.io.tokenizer.HuggingFaceTokenizer.load(tokenizerModel, hfIncludeSpecialTokens);
            }
            case SentencePieceTokenizer, GPTSentencePieceTokenizer, Llama2Tokenizer -> {
                if (tokenizerModel == null) {
                    throw new IllegalArgumentException("--tokenizer-type " + name() + " needs --tokenizer-model (the"
                            + " SentencePiece tokenizer.model)");
                }
                if (this != SentencePieceTokenizer) {
                    noExtraIds(vocabExtraIds);
                }
                yield org.megatronj.io.tokenizer.SentencePieceTokenizer.load(switch (this) {
                    case GPTSentencePieceTokenizer -> org.megatronj.io.tokenizer.SentencePieceTokenizer.Flavor.GPT_SENTENCE_PIECE;
                    case Llama2Tokenizer -> org.megatronj.io.tokenizer.SentencePieceTokenizer.Flavor.LLAMA2;
                    default -> org.megatronj.io.tokenizer.SentencePieceTokenizer.Flavor.SENTENCE_PIECE;
                }, tokenizerModel, vocabExtraIds);
            }
            case NullTokenizer -> {
                if (vocabSize == null) {
                    throw new IllegalArgumentException("--tokenizer-type NullTokenizer needs --vocab-size");
                }
                noExtraIds(vocabExtraIds);
                yield nullForm.create(vocabSize);
            }
        };
    }

    private void requireFile(String flag, Path file) {
        if (file == null) {
            throw new IllegalArgumentException("--tokenizer-type " + name() + " needs " + flag);
        }
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException(flag + " " + file + ": no such file");
        }
    }

    private void noExtraIds(int vocabExtraIds) {
        if (vocabExtraIds != 0) {
            throw new IllegalArgumentException("--vocab-extra-ids applies to the BertWordPiece and SentencePieceTokenizer"
                    + " tokenizers (T5), not to " + name());
        }
    }
}
