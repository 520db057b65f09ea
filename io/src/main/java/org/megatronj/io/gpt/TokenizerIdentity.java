package org.megatronj.io.gpt;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.megatronj.io.tokenizer.TikTokenizer;

/**
 * The tokenizer's {@code unique_identifiers}, the part of Megatron's cache description that names
 * the tokenizer. Its shape depends on the Megatron version that wrote (or will read) the cache, so
 * it is built for a chosen {@link Style}; the paths are kept exactly as given on the command line.
 *
 * @param value the JSON value (a map in insertion order) written under {@code "tokenizer"}
 */
public record TokenizerIdentity(Map<String, Object> value) {
    /** The tokenizer class main instantiates (since "tokenizers simplification", after core_v0.19). */
    private static final String MAIN_CLASS = "megatron.core.tokenizers.text.text_tokenizer.MegatronTokenizerText";
    /** The class core_v0.16 to core_v0.19 instantiate (model type "default"/"default-text"). */
    private static final String DEFAULT_TEXT_CLASS = "megatron.core.tokenizers.text.models.default_tokenizer.DefaultTokenizerText";

    /** Which Megatron-LM's tokenizer identifiers to reproduce. */
    public enum Style {
        /** main after core_v0.19 (Aug 2026): {@code MegatronTokenizerText}, with {@code use_gigatoken}. */
        MAIN,
        /** core_v0.17 to core_v0.19: {@code DefaultTokenizerText}, fast HF and special tokens on by default. */
        CORE_V0_17,
        /** core_v0.16.x without {@code --legacy-tokenizer}: {@code DefaultTokenizerText}, fast HF and special tokens off. */
        CORE_V0_16,
        /** core_v0.15.x without {@code --legacy-tokenizer}: {@code DefaultTokenizerText} with only the vocab and merge files. */
        CORE_V0_15,
        /** megatron.training.tokenizer ({@code --legacy-tokenizer}, and all of Megatron before 2025). */
        LEGACY
    }

    public TokenizerIdentity {
        value = Collections.unmodifiableMap(new LinkedHashMap<>(value));
    }

    /** {@code --tokenizer-type GPT2BPETokenizer --vocab-file V --merge-file M [--tokenizer-special-tokens ...]}. */
    public static TokenizerIdentity gpt2Bpe(Style style, String vocabFile, String mergeFile, List<String> specialTokens) {
        Map<String, Object> m = new LinkedHashMap<>();
        if (style == Style.LEGACY) {
            m.put("class", "_GPT2BPETokenizer");
            m.put("tokenizer_path", Arrays.asList(vocabFile, mergeFile));
            return new TokenizerIdentity(m);
        }
        m.put("class", coreClass(style));
        m.put("tokenizer_path", "GPT2BPETokenizer");
        if (style == Style.CORE_V0_15) {
            m.put("vocab_file", pythonStr(vocabFile));
            m.put("merges_file", pythonStr(mergeFile));
            return new TokenizerIdentity(m);
        }
        m.put("additional_special_tokens", pythonListRepr(specialTokens == null ? List.of() : specialTokens));
        m.put("vocab_file", pythonStr(vocabFile));
        m.put("merges_file", pythonStr(mergeFile));
        return withSwitches(m, style, true);
    }

    /**
     * {@code --tokenizer-type HuggingFaceTokenizer --tokenizer-model M [--tokenizer-hf-no-include-special-tokens]}: the
     * legacy {@code _HuggingFaceTokenizer(M)}, or core's {@code huggingface} library tokenizer with the options
     * {@code build_tokenizer} passes, in its order: core_v0.15 the vocab and merges files; core_v0.16 and v0.17 those,
     * the special tokens and the fast/remote-code/special-token switches; core_v0.18 on {@code chat_template} first
     * ({@link Style#CORE_V0_17} stands for core_v0.18 and v0.19 here); main adds {@code use_gigatoken}.
     */
    public static TokenizerIdentity huggingFace(Style style, String tokenizerModel, String vocabFile, String mergeFile,
                                                List<String> specialTokens, boolean includeSpecialTokens) {
        Map<String, Object> m = new LinkedHashMap<>();
        if (style == Style.LEGACY) {
            m.put("class", "_HuggingFaceTokenizer");
            m.put("tokenizer_path", Collections.singletonList(tokenizerModel));
            return new TokenizerIdentity(m);
        }
        m.put("class", coreClass(style));
        m.put("tokenizer_path", tokenizerModel);
        if (style == Style.MAIN || style == Style.CORE_V0_17) {
            m.put("chat_template", "None");
        }
        m.put("vocab_file", pythonStr(vocabFile));
        m.put("merges_file", pythonStr(mergeFile));
        if (style == Style.CORE_V0_15) {
            return new TokenizerIdentity(m);
        }
        m.put("additional_special_tokens", pythonListRepr(specialTokens == null ? List.of() : specialTokens));
        return withSwitches(m, style, includeSpecialTokens);
    }

    /**
     * {@code --tokenizer-type SentencePieceTokenizer|GPTSentencePieceTokenizer|Llama2Tokenizer --tokenizer-model M}: the
     * legacy {@code _SentencePieceTokenizer(M, vocab_extra_ids=N)} and its two subclasses (which pass 0), or core's
     * {@code sentencepiece} library tokenizer: core_v0.15 no options; v0.16 and v0.17 {@code legacy} and
     * {@code special_tokens}; from v0.18 ({@link Style#CORE_V0_17} here) {@code chat_template} and
     * {@code ignore_extra_whitespaces} before them.
     */
    public static TokenizerIdentity sentencePiece(Style style, String tokenizerType, String tokenizerModel, int vocabExtraIds,
                                                  List<String> specialTokens) {
        Map<String, Object> m = new LinkedHashMap<>();
        if (style == Style.LEGACY) {
            m.put("class", "_" + tokenizerType);
            m.put("tokenizer_path", Collections.singletonList(tokenizerModel));
            m.put("vocab_extra_ids", Integer.toString(tokenizerType.equals("SentencePieceTokenizer") ? vocabExtraIds : 0));
            return new TokenizerIdentity(m);
        }
        m.put("class", coreClass(style));
        m.put("tokenizer_path", tokenizerModel);
        if (style == Style.CORE_V0_15) {
            return new TokenizerIdentity(m);
        }
        if (style == Style.MAIN || style == Style.CORE_V0_17) {
            m.put("chat_template", "None");
            m.put("ignore_extra_whitespaces", "True");
        }
        m.put("legacy", "False");
        m.put("special_tokens", specialTokens == null ? "None" : pythonListRepr(specialTokens));
        return new TokenizerIdentity(m);
    }

    /** The fast, remote-code and special-token switches (and main's {@code use_gigatoken}) that end core's options. */
    private static TokenizerIdentity withSwitches(Map<String, Object> m, Style style, boolean includeSpecialTokens) {
        boolean newDefaults = style != Style.CORE_V0_16;   // v0.16 turned fast tokenizers and special tokens on by a flag
        m.put("use_fast", newDefaults ? "True" : "False");
        m.put("trust_remote_code", "False");
        m.put("include_special_tokens", newDefaults && includeSpecialTokens ? "True" : "False");
        if (style == Style.MAIN) {
            m.put("use_gigatoken", "False");
        }
        return new TokenizerIdentity(m);
    }

    /**
     * {@code --tokenizer-type TikTokenizer --tokenizer-model M}: the legacy {@code CustomTikTokenizer(M, pattern, vocab_size,
     * num_special_tokens, special_tokens)} (its pattern the regex itself), or core's {@code tiktoken} library tokenizer
     * with the options {@code build_tokenizer} passes: from core_v0.18 ({@link Style#CORE_V0_17} here)
     * {@code chat_template} first, the pattern and vocabulary size when given, the special tokens' count and list.
     */
    public static TokenizerIdentity tikToken(Style style, String tokenizerModel, String pattern, Integer vocabSize,
                                             int numSpecialTokens, List<String> specialTokens) {
        Map<String, Object> m = new LinkedHashMap<>();
        String special = specialTokens == null ? "None" : pythonListRepr(specialTokens);
        if (style == Style.LEGACY) {
            m.put("class", "CustomTikTokenizer");
            m.put("tokenizer_path", Collections.singletonList(tokenizerModel));
            m.put("pattern", pattern == null ? "None" : TikTokenizer.pattern(pattern));
            m.put("vocab_size", vocabSize == null ? "None" : vocabSize.toString());
            m.put("num_special_tokens", Integer.toString(numSpecialTokens));
            m.put("special_tokens", special);
            return new TokenizerIdentity(m);
        }
        m.put("class", coreClass(style));
        m.put("tokenizer_path", tokenizerModel);
        if (style == Style.MAIN || style == Style.CORE_V0_17) {
            m.put("chat_template", "None");
        }
        if (pattern != null) {
            m.put("pattern", pattern);
        }
        if (vocabSize != null) {
            m.put("vocab_size", vocabSize.toString());
        }
        m.put("num_special_tokens", Integer.toString(numSpecialTokens));
        m.put("special_tokens", special);
        return new TokenizerIdentity(m);
    }

    /**
     * {@code --tokenizer-type NullTokenizer --vocab-size N}: the legacy {@code _NullTokenizer(N)}, or core's {@code null-text}
     * library tokenizer with the options {@code build_tokenizer} passes: the vocabulary size, and from core_v0.18
     * ({@link Style#CORE_V0_17} here) {@code --null-tokenizer-eod-id} when given and {@code --null-tokenizer-pad-id}.
     */
    public static TokenizerIdentity nullTokenizer(Style style, int vocabSize, Integer eodId, int padId) {
        Map<String, Object> m = new LinkedHashMap<>();
        if (style == Style.LEGACY) {
            m.put("class", "_NullTokenizer");
            m.put("tokenizer_path", Collections.singletonList(null));
            m.put("vocab_size", Integer.toString(vocabSize));
            return new TokenizerIdentity(m);
        }
        m.put("class", coreClass(style));
        m.put("tokenizer_path", null);
        m.put("vocab_size", Integer.toString(vocabSize));
        if (style == Style.MAIN || style == Style.CORE_V0_17) {
            if (eodId != null) {
                m.put("eod_id", eodId.toString());
            }
            m.put("pad_id", Integer.toString(padId));
        }
        return new TokenizerIdentity(m);
    }

    private static String coreClass(Style style) {
        return style == Style.MAIN ? MAIN_CLASS : DEFAULT_TEXT_CLASS;
    }

    /** Python's {@code str(x)} of an optional string: the string, or {@code None}. */
    private static String pythonStr(String s) {
        return s == null ? "None" : s;
    }

    /** Python's {@code str(list_of_str)}: {@code ['a', 'b']} (repr of each string). */
    static String pythonListRepr(List<String> items) {
        List<String> parts = new ArrayList<>();
        for (String s : items) {
            boolean useDouble = s.contains("'") && !s.contains("\"");
            char q = useDouble ? '"' : '\'';
            StringBuilder b = new StringBuilder().append(q);
            for (char c : s.toCharArray()) {
                if (c == '\\' || (c == q)) {
                    b.append('\\');
                }
                b.append(c);
            }
            parts.add(b.append(q).toString());
        }
        return "[" + String.join(", ", parts) + "]";
    }
}
