package org.megatronj.io.tokenizer;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The {@code added_tokens} of a Hugging Face {@code tokenizer.json} that one pass matches (those
 * matched on the raw text, or those matched after normalisation): each occurrence becomes its id
 * and is never split further. Matching is leftmost-longest, as the {@code tokenizers} library's
 * Aho-Corasick matcher; {@code single_word} tokens match only between non-word characters,
 * {@code lstrip}/{@code rstrip} ones take the whitespace before/after them along.
 */
final class AddedTokens {
    /** One added token as {@code tokenizer.json} describes it. */
    record Token(int id, String content, boolean singleWord, boolean lstrip, boolean rstrip, boolean normalized,
                 boolean special) {
    }

    /** A piece of text: either an added token ({@code id >= 0}) or text to tokenize further ({@code id < 0}). */
    record Piece(String text, int id) {
        boolean isToken() {
            return id >= 0;
        }
    }

    /** Tokens by their first character, longest first. */
    private final Map<Character, List<Token>> byFirstChar = new HashMap<>();

    AddedTokens(List<Token> tokens) {
        for (Token t : tokens) {
            if (!t.content().isEmpty()) {
                byFirstChar.computeIfAbsent(t.content().charAt(0), c -> new ArrayList<>()).add(t);
            }
        }
        byFirstChar.values().forEach(l -> l.sort(Comparator.comparingInt((Token t) -> t.content().length()).reversed()));
    }

    boolean isEmpty() {
        return byFirstChar.isEmpty();
    }

    /** Splits {@code text} into added tokens and the text between them, in order (no empty text pieces). */
    void split(String text, List<Piece> out) {
        int done = 0;   // text before this is emitted
        int from = 0;
        while (from < text.length()) {
            Token hit = null;
            int at = from;
            while (at < text.length() && (hit = longestAt(text, at)) == null) {
                at++;
            }
            if (hit == null) {
                break;
            }
            int start = at;
            int end = at + hit.content().length();
            if (hit.lstrip()) {
                while (start > done && Character.isWhitespace(text.charAt(start - 1))) start--;
            }
            if (hit.rstrip()) {
                while (end < text.length() && Character.isWhitespace(text.charAt(end))) end++;
            }
            if (start > done) {
                out.add(new Piece(text.substring(done, start), -1));
            }
            out.add(new Piece(text.substring(start, end), hit.id()));
            done = end;
            from = end;
        }
        if (done < text.length()) {
            out.add(new Piece(text.substring(done), -1));
        }
    }

    /** The longest token that matches at {@code at} (with its word boundaries, for single-word ones), or null. */
    private Token longestAt(String text, int at) {
        List<Token> candidates = byFirstChar.get(text.charAt(at));
        if (candidates == null) {
            return null;
        }
        for (Token t : candidates) {
            if (text.startsWith(t.content(), at) && (!t.singleWord() || isWordAlone(text, at, at + t.content().length()))) {
                return t;
            }
        }
        return null;
    }

    /** Whether {@code [start, end)} has no word character right before or after it. */
    private static boolean isWordAlone(String text, int start, int end) {
        return (start == 0 || !isWordChar(text.codePointBefore(start))) && (end == text.length() || !isWordChar(text.codePointAt(end)));
    }

    private static boolean isWordChar(int cp) {
        return Character.isLetterOrDigit(cp) || cp == '_';
    }
}
