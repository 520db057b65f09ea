package org.megatronj.cli.evaluate;

import java.util.function.UnaryOperator;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Megatron's zero-shot detokenizers ({@code tasks/zeroshot_gpt/detokenizer.py}): they undo the
 * tokenisation of word-level corpora (WikiText's " @-@ ", PTB's " n't") before the text is BPE-encoded.
 * The regular expressions use Unicode {@code \s}, as Python's {@code re} does on str.
 */
public final class Detokenizers {
    private static final int FLAGS = Pattern.UNICODE_CHARACTER_CLASS;
    private static final Pattern PARENS = Pattern.compile("\\(\\s*([^\\)]*?)\\s*\\)", FLAGS);
    private static final Pattern BRACKETS = Pattern.compile("\\[\\s*([^\\]]*?)\\s*\\]", FLAGS);
    private static final Pattern BRACES = Pattern.compile("\\{\\s*([^}]*?)\\s*}", FLAGS);
    private static final Pattern DOUBLE_QUOTES = Pattern.compile("\"\\s*([^\"]*?)\\s*\"", FLAGS);
    private static final Pattern SINGLE_QUOTES = Pattern.compile("'\\s*([^']*?)\\s*'", FLAGS);

    private Detokenizers() {
    }

    public static String wikitext(String s) {
        // contractions
        s = s.replace("s '", "s'");
        s = s.replace("/' [0-9]/", "/'[0-9]/");   // Megatron's pattern matches these literal characters
        // number separators
        s = s.replace(" @-@ ", "-");
        s = s.replace(" @,@ ", ",");
        s = s.replace(" @.@ ", ".");
        // punctuation
        s = s.replace(" : ", ": ");
        s = s.replace(" ; ", "; ");
        s = s.replace(" . ", ". ");
        s = s.replace(" ! ", "! ");
        s = s.replace(" ? ", "? ");
        s = s.replace(" , ", ", ");
        // double brackets
        s = enclose(PARENS, s, "(", ")");
        s = enclose(BRACKETS, s, "[", "]");
        s = enclose(BRACES, s, "{", "}");
        s = enclose(DOUBLE_QUOTES, s, "\"", "\"");
        s = enclose(SINGLE_QUOTES, s, "'", "'");
        // miscellaneous
        s = s.replace("= = = =", "====");
        s = s.replace("= = =", "===");
        s = s.replace("= =", "==");
        s = s.replace(" \u00b0 ", "\u00b0");
        s = s.replace(" \n", "\n");
        s = s.replace("\n ", "\n");
        s = s.replace(" N ", " 1 ");
        s = s.replace(" 's", "'s");
        return s;
    }

    public static String ptb(String s) {
        s = s.replace(" '", "'");
        s = s.replace(" \n", "\n");
        s = s.replace("\n ", "\n");
        s = s.replace(" n't", "n't");
        s = s.replace(" N ", "1 ");
        s = s.replace("$ 1", "$1");
        s = s.replace("# 1", "#1");
        return s;
    }

    public static String lambada(String s) {
        return s;
    }

    /** Megatron's choice by file path: the first of "ptb", "wiki", "lambada" the path contains; null if none. */
    public static UnaryOperator<String> forPath(String path) {
        if (path.contains("ptb")) {
            return Detokenizers::ptb;
        }
        if (path.contains("wiki")) {
            return Detokenizers::wikitext;
        }
        if (path.contains("lambada")) {
            return Detokenizers::lambada;
        }
        return null;
    }

    /** By name: wiki, ptb, lambada (identity) or none. */
    public static UnaryOperator<String> named(String name) {
        return switch (name) {
            case "wiki", "wikitext" -> Detokenizers::wikitext;
            case "ptb" -> Detokenizers::ptb;
            case "lambada", "none" -> Detokenizers::lambada;
            default -> throw new IllegalArgumentException("unknown detokenizer '" + name + "' (expected wiki, ptb, lambada or none)");
        };
    }

    /** Python's {@code re.sub(pattern, open + r"\1" + close, s)}. */
    private static String enclose(Pattern p, String s, String open, String close) {
        Matcher m = p.matcher(s);
        return m.replaceAll(r -> Matcher.quoteReplacement(open + r.group(1) + close));
    }
}
