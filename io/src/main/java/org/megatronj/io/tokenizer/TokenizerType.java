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
    TikTokenizer,
    NullTokenizer;

    /** {@link #create(TokenizerArgs)} of a type that needs no {@code --tokenizer-model}, with Megatron's defaults. */
    public Tokenizer create(Path vocabFile, Path mergeFile, Integer vocabSize, int vocabExtraIds) {
        return create(TokenizerArgs.of(vocabFile, mergeFile, vocabSize, vocabExtraIds, null));
    }

    /** {@link #create(TokenizerArgs)} with Megatron's defaults besides the files and sizes. */
    public Tokenizer create(Path vocabFile, Path mergeFile, Integer vocabSize, int vocabExtraIds, Path tokenizerModel,
                            boolean hfIncludeSpecialTokens) {
        TokenizerArgs a = TokenizerArgs.of(vocabFile, mergeFile, vocabSize, vocabExtraIds, tokenizerModel);
        return create(new TokenizerArgs(a.vocabFile(), a.mergeFile(), a.vocabSize(), a.vocabExtraIds(), a.tokenizerModel(),
                hfIncludeSpecialTokens, a.nullForm(), a.legacy(), a.tiktokenPattern(), a.tiktokenNumSpecialTokens(),
                a.specialTokens()));
    }

    /** Builds the tokenizer, checking that the arguments it needs are present. */
    public Tokenizer create(TokenizerArgs a) {
        Path vocabFile = a.vocabFile(), mergeFile = a.mergeFile(), tokenizerModel = a.tokenizerModel();
        Integer vocabSize = a.vocabSize();
        int vocabExtraIds = a.vocabExtraIds();
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
                yield org.megatronj.io.tokenizer.HuggingFaceTokenizer.load(tokenizerModel, a.hfIncludeSpecialTokens());
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
            case TikTokenizer -> {
                if (tokenizerModel == null) {
                    throw new IllegalArgumentException("--tokenizer-type TikTokenizer needs --tokenizer-model (the tiktoken"
                            + " vocabulary JSON)");
                }
                if (a.legacy() && a.tiktokenPattern() == null) {   // Megatron's legacy class asserts it is given
                    throw new IllegalArgumentException("the legacy TikTokenizer needs --tiktoken-pattern v1 or v2");
                }
                noExtraIds(vocabExtraIds);
                yield org.megatronj.io.tokenizer.TikTokenizer.load(tokenizerModel, a.legacy(),
                        a.tiktokenPattern() == null ? "v2" : a.tiktokenPattern(),
                        vocabSize == null ? org.megatronj.io.tokenizer.TikTokenizer.DEFAULT_VOCAB_SIZE : vocabSize,
                        a.tiktokenNumSpecialTokens(), a.specialTokens());
            }
            case NullTokenizer -> {
                if (vocabSize == null) {
                    throw new IllegalArgumentException("--tokenizer-type NullTokenizer needs --vocab-size");
                }
                noExtraIds(vocabExtraIds);
                yield a.nullForm().create(vocabSize);
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
