package org.megatronj.cli.serve;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

class MegatronRequestParserTest {
    final MegatronRequestParser parser = new MegatronRequestParser(4);
    final ObjectMapper json = new ObjectMapper();

    GenerationRequest parse(String body) throws Exception {
        return parser.parse(json.readTree(body));
    }

    String error(String body) {
        return assertThrows(BadRequestException.class, () -> parse(body)).getMessage();
    }

    @Test
    void megatronDefaults() throws Exception {
        GenerationRequest r = parse("{\"prompts\": [\"Hello\"]}");
        assertEquals(64, r.tokensToGenerate());
        assertFalse(r.logprobs());
        assertEquals(1.0, r.temperature());
        assertEquals(0, r.topK());
        assertEquals(0.0, r.topP());
        assertEquals(-1, r.randomSeed());
        assertNull(r.beamWidth());
        assertNull(r.stopToken());
        assertEquals(1.0, r.lengthPenalty());
    }

    @Test
    void megatronMessages() {
        assertEquals("prompts argument required", error("{\"tokens_to_generate\": 3}"));
        assertEquals("max_len is no longer used.  Replace with tokens_to_generate", error("{\"prompts\": [\"a\"], \"max_len\": 3}"));
        assertEquals("prompts is not a list of strings", error("{\"prompts\": \"a\"}"));
        assertEquals("prompts is not a list of strings", error("{\"prompts\": [1]}"));
        assertEquals("prompts is empty", error("{\"prompts\": []}"));
        assertEquals("Maximum number of prompts is 4", error("{\"prompts\": [\"a\",\"b\",\"c\",\"d\",\"e\"]}"));
        assertEquals("tokens_to_generate must be an integer greater than 0", error("{\"prompts\": [\"a\"], \"tokens_to_generate\": 1.5}"));
        assertEquals("tokens_to_generate must be an integer greater than or equal to 0",
                error("{\"prompts\": [\"a\"], \"tokens_to_generate\": -1}"));
        assertEquals("tokens_to_generate=0 implies logprobs should be True", error("{\"prompts\": [\"a\"], \"tokens_to_generate\": 0}"));
        assertEquals("logprobs must be a boolean value", error("{\"prompts\": [\"a\"], \"logprobs\": 1}"));
        assertEquals("temperature must be a positive number less than or equal to 100.0",
                error("{\"prompts\": [\"a\"], \"temperature\": 0}"));
        assertEquals("temperature must be a positive number less than or equal to 1000.0",
                error("{\"prompts\": [\"a\"], \"temperature\": \"hot\"}"));
        assertEquals("top_k must be equal to or greater than 0 and less than or equal to 1000",
                error("{\"prompts\": [\"a\"], \"top_k\": 1001}"));
        assertEquals("top_p must be a positive float less than or equal to 1.0", error("{\"prompts\": [\"a\"], \"top_p\": 1}"));
        assertEquals("cannot set both top-k and top-p samplings.", error("{\"prompts\": [\"a\"], \"top_k\": 5, \"top_p\": 0.9}"));
        assertEquals("top_p must be less than or equal to 1.0", error("{\"prompts\": [\"a\"], \"top_p\": 1.5}"));
        assertEquals("top_p_decay cannot be set without top_p", error("{\"prompts\": [\"a\"], \"top_p_decay\": 0.5}"));
        assertEquals("top_p_bound must be greater than 0 and less than top_p",
                error("{\"prompts\": [\"a\"], \"top_p\": 0.5, \"top_p_bound\": 0.7}"));
        assertEquals("Empty prompts require add_BOS=true", error("{\"prompts\": [\"\"]}"));
        assertEquals("random_seed must be a positive integer", error("{\"prompts\": [\"a\"], \"random_seed\": -3}"));
        assertEquals("beam_width must be an integer > 1", error("{\"prompts\": [\"a\"], \"beam_width\": 0}"));
        assertEquals("When doing beam_search, batch size must be 1", error("{\"prompts\": [\"a\", \"b\"], \"beam_width\": 2}"));
        assertEquals("stop_token must be an integer", error("{\"prompts\": [\"a\"], \"stop_token\": \"x\"}"));
        assertEquals("length_penalty must be a float", error("{\"prompts\": [\"a\"], \"length_penalty\": 1}"));
        assertEquals("the request body must be a JSON object", error("[1, 2]"));
    }

    @Test
    void acceptsEveryOptionalField() throws Exception {
        GenerationRequest r = parse("{\"prompts\": [\"\", \"b\"], \"tokens_to_generate\": 0, \"logprobs\": true,"
                + " \"temperature\": 0.5, \"top_p\": 0.9, \"top_p_decay\": 0.5, \"top_p_bound\": 0.2, \"add_BOS\": true,"
                + " \"stop_on_eol\": true, \"stop_on_double_eol\": false, \"prevent_newline_after_colon\": true,"
                + " \"random_seed\": 42, \"no_log\": true, \"stop_token\": 7, \"length_penalty\": 0.8}");
        assertEquals(0.9, r.topP());
        assertEquals(0.2, r.topPBound());
        assertEquals(42, r.randomSeed());
        assertEquals(7, r.stopToken());
        assertEquals(0.8, r.lengthPenalty());
    }
}
