package org.megatronj.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.megatronj.io.gpt.TokenizerIdentity;
import org.megatronj.io.tokenizer.NullTokenizer;
import org.megatronj.io.tokenizer.TikTokenizer;
import org.megatronj.io.tokenizer.Tokenizer;
import org.megatronj.io.tokenizer.TokenizerArgs;
import org.megatronj.io.tokenizer.TokenizerType;
import picocli.CommandLine.Option;

/**
 * Megatron's tokenizer flags as a picocli {@code @Mixin}: {@code --tokenizer-type --vocab-file
 * --merge-file --tokenizer-model --vocab-size --vocab-extra-ids --null-tokenizer-eod-id/-pad-id
 * --legacy-tokenizer}, and our {@code --cache-compat}. {@link #build()} checks that the chosen type
 * got the files it needs and loads it.
 */
public final class TokenizerOptions {

    @Option(names = "--tokenizer-type", paramLabel = "TYPE",
            description = "GPT2BPETokenizer, HuggingFaceTokenizer, SentencePieceTokenizer, GPTSentencePieceTokenizer,"
                    + " Llama2Tokenizer, TikTokenizer, BertWordPieceLowerCase, BertWordPieceCase or NullTokenizer.")
    TokenizerType tokenizerType;

    @Option(names = "--vocab-file", paramLabel = "FILE",
            description = "Vocabulary: GPT-2 encoder.json (gpt2-vocab.json) or a BERT vocab.txt.")
    Path vocabFile;

    @Option(names = "--merge-file", paramLabel = "FILE", description = "GPT-2 BPE merges (gpt2-merges.txt / vocab.bpe).")
    Path mergeFile;

    @Option(names = "--tokenizer-model", paramLabel = "PATH", description = "HuggingFaceTokenizer: the folder holding the"
            + " model's tokenizer.json (and tokenizer_config.json), or the tokenizer.json file; byte-level BPE tokenizers"
            + " (GPT-2, Llama 3, Qwen, ...). The SentencePiece types: the tokenizer.model file (BPE or Unigram, with the"
            + " identity normalization or a precompiled map such as nmt_nfkc: Llama 2, Mistral, T5, ...).")
    Path tokenizerModel;

    @Option(names = "--tokenizer-hf-no-include-special-tokens", description = "HuggingFaceTokenizer: leave out the special"
            + " tokens its post-processor adds around each text (e.g. Llama 3's <|begin_of_text|>).")
    boolean hfNoIncludeSpecialTokens;

    @Option(names = "--vocab-size", paramLabel = "N", description = "NullTokenizer: the vocabulary is ids 0..N-1, EOD"
            + " N-1 (--null-tokenizer-eod-id); the legacy NullTokenizer (--legacy-tokenizer, --cache-compat up to CORE_V0_16)"
            + " adds EOD = N.")
    Integer vocabSize;

    @Option(names = "--null-tokenizer-eod-id", paramLabel = "ID", description = "NullTokenizer: the EOD id. Default: N-1.")
    Integer nullTokenizerEodId;

    @Option(names = "--null-tokenizer-pad-id", paramLabel = "ID", defaultValue = "-1", description = "NullTokenizer: the"
            + " pad id, whose labels GPT datasets leave out of the loss. Default: ${DEFAULT-VALUE} (none).")
    int nullTokenizerPadId;

    @Option(names = "--cache-compat", paramLabel = "VERSION", defaultValue = "MAIN",
            description = "Megatron-LM whose tokenizers to match: the tokenizer part of its dataset cache names, and"
                    + " its NullTokenizer's vocabulary. MAIN (after core_v0.19), CORE_V0_17 (core_v0.17-v0.19; its"
                    + " Hugging Face, SentencePiece and Null tokenizers as in v0.18-v0.19), CORE_V0_16, CORE_V0_15,"
                    + " LEGACY (--legacy-tokenizer; the default up to core_v0.14). Default: ${DEFAULT-VALUE}.")
    TokenizerIdentity.Style cacheCompat;

    @Option(names = "--legacy-tokenizer", description = "Megatron's legacy tokenizer classes, as in Megatron up to"
            + " core_v0.14: --cache-compat LEGACY.")
    boolean legacyTokenizer;

    @Option(names = "--tiktoken-pattern", paramLabel = "v1|v2", description = "TikTokenizer: the text splitting pattern"
            + " (default v2; the legacy class needs it given).")
    String tiktokenPattern;

    @Option(names = "--tiktoken-num-special-tokens", paramLabel = "N", defaultValue = "1000", description = "TikTokenizer:"
            + " ids 0..N-1 are special tokens (the given ones, then <SPECIAL_i>). Default: ${DEFAULT-VALUE}.")
    int tiktokenNumSpecialTokens;

    @Option(names = "--tokenizer-special-tokens", preprocessor = LastOccurrenceWins.class,
            arity = "1..*", paramLabel = "TOKEN", description = "TikTokenizer's"
            + " special tokens (they must include <unk> <s> </s>, and today's <mask> <pad> <cls> <sep>); for the other"
            + " types they enter the dataset cache names, as Megatron passes them to its tokenizer.")
    List<String> tokenizerSpecialTokens;

    @Option(names = "--vocab-extra-ids", paramLabel = "N", defaultValue = "0",
            description = "BERT tokenizers: add N sentinel tokens <extra_id_0>.. (T5). Default: ${DEFAULT-VALUE}.")
    int vocabExtraIds;

    /** Whether {@code --tokenizer-type} was given. */
    public boolean isSet() {
        return tokenizerType != null;
    }

    public TokenizerType type() {
        return tokenizerType;
    }

    /** Loads the tokenizer the flags describe. */
    public Tokenizer build() {
        if (tokenizerType == null) {
            throw new IllegalArgumentException("--tokenizer-type is required (GPT2BPETokenizer, HuggingFaceTokenizer,"
                    + " SentencePieceTokenizer, GPTSentencePieceTokenizer, Llama2Tokenizer, TikTokenizer, BertWordPieceLowerCase,"
                    + " BertWordPieceCase or NullTokenizer)");
        }
        return tokenizerType.create(new TokenizerArgs(vocabFile, mergeFile, vocabSize, vocabExtraIds, tokenizerModel,
                !hfNoIncludeSpecialTokens, nullTokenizerForm(), cacheStyle() == TokenizerIdentity.Style.LEGACY, tiktokenPattern,
                tiktokenNumSpecialTokens, tokenizerSpecialTokens));
    }

    /** {@code --cache-compat}, or LEGACY with {@code --legacy-tokenizer}. */
    TokenizerIdentity.Style cacheStyle() {
        if (!legacyTokenizer) {
            return cacheCompat;
        }
        if (cacheCompat != TokenizerIdentity.Style.MAIN && cacheCompat != TokenizerIdentity.Style.LEGACY) {
            throw new IllegalArgumentException("--legacy-tokenizer and --cache-compat " + cacheCompat + " contradict each"
                    + " other: --legacy-tokenizer means --cache-compat LEGACY");
        }
        return TokenizerIdentity.Style.LEGACY;
    }

    /** The NullTokenizer of the chosen Megatron: today's from core_v0.18 ({@link TokenizerIdentity.Style#CORE_V0_17} on). */
    private NullTokenizer.Form nullTokenizerForm() {
        return switch (cacheStyle()) {
            case MAIN, CORE_V0_17 -> new NullTokenizer.Form(false, nullTokenizerEodId, nullTokenizerPadId);
            case CORE_V0_16, CORE_V0_15, LEGACY -> new NullTokenizer.Form(true, nullTokenizerEodId, nullTokenizerPadId);
        };
    }

    /** The tokenizer flags a checkpoint's saved command-line arguments recorded ({@code source} names it in errors). */
    void takeFromSavedArgs(JsonNode args, Path source) {
        String type = args.path("tokenizer-type").asText("");
        if (type.isEmpty()) {
            throw new IllegalArgumentException(source + " does not record its tokenizer: give --tokenizer-type"
                    + " (and --vocab-file/--merge-file or --tokenizer-model)");
        }
        try {
            tokenizerType = TokenizerType.valueOf(type);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(source + " records --tokenizer-type " + type + ", which Megatron-J does not"
                    + " implement: give the tokenizer flags of one it does (" + java.util.Arrays.toString(TokenizerType.values())
                    + ")");
        }
        vocabFile = args.hasNonNull("vocab-file") ? Path.of(args.get("vocab-file").asText()) : null;
        mergeFile = args.hasNonNull("merge-file") ? Path.of(args.get("merge-file").asText()) : null;
        vocabSize = args.hasNonNull("vocab-size") ? args.get("vocab-size").asInt() : null;
        tokenizerModel = args.hasNonNull("tokenizer-model") ? Path.of(args.get("tokenizer-model").asText()) : null;
        hfNoIncludeSpecialTokens = args.path("tokenizer-hf-no-include-special-tokens").asText("false").equals("true");
        vocabExtraIds = args.path("vocab-extra-ids").asInt(0);
        nullTokenizerEodId = args.hasNonNull("null-tokenizer-eod-id") ? args.get("null-tokenizer-eod-id").asInt() : null;
        nullTokenizerPadId = args.path("null-tokenizer-pad-id").asInt(-1);
        tiktokenPattern = args.hasNonNull("tiktoken-pattern") ? args.get("tiktoken-pattern").asText() : null;
        tiktokenNumSpecialTokens = args.path("tiktoken-num-special-tokens").asInt(TikTokenizer.DEFAULT_NUM_SPECIAL_TOKENS);
        tokenizerSpecialTokens = null;
        if (args.path("tokenizer-special-tokens").isArray()) {
            tokenizerSpecialTokens = new ArrayList<>();
            args.get("tokenizer-special-tokens").forEach(t -> tokenizerSpecialTokens.add(t.asText()));
        }
        cacheCompat = TokenizerIdentity.Style.valueOf(args.path("cache-compat").asText("MAIN"));
        legacyTokenizer = args.path("legacy-tokenizer").asText("false").equals("true");
    }

    /** These flags as a checkpoint's saved arguments record them (what {@link #takeFromSavedArgs} reads back). */
    ObjectNode toSavedArgs() {
        ObjectNode args = new ObjectMapper().createObjectNode();
        args.put("tokenizer-type", tokenizerType.name());
        putIfSet(args, "vocab-file", vocabFile);
        putIfSet(args, "merge-file", mergeFile);
        putIfSet(args, "vocab-size", vocabSize);
        putIfSet(args, "tokenizer-model", tokenizerModel);
        if (hfNoIncludeSpecialTokens) {
            args.put("tokenizer-hf-no-include-special-tokens", "true");
        }
        if (vocabExtraIds != 0) {
            args.put("vocab-extra-ids", Integer.toString(vocabExtraIds));
        }
        putIfSet(args, "null-tokenizer-eod-id", nullTokenizerEodId);
        if (nullTokenizerPadId != -1) {
            args.put("null-tokenizer-pad-id", Integer.toString(nullTokenizerPadId));
        }
        putIfSet(args, "tiktoken-pattern", tiktokenPattern);
        if (tiktokenNumSpecialTokens != TikTokenizer.DEFAULT_NUM_SPECIAL_TOKENS) {
            args.put("tiktoken-num-special-tokens", Integer.toString(tiktokenNumSpecialTokens));
        }
        if (tokenizerSpecialTokens != null) {
            tokenizerSpecialTokens.forEach(args.putArray("tokenizer-special-tokens")::add);
        }
        if (cacheCompat != TokenizerIdentity.Style.MAIN) {
            args.put("cache-compat", cacheCompat.name());
        }
        if (legacyTokenizer) {
            args.put("legacy-tokenizer", "true");
        }
        return args;
    }

    private static void putIfSet(ObjectNode args, String flag, Object value) {
        if (value != null) {
            args.put(flag, value.toString());
        }
    }
}
