package org.megatronj.io.preprocess;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * English sentence splitting for {@code --split-sentences}: a written-down rule set modelled on
 * the decisions NLTK's Punkt tokenizer makes with its English model (which Megatron uses), without
 * Punkt's learned statistics.
 *
 * <p>A sentence may end at a run of {@code . ? !}, followed by optional closing quotes or brackets,
 * then whitespace and a next token. The run ends a sentence when it contains {@code ?} or
 * {@code !}. A run of periods only ends one when the word before it is an ordinary word, or when it
 * is a known abbreviation, a single-letter initial, a number, or an ellipsis and the next token is a
 * capitalised common sentence-starting word ({@code The}, {@code He}, {@code But}, ...). A number
 * followed by a capitalised word also ends one. Text after the last break is the last sentence,
 * without trailing whitespace. Whitespace between sentences is dropped, or, with
 * {@code keepNewlines}, kept at the end of the sentence before it (Megatron's
 * {@code CustomLanguageVars}).
 *
 * <p>Where Punkt differs: it decides abbreviations, initials and sentence starters from word
 * statistics learned on a news corpus (so e.g. {@code Inc. Shares} or an unusual abbreviation may
 * split differently), and it also splits before some opening punctuation.
 */
public final class EnglishSentenceSplitter implements SentenceSplitter {

    /** Abbreviations (lower case, without the final period) after which a period rarely ends a sentence. */
    static final Set<String> ABBREVIATIONS = Set.of(
            "mr", "mrs", "ms", "dr", "prof", "rev", "st", "jr", "sr", "gen", "col", "lt", "sgt", "capt", "cmdr", "adm",
            "gov", "sen", "rep", "hon", "pres", "messrs", "mme", "mlle", "fr", "supt", "insp", "cpl", "pvt", "maj",
            "corp", "inc", "co", "ltd", "bros", "llc", "plc", "assn", "dept", "univ", "mfg",
            "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
            "mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri", "sat", "sun",
            "etc", "vs", "v", "e.g", "i.e", "cf", "al", "approx", "est", "fig", "figs", "no", "nos", "vol", "vols", "pp",
            "ed", "eds", "ch", "sec", "art", "op", "cit", "ibid", "viz", "ca", "c",
            "u.s", "u.k", "u.n", "u.s.a", "e.u", "a.m", "p.m", "d.c", "n.y", "l.a", "ph.d", "m.d", "b.a", "m.a", "b.s", "m.s",
            "ave", "blvd", "rd", "ft", "mt", "ste", "sq", "hwy", "ariz", "calif", "colo", "conn", "fla", "ill", "ind", "kan",
            "mass", "mich", "minn", "miss", "nev", "okla", "ore", "pa", "penn", "tenn", "tex", "va", "wash", "wis");

    /** Capitalised words that start sentences often enough to end an abbreviation's sentence before them. */
    static final Set<String> SENTENCE_STARTERS = Set.of(
            "the", "a", "an", "this", "that", "these", "those", "it", "its", "he", "she", "they", "we", "i", "you",
            "there", "but", "and", "or", "so", "in", "on", "at", "as", "if", "when", "while", "after", "before",
            "however", "his", "her", "their", "our", "my", "what", "who", "how", "why", "where", "some", "many",
            "most", "all", "one", "no", "not", "yes", "then", "thus", "also", "for", "to", "by", "with", "from",
            "of", "since", "because", "although", "meanwhile", "still", "yet", "now", "here", "each", "both");

    private static final String CLOSING = "\"')]}\u2019\u201D\u00BB";
    private static final String OPENING = "\"'([{\u2018\u201C\u00AB";

    private final boolean keepNewlines;

    public EnglishSentenceSplitter(boolean keepNewlines) {
        this.keepNewlines = keepNewlines;
    }

    @Override
    public List<String> split(String text) {
        List<String> sentences = new ArrayList<>();
        int n = text.length();
        int lastBreak = 0;
        for (int i = 0; i < n; i++) {
            if (!isEndChar(text.charAt(i))) continue;
            int runStart = i;
            int runEnd = i;
            while (runEnd < n && isEndChar(text.charAt(runEnd))) runEnd++;
            int close = runEnd;
            while (close < n && CLOSING.indexOf(text.charAt(close)) >= 0) close++;
            i = runEnd - 1;
            if (close >= n || !Character.isWhitespace(text.charAt(close))) continue;
            int next = close;
            while (next < n && Character.isWhitespace(text.charAt(next))) next++;
            if (next >= n) break;  // only whitespace follows: the last sentence
            int nextEnd = next;
            while (nextEnd < n && !Character.isWhitespace(text.charAt(nextEnd))) nextEnd++;
            if (endsSentence(text, runStart, runEnd, text.substring(next, nextEnd))) {
                String sentence = text.substring(lastBreak, keepNewlines ? next : close);
                if (!sentence.isBlank()) sentences.add(sentence);
                lastBreak = next;
            }
        }
        String last = text.substring(lastBreak).stripTrailing();
        if (!last.isBlank()) sentences.add(last);
        return sentences;
    }

    private static boolean isEndChar(char c) {
        return c == '.' || c == '?' || c == '!';
    }

    private static boolean endsSentence(String text, int runStart, int runEnd, String nextToken) {
        for (int k = runStart; k < runEnd; k++) {
            if (text.charAt(k) != '.') return true;  // ? or !
        }
        String word = wordBefore(text, runStart);
        boolean ellipsis = runEnd - runStart > 1;
        if (!ellipsis && word.isEmpty()) return true;
        String lower = word.toLowerCase(Locale.ROOT);
        boolean number = isNumber(word);
        boolean initial = word.length() == 1 && Character.isLetter(word.charAt(0));
        boolean abbreviation = ABBREVIATIONS.contains(lower) || isLetterPeriodChain(word);
        if (number) {
            return startsUpperCase(nextToken);
        }
        if (ellipsis || initial || abbreviation) {
            return startsUpperCase(nextToken) && SENTENCE_STARTERS.contains(stripOpening(nextToken).toLowerCase(Locale.ROOT)
                    .replaceAll("[^\\p{L}].*$", ""));
        }
        return true;
    }

    /** The non-space word ending at {@code end}, without opening quotes or brackets. */
    private static String wordBefore(String text, int end) {
        int start = end;
        while (start > 0 && !Character.isWhitespace(text.charAt(start - 1))) start--;
        return stripOpening(text.substring(start, end));
    }

    private static String stripOpening(String s) {
        int k = 0;
        while (k < s.length() && OPENING.indexOf(s.charAt(k)) >= 0) k++;
        return s.substring(k);
    }

    private static boolean startsUpperCase(String token) {
        String t = stripOpening(token);
        return !t.isEmpty() && Character.isUpperCase(t.codePointAt(0));
    }

    private static boolean isNumber(String word) {
        if (word.isEmpty()) return false;
        boolean digit = false;
        for (int k = 0; k < word.length(); k++) {
            char c = word.charAt(k);
            if (Character.isDigit(c)) digit = true;
            else if (c != ',' && c != '.' && c != '-' && c != '+') return false;
        }
        return digit;
    }

    /** {@code U.S}, {@code e.g}, {@code J.R.R}: single letters joined by periods. */
    private static boolean isLetterPeriodChain(String word) {
        if (word.length() < 3) return false;
        for (int k = 0; k < word.length(); k++) {
            boolean letterSlot = k % 2 == 0;
            char c = word.charAt(k);
            if (letterSlot ? !Character.isLetter(c) : c != '.') return false;
        }
        return word.length() % 2 == 1;
    }
}
