package org.megatronj.cli;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

import org.megatronj.io.Folders;
import org.megatronj.io.gpt.DataBlend;
import org.megatronj.io.gpt.GptDatasetConfig;
import org.megatronj.io.gpt.GptDatasetFactory;
import org.megatronj.io.gpt.SplitMatrix;
import org.megatronj.io.gpt.TokenizerIdentity;
import org.megatronj.io.tokenizer.Tokenizer;
import org.megatronj.io.tokenizer.TokenizerType;
import picocli.CommandLine.Option;

/**
 * Megatron's GPT data flags as a picocli {@code @Mixin}: where the data is ({@code --data-path}
 * with optional weights, per-split paths, or generated {@code --mock-data}), how it is split and
 * cut into samples, where the index cache lives and how masks and positions are made. {@code data sample},
 * {@code data build-indices} and {@code pretrain gpt} share it, so all three agree on the samples.
 */
public final class GptDataOptions {

    @Option(names = "--data-path", preprocessor = LastOccurrenceWins.class,
            arity = "1..*", paramLabel = "[WEIGHT] PREFIX",
            description = "Dataset prefixes (without .bin/.idx), optionally weighted: --data-path 0.3 A 0.7 B.")
    List<String> dataPath;

    @Option(names = "--mock-data",
            description = "No corpus: train on Megatron-LM's generated mock data (100,000 sequences of 1..4095 tokens, "
                    + "1, 2, 3, ... then EOD), split 1,1,1. For benchmarks and smoke tests.")
    boolean mockData;

    @Option(names = "--split", paramLabel = "SPLIT",
            description = "Train,valid,test proportions of --data-path, e.g. 949,50,1. Default with --data-path: '969, 30, 1'.")
    String split;

    @Option(names = "--train-data-path", preprocessor = LastOccurrenceWins.class,
            arity = "1..*", paramLabel = "[WEIGHT] PREFIX", description = "Training data only (instead of --data-path/--split).")
    List<String> trainDataPath;

    @Option(names = "--valid-data-path", preprocessor = LastOccurrenceWins.class,
            arity = "1..*", paramLabel = "[WEIGHT] PREFIX", description = "Validation data only.")
    List<String> validDataPath;

    @Option(names = "--test-data-path", preprocessor = LastOccurrenceWins.class,
            arity = "1..*", paramLabel = "[WEIGHT] PREFIX", description = "Test data only.")
    List<String> testDataPath;

    @Option(names = "--data-args-path", paramLabel = "FILE",
            description = "A file holding the --data-path words (for long blends), as in Megatron.")
    Path dataArgsPath;

    @Option(names = "--per-split-data-args-path", paramLabel = "FILE",
            description = "A JSON file {\"train\": ..., \"valid\": ..., \"test\": ...} holding the per-split data paths "
                    + "(each a list of words or one string; null for none), as in Megatron.")
    Path perSplitDataArgsPath;

    @Option(names = "--seq-length", required = true, paramLabel = "L", description = "Tokens per sample (model input length).")
    int seqLength;

    @Option(names = "--seed", paramLabel = "S", defaultValue = "1234", description = "Random seed of the shuffles. Default: ${DEFAULT-VALUE}.")
    long seed;

    @Option(names = "--data-cache-path", paramLabel = "DIR",
            description = "Folder of the index cache. Default: <prefix>/cache/GPTDataset_indices for each dataset's indices; "
                    + "a blend's own indices are then rebuilt every run, as in Megatron.")
    Path dataCachePath;

    @Option(names = "--reset-position-ids", description = "Restart position ids after each end-of-document token.")
    boolean resetPositionIds;

    @Option(names = "--reset-attention-mask", description = "Do not attend across end-of-document tokens.")
    boolean resetAttentionMask;

    @Option(names = "--eod-mask-loss", description = "No loss on end-of-document tokens.")
    boolean eodMaskLoss;

    @Option(names = "--dataloader-inter-document-masking",
            description = "Attend only within each document of a sample (the document boundaries of the dataset, whatever"
                    + " its tokens) and restart positions at each document.")
    boolean interDocumentMasking;

    @Option(names = "--no-create-attention-mask-in-dataloader",
            description = "Build no attention masks in the dataloader; as in Megatron, --reset-attention-mask then has no effect.")
    boolean noCreateAttentionMask;

    @Option(names = "--mid-level-dataset-surplus", paramLabel = "F", defaultValue = "0.005",
            description = "Extra share of samples built per blended dataset. Default: ${DEFAULT-VALUE}.")
    double midLevelDatasetSurplus;

    /** Whether any data path was given. */
    public boolean hasData() {
        return dataPath != null || trainDataPath != null || validDataPath != null || testDataPath != null
                || dataArgsPath != null || perSplitDataArgsPath != null;
    }

    /**
     * The data sources, checked: {@code --data-path}, per-split paths or {@code --mock-data}, one of them.
     *
     * @param tokenizer asked only for mock data, whose tokens depend on the vocabulary size and EOD id
     */
    public GptDatasetFactory.Sources sources(Supplier<Tokenizer> tokenizer) {
        checkMockData();
        if (mockData) {
            Tokenizer tok = tokenizer.get();
            return GptDatasetFactory.Sources.mock(tok.vocabSize(), tok.eod());
        }
        readArgsFiles();
        boolean perSplit = trainDataPath != null || validDataPath != null || testDataPath != null;
        if (dataPath != null && perSplit) {
            throw new IllegalArgumentException("use either --data-path (with --split) or --train-data-path/--valid-data-path/--test-data-path, not both");
        }
        if (dataPath != null) {
            return GptDatasetFactory.Sources.of(DataBlend.parse(dataPath));
        }
        if (!perSplit) {
            throw new IllegalArgumentException("no data: give --data-path PREFIX (or --train-data-path ..., or --mock-data)");
        }
        if (split != null) {
            throw new IllegalArgumentException("--split applies to --data-path only; per-split paths use each dataset whole");
        }
        return GptDatasetFactory.Sources.perSplit(blendOrNull(trainDataPath), blendOrNull(validDataPath), blendOrNull(testDataPath));
    }

    /** Refuses data paths next to {@code --mock-data}; commands call it first, before a model is built (Megatron's validate_args). */
    void checkMockData() {
        if (mockData && hasData()) {
            throw new IllegalArgumentException("--mock-data generates its own data: drop " + givenDataFlags()
                    + " (Megatron: a single data source must be provided)");
        }
    }

    /** The data flags given, for the message refusing them next to {@code --mock-data}. */
    private String givenDataFlags() {
        List<String> flags = new ArrayList<>();
        Object[] values = {dataPath, trainDataPath, validDataPath, testDataPath, dataArgsPath, perSplitDataArgsPath};
        String[] names = {"--data-path", "--train-data-path", "--valid-data-path", "--test-data-path", "--data-args-path",
                "--per-split-data-args-path"};
        for (int i = 0; i < names.length; i++) {
            if (values[i] != null) {
                flags.add(names[i]);
            }
        }
        return String.join(", ", flags);
    }

    private static DataBlend blendOrNull(List<String> words) {
        return words == null ? null : DataBlend.parse(words);
    }

    /** Megatron's --data-args-path (the words of --data-path) and --per-split-data-args-path (JSON), read into the path flags. */
    private void readArgsFiles() {
        if (dataArgsPath != null) {
            if (dataPath != null) {
                throw new IllegalArgumentException("use either --data-path or --data-args-path, not both");
            }
            String text = readText(dataArgsPath, "--data-args-path");
            if (text.isBlank()) {
                throw new IllegalArgumentException("--data-args-path " + dataArgsPath + " is empty; expected PREFIX... or WEIGHT PREFIX ...");
            }
            dataPath = List.of(text.strip().split("\\s+"));
            dataArgsPath = null;
        }
        if (perSplitDataArgsPath != null) {
            if (trainDataPath != null || validDataPath != null || testDataPath != null) {
                throw new IllegalArgumentException("use either --per-split-data-args-path or --train-data-path/--valid-data-path/--test-data-path, not both");
            }
            String where = "--per-split-data-args-path " + perSplitDataArgsPath;
            com.fasterxml.jackson.databind.JsonNode json;
            try {
                json = new com.fasterxml.jackson.databind.ObjectMapper().readTree(readText(perSplitDataArgsPath, "--per-split-data-args-path"));
            } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                throw new IllegalArgumentException(where + " is not valid JSON: " + org.megatronj.io.JsonErrors.describe(e));
            }
            if (json == null || !json.isObject()) {
                throw new IllegalArgumentException(where + ": expected a JSON object with the keys train, valid and test");
            }
            trainDataPath = splitWords(json, "train", where);
            validDataPath = splitWords(json, "valid", where);
            testDataPath = splitWords(json, "test", where);
            perSplitDataArgsPath = null;
        }
    }

    /** A split's data path words: a list of strings, or one string split at whitespace (as Megatron does); null for none. */
    private static List<String> splitWords(com.fasterxml.jackson.databind.JsonNode json, String split, String where) {
        if (!json.has(split)) {
            throw new IllegalArgumentException(where + " has no \"" + split + "\" key (Megatron needs train, valid and test; null for none)");
        }
        com.fasterxml.jackson.databind.JsonNode v = json.get(split);
        if (v.isNull()) {
            return null;
        }
        if (v.isTextual()) {
            return List.of(v.asText().strip().split("\\s+"));
        }
        List<String> words = new java.util.ArrayList<>();
        for (com.fasterxml.jackson.databind.JsonNode w : v) {
            if (!v.isArray() || !(w.isTextual() || w.isNumber())) {
                throw new IllegalArgumentException(where + ": \"" + split + "\" must be a list of weights and prefixes, one string, or null");
            }
            words.add(w.asText());
        }
        if (!v.isArray()) {
            throw new IllegalArgumentException(where + ": \"" + split + "\" must be a list of weights and prefixes, one string, or null");
        }
        return words;
    }

    private static String readText(Path file, String flag) {
        try {
            return Files.readString(file);
        } catch (java.nio.file.NoSuchFileException e) {
            throw new IllegalArgumentException(flag + " " + file + ": no such file");
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(flag + " " + file + ": " + e.getMessage(), e);
        }
    }

    /**
     * Megatron's warning when {@code --data-path} comes without {@code --split}, so that the 969/30/1 split is never a
     * surprise, or ours when {@code --split} is ignored for mock data; or null.
     */
    String defaultSplitWarning() {
        if (mockData) {
            // Megatron overrides the split silently (only its INFO log says so): a user who set one should know
            return split == null ? null : "WARNING: --split '" + split + "' is ignored with --mock-data: mock data is split "
                    + GptDatasetFactory.MOCK_SPLIT + ", as in Megatron";
        }
        readArgsFiles();
        return dataPath != null && split == null
                ? "WARNING: Please specify --split when using --data-path. Using legacy default value of \"" + SplitMatrix.LEGACY_DEFAULT_SPLIT + "\""
                : null;
    }

    /** Prints {@link #defaultSplitWarning()} and {@link #attentionMaskWarning()} if there are any. */
    void warnAboutDefaults(java.io.PrintWriter err) {
        for (String warning : new String[] {defaultSplitWarning(), attentionMaskWarning()}) {
            if (warning != null) {
                err.println(warning);
                err.flush();
            }
        }
    }

    /** Why {@code --reset-attention-mask} changes nothing with the other mask flags given, or null. */
    String attentionMaskWarning() {
        if (!resetAttentionMask) {
            return null;
        }
        if (noCreateAttentionMask) {
            return "WARNING: --reset-attention-mask has no effect with --no-create-attention-mask-in-dataloader: as in Megatron,"
                    + " no attention mask is built, and tokens attend across end-of-document tokens";
        }
        return interDocumentMasking ? "WARNING: --reset-attention-mask has no effect with --dataloader-inter-document-masking:"
                + " as in Megatron, the documents of the dataset bound attention instead of end-of-document tokens" : null;
    }

    /** The split string Megatron would use: as given, or its legacy default with {@code --data-path}; 1,1,1 for mock data. */
    String effectiveSplit() {
        if (mockData) {
            return GptDatasetFactory.MOCK_SPLIT;
        }
        readArgsFiles();
        if (dataPath == null) {
            return null;
        }
        return split != null ? split : SplitMatrix.LEGACY_DEFAULT_SPLIT;
    }

    /** The dataset config for these flags, the tokenizer flags' identity, and the tokenizer's EOD and pad ids. */
    public GptDatasetConfig config(TokenizerOptions tokenizer, Tokenizer tok) {
        return config(tokenizer, tok.eod(), datasetPadId(tok));
    }

    /** The dataset config when no sample is read (only the indices are built): no EOD and pad ids. */
    public GptDatasetConfig indicesConfig(TokenizerOptions tokenizer) {
        return config(tokenizer, -1, -1);
    }

    private GptDatasetConfig config(TokenizerOptions tokenizer, int eodId, int padId) {
        String s = effectiveSplit();
        return new GptDatasetConfig(seed, seqLength, s, s == null ? null : SplitMatrix.parse(s), identity(tokenizer), eodId, padId,
                resetPositionIds, resetAttentionMask && !noCreateAttentionMask, eodMaskLoss, interDocumentMasking, true, true,
                checkedCacheFolder(dataCachePath), midLevelDatasetSurplus);
    }

    /**
     * Megatron's dataset pad id: the tokenizer's pad, whose labels leave the loss; -1 (none) when the tokenizer has none,
     * or when it is also its EOD or EOS, which would then leave the loss too.
     */
    static int datasetPadId(Tokenizer tok) {
        int pad;
        try {
            pad = tok.pad();
        } catch (UnsupportedOperationException e) {
            return -1;
        }
        return pad == tok.eod() || pad == eosOrMinusOne(tok) ? -1 : pad;
    }

    private static int eosOrMinusOne(Tokenizer tok) {
        try {
            return tok.eos();
        } catch (UnsupportedOperationException e) {
            return -1;
        }
    }

    /**
     * Fails up front when {@code --data-cache-path} (or a folder above it) is a file: creating the
     * folder later would only say "already exists" or "Not a directory", without naming the flag.
     */
    static Path checkedCacheFolder(Path cache) {
        if (cache == null) {
            return null;
        }
        Path p = Folders.fileInTheWay(cache);
        if (p != null) {
            throw new IllegalArgumentException("--data-cache-path " + cache + ": " + (p.equals(cache.toAbsolutePath()) ? "" : p + " ")
                    + "is a file, not a folder; expected a folder (or a path to create) for the index cache");
        }
        return cache;
    }

    /** The tokenizer's part of Megatron's cache description, from the flags as typed. */
    public TokenizerIdentity identity(TokenizerOptions tokenizer) {
        if (!tokenizer.isSet()) {
            throw new IllegalArgumentException("--tokenizer-type is required: the tokenizer is part of Megatron's cache file names");
        }
        TokenizerIdentity.Style style = tokenizer.cacheStyle();
        TokenizerType type = tokenizer.type();
        return switch (type) {
            case GPT2BPETokenizer -> TokenizerIdentity.gpt2Bpe(style, pathText(tokenizer.vocabFile), pathText(tokenizer.mergeFile),
                    tokenizer.tokenizerSpecialTokens);
            case HuggingFaceTokenizer -> TokenizerIdentity.huggingFace(style, pathText(tokenizer.tokenizerModel),
                    pathText(tokenizer.vocabFile), pathText(tokenizer.mergeFile), tokenizer.tokenizerSpecialTokens,
                    !tokenizer.hfNoIncludeSpecialTokens);
            case SentencePieceTokenizer, GPTSentencePieceTokenizer, Llama2Tokenizer -> TokenizerIdentity.sentencePiece(
                    style, type.name(), pathText(tokenizer.tokenizerModel), tokenizer.vocabExtraIds, tokenizer.tokenizerSpecialTokens);
            case TikTokenizer -> TokenizerIdentity.tikToken(style, pathText(tokenizer.tokenizerModel), tokenizer.tiktokenPattern,
                    tokenizer.vocabSize, tokenizer.tiktokenNumSpecialTokens, tokenizer.tokenizerSpecialTokens);
            case NullTokenizer -> {
                if (tokenizer.vocabSize == null) {
                    throw new IllegalArgumentException("--tokenizer-type NullTokenizer needs --vocab-size");
                }
                yield TokenizerIdentity.nullTokenizer(style, tokenizer.vocabSize, tokenizer.nullTokenizerEodId, tokenizer.nullTokenizerPadId);
            }
            default -> throw new IllegalArgumentException("GPT datasets with --tokenizer-type " + type
                    + " are not supported: use GPT2BPETokenizer, HuggingFaceTokenizer,"
                    + " a SentencePiece one, TikTokenizer or NullTokenizer");
        };
    }

    private static String pathText(Path p) {
        return p == null ? null : p.toString();
    }

    /** The samples requested per split (--train-samples, --valid-samples, --test-samples): null entries mean "one epoch". */
    static Long[] sizes(Long train, Long valid, Long test) {
        Long[] sizes = {train, valid, test};
        String[] flags = {"--train-samples", "--valid-samples", "--test-samples"};
        for (int i = 0; i < sizes.length; i++) {
            if (sizes[i] != null && sizes[i] < 0) {
                throw new IllegalArgumentException(flags[i] + " must be >= 0, got " + sizes[i]);
            }
        }
        return sizes;
    }
}
