package org.megatronj.io.preprocess;

import java.util.List;

/** Splits a text into sentences for {@code --split-sentences}; implementations are thread-safe. */
public interface SentenceSplitter {
    /** The sentences of {@code text}, in order; whitespace between them may be dropped. */
    List<String> split(String text);
}
