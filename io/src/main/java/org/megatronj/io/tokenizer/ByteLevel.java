package org.megatronj.io.tokenizer;

/**
 * GPT-2's reversible byte-to-character map ({@code bytes_to_unicode}): printable Latin-1 bytes map
 * to themselves, the other 68 bytes to U+0100 and up, so every byte string is a string of
 * visible characters in the vocabulary file.
 */
final class ByteLevel {
    private static final char[] BYTE_TO_CHAR = new char[256];
    private static final int[] CHAR_TO_BYTE = new int[512];

    static {
        java.util.Arrays.fill(CHAR_TO_BYTE, -1);
        int extra = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            char c = printable ? (char) b : (char) (256 + extra++);
            BYTE_TO_CHAR[b] = c;
            CHAR_TO_BYTE[c] = b;
        }
    }

    private ByteLevel() {
    }

    static char byteToChar(int b) {
        return BYTE_TO_CHAR[b];
    }

    /**
     * The bytes a token string stands for: its characters' bytes when every one is in the map (all of a byte-level
     * vocabulary), else the token's own UTF-8 (an added token such as {@code <|eot_id|>} outside it), as the
     * {@code tokenizers} library's ByteLevel decoder has it.
     */
    static byte[] decode(String token) {
        byte[] out = new byte[token.length()];
        for (int i = 0; i < token.length(); i++) {
            char c = token.charAt(i);
            if (c >= CHAR_TO_BYTE.length || CHAR_TO_BYTE[c] < 0) {
                return token.getBytes(java.nio.charset.StandardCharsets.UTF_8);
            }
            out[i] = (byte) CHAR_TO_BYTE[c];
        }
        return out;
    }

    /** UTF-8 encodes chars [start, end) into {@code s.bytes}; returns the byte count. */
    static int utf8(char[] text, int start, int end, ByteLevelBpe.Scratch s) {
        if (s.bytes.length < (end - start) * 3) s.bytes = new byte[(end - start) * 3 + 16];
        byte[] b = s.bytes;
        int n = 0;
        for (int i = start; i < end; i++) {
            char c = text[i];
            if (c < 0x80) {
                b[n++] = (byte) c;
            } else if (c < 0x800) {
                b[n++] = (byte) (0xC0 | (c >> 6));
                b[n++] = (byte) (0x80 | (c & 0x3F));
            } else if (Character.isSurrogate(c)) {
                if (Character.isHighSurrogate(c) && i + 1 < end && Character.isLowSurrogate(text[i + 1])) {
                    int cp = Character.toCodePoint(c, text[++i]);
                    b[n++] = (byte) (0xF0 | (cp >> 18));
                    b[n++] = (byte) (0x80 | ((cp >> 12) & 0x3F));
                    b[n++] = (byte) (0x80 | ((cp >> 6) & 0x3F));
                    b[n++] = (byte) (0x80 | (cp & 0x3F));
                } else {
                    throw new TokenizerException(String.format("the text holds a lone surrogate U+%04X at char %d, which has no UTF-8 encoding"
                            + " (Megatron's tokenizer fails on it too); fix the input's \\u escapes", (int) c, i));
                }
            } else {
                b[n++] = (byte) (0xE0 | (c >> 12));
                b[n++] = (byte) (0x80 | ((c >> 6) & 0x3F));
                b[n++] = (byte) (0x80 | (c & 0x3F));
            }
        }
        return n;
    }
}
