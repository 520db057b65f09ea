package org.megatronj.cli.serve;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.megatronj.io.tokenizer.Tokenizer;

/**
 * Megatron's {@code detokenize_generations} and the {@code /api} answer: per sequence the text of
 * its tokens, its segments (the text of each token alone) and, when asked, its log-probabilities;
 * for beam search the hypotheses' scores in place of log-probabilities.
 */
final class ResponseBuilder {
    private final Tokenizer tokenizer;

    ResponseBuilder(Tokenizer tokenizer) {
        this.tokenizer = tokenizer;
    }

    ObjectNode megatron(GenerationOutput out) {
        ObjectNode body = HttpJson.MAPPER.createObjectNode();
        ArrayNode text = body.putArray("text");
        ArrayNode segments = body.putArray("segments");
        for (int[] tokens : out.tokens()) {
            text.add(tokenizer.detokenize(tokens));
            ArrayNode words = segments.addArray();
            for (int t : tokens) {
                words.add(segment(t));
            }
        }
        if (out.scores() != null) {
            ArrayNode scores = body.putArray("scores");
            for (double s : out.scores()) {
                scores.add(s);
            }
        } else if (out.logprobs() != null) {
            ArrayNode logprobs = body.putArray("logprobs");
            for (float[] row : out.logprobs()) {
                ArrayNode values = logprobs.addArray();
                for (float v : row) {
                    values.add(v);
                }
            }
        } else {
            body.putNull("logprobs");
        }
        return body;
    }

    /** The text of one token (invalid UTF-8 of a partial character becomes U+FFFD, as Megatron's errors='replace'). */
    String segment(int token) {
        return tokenizer.detokenize(new int[] {token});
    }
}
