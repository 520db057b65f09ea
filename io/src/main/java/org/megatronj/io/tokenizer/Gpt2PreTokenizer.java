package org.megatronj.io.tokenizer;

/**
 * GPT-2's pre-tokenizer: splits text into the pieces that byte-level BPE then encodes, exactly
 * as {@code re.findall} does with the pattern (Python {@code regex} module)
 * <pre>'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+</pre>
 * but as one left-to-right scan over code points: no regex engine, no backtracking, linear time.
 * {@code \s} is Unicode's White_Space property (what the {@code regex} module matches),
 * {@code \p{L}} and {@code \p{N}} are the letter and number general categories of the JDK's
 * Unicode tables.
 */
final class Gpt2PreTokenizer {
    static final int SPACE = 0, LETTER = 1, NUMBER = 2, OTHER = 3;

    private static final byte[] ASCII_CLASS = new byte[128];

    static {
        for (int c = 0; c < 128; c++) {
            ASCII_CLASS[c] = (byte) classifySlow(c);
        }
    }

    /** Receives each piece as a char range of the text. */
    interface PieceConsumer {
        void accept(String text, int start, int end);
    }

    private Gpt2PreTokenizer() {
    }

    /** Calls {@code out} with every piece of {@code text}, in order; the pieces cover the text exactly. */
    static void split(String text, PieceConsumer out) {
        char[] chars = text.toCharArray();
        int n = chars.length;
        int i = 0;
        while (i < n) {
            int end = pieceEnd(chars, i, n);
            out.accept(text, i, end);
            i = end;
        }
    }

    /** End (exclusive) of the piece starting at {@code i}. */
    static int pieceEnd(char[] text, int i, int n) {
        char c = text[i];
        if (c == '\'' && i + 1 < n) {
            int len = contractionLength(text, i, n);
            if (len > 0) {
                return i + len;
            }
        }
        int cls = classAt(text, i, n);
        if (c == ' ' && i + 1 < n) {
            int next = classAt(text, i + 1, n);
            if (next != SPACE) {
                return runEnd(text, i + 1, n, next);
            }
        }
        if (cls != SPACE) {
            return runEnd(text, i, n, cls);
        }
        int j = runEnd(text, i, n, SPACE);
        if (j == n) {
            return n;                       // \s+(?!\S) at the end of the text
        }
        int lastStart = j - Character.charCount(Character.codePointBefore(text, j));
        return lastStart > i ? lastStart : j; // leave the last space to the following word, or \s+ for one
    }

    private static int contractionLength(char[] text, int i, int n) {
        char a = text[i + 1];
        if (a == 's' || a == 't' || a == 'm' || a == 'd') {
            return 2;
        }
        if (i + 2 < n) {
            char b = text[i + 2];
            if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) {
                return 3;
            }
        }
        return 0;
    }

    private static int runEnd(char[] text, int i, int n, int cls) {
        while (i < n) {
            char c = text[i];
            if (c < 128) {
                if (ASCII_CLASS[c] != cls) return i;
                i++;
            } else {
                int cp = Character.codePointAt(text, i, n);
                if (classify(cp) != cls) return i;
                i += Character.charCount(cp);
            }
        }
        return n;
    }

    static int classAt(char[] text, int i, int n) {
        char c = text[i];
        return c < 128 ? ASCII_CLASS[c] : classify(Character.codePointAt(text, i, n));
    }

    static int classify(int cp) {
        return cp < 128 ? ASCII_CLASS[cp] : classifySlow(cp);
    }

    private static int classifySlow(int cp) {
        if (isWhiteSpace(cp)) {
            return SPACE;
        }
        return switch (Character.getType(cp)) {
            case Character.UPPERCASE_LETTER, Character.LOWERCASE_LETTER, Character.TITLECASE_LETTER,
                 Character.MODIFIER_LETTER, Character.OTHER_LETTER -> LETTER;
            case Character.DECIMAL_DIGIT_NUMBER, Character.LETTER_NUMBER, Character.OTHER_NUMBER -> NUMBER;
            default -> OTHER;
        };
    }

    /** Unicode's White_Space property: what {@code \s} matches in Python's {@code regex} module. */
    static boolean isWhiteSpace(int cp) {
        return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680
                || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F
                || cp == 0x205F || cp == 0x3000;
    }
}
