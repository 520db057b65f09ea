package org.megatronj.cli.serve;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.List;

/**
 * Validates the JSON body of {@code PUT /api} in the order and with the messages of Megatron's
 * {@code MegatronGenerate.put}: the same defaults, type rules (an int where Python checks
 * {@code isinstance(x, int)}, a JSON number with a fraction where it checks {@code float}) and
 * texts. Every failure is a {@link BadRequestException}; Megatron answers some of them with HTTP 200,
 * we answer all with 400.
 */
public final class MegatronRequestParser {
    private final int maxPrompts;

    /** @param maxPrompts the most prompts one request may carry (Megatron: 128) */
    public MegatronRequestParser(int maxPrompts) {
        this.maxPrompts = maxPrompts;
    }

    public GenerationRequest parse(JsonNode body) {
        if (body == null || !body.isObject()) {
            throw new BadRequestException("the request body must be a JSON object");
        }
        if (!body.has("prompts")) {
            throw new BadRequestException("prompts argument required");
        }
        if (body.has("max_len")) {
            throw new BadRequestException("max_len is no longer used.  Replace with tokens_to_generate");
        }
        if (body.has("sentences")) {
            throw new BadRequestException("sentences is no longer used.  Replace with prompts");
        }
        JsonNode promptsNode = body.get("prompts");
        if (!promptsNode.isArray()) {
            throw new BadRequestException("prompts is not a list of strings");
        }
        if (promptsNode.isEmpty()) {
            throw new BadRequestException("prompts is empty");
        }
        if (promptsNode.size() > maxPrompts) {
            throw new BadRequestException("Maximum number of prompts is " + maxPrompts);
        }
        List<String> prompts = new ArrayList<>();
        for (JsonNode p : promptsNode) {
            if (!p.isTextual()) {
                throw new BadRequestException("prompts is not a list of strings");
            }
            prompts.add(p.asText());
        }

        int tokensToGenerate = 64;   // Megatron: "Choosing hopefully sane default. Full sequence is slow"
        if (body.has("tokens_to_generate")) {
            JsonNode n = body.get("tokens_to_generate");
            if (!isInt(n)) {
                throw new BadRequestException("tokens_to_generate must be an integer greater than 0");
            }
            tokensToGenerate = n.intValue();
            if (tokensToGenerate < 0) {
                throw new BadRequestException("tokens_to_generate must be an integer greater than or equal to 0");
            }
        }
        boolean logprobs = bool(body, "logprobs", false);
        if (tokensToGenerate == 0 && !logprobs) {
            throw new BadRequestException("tokens_to_generate=0 implies logprobs should be True");
        }

        double temperature = 1.0;
        if (body.has("temperature")) {
            JsonNode n = body.get("temperature");
            if (!n.isNumber()) {
                throw new BadRequestException("temperature must be a positive number less than or equal to 1000.0");
            }
            temperature = n.doubleValue();
            if (!(temperature > 0.0 && temperature <= 100.0)) {
                throw new BadRequestException("temperature must be a positive number less than or equal to 100.0");
            }
        }
        int topK = 0;
        if (body.has("top_k")) {
            JsonNode n = body.get("top_k");
            if (!isInt(n)) {
                throw new BadRequestException(
                        "top_k must be an integer equal to or greater than 0 and less than or equal to 1000");
            }
            topK = n.intValue();
            if (topK < 0 || topK > 1000) {
                throw new BadRequestException("top_k must be equal to or greater than 0 and less than or equal to 1000");
            }
        }
        double topP = 0.0;
        if (body.has("top_p")) {
            JsonNode n = body.get("top_p");
            if (!n.isFloatingPointNumber()) {
                throw new BadRequestException("top_p must be a positive float less than or equal to 1.0");
            }
            topP = n.doubleValue();
            if (topP > 0.0 && topK > 0) {
                throw new BadRequestException("cannot set both top-k and top-p samplings.");
            }
            if (!(topP >= 0 && topP <= 1.0)) {
                throw new BadRequestException("top_p must be less than or equal to 1.0");
            }
        }
        double topPDecay = 0.0;
        if (body.has("top_p_decay")) {
            JsonNode n = body.get("top_p_decay");
            if (!n.isFloatingPointNumber()) {
                throw new BadRequestException("top_p_decay must be a positive float less than or equal to 1.0");
            }
            topPDecay = n.doubleValue();
            if (topP == 0.0) {
                throw new BadRequestException("top_p_decay cannot be set without top_p");
            }
            if (!(topPDecay >= 0 && topPDecay <= 1.0)) {
                throw new BadRequestException("top_p_decay must be less than or equal to 1.0");
            }
        }
        double topPBound = 0.0;
        if (body.has("top_p_bound")) {
            JsonNode n = body.get("top_p_bound");
            if (!n.isFloatingPointNumber()) {
                throw new BadRequestException("top_p_bound must be a positive float less than or equal to top_p");
            }
            topPBound = n.doubleValue();
            if (topP == 0.0) {
                throw new BadRequestException("top_p_bound cannot be set without top_p");
            }
            if (!(topPBound > 0.0 && topPBound <= topP)) {
                throw new BadRequestException("top_p_bound must be greater than 0 and less than top_p");
            }
        }
        boolean addBos = bool(body, "add_BOS", false);
        if (!addBos && prompts.stream().anyMatch(String::isEmpty)) {
            throw new BadRequestException("Empty prompts require add_BOS=true");
        }
        boolean stopOnDoubleEol = bool(body, "stop_on_double_eol", false);
        boolean stopOnEol = bool(body, "stop_on_eol", false);
        boolean preventNewlineAfterColon = bool(body, "prevent_newline_after_colon", false);

        long randomSeed = -1;
        if (body.has("random_seed")) {
            JsonNode n = body.get("random_seed");
            if (!n.isIntegralNumber() || !n.canConvertToLong()) {
                throw new BadRequestException("random_seed must be integer");
            }
            randomSeed = n.longValue();
            if (randomSeed < 0) {
                throw new BadRequestException("random_seed must be a positive integer");
            }
        }
        boolean noLog = bool(body, "no_log", false);

        Integer beamWidth = null;
        if (body.has("beam_width")) {
            JsonNode n = body.get("beam_width");
            if (!isInt(n)) {
                throw new BadRequestException("beam_width must be integer");
            }
            beamWidth = n.intValue();
            if (beamWidth < 1) {
                throw new BadRequestException("beam_width must be an integer > 1");
            }
            if (prompts.size() > 1) {
                throw new BadRequestException("When doing beam_search, batch size must be 1");
            }
        }
        Integer stopToken = null;
        if (body.has("stop_token")) {
            JsonNode n = body.get("stop_token");
            if (!isInt(n)) {
                throw new BadRequestException("stop_token must be an integer");
            }
            stopToken = n.intValue();
        }
        double lengthPenalty = 1.0;
        if (body.has("length_penalty")) {
            JsonNode n = body.get("length_penalty");
            if (!n.isFloatingPointNumber()) {
                throw new BadRequestException("length_penalty must be a float");
            }
            lengthPenalty = n.doubleValue();
        }
        return new GenerationRequest(prompts, tokensToGenerate, logprobs, temperature, topK, topP, topPDecay,
                topPBound, addBos, stopOnEol, stopOnDoubleEol, preventNewlineAfterColon, randomSeed, noLog,
                beamWidth, stopToken, lengthPenalty);
    }

    /** Python's {@code isinstance(x, int)} for a JSON value that fits a Java int (a boolean does not count). */
    private static boolean isInt(JsonNode n) {
        return n.isIntegralNumber() && n.canConvertToInt();
    }

    private static boolean bool(JsonNode body, String field, boolean fallback) {
        if (!body.has(field)) {
            return fallback;
        }
        JsonNode n = body.get(field);
        if (!n.isBoolean()) {
            throw new BadRequestException(field + " must be a boolean value");
        }
        return n.booleanValue();
    }
}
