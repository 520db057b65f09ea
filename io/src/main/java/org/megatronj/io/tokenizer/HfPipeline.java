package org.megatronj.io.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;

import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.function.UnaryOperator;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * The stages of a Hugging Face {@code tokenizer.json} around its BPE model, read from their JSON
 * as the {@code tokenizers} library defines them: the normalizer, the pre-tokenizers, the
 * post-processor of a single sequence, and a check that the decoder is byte-level. A component
 * this reader does not know is refused by name, never skipped.
 */
final class HfPipeline {
    private HfPipeline() {
    }

    /** Splits one piece of text into finer pieces, in order. */
    interface PreTokenizer {
        void split(String piece, List<String> out);
    }

    /** The ids a post-processor puts before and after a single sequence. */
    record Processor(int[] prefix, int[] suffix) {
        static final Processor NONE = new Processor(new int[0], new int[0]);

        Processor around(Processor inner) {
            return new Processor(concat(prefix, inner.prefix), concat(inner.suffix, suffix));
        }

        private static int[] concat(int[] a, int[] b) {
            int[] out = java.util.Arrays.copyOf(a, a.length + b.length);
            System.arraycopy(b, 0, out, a.length, b.length);
            return out;
        }
    }

    /** The library's {@code SplitDelimiterBehavior}. */
    enum Behavior { REMOVED, ISOLATED, MERGED_WITH_PREVIOUS, MERGED_WITH_NEXT, CONTIGUOUS }

    /** {@code Split}: the pattern's matches are the delimiters ({@code invert}: the other parts are). */
    record RegexSplit(Pattern pattern, Behavior behavior, boolean invert) implements PreTokenizer {
        @Override
        public void split(String piece, List<String> out) {
            List<int[]> segments = new ArrayList<>();   // {start, end, 1 if a delimiter}
            Matcher m = pattern.matcher(piece);
            int prev = 0;
            while (m.find()) {
                if (m.end() == m.start()) {
                    continue;
                }
                if (m.start() > prev) {
                    segments.add(new int[] {prev, m.start(), invert ? 1 : 0});
                }
                segments.add(new int[] {m.start(), m.end(), invert ? 0 : 1});
                prev = m.end();
            }
            if (prev < piece.length()) {
                segments.add(new int[] {prev, piece.length(), invert ? 1 : 0});
            }
            for (int[] s : merge(segments)) {
                if (s[1] > s[0]) {
                    out.add(piece.substring(s[0], s[1]));
                }
            }
        }

        private List<int[]> merge(List<int[]> segments) {
            List<int[]> out = new ArrayList<>();
            boolean previousMatch = false;
            switch (behavior) {
                case ISOLATED -> out.addAll(segments);
                case REMOVED -> segments.stream().filter(s -> s[2] == 0).forEach(out::add);
                case MERGED_WITH_PREVIOUS, CONTIGUOUS -> {
                    for (int[] s : segments) {
                        boolean join = behavior == Behavior.CONTIGUOUS ? (s[2] == 1) == previousMatch
                                : s[2] == 1 && !previousMatch;
                        if (join && !out.isEmpty()) {
                            out.getLast()[1] = s[1];
                        } else {
                            out.add(s.clone());
                        }
                        previousMatch = s[2] == 1;
                    }
                }
                case MERGED_WITH_NEXT -> {
                    for (int[] s : segments.reversed()) {
                        if (s[2] == 1 && !previousMatch && !out.isEmpty()) {
                            out.getLast()[0] = s[0];
                        } else {
                            out.add(s.clone());
                        }
                        previousMatch = s[2] == 1;
                    }
                    Collections.reverse(out);
                }
            }
            return out;
        }
    }

    /**
     * {@code ByteLevel}: a space before each piece that does not start with one ({@code add_prefix_space}), then
     * GPT-2's pattern ({@code use_regex}); its mapping to byte characters happens in {@link ByteLevelBpe}.
     */
    record ByteLevelSplit(boolean addPrefixSpace, boolean useRegex) implements PreTokenizer {
        @Override
        public void split(String piece, List<String> out) {
            String text = addPrefixSpace && !piece.startsWith(" ") ? " " + piece : piece;
            if (!useRegex) {
                out.add(text);
                return;
            }
            Gpt2PreTokenizer.split(text, (t, start, end) -> out.add(t.substring(start, end)));
        }
    }

    // ------------------------------------------------------------------ normalizer

    /** The normalizer ({@code null}: none). */
    static UnaryOperator<String> normalizer(JsonNode n, String where) {
        if (n == null || n.isNull()) {
            return UnaryOperator.identity();
        }
        String type = n.path("type").asText("");
        return switch (type) {
            case "NFC" -> s -> Normalizer.normalize(s, Normalizer.Form.NFC);
            case "NFD" -> s -> Normalizer.normalize(s, Normalizer.Form.NFD);
            case "NFKC" -> s -> Normalizer.normalize(s, Normalizer.Form.NFKC);
            case "NFKD" -> s -> Normalizer.normalize(s, Normalizer.Form.NFKD);
            case "Lowercase" -> s -> s.toLowerCase(Locale.ROOT);
            case "Strip" -> {
                boolean left = n.path("strip_left").asBoolean(true);
                boolean right = n.path("strip_right").asBoolean(true);
                yield s -> right ? (left ? s.strip() : s.stripTrailing()) : left ? s.stripLeading() : s;
            }
            case "Prepend" -> {
                String prepend = n.path("prepend").asText();
                yield s -> s.isEmpty() ? s : prepend + s;
            }
            case "Replace" -> {
                Pattern p = pattern(n.path("pattern"), where + " normalizer Replace");
                String content = Matcher.quoteReplacement(n.path("content").asText());
                yield s -> p.matcher(s).replaceAll(content);
            }
            case "Sequence" -> {
                List<UnaryOperator<String>> steps = new ArrayList<>();
                for (JsonNode step : n.path("normalizers")) {
                    steps.add(normalizer(step, where));
                }
                yield s -> {
                    for (UnaryOperator<String> step : steps) {
                        s = step.apply(s);
                    }
                    return s;
                };
            }
            default -> throw unsupported(where, "normalizer", type, "NFC, NFD, NFKC, NFKD, Lowercase, Strip, Prepend,"
                    + " Replace and Sequence");
        };
    }

    // ------------------------------------------------------------------ pre-tokenizers

    /** The pre-tokenizers in order ({@code Sequence} flattened); byte-level BPE needs a {@code ByteLevel} last. */
    static List<PreTokenizer> preTokenizers(JsonNode n, String where) {
        List<PreTokenizer> out = new ArrayList<>();
        addPreTokenizer(n, where, out);
        if (out.isEmpty() || !(out.getLast() instanceof ByteLevelSplit)) {
            throw new TokenizerException(where + ": the pre-tokenizer does not end with ByteLevel; Megatron-J reads byte-level"
                    + " BPE tokenizers (GPT-2, Llama 3, Qwen, ...), whose text becomes bytes before the BPE model");
        }
        for (int i = 0; i + 1 < out.size(); i++) {
            if (out.get(i) instanceof ByteLevelSplit) {
                throw new TokenizerException(where + ": ByteLevel is not the last pre-tokenizer; Megatron-J applies the"
                        + " byte mapping in its BPE model and cannot split byte characters afterwards");
            }
        }
        return out;
    }

    private static void addPreTokenizer(JsonNode n, String where, List<PreTokenizer> out) {
        if (n == null || n.isNull()) {
            return;
        }
        String type = n.path("type").asText("");
        switch (type) {
            case "ByteLevel" -> out.add(new ByteLevelSplit(n.path("add_prefix_space").asBoolean(true),
                    n.path("use_regex").asBoolean(true)));
            case "Split" -> out.add(new RegexSplit(pattern(n.path("pattern"), where + " pre-tokenizer Split"),
                    behavior(n.path("behavior").asText(""), where), n.path("invert").asBoolean(false)));
            case "Digits" -> out.add(new RegexSplit(Pattern.compile("\\p{N}"),
                    n.path("individual_digits").asBoolean(false) ? Behavior.ISOLATED : Behavior.CONTIGUOUS, false));
            case "Sequence" -> {
                for (JsonNode step : n.path("pretokenizers")) {
                    addPreTokenizer(step, where, out);
                }
            }
            default -> throw unsupported(where, "pre-tokenizer", type, "ByteLevel, Split, Digits and Sequence (Metaspace and"
                    + " the word-level ones belong to SentencePiece and WordPiece tokenizers, which Megatron-J does not read"
                    + " from tokenizer.json)");
        }
    }

    private static Behavior behavior(String name, String where) {
        return switch (name) {
            case "Removed" -> Behavior.REMOVED;
            case "Isolated" -> Behavior.ISOLATED;
            case "MergedWithPrevious" -> Behavior.MERGED_WITH_PREVIOUS;
            case "MergedWithNext" -> Behavior.MERGED_WITH_NEXT;
            case "Contiguous" -> Behavior.CONTIGUOUS;
            default -> throw new TokenizerException(where + ": Split behavior '" + name + "' is none of Removed, Isolated,"
                    + " MergedWithPrevious, MergedWithNext, Contiguous");
        };
    }

    /**
     * {@code {"Regex": ...}} or {@code {"String": ...}}. The library's Oniguruma patterns compile as Java ones, with
     * Unicode semantics for {@code \s}, {@code \w} and case ({@code \p{L}}, {@code \p{N}} and lookahead are the same).
     */
    private static Pattern pattern(JsonNode p, String where) {
        if (p.has("String")) {
            return Pattern.compile(Pattern.quote(p.get("String").asText()));
        }
        if (!p.has("Regex")) {
            throw new TokenizerException(where + ": expected a pattern {\"Regex\": ...} or {\"String\": ...}, found " + p);
        }
        String regex = p.get("Regex").asText();
        try {
            return Pattern.compile(regex, Pattern.UNICODE_CHARACTER_CLASS | Pattern.UNICODE_CASE);
        } catch (PatternSyntaxException e) {
            throw new TokenizerException(where + ": the pattern " + regex + " does not compile: " + e.getDescription(), e);
        }
    }

    // ------------------------------------------------------------------ post-processor and decoder

    /** What the post-processor adds around a single sequence. */
    static Processor postProcessor(JsonNode n, String where) {
        if (n == null || n.isNull()) {
            return Processor.NONE;
        }
        String type = n.path("type").asText("");
        return switch (type) {
            case "ByteLevel" -> Processor.NONE;   // only trims offsets, which ids do not carry
            case "BertProcessing", "RobertaProcessing" -> new Processor(new int[] {pairId(n.path("cls"), where)},
                    new int[] {pairId(n.path("sep"), where)});
            case "TemplateProcessing" -> template(n, where);
            case "Sequence" -> {
                Processor p = Processor.NONE;
                for (JsonNode step : n.path("processors")) {
                    p = postProcessor(step, where).around(p);
                }
                yield p;
            }
            default -> throw unsupported(where, "post-processor", type, "ByteLevel, TemplateProcessing, BertProcessing,"
                    + " RobertaProcessing and Sequence");
        };
    }

    /** A {@code ["[CLS]", 101]} pair's id. */
    private static int pairId(JsonNode pair, String where) {
        if (!pair.isArray() || pair.size() != 2 || !pair.get(1).canConvertToInt()) {
            throw new TokenizerException(where + ": expected a [token, id] pair in the post-processor, found " + pair);
        }
        return pair.get(1).asInt();
    }

    /** TemplateProcessing's {@code single} template: the special tokens' ids before and after the sequence {@code $A}. */
    private static Processor template(JsonNode n, String where) {
        List<Integer> before = new ArrayList<>();
        List<Integer> after = new ArrayList<>();
        boolean seenSequence = false;
        for (JsonNode item : n.path("single")) {
            if (item.has("Sequence")) {
                seenSequence = true;
                continue;
            }
            String name = item.path("SpecialToken").path("id").asText(null);
            JsonNode special = n.path("special_tokens").path(name == null ? "" : name);
            if (name == null || !special.path("ids").isArray()) {
                throw new TokenizerException(where + ": the TemplateProcessing item " + item + " names no special token"
                        + " listed under special_tokens");
            }
            for (JsonNode id : special.path("ids")) {
                (seenSequence ? after : before).add(id.asInt());
            }
        }
        return new Processor(before.stream().mapToInt(Integer::intValue).toArray(),
                after.stream().mapToInt(Integer::intValue).toArray());
    }

    /** Decoding maps byte characters back to bytes: the decoder must be ByteLevel (alone or in a Sequence). */
    static void checkDecoder(JsonNode n, String where) {
        String type = n == null ? "none" : n.path("type").asText("none");
        boolean byteLevel = type.equals("ByteLevel") || type.equals("Sequence") && n.path("decoders").size() == 1
                && n.path("decoders").get(0).path("type").asText("").equals("ByteLevel");
        if (!byteLevel) {
            throw unsupported(where, "decoder", type, "ByteLevel");
        }
    }

    private static TokenizerException unsupported(String where, String component, String type, String known) {
        return new TokenizerException(where + ": " + component + " '" + type + "' is not supported; Megatron-J reads " + known);
    }
}
