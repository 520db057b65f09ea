package org.megatronj.io.tokenizer;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.megatronj.io.JsonErrors;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.UnaryOperator;

/**
 * Megatron's {@code --tokenizer-type HuggingFaceTokenizer --tokenizer-model DIR}: the fast tokenizer
 * that {@code transformers.AutoTokenizer} builds from {@code DIR/tokenizer.json}, for byte-level BPE
 * tokenizers (GPT-2, Llama 3, Qwen, Mistral NeMo, ...), read without Python. A text goes the
 * library's way: added tokens are cut out of the raw text, the rest is normalised (and the added
 * tokens marked {@code normalized} cut out of that), pre-tokenized, and encoded by BPE; the
 * post-processor's special tokens ({@code <|begin_of_text|>}, ...) surround the result, as Megatron's
 * {@code tokenizer(text).input_ids} has them (unless {@code includeSpecialTokens} is false, Megatron's
 * {@code --tokenizer-hf-no-include-special-tokens}). The end-of-document id is the {@code eos_token}
 * of {@code tokenizer_config.json} (or {@code special_tokens_map.json}), as Megatron's {@code eod}.
 * Tokenizers of other kinds (SentencePiece's Metaspace BPE, WordPiece, Unigram) are refused by name.
 */
public final class HuggingFaceTokenizer implements AppendingTokenizer {
    public static final String TOKENIZER_FILE = "tokenizer.json";
    private static final ObjectMapper JSON = new ObjectMapper();

    private final ByteLevelBpe bpe;
    private final AddedTokens rawAdded;
    private final AddedTokens normalizedAdded;
    private final UnaryOperator<String> normalizer;
    private final List<HfPipeline.PreTokenizer> preTokenizers;
    private final HfPipeline.Processor processor;
    private final Map<Integer, String> addedById = new HashMap<>();
    private final int vocabSize;
    private final Map<String, Integer> specialIds = new HashMap<>();   // eos_token, bos_token, ... -> id
    private final boolean cleanUpTokenizationSpaces;
    private final String source;

    private HuggingFaceTokenizer(Path file, JsonNode root, JsonNode config, boolean includeSpecialTokens) {
        this.source = file.toString();
        JsonNode model = root.path("model");
        checkModel(model);
        Map<String, Integer> vocab = vocab(model.path("vocab"));
        this.bpe = new ByteLevelBpe(vocab, merges(model.path("merges")), model.path("ignore_merges").asBoolean(false), source);
        List<AddedTokens.Token> raw = new ArrayList<>();
        List<AddedTokens.Token> normalized = new ArrayList<>();
        Set<String> strings = new HashSet<>(vocab.keySet());
        Map<String, Integer> addedByContent = new HashMap<>();
        for (JsonNode t : root.path("added_tokens")) {
            AddedTokens.Token token = new AddedTokens.Token(t.path("id").asInt(-1), t.path("content").asText(""),
                    t.path("single_word").asBoolean(false), t.path("lstrip").asBoolean(false),
                    t.path("rstrip").asBoolean(false), t.path("normalized").asBoolean(!t.path("special").asBoolean(false)),
                    t.path("special").asBoolean(false));
            if (token.id() < 0 || token.content().isEmpty()) {
                throw new TokenizerException(source + ": added token " + t + " needs a non-negative id and a content");
            }
            (token.normalized() ? normalized : raw).add(token);
            addedById.put(token.id(), token.content());
            addedByContent.put(token.content(), token.id());
            strings.add(token.content());
        }
        this.rawAdded = new AddedTokens(raw);
        this.normalizedAdded = new AddedTokens(normalized);
        this.vocabSize = strings.size();   // the library's vocabulary size with added tokens: distinct strings
        this.normalizer = HfPipeline.normalizer(root.get("normalizer"), source);
        this.preTokenizers = HfPipeline.preTokenizers(root.get("pre_tokenizer"), source);
        this.processor = includeSpecialTokens ? HfPipeline.postProcessor(root.get("post_processor"), source)
                : HfPipeline.Processor.NONE;
        HfPipeline.checkDecoder(root.get("decoder"), source);
        for (String name : List.of("eos_token", "bos_token", "pad_token", "mask_token")) {
            String content = specialToken(config, name);
            if (content != null) {
                Integer id = addedByContent.containsKey(content) ? addedByContent.get(content) : vocab.get(content);
                if (id == null) {
                    throw new TokenizerException(file.resolveSibling("tokenizer_config.json") + ": its " + name + " '" + content
                            + "' is not a token of " + file);
                }
                specialIds.put(name, id);
            }
        }
        this.cleanUpTokenizationSpaces = config.path("clean_up_tokenization_spaces").asBoolean(false);
    }

    /**
     * Loads {@code --tokenizer-model}: a folder holding {@code tokenizer.json} (and usually {@code tokenizer_config.json}),
     * or the {@code tokenizer.json} file itself.
     */
    public static HuggingFaceTokenizer load(Path tokenizerModel, boolean includeSpecialTokens) {
        Path file = Files.isDirectory(tokenizerModel) ? tokenizerModel.resolve(TOKENIZER_FILE) : tokenizerModel;
        if (!Files.isRegularFile(file)) {
            throw new TokenizerException("--tokenizer-model " + tokenizerModel + ": " + (Files.isDirectory(tokenizerModel)
                    ? "the folder holds no " + TOKENIZER_FILE : "no such folder or file") + "; give a local folder with the"
                    + " model's tokenizer.json (Megatron-J reads no Hugging Face Hub names and downloads nothing)");
        }
        JsonNode config = JSON.createObjectNode();
        for (String name : List.of("special_tokens_map.json", "tokenizer_config.json")) {   // the second wins
            Path extra = file.resolveSibling(name);
            if (Files.isRegularFile(extra)) {
                ((com.fasterxml.jackson.databind.node.ObjectNode) config).setAll(
                        (com.fasterxml.jackson.databind.node.ObjectNode) readObject(extra));
            }
        }
        return new HuggingFaceTokenizer(file, readObject(file), config, includeSpecialTokens);
    }

    private static JsonNode readObject(Path file) {
        JsonNode n;
        try {
            n = JSON.readTree(file.toFile());
        } catch (JsonProcessingException e) {
            throw new TokenizerException(file + " is not valid JSON: " + JsonErrors.describe(e), e);
        } catch (IOException e) {
            throw new TokenizerException("cannot read " + file + ": " + e.getMessage(), e);
        }
        if (n == null || !n.isObject()) {
            throw new TokenizerException(file + ": expected a JSON object");
        }
        return n;
    }

    /** A special token of tokenizer_config.json: a string, or an AddedToken object's content; null if absent. */
    private static String specialToken(JsonNode config, String name) {
        JsonNode v = config.get(name);
        if (v == null || v.isNull()) {
            return null;
        }
        return v.isTextual() ? v.asText() : v.path("content").asText(null);
    }

    private void checkModel(JsonNode model) {
        String type = model.path("type").asText("");
        if (!type.equals("BPE")) {
            throw new TokenizerException(source + ": model type '" + type + "' is not supported; Megatron-J reads byte-level"
                    + " BPE tokenizers (GPT-2, Llama 3, Qwen, ...)");
        }
        if (model.path("byte_fallback").asBoolean(false)) {
            throw new TokenizerException(source + ": a BPE model with byte_fallback is SentencePiece's (Llama 2, Mistral 7B),"
                    + " which Megatron-J does not read; it reads byte-level BPE tokenizers (GPT-2, Llama 3, Qwen, ...)");
        }
        for (String affix : List.of("continuing_subword_prefix", "end_of_word_suffix")) {
            if (!model.path(affix).asText("").isEmpty()) {
                throw new TokenizerException(source + ": BPE " + affix + " '" + model.path(affix).asText() + "' is not"
                        + " supported (byte-level BPE has none)");
            }
        }
        if (model.path("dropout").asDouble(0) > 0) {
            throw new TokenizerException(source + ": BPE dropout " + model.path("dropout").asDouble() + " makes tokenization"
                    + " random; remove it from the file for training data");
        }
    }

    private Map<String, Integer> vocab(JsonNode vocab) {
        if (!vocab.isObject() || vocab.isEmpty()) {
            throw new TokenizerException(source + ": model.vocab must be a non-empty object {\"token\": id, ...}");
        }
        Map<String, Integer> out = new HashMap<>(vocab.size() * 2);
        for (var e : vocab.properties()) {
            if (!e.getValue().canConvertToInt() || e.getValue().asInt() < 0) {
                throw new TokenizerException(source + ": the id of vocabulary token '" + e.getKey() + "' is " + e.getValue()
                        + ", expected a non-negative integer");
            }
            out.put(e.getKey(), e.getValue().asInt());
        }
        return out;
    }

    /** Merges as {@code "a b"} strings or, in newer files, {@code ["a", "b"]} pairs, by rank. */
    private List<String[]> merges(JsonNode merges) {
        List<String[]> out = new ArrayList<>(merges.size());
        for (JsonNode m : merges) {
            String[] pair = m.isArray() && m.size() == 2 ? new String[] {m.get(0).asText(), m.get(1).asText()}
                    : m.isTextual() ? m.asText().split(" ", -1) : null;
            if (pair == null || pair.length != 2 || pair[0].isEmpty() || pair[1].isEmpty()) {
                throw new TokenizerException(source + ": merge " + out.size() + " is " + m + ", expected \"a b\" or [\"a\", \"b\"]");
            }
            out.add(pair);
        }
        return out;
    }

    @Override
    public String typeName() {
        return "HuggingFaceTokenizer";
    }

    @Override
    public int vocabSize() {
        return vocabSize;
    }

    @Override
    public void tokenize(String text, IntList out) {
        out.addAll(processor.prefix());
        List<AddedTokens.Piece> pieces = new ArrayList<>();
        rawAdded.split(text, pieces);
        List<AddedTokens.Piece> inner = new ArrayList<>();
        for (AddedTokens.Piece piece : pieces) {
            if (piece.isToken()) {
                out.add(piece.id());
                continue;
            }
            inner.clear();
            normalizedAdded.split(normalizer.apply(piece.text()), inner);
            for (AddedTokens.Piece p : inner) {
                if (p.isToken()) {
                    out.add(p.id());
                } else {
                    encodeText(p.text(), out);
                }
            }
        }
        out.addAll(processor.suffix());
    }

    /** Pre-tokenizes normalised text and encodes each piece with BPE. */
    private void encodeText(String text, IntList out) {
        List<String> pieces = List.of(text);
        for (HfPipeline.PreTokenizer step : preTokenizers) {
            List<String> next = new ArrayList<>(pieces.size() * 2);
            for (String p : pieces) {
                step.split(p, next);
            }
            pieces = next;
        }
        for (String p : pieces) {
            bpe.encode(p, out);
        }
    }

    /**
     * The library's {@code decode(ids)} with special tokens kept, then transformers' {@code clean_up_tokenization}
     * where {@code tokenizer_config.json} asks for it: each token's byte characters become bytes (a token with
     * characters outside GPT-2's byte map, an added one, stands for its UTF-8), decoded as UTF-8 with U+FFFD for
     * malformed bytes.
     */
    @Override
    public String detokenize(int[] ids) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(ids.length * 4);
        for (int id : ids) {
            String added = addedById.get(id);
            byte[] b = added != null ? ByteLevel.decode(added) : bpe.bytes(id);
            if (b == null) {
                throw new IllegalArgumentException("token id " + id + " is not in the vocabulary of " + source);
            }
            bytes.writeBytes(b);
        }
        String text = bytes.toString(StandardCharsets.UTF_8);
        return cleanUpTokenizationSpaces ? cleanUpTokenization(text) : text;
    }

    /** transformers' {@code clean_up_tokenization}: no space before punctuation and English contractions. */
    static String cleanUpTokenization(String s) {
        return s.replace(" .", ".").replace(" ?", "?").replace(" !", "!").replace(" ,", ",").replace(" ' ", "'")
                .replace(" n't", "n't").replace(" 'm", "'m").replace(" 's", "'s").replace(" 've", "'ve").replace(" 're", "'re");
    }

    @Override
    public int eod() {
        return special("eos_token", "end-of-document (eos_token)");
    }

    @Override
    public int eos() {
        return special("eos_token", "eos_token");
    }

    @Override
    public int bos() {
        return special("bos_token", "bos_token");
    }

    @Override
    public int pad() {
        return special("pad_token", "pad_token");
    }

    @Override
    public int mask() {
        return special("mask_token", "mask_token");
    }

    private int special(String name, String what) {
        Integer id = specialIds.get(name);
        if (id == null) {
            throw new UnsupportedOperationException(typeName() + " " + source + " has no " + what + ": its tokenizer_config.json"
                    + " (or special_tokens_map.json) names none");
        }
        return id;
    }
}
