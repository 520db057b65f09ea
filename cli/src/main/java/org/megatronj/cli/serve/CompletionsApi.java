package org.megatronj.cli.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.megatronj.io.tokenizer.Tokenizer;

import java.util.ArrayList;
import java.util.List;

/**
 * The OpenAI-style {@code POST /v1/completions} on top of the same engine: {@code prompt} (a string, a
 * list of strings, a list of token ids or a list of such lists), {@code max_tokens} (default 16),
 * {@code temperature} (0 = greedy), {@code top_p}, {@code top_k} (an extension), {@code seed},
 * {@code stop} (a string or a list), {@code echo}, {@code logprobs}. Each prompt gets exactly
 * {@code max_tokens} (one job per prompt; the queue batches them). {@code top_logprobs} is always null.
 */
final class CompletionsApi {
    private final Tokenizer tokenizer;
    private final int vocabSize;
    private final int maxPrompts;

    CompletionsApi(Tokenizer tokenizer, int vocabSize, int maxPrompts) {
        this.tokenizer = tokenizer;
        this.vocabSize = vocabSize;
        this.maxPrompts = maxPrompts;
    }

    /** The validated body: one {@link GenerationRequest} per prompt plus the response options. */
    record Parsed(List<GenerationRequest> requests, List<String> stop, boolean echo, boolean logprobs) {
    }

    Parsed parse(JsonNode body) {
        if (body == null || !body.isObject()) {
            throw new BadRequestException("the request body must be a JSON object");
        }
        List<String> prompts = prompts(body.get("prompt"));
        int maxTokens = integer(body, "max_tokens", 16, 0, Integer.MAX_VALUE);
        double temperature = number(body, "temperature", 1.0, 0.0, 100.0);
        double topP = number(body, "top_p", 1.0, 0.0, 1.0);
        int topK = integer(body, "top_k", 0, 0, 1000);
        long seed = body.has("seed") ? integer(body, "seed", 0, 0, Integer.MAX_VALUE) : -1;
        if (integer(body, "n", 1, 1, 128) != 1 || integer(body, "best_of", 1, 1, 128) != 1) {
            throw new BadRequestException("n and best_of must be 1");
        }
        if (body.has("stream") && !(body.get("stream").isBoolean() && !body.get("stream").booleanValue())) {
            throw new BadRequestException("stream is not supported; leave it out or set it to false");
        }
        boolean echo = bool(body, "echo");
        boolean logprobs = body.hasNonNull("logprobs");
        if (logprobs) {
            integer(body, "logprobs", 0, 0, 5);
        }
        if (maxTokens == 0 && !echo) {
            throw new BadRequestException("echo=False not supported when tokens_to_generate=0");
        }
        if (topP == 0.0) {
            throw new BadRequestException("top_p must be greater than 0 and at most 1.0");
        }
        boolean greedy = temperature == 0.0;   // OpenAI's greedy; Megatron's is top_k = 1
        if (!greedy && topK > 0 && topP < 1.0) {
            throw new BadRequestException("cannot set both top-k and top-p samplings.");
        }
        List<GenerationRequest> requests = new ArrayList<>();
        for (String prompt : prompts) {
            requests.add(new GenerationRequest(List.of(prompt), maxTokens, echo || logprobs || maxTokens == 0,
                    greedy ? 1.0 : temperature, greedy ? 1 : topK, greedy || topP >= 1.0 ? 0.0 : topP, 0.0, 0.0,
                    false, false, false, false, seed, true, null, null, 1.0));
        }
        return new Parsed(requests, stops(body.get("stop")), echo, logprobs);
    }

    /** One {@code choices} entry from a finished job. */
    ObjectNode choice(int index, GenerationJob job, GenerationOutput out, Parsed parsed, ResponseBuilder segments) {
        int[] tokens = out.tokens()[0];
        int promptLength = job.prompts()[0].length;
        int end = tokens.length;
        String finish = end < job.sequenceLength() || job.request().tokensToGenerate() == 0 ? "stop" : "length";
        if (end > promptLength && tokens[end - 1] == tokenizer.eod() && "stop".equals(finish)) {
            end--;                                                   // the end-of-document token is not text
        }
        int first = parsed.echo() ? 0 : promptLength;
        List<String> pieces = new ArrayList<>();
        List<Integer> offsets = new ArrayList<>();
        StringBuilder text = new StringBuilder();
        for (int t = first; t < end; t++) {
            offsets.add(text.length());
            String piece = segments.segment(tokens[t]);
            pieces.add(piece);
            text.append(piece);
        }
        String completion = parsed.echo() ? tokenizer.detokenize(java.util.Arrays.copyOfRange(tokens, 0, end))
                : tokenizer.detokenize(java.util.Arrays.copyOfRange(tokens, promptLength, end));
        int searchFrom = parsed.echo() ? tokenizer.detokenize(job.prompts()[0]).length() : 0;
        int cut = completion.length();
        for (String s : parsed.stop()) {
            int at = completion.indexOf(s, Math.min(searchFrom, completion.length()));
            if (at >= 0 && at < cut) {
                cut = at;
                finish = "stop";
            }
        }
        completion = completion.substring(0, cut);
        int kept = 0;
        while (kept < offsets.size() && offsets.get(kept) < cut) {
            kept++;
        }
        ObjectNode choice = HttpJson.MAPPER.createObjectNode();
        choice.put("index", index);
        choice.put("text", completion);
        if (parsed.logprobs()) {
            ObjectNode lp = choice.putObject("logprobs");
            ArrayNode tok = lp.putArray("tokens");
            ArrayNode values = lp.putArray("token_logprobs");
            ArrayNode textOffset = lp.putArray("text_offset");
            for (int k = 0; k < kept; k++) {
                int t = first + k;
                tok.add(pieces.get(k));
                if (t == 0) {
                    values.addNull();                               // the first token has no context
                } else {
                    values.add(out.logprobs()[0][t - 1]);
                }
                textOffset.add(offsets.get(k));
            }
            lp.putNull("top_logprobs");
        } else {
            choice.putNull("logprobs");
        }
        choice.put("finish_reason", finish);
        choice.put("completion_tokens", Math.max(0, first + kept - promptLength));
        return choice;
    }

    private List<String> prompts(JsonNode p) {
        String expected = "prompt must be a string, a list of strings, a list of token ids or a list of lists of token ids";
        if (p == null || p.isNull()) {
            throw new BadRequestException("prompt is required");
        }
        List<String> prompts = new ArrayList<>();
        if (p.isTextual()) {
            prompts.add(p.asText());
        } else if (p.isArray() && !p.isEmpty()) {
            if (p.get(0).isIntegralNumber()) {
                prompts.add(tokenizer.detokenize(ids(p, expected)));
            } else {
                for (JsonNode item : p) {
                    if (item.isTextual()) {
                        prompts.add(item.asText());
                    } else if (item.isArray() && !item.isEmpty()) {
                        prompts.add(tokenizer.detokenize(ids(item, expected)));
                    } else {
                        throw new BadRequestException(expected);
                    }
                }
            }
        } else {
            throw new BadRequestException(expected);
        }
        if (prompts.size() > maxPrompts) {
            throw new BadRequestException("Maximum number of prompts is " + maxPrompts);
        }
        for (String prompt : prompts) {
            if (prompt.isEmpty()) {
                throw new BadRequestException("prompt must not be empty");
            }
        }
        return prompts;
    }

    private int[] ids(JsonNode list, String expected) {
        int[] ids = new int[list.size()];
        for (int i = 0; i < ids.length; i++) {
            JsonNode n = list.get(i);
            if (!n.isIntegralNumber() || !n.canConvertToInt()) {
                throw new BadRequestException(expected);
            }
            ids[i] = n.intValue();
            if (ids[i] < 0 || ids[i] >= vocabSize) {
                throw new BadRequestException("prompt token id " + ids[i] + " is outside the vocabulary [0, " + vocabSize + ")");
            }
        }
        return ids;
    }

    private static List<String> stops(JsonNode s) {
        List<String> stops = new ArrayList<>();
        if (s == null || s.isNull()) {
            return stops;
        }
        if (s.isTextual()) {
            stops.add(s.asText());
        } else if (s.isArray() && s.size() <= 4) {
            for (JsonNode item : s) {
                if (!item.isTextual()) {
                    throw new BadRequestException("stop must be a string or a list of up to 4 strings");
                }
                stops.add(item.asText());
            }
        } else {
            throw new BadRequestException("stop must be a string or a list of up to 4 strings");
        }
        stops.removeIf(String::isEmpty);
        return stops;
    }

    private static int integer(JsonNode body, String field, int fallback, int min, int max) {
        if (!body.hasNonNull(field)) {
            return fallback;
        }
        JsonNode n = body.get(field);
        if (!n.isIntegralNumber() || !n.canConvertToInt() || n.intValue() < min || n.intValue() > max) {
            throw new BadRequestException(field + " must be an integer in [" + min + ", " + max + "]");
        }
        return n.intValue();
    }

    private static double number(JsonNode body, String field, double fallback, double min, double max) {
        if (!body.hasNonNull(field)) {
            return fallback;
        }
        JsonNode n = body.get(field);
        if (!n.isNumber() || !(n.doubleValue() >= min && n.doubleValue() <= max)) {
            throw new BadRequestException(field + " must be a number in [" + min + ", " + max + "]");
        }
        return n.doubleValue();
    }

    private static boolean bool(JsonNode body, String field) {
        if (!body.hasNonNull(field)) {
            return false;
        }
        if (!body.get(field).isBoolean()) {
            throw new BadRequestException(field + " must be a boolean value");
        }
        return body.get(field).booleanValue();
    }
}
