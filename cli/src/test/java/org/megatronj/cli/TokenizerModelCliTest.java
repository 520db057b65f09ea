package org.megatronj.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.io.indexed.IndexedDataset;

/**
 * {@code --tokenizer-model} through preprocess, pretrain and generate: {@code HuggingFaceTokenizer} with a small Llama 3
 * style tokenizer.json written here (GPT-2's 256 byte characters, a few merges, {@code <|begin_of_text|>} as the
 * template's BOS and {@code <|end_of_text|>} as the eos_token, hence EOD), and {@code Llama2Tokenizer} with the io
 * module's test SentencePiece model.
 */
class TokenizerModelCliTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int BOS = 262;
    private static final int EOS = 263;

    @TempDir
    Path dir;

    /** GPT-2's bytes_to_unicode: the character each byte is written as in a byte-level vocabulary. */
    private static char byteChar(int b) {
        int extra = 0;
        for (int x = 0; x < b; x++) {
            boolean printable = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF);
            extra += printable ? 0 : 1;
        }
        boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        return printable ? (char) b : (char) (256 + extra);
    }

    private Path tokenizerFolder() throws IOException {
        ObjectNode root = JSON.createObjectNode();
        var added = root.putArray("added_tokens");
        added.addObject().put("id", BOS).put("content", "<|begin_of_text|>").put("special", true).put("normalized", false);
        added.addObject().put("id", EOS).put("content", "<|end_of_text|>").put("special", true).put("normalized", false);
        root.putNull("normalizer");
        var pre = root.putObject("pre_tokenizer").put("type", "Sequence").putArray("pretokenizers");
        pre.addObject().put("type", "Split").put("behavior", "Isolated").put("invert", false).putObject("pattern")
                .put("Regex", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                        + "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+");
        pre.addObject().put("type", "ByteLevel").put("add_prefix_space", false).put("use_regex", false);
        var template = root.putObject("post_processor").put("type", "TemplateProcessing");
        template.putArray("single").addObject().putObject("SpecialToken").put("id", "<|begin_of_text|>").put("type_id", 0);
        ((com.fasterxml.jackson.databind.node.ArrayNode) template.get("single")).addObject().putObject("Sequence")
                .put("id", "A").put("type_id", 0);
        template.putObject("special_tokens").putObject("<|begin_of_text|>").put("id", "<|begin_of_text|>")
                .putArray("ids").add(BOS);
        root.putObject("decoder").put("type", "ByteLevel");
        ObjectNode model = root.putObject("model").put("type", "BPE").put("ignore_merges", true);
        ObjectNode vocab = model.putObject("vocab");
        for (int b = 0; b < 256; b++) {
            vocab.put(String.valueOf(byteChar(b)), b);
        }
        var merges = model.putArray("merges");
        String space = String.valueOf(byteChar(' '));
        String[][] pairs = {{"h", "e"}, {"he", "l"}, {"hel", "l"}, {"hell", "o"}, {space, "w"}, {space + "w", "o"}};
        for (int i = 0; i < pairs.length; i++) {
            merges.add(pairs[i][0] + " " + pairs[i][1]);
            vocab.put(pairs[i][0] + pairs[i][1], 256 + i);
        }
        Path folder = Files.createDirectories(dir.resolve("tok"));
        JSON.writeValue(folder.resolve("tokenizer.json").toFile(), root);
        Files.writeString(folder.resolve("tokenizer_config.json"), "{\"bos_token\": \"<|begin_of_text|>\","
                + " \"eos_token\": \"<|end_of_text|>\"}");
        return folder;
    }

    @Test
    void preprocessesTrainsAndGeneratesWithATokenizerJson() throws IOException {
        Path tok = tokenizerFolder();
        Path input = dir.resolve("in.jsonl");
        StringBuilder docs = new StringBuilder();
        for (int i = 0; i < 40; i++) {
            docs.append("{\"text\": \"hello wo").append("rld ".repeat(1 + i % 3)).append(i).append("\"}\n");
        }
        Files.writeString(input, docs);
        List<String> tokenizer = List.of("--tokenizer-type", "HuggingFaceTokenizer", "--tokenizer-model", tok.toString());
        CliRun pre = CliRun.of(concat(List.of("preprocess", "--input", input.toString(), "--output-prefix",
                dir.resolve("corpus").toString(), "--append-eod", "--workers", "1"), tokenizer));
        assertEquals(0, pre.code(), pre.toString());
        try (IndexedDataset data = IndexedDataset.open(dir.resolve("corpus_text_document"))) {
            assertEquals(40, data.sequenceCount());
            // BOS, "hello", " wo", "r","l","d"," ", "0", EOD
            int[] first = data.sequenceTokens(0);
            assertArrayEquals(new int[] {BOS, 259, 261, 'r', 'l', 'd', ' ', '0', EOS}, first);
        }

        Path save = dir.resolve("ckpt");
        CliRun train = pretrain(dir.resolve("corpus_text_document"), save, tokenizer);
        assertEquals(0, train.code(), train.toString());
        assertTrue(train.out().contains("> building HuggingFaceTokenizer tokenizer (vocab 264, padded to 384)"), train.out());

        CliRun gen = CliRun.of("generate", "--load", save.toString(), "--prompt", "hello world", "--tokens-to-generate", "3",
                "--temperature", "0");   // the tokenizer comes from the checkpoint's arguments
        assertEquals(0, gen.code(), gen.toString());
        assertTrue(gen.out().startsWith("<|begin_of_text|>hello world"), gen.out());
    }

    /** Llama2Tokenizer: BOS before each document, EOD its </s>; the checkpoint remembers the model file. */
    @Test
    void llama2TokenizerPreprocessesTrainsAndGenerates() throws IOException {
        Path model = Path.of("..", "io", "src", "test", "resources", "org", "megatronj", "io", "tokenizer", "sp", "bpe.model")
                .toAbsolutePath().normalize();
        Path input = dir.resolve("in.jsonl");
        StringBuilder docs = new StringBuilder();
        for (int i = 0; i < 40; i++) {
            docs.append("{\"text\": \"And God said, Let there be light: and there was light. ").append(i).append("\"}\n");
        }
        Files.writeString(input, docs);
        List<String> tokenizer = List.of("--tokenizer-type", "Llama2Tokenizer", "--tokenizer-model", model.toString());
        CliRun pre = CliRun.of(concat(List.of("preprocess", "--input", input.toString(), "--output-prefix",
                dir.resolve("sp").toString(), "--append-eod", "--workers", "1"), tokenizer));
        assertEquals(0, pre.code(), pre.toString());
        try (IndexedDataset data = IndexedDataset.open(dir.resolve("sp_text_document"))) {
            int[] first = data.sequenceTokens(0);
            assertEquals(1, first[0], "<s> first");
            assertEquals(2, first[first.length - 1], "</s> as EOD last");
        }
        Path save = dir.resolve("ckpt-sp");
        CliRun train = pretrain(dir.resolve("sp_text_document"), save, tokenizer);
        assertEquals(0, train.code(), train.toString());
        assertTrue(train.out().contains("> building Llama2Tokenizer tokenizer (vocab 600, padded to 640)"), train.out());
        CliRun gen = CliRun.of("generate", "--load", save.toString(), "--prompt", "And God said", "--tokens-to-generate", "3",
                "--temperature", "0");
        assertEquals(0, gen.code(), gen.toString());
        assertTrue(gen.out().startsWith("And God said"), gen.out());
    }

    /**
     * TikTokenizer: its vocabulary JSON after 1000 special tokens, EOD its {@code </s>}; the checkpoint remembers the
     * pattern and the special tokens' count, so generate rebuilds the same tokenizer.
     */
    @Test
    void tikTokenizerPreprocessesTrainsAndGenerates() throws IOException {
        Path vocab = Path.of("..", "io", "src", "test", "resources", "org", "megatronj", "io", "tokenizer", "tiktoken",
                "vocab.json").toAbsolutePath().normalize();
        Path input = dir.resolve("tt.jsonl");
        StringBuilder docs = new StringBuilder();
        for (int i = 0; i < 40; i++) {
            docs.append("{\"text\": \"And God said, Let there be light: and there was light. ").append(i).append("\"}\n");
        }
        Files.writeString(input, docs);
        List<String> tokenizer = List.of("--tokenizer-type", "TikTokenizer", "--tokenizer-model", vocab.toString(),
                "--vocab-size", "3000", "--tiktoken-pattern", "v1");
        CliRun pre = CliRun.of(concat(List.of("preprocess", "--input", input.toString(), "--output-prefix",
                dir.resolve("tt").toString(), "--append-eod", "--workers", "1"), tokenizer));
        assertEquals(0, pre.code(), pre.toString());
        try (IndexedDataset data = IndexedDataset.open(dir.resolve("tt_text_document"))) {
            int[] first = data.sequenceTokens(0);
            assertTrue(first[0] >= 1000, "text ids follow the 1000 special tokens: " + first[0]);
            assertEquals(2, first[first.length - 1], "</s> as EOD last");
        }
        Path save = dir.resolve("ckpt-tt");
        CliRun train = pretrain(dir.resolve("tt_text_document"), save, tokenizer);
        assertEquals(0, train.code(), train.toString());
        assertTrue(train.out().contains("> building TikTokenizer tokenizer (vocab 3000, padded to 3072)"), train.out());
        CliRun gen = CliRun.of("generate", "--load", save.toString(), "--prompt", "And God said", "--tokens-to-generate", "3",
                "--temperature", "0");
        assertEquals(0, gen.code(), gen.toString());
        assertTrue(gen.out().startsWith("And God said"), gen.out());
    }

    /** Two iterations of a tiny GPT on {@code data}, saved to {@code save}. */
    private CliRun pretrain(Path data, Path save, List<String> tokenizer) {
        return CliRun.of(concat(List.of("pretrain", "gpt", "--data-path", data.toString(), "--split", "100,0,0",
                "--data-cache-path", dir.resolve("cache").toString(), "--num-layers", "1", "--hidden-size", "16",
                "--num-attention-heads", "2", "--seq-length", "16", "--micro-batch-size", "2", "--global-batch-size", "4",
                "--train-iters", "2", "--lr", "1e-3", "--log-interval", "1", "--eval-iters", "0", "--save", save.toString()),
                tokenizer));
    }

    private static String[] concat(List<String> a, List<String> b) {
        return java.util.stream.Stream.concat(a.stream(), b.stream()).toArray(String[]::new);
    }
}
