package org.megatronj.io.tokenizer;

import java.util.List;

/**
 * A text tokenizer with Megatron's interface ({@code MegatronTokenizer}): text to token ids and
 * back, the vocabulary size, and the special tokens the models and datasets need. A special token
 * the tokenizer does not define throws {@link UnsupportedOperationException} naming it, as Megatron
 * raises {@code NotImplementedError}. Implementations are immutable and safe to share between threads.
 */
public interface Tokenizer {

    /** Megatron's {@code --tokenizer-type} name of this tokenizer. */
    String typeName();

    /** Number of ids, special and extra ids included (before the model pads it). */
    int vocabSize();

    /** The token ids of a text. */
    int[] tokenize(String text);

    /** Appends the token ids of a text to {@code out} (tokenizers override this to skip the copy). */
    default void tokenize(String text, IntList out) {
        out.addAll(tokenize(text));
    }

    /** The text of token ids. */
    String detokenize(int[] ids);

    /** End-of-document id, appended by {@code --append-eod}. */
    int eod();

    default int cls() {
        throw missing("[CLS]");
    }

    default int sep() {
        throw missing("[SEP]");
    }

    default int pad() {
        throw missing("[PAD]");
    }

    default int mask() {
        throw missing("[MASK]");
    }

    default int bos() {
        throw missing("beginning-of-sentence");
    }

    default int eos() {
        throw missing("end-of-sentence");
    }

    /** Ids of the extra sentinel tokens ({@code <extra_id_0>}, ...; T5's {@code --vocab-extra-ids}). */
    default List<Integer> additionalSpecialTokenIds() {
        return List.of();
    }

    private UnsupportedOperationException missing(String token) {
        return new UnsupportedOperationException(typeName() + " has no " + token + " token");
    }
}
