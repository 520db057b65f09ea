package org.megatronj.io.tokenizer;

import java.text.Normalizer;
import java.util.ArrayList;
import java.util.List;

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

    /** The words of {@code text}, ready for WordPiece. */
    List<String> tokenize(String text) {
        String cleaned = cleanAndSpaceCjk(text);
        List<String> words = new ArrayList<>();
        StringBuilder piece = new StringBuilder();
        for (String token : whitespaceSplit(cleaned)) {
            if (lowerCase) {
                token = stripAccents(token.toLowerCase(java.util.Locale.ROOT));
            }
            splitOnPunctuation(token, words, piece);
        }
        return words;
    }

    private static String cleanAndSpaceCjk(String text) {
        StringBuilder out = new StringBuilder(text.length() + 16);
        for (int i = 0; i < text.length(); ) {
            int cp = text.codePointAt(i);
            i += Character.charCount(cp);
            if (cp == 0 || cp == 0xFFFD || isControl(cp)) {
                continue;
            }
            if (isWhitespace(cp)) {
                out.append(' ');
            } else if (isCjk(cp)) {
                out.append(' ').appendCodePoint(cp).append(' ');
            } else {
                out.appendCodePoint(cp);
            }
        }
        return out.toString();
    }

    /** Python's {@code str.split()} after cleaning: spaces and the line/paragraph separators U+2028/U+2029 remain as separators. */
    private static List<String> whitespaceSplit(String text) {
        List<String> tokens = new ArrayList<>();
        int start = -1;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            boolean space = c == ' ' || c == '\u2028' || c == '\u2029' || pythonSpace(c);
            if (space) {
                if (start >= 0) tokens.add(text.substring(start, i));
                start = -1;
            } else if (start < 0) {
                start = i;
            }
        }
        if (start >= 0) tokens.add(text.substring(start));
        return tokens;
    }

    /** Characters Python's {@code str.isspace()} accepts (cleaning removed most; lower-casing can't create any). */
    private static boolean pythonSpace(char c) {
        return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F) || c == 0x85 || Character.getType(c) == Character.SPACE_SEPARATOR;
    }

    private static String stripAccents(String token) {
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
