package org.megatronj.io.preprocess;

/**
 * Whole input lines, bytes {@code [0, length)} of {@code data}, the first being line
 * {@code firstLine} (1-based) of the input; {@code endOffset} is the input's byte offset after them.
 */
record LineBatch(byte[] data, int length, long firstLine, long endOffset) {
}
