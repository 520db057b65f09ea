package org.megatronj.io.tokenizer;

import java.text.Normalizer;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * BERT's basic tokenizer (Google's {@code tokenization.py}, as Megatron ships it): drops NUL,
 * U+FFFD and control characters, turns whitespace into spaces, puts spaces around CJK
 * ideographs, splits on whitespace, optionally lower-cases and strips accents (NFD, then drop
 * non-spacing marks), and makes every punctuation character its own word. Works on code points,
 * as Python's {@code str} does.
 */
final class BertBasicTokenizer {
    private final boolean lowerCase;

    BertBasicTokenizer(boolean lowerCase) {
        this.lowerCase = lowerCase;
    }

    /**
     * Calls {@code out} with each whitespace-separated token of the cleaned text (NUL, U+FFFD and
     * control characters removed, every CJK ideograph a token of its own), before lower-casing and
     * punctuation splitting, which {@link #words} does per token. Together they equal the
     * original's whole-text passes, and let callers cache results per token.
     */
    static void forEachToken(String text, Consumer<String> out) {
        int n = text.length();
        int runStart = -1;          // start of the current run of kept characters, -1 if none
        StringBuilder carry = null; // earlier runs of the same token, split by removed characters
        for (int i = 0; i < n; ) {
            int cp = text.codePointAt(i);
            int next = i + Character.charCount(cp);
            if (cp == 0 || cp == 0xFFFD || isControl(cp)) {
                if (runStart >= 0) {
                    carry = (carry == null ? new StringBuilder() : carry).append(text, runStart, i);
                    runStart = -1;
                }
            } else if (isWhitespace(cp) || cp == '\u2028' || cp == '\u2029' || isCjk(cp)) {
                flush(text, runStart, i, carry, out);
                runStart = -1;
                carry = null;
                if (isCjk(cp)) out.accept(text.substring(i, next));
            } else if (runStart < 0) {
                runStart = i;
            }
            i = next;
        }
        flush(text, runStart, n, carry, out);
    }

    private static void flush(String text, int runStart, int end, StringBuilder carry, Consumer<String> out) {
        if (carry == null) {
            if (runStart >= 0) out.accept(text.substring(runStart, end));
        } else {
            if (runStart >= 0) carry.append(text, runStart, end);
            out.accept(carry.toString());
        }
    }

    /** The words of one token: lower-cased and accent-stripped if so configured, split at punctuation. */
    List<String> words(String token) {
        if (lowerCase) {
            token = stripAccents(token.toLowerCase(java.util.Locale.ROOT));
        }
        List<String> words = new ArrayList<>(2);
        splitOnPunctuation(token, words, new StringBuilder());
        return words;
    }

    private static String stripAccents(String token) {
        if (isAscii(token)) {
            return token;  // nothing to decompose
        }
        String nfd = Normalizer.normalize(token, Normalizer.Form.NFD);
        StringBuilder out = new StringBuilder(nfd.length());
        for (int i = 0; i < nfd.length(); ) {
            int cp = nfd.codePointAt(i);
            i += Character.charCount(cp);
            if (Character.getType(cp) != Character.NON_SPACING_MARK) {
                out.appendCodePoint(cp);
            }
        }
        return out.toString();
    }

    private static boolean isAscii(String s) {
        for (int i = 0; i < s.length(); i++) {
            if (s.charAt(i) >= 0x80) return false;
        }
        return true;
    }

    private static void splitOnPunctuation(String token, List<String> words, StringBuilder piece) {
        piece.setLength(0);
        for (int i = 0; i < token.length(); ) {
            int cp = token.codePointAt(i);
            i += Character.charCount(cp);
            if (isPunctuation(cp)) {
                if (!piece.isEmpty()) words.add(piece.toString());
                piece.setLength(0);
                words.add(new String(Character.toChars(cp)));
            } else if (isWhitespace(cp) || cp == '\u2028' || cp == '\u2029') {
                // lower-casing/NFD never yields spaces, but a join-and-resplit in the original would drop them
                if (!piece.isEmpty()) words.add(piece.toString());
                piece.setLength(0);
            } else {
                piece.appendCodePoint(cp);
            }
        }
        if (!piece.isEmpty()) words.add(piece.toString());
    }

    static boolean isWhitespace(int cp) {
        return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || Character.getType(cp) == Character.SPACE_SEPARATOR;
    }

    static boolean isControl(int cp) {
        if (cp == '\t' || cp == '\n' || cp == '\r') return false;
        int type = Character.getType(cp);
        return type == Character.CONTROL || type == Character.FORMAT;
    }

    static boolean isPunctuation(int cp) {
        if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) {
            return true;
        }
        return switch (Character.getType(cp)) {
            case Character.CONNECTOR_PUNCTUATION, Character.DASH_PUNCTUATION, Character.START_PUNCTUATION,
                 Character.END_PUNCTUATION, Character.INITIAL_QUOTE_PUNCTUATION, Character.FINAL_QUOTE_PUNCTUATION,
                 Character.OTHER_PUNCTUATION -> true;
            default -> false;
        };
    }

    /** The CJK Unified Ideographs blocks BERT treats as one-character words (not Hangul, Hiragana or Katakana). */
    static boolean isCjk(int cp) {
        return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF)
                || (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF)
                || (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
    }
}
