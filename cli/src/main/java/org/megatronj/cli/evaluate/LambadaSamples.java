package org.megatronj.cli.evaluate;

import org.megatronj.io.JsonErrors;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.megatronj.io.tokenizer.Tokenizer;

import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * LAMBADA as Megatron's {@code _LambadaDataset} reads it: one JSON object per line with a "text";
 * the model must predict the tokens of the last word from the rest. Default: the last BPE token is
 * the target. Strict ({@code --strict-lambada}): the target is the whole last whitespace-separated
 * word, tokenised with its leading space, after the stripped context.
 */
public final class LambadaSamples {
    /** One cloze: the context tokens and the tokens of the word to predict. */
    public record Sample(int[] context, int[] target) {
    }

    private LambadaSamples() {
    }

    public static List<Sample> read(Path file, Tokenizer tokenizer, boolean strict) throws IOException {
        if (!Files.isReadable(file)) {
            throw new IOException(file + " is not a readable file");
        }
        ObjectMapper json = new ObjectMapper();
        List<Sample> samples = new ArrayList<>();
        try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            String line;
            for (int number = 1; (line = in.readLine()) != null; number++) {
                if (line.isBlank()) {
                    continue;
                }
                JsonNode node;
                try {
                    node = json.readTree(line);
                } catch (JsonProcessingException e) {
                    throw new IOException(file + ", line " + number + ": not JSON: " + JsonErrors.describe(e), e);
                }
                if (node == null || !node.path("text").isTextual()) {
                    throw new IOException(file + ", line " + number + ": expected an object with a string \"text\"");
                }
                Sample s = sample(node.get("text").asText(), tokenizer, strict);
                if (s.target().length == 0 || s.context().length == 0) {
                    throw new IOException(file + ", line " + number + ": the text needs a context and a last word");
                }
                samples.add(s);
            }
        } catch (java.nio.charset.MalformedInputException e) {
            throw new IOException(file + " is not UTF-8 text", e);
        }
        if (samples.isEmpty()) {
            throw new IOException(file + " holds no LAMBADA samples (expected one {\"text\": ...} per line)");
        }
        return samples;
    }

    static Sample sample(String text, Tokenizer tokenizer, boolean strict) {
        if (!strict) {
            int[] tokens = tokenizer.tokenize(text);
            if (tokens.length < 2) {
                return new Sample(new int[0], tokens);
            }
            return new Sample(java.util.Arrays.copyOf(tokens, tokens.length - 1), new int[] {tokens[tokens.length - 1]});
        }
        String[] words = text.strip().split("\\s+");
        String last = words[words.length - 1];
        int start = text.lastIndexOf(last);
        int[] context = tokenizer.tokenize(text.substring(0, start).strip());
        int[] target = tokenizer.tokenize(" " + last);
        return new Sample(context, target);
    }
}
