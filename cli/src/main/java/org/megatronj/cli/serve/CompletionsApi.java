package org.megatronj.cli.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.megatronj.io.tokenizer.Tokenizer;

import java.util.ArrayList;
import java.util.List;

/**
 * The completions endpoints on top of the same engine: OpenAI's {@code POST /v1/completions} and Megatron's own
 * {@code POST /completions} ({@code MegatronCompletions} of {@code tools/run_text_generation_server.py}, which
 * mimics it). Both take {@code prompt} (a string, a list of strings, a list of token ids or a list of such lists;
 * token ids are fed as given), {@code max_tokens}, {@code temperature} (0 = greedy), {@code top_p}, {@code top_k}
 * (an extension), {@code seed}, {@code stop} (a string or a list), {@code echo} and {@code logprobs} (the number of
 * most likely alternatives per token). Each prompt gets exactly {@code max_tokens} (one job per prompt; the queue
 * batches them). OpenAI parameters we do not implement are refused unless they are neutral.
 */
final class CompletionsApi {
    /** Which endpoint a body came to: they differ in defaults, limits and the answer's shape. */
    enum Route {
        /** {@code /v1/completions}: OpenAI's defaults and answer (id, usage, finish_reason). */
        OPENAI,
        /** {@code /completions}: Megatron's, which requires {@code max_tokens}, always returns log-probabilities,
         * allows up to 10 alternatives and answers only {@code {"choices": [...]}}. */
        MEGATRON
    }

    private final Tokenizer tokenizer;
    private final int vocabSize;
    private final int maxPrompts;

    CompletionsApi(Tokenizer tokenizer, int vocabSize, int maxPrompts) {
        this.tokenizer = tokenizer;
        this.vocabSize = vocabSize;
        this.maxPrompts = maxPrompts;
    }

    /**
     * The validated body: one {@link GenerationRequest} per prompt with the prompt's token ids (as given, or the
     * tokenized text), plus the response options.
     */
    record Parsed(Route route, List<GenerationRequest> requests, List<int[]> prompts, List<String> stop, boolean echo,
                  boolean logprobs, int topLogprobs) {
    }

    Parsed parse(JsonNode body, Route route) {
        if (body == null || !body.isObject()) {
            throw new BadRequestException("the request body must be a JSON object");
        }
        refuseUnsupported(body);
        List<int[]> prompts = prompts(body.get("prompt"));
        if (route == Route.MEGATRON && !body.hasNonNull("max_tokens")) {
            throw new BadRequestException("max_tokens is required");
        }
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
        // OpenAI returns at most 5 alternatives per token, Megatron's /completions at most 10.
        int topLogprobs = integer(body, "logprobs", 0, 0, route == Route.MEGATRON ? 10 : 5);
        boolean logprobs = route == Route.MEGATRON || body.hasNonNull("logprobs");
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
        for (int[] prompt : prompts) {
            requests.add(new GenerationRequest(List.of(tokenizer.detokenize(prompt)), maxTokens,
                    echo || logprobs || maxTokens == 0, greedy ? 1.0 : temperature, greedy ? 1 : topK,
                    greedy || topP >= 1.0 ? 0.0 : topP, 0.0, 0.0, false, false, false, false, seed, true, null, null,
                    1.0, topLogprobs));
        }
        return new Parsed(route, requests, prompts, stops(body.get("stop")), echo, logprobs, topLogprobs);
    }

    /**
     * OpenAI parameters that change the output and that we do not implement: answering without them would silently
     * give another output than the client asked for, so only their neutral values pass.
     */
    private static void refuseUnsupported(JsonNode body) {
        for (String penalty : List.of("frequency_penalty", "presence_penalty")) {
            JsonNode n = body.get(penalty);
            if (n != null && !n.isNull() && !(n.isNumber() && n.doubleValue() == 0.0)) {
                throw new BadRequestException(penalty + " is not supported; leave it out or set it to 0");
            }
        }
        JsonNode bias = body.get("logit_bias");
        if (bias != null && !bias.isNull() && !(bias.isObject() && bias.isEmpty())) {
            throw new BadRequestException("logit_bias is not supported; leave it out or set it to null or {}");
        }
        JsonNode suffix = body.get("suffix");
        if (suffix != null && !suffix.isNull() && !(suffix.isTextual() && suffix.asText().isEmpty())) {
            throw new BadRequestException("suffix is not supported; leave it out or set it to null or \"\"");
        }
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
            ArrayNode top = parsed.topLogprobs() > 0 ? lp.putArray("top_logprobs") : null;
            if (top == null) {
                lp.putNull("top_logprobs");
            }
            for (int k = 0; k < kept; k++) {
                int t = first + k;
                tok.add(pieces.get(k));
                if (t == 0) {
                    values.addNull();                               // the first token has no context
                } else {
                    values.add(out.logprobs()[0][t - 1]);
                }
                if (top != null) {
                    top.add(t == 0 ? null : alternatives(out.top()[0][t - 1], segments));
                }
                textOffset.add(offsets.get(k));
            }
        } else {
            choice.putNull("logprobs");
        }
        if (parsed.route() == Route.OPENAI) {
            choice.put("finish_reason", finish);
        }
        choice.put("completion_tokens", Math.max(0, first + kept - promptLength));
        return choice;
    }

    /** The prompts' token ids: token-id prompts exactly as given (never detokenized and re-encoded), texts tokenized. */
    private List<int[]> prompts(JsonNode p) {
        String expected = "prompt must be a string, a list of strings, a list of token ids or a list of lists of token ids";
        if (p == null || p.isNull()) {
            throw new BadRequestException("prompt is required");
        }
        List<JsonNode> items = new ArrayList<>();
        if (p.isTextual() || p.isArray() && !p.isEmpty() && p.get(0).isIntegralNumber()) {
            items.add(p);                                   // one prompt: a string or one list of ids
        } else if (p.isArray() && !p.isEmpty()) {
            p.forEach(items::add);
        } else {
            throw new BadRequestException(expected);
        }
        if (items.size() > maxPrompts) {
            throw new BadRequestException("Maximum number of prompts is " + maxPrompts);
        }
        List<int[]> prompts = new ArrayList<>();
        for (int i = 0; i < items.size(); i++) {
            JsonNode item = items.get(i);
            if (item.isTextual()) {
                if (item.asText().isEmpty()) {
                    throw new BadRequestException("prompt must not be empty");
                }
                int[] ids = JobFactory.tokenize(tokenizer, item.asText(), i);
                if (ids.length == 0) {
                    throw new BadRequestException("prompt " + i + " tokenizes to no tokens");
                }
                prompts.add(ids);
            } else if (item.isArray() && !item.isEmpty()) {
                prompts.add(ids(item, expected));
            } else {
                throw new BadRequestException(expected);
            }
        }
        return prompts;
    }

    /** OpenAI's {@code {token text: logprob}}; two ids with the same text keep the more likely one. */
    private static ObjectNode alternatives(TopLogprobs top, ResponseBuilder segments) {
        ObjectNode dict = HttpJson.MAPPER.createObjectNode();
        for (int j = 0; j < top.tokens().length; j++) {
            String text = segments.segment(top.tokens()[j]);
            if (!dict.has(text)) {
                dict.put(text, top.logprobs()[j]);
            }
        }
        return dict;
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
