package org.megatronj.io.preprocess;

import org.megatronj.io.tokenizer.IntList;

/**
 * The tokens of one {@link LineBatch}, per JSON key: all token ids back to back, the length of
 * each sequence, and how many sequences each document has (0 for a document without tokens), and
 * the input line of each document.
 */
final class EncodedBatch {
    final IntList[] tokens;
    final IntList[] sequenceLengths;
    final IntList[] sequencesPerDocument;
    final long endOffset;
    final long firstLine;
    final IntList documentLineOffsets = new IntList(256);  // line of document d = firstLine + offset
    int documents;
    long tokenCount;

    EncodedBatch(int keys, int expectedTokens, long endOffset, long firstLine) {
        tokens = new IntList[keys];
        sequenceLengths = new IntList[keys];
        sequencesPerDocument = new IntList[keys];
        for (int k = 0; k < keys; k++) {
            tokens[k] = new IntList(expectedTokens);
            sequenceLengths[k] = new IntList(256);
            sequencesPerDocument[k] = new IntList(256);
        }
        this.endOffset = endOffset;
        this.firstLine = firstLine;
    }
}
