package org.megatronj.cli.serve;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;

/** Reading JSON request bodies and writing JSON answers on a {@link HttpExchange}. */
final class HttpJson {
    static final ObjectMapper MAPPER = new ObjectMapper();
    /** Bodies larger than this are refused before parsing (128 prompts of a 1024-token context fit easily). */
    static final int MAX_BODY_BYTES = 16 << 20;

    private HttpJson() {
    }

    /** The parsed body; a {@link BadRequestException} when it is too large, empty or not JSON. */
    static JsonNode readBody(HttpExchange exchange) throws IOException {
        byte[] body;
        try (InputStream in = exchange.getRequestBody()) {
            body = in.readNBytes(MAX_BODY_BYTES + 1);
        }
        if (body.length > MAX_BODY_BYTES) {
            throw new BadRequestException("the request body is larger than " + MAX_BODY_BYTES + " bytes");
        }
        if (body.length == 0) {
            throw new BadRequestException("the request body is empty; expected a JSON object");
        }
        try {
            return MAPPER.readTree(body);
        } catch (JsonProcessingException e) {
            // Jackson's limits (nesting depth, number length) report no location: the message alone says what is wrong.
            String where = e.getLocation() == null ? ""
                    : " (line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr() + ")";
            throw new BadRequestException("the request body is not valid JSON: " + e.getOriginalMessage() + where);
        }
    }

    static void send(HttpExchange exchange, int status, JsonNode body) throws IOException {
        byte[] bytes = MAPPER.writeValueAsBytes(body);
        exchange.getResponseHeaders().set("Content-Type", "application/json");
        exchange.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(bytes);
        }
    }

    /** {@code {"message": ...}}: the shape Megatron's client prints for a failed request. */
    static void sendError(HttpExchange exchange, int status, String message) throws IOException {
        ObjectNode body = MAPPER.createObjectNode();
        body.put("message", message);
        send(exchange, status, body);
    }
}
