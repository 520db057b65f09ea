package org.megatronj.cli.evaluate;

import org.megatronj.io.tokenizer.Tokenizer;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.UnaryOperator;

/**
 * The WikiText-103 evaluation text as Megatron's {@code _build_wikitext103_dataset} prepares it: the
 * number of original (word-level) tokens is {@code len(text.strip().split(" "))}, then the text is
 * detokenized and BPE-encoded as one document.
 */
public record WikitextData(int[] tokens, long originalTokens) {

    public static WikitextData load(Path file, Tokenizer tokenizer, UnaryOperator<String> detokenizer) throws IOException {
        if (!Files.isRegularFile(file) || !Files.isReadable(file)) {
            throw new IOException(file + " is not a readable file");
        }
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(Files.readAllBytes(file))).toString();
        } catch (CharacterCodingException e) {
            throw new IOException(file + " is not UTF-8 text", e);
        }
        long original = text.strip().split(" ", -1).length;   // Python's split(" "): empty strings between spaces count
        return new WikitextData(tokenizer.tokenize(detokenizer.apply(text)), original);
    }
}
