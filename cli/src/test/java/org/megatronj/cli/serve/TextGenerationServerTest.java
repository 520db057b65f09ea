package org.megatronj.cli.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.megatronj.io.tokenizer.Tokenizer;
import org.megatronj.io.tokenizer.TokenizerType;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Real HTTP round trips against a server on 127.0.0.1 with an ephemeral port, a tiny GPT and the GPT-2 tokenizer. */
class TextGenerationServerTest {
    static final Path GPT2 = Path.of("..", "data", "gpt2");
    static TinyGpt gpt;
    static Tokenizer tokenizer;
    static TextGenerationServer server;
    static final StringWriter LOG = new StringWriter();
    static final HttpClient HTTP = HttpClient.newHttpClient();
    static final ObjectMapper JSON = new ObjectMapper();

    @BeforeAll
    static void start() throws Exception {
        tokenizer = TokenizerType.GPT2BPETokenizer.create(GPT2.resolve("gpt2-vocab.json"), GPT2.resolve("gpt2-merges.txt"), null, 0);
        gpt = new TinyGpt(tokenizer.vocabSize(), 64, 3);
        server = new TextGenerationServer(gpt.model, tokenizer,
                new ServerConfig("127.0.0.1", 0, 4, 8, 2000, "tiny-gpt"), 1234, new PrintWriter(LOG, true));
        server.start();
    }

    @AfterAll
    static void stop() {
        server.close();
        gpt.close();
    }

    record Answer(int status, JsonNode body) {
    }

    static Answer call(String method, String path, String body) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port() + path))
                .header("Content-Type", "application/json").timeout(java.time.Duration.ofSeconds(60));
        b = body == null ? b.method(method, HttpRequest.BodyPublishers.noBody())
                : b.method(method, HttpRequest.BodyPublishers.ofString(body));
        HttpResponse<String> r = HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
        return new Answer(r.statusCode(), JSON.readTree(r.body()));
    }

    static Answer put(String body) throws Exception {
        return call("PUT", "/api", body);
    }

    @Test
    void greedyAnswerMatchesFullForwardReference() throws Exception {
        Answer a = put("{\"prompts\": [\"Hello world\", \"The\"], \"tokens_to_generate\": 5, \"top_k\": 1, \"logprobs\": true,"
                + " \"no_log\": true}");
        assertEquals(200, a.status(), a.body().toString());
        int[][] prompts = {tokenizer.tokenize("Hello world"), tokenizer.tokenize("The")};
        int length = Math.max(prompts[0].length, prompts[1].length) + 5;
        for (int i = 0; i < 2; i++) {
            int[] expected = gpt.greedyReference(prompts[i], length, tokenizer.eod());
            assertEquals(tokenizer.detokenize(expected), a.body().get("text").get(i).asText());
            JsonNode segments = a.body().get("segments").get(i);
            assertEquals(expected.length, segments.size());
            StringBuilder joined = new StringBuilder();
            segments.forEach(s -> joined.append(s.asText()));
            assertEquals(a.body().get("text").get(i).asText(), joined.toString());
            double[] lp = gpt.logprobReference(expected);
            JsonNode logprobs = a.body().get("logprobs").get(i);
            assertEquals(lp.length, logprobs.size());
            for (int j = 0; j < lp.length; j++) {
                assertEquals(lp[j], logprobs.get(j).asDouble(), 2e-4);
            }
        }
    }

    @Test
    void validationErrorsAre400WithMegatronsText() throws Exception {
        assertError(400, "prompts argument required", put("{}"));
        assertError(400, "cannot set both top-k and top-p samplings.", put("{\"prompts\": [\"a\"], \"top_k\": 2, \"top_p\": 0.5}"));
        assertError(400, "tokens_to_generate=0 implies logprobs should be True", put("{\"prompts\": [\"a\"], \"tokens_to_generate\": 0}"));
        assertError(400, "Maximum number of prompts is 4", put("{\"prompts\": [\"a\",\"b\",\"c\",\"d\",\"e\"]}"));
        assertError(400, "Length of prompt + tokens_to_generate longer than allowed",
                put("{\"prompts\": [\"a\"], \"tokens_to_generate\": 64}"));
        assertError(400, "Length of prompt + tokens_to_generate longer than allowed",
                put("{\"prompts\": [\"" + "word ".repeat(70) + "\"], \"tokens_to_generate\": 1}"));
        assertError(400, "tokens_to_generate must be an integer greater than 0", put("{\"prompts\": [\"a\"], \"tokens_to_generate\": \"5\"}"));
        Answer malformed = put("{\"prompts\": [\"a\"");
        assertEquals(400, malformed.status());
        assertTrue(malformed.body().get("message").asText().startsWith("the request body is not valid JSON"));
        assertEquals(405, call("GET", "/api", null).status());
        assertEquals(404, call("GET", "/nothing", null).status());
    }

    static void assertError(int status, String message, Answer a) {
        assertEquals(status, a.status(), a.body().toString());
        assertEquals(message, a.body().get("message").asText());
    }

    @Test
    void concurrentClientsMixingValidAndInvalidRequests() throws Exception {
        // The model is not thread-safe (only the server's worker may use it): references are computed first.
        String[] expected = new String[6];
        for (int c = 0; c < 6; c++) {
            int[] prompt = tokenizer.tokenize("client " + c + " says");
            expected[c] = tokenizer.detokenize(gpt.greedyReference(prompt, prompt.length + 4, tokenizer.eod()));
        }
        ExecutorService clients = Executors.newFixedThreadPool(6);
        try {
            List<Future<String>> results = new ArrayList<>();
            for (int c = 0; c < 6; c++) {
                int client = c;
                results.add(clients.submit(() -> {
                    for (int k = 0; k < 3; k++) {
                        boolean valid = (client + k) % 3 != 0;
                        String body = valid
                                ? "{\"prompts\": [\"client " + client + " says\"], \"tokens_to_generate\": 4, \"top_k\": 1,"
                                + " \"no_log\": true}"
                                : "{\"prompts\": [\"x\"], \"temperature\": 500.0}";
                        Answer a = put(body);
                        if (valid) {
                            if (a.status() != 200 || !expected[client].equals(a.body().get("text").get(0).asText())) {
                                return "client " + client + " request " + k + ": " + a.status() + " " + a.body();
                            }
                        } else if (a.status() != 400) {
                            return "client " + client + " invalid request " + k + " answered " + a.status();
                        }
                    }
                    return "ok";
                }));
            }
            for (Future<String> f : results) {
                assertEquals("ok", f.get(120, TimeUnit.SECONDS));
            }
        } finally {
            clients.shutdownNow();
        }
        Answer health = call("GET", "/health", null);
        assertEquals(200, health.status());
        assertEquals("ok", health.body().get("status").asText());
        assertEquals("tiny-gpt", health.body().get("model").asText());
    }

    @Test
    void scoringBeamSearchAndSeededSampling() throws Exception {
        Answer score = put("{\"prompts\": [\"one two three\"], \"tokens_to_generate\": 0, \"logprobs\": true, \"no_log\": true}");
        assertEquals(200, score.status());
        assertEquals("one two three", score.body().get("text").get(0).asText());
        assertEquals(tokenizer.tokenize("one two three").length - 1, score.body().get("logprobs").get(0).size());

        Answer beam = put("{\"prompts\": [\"Once upon\"], \"tokens_to_generate\": 3, \"beam_width\": 2, \"no_log\": true}");
        assertEquals(200, beam.status(), beam.body().toString());
        assertEquals(2, beam.body().get("text").size());
        assertEquals(2, beam.body().get("scores").size());
        assertTrue(beam.body().get("text").get(0).asText().startsWith("Once upon"));

        String seeded = "{\"prompts\": [\"Seeded\", \"runs\"], \"tokens_to_generate\": 6, \"top_p\": 0.9, \"top_p_decay\": 0.9,"
                + " \"top_p_bound\": 0.5, \"random_seed\": 7, \"no_log\": true}";
        Answer first = put(seeded);
        Answer second = put(seeded);
        assertEquals(200, first.status(), first.body().toString());
        assertEquals(first.body().get("text"), second.body().get("text"));
    }

    @Test
    void logsRequestsUnlessNoLog() throws Exception {
        assertEquals(200, put("{\"prompts\": [\"logged prompt\"], \"tokens_to_generate\": 1}").status());
        assertTrue(LOG.toString().contains("logged prompt"));
        assertEquals(200, put("{\"prompts\": [\"secret prompt\"], \"tokens_to_generate\": 1, \"no_log\": true}").status());
        assertTrue(!LOG.toString().contains("secret prompt"));
    }

    @Test
    void openAiCompletions() throws Exception {
        Answer a = call("POST", "/v1/completions", "{\"prompt\": [\"Hello world\", \"The\"], \"max_tokens\": 4,"
                + " \"temperature\": 0, \"logprobs\": 0}");
        assertEquals(200, a.status(), a.body().toString());
        assertEquals("text_completion", a.body().get("object").asText());
        for (int i = 0; i < 2; i++) {
            String prompt = i == 0 ? "Hello world" : "The";
            int[] p = tokenizer.tokenize(prompt);
            int[] expected = gpt.greedyReference(p, p.length + 4, tokenizer.eod());
            int end = expected.length;
            if (expected[end - 1] == tokenizer.eod() && end < p.length + 4) {
                end--;
            }
            JsonNode choice = a.body().get("choices").get(i);
            assertEquals(tokenizer.detokenize(java.util.Arrays.copyOfRange(expected, p.length, end)), choice.get("text").asText());
            double[] lp = gpt.logprobReference(expected);
            JsonNode tokenLogprobs = choice.get("logprobs").get("token_logprobs");
            for (int k = 0; k < tokenLogprobs.size(); k++) {
                assertEquals(lp[p.length - 1 + k], tokenLogprobs.get(k).asDouble(), 2e-4);
            }
        }
        assertTrue(a.body().get("usage").get("total_tokens").asInt() > 0);

        String full = a.body().get("choices").get(0).get("text").asText();
        String stop = full.substring(full.length() / 2, full.length() / 2 + 1);
        Answer stopped = call("POST", "/v1/completions", "{\"prompt\": \"Hello world\", \"max_tokens\": 4, \"temperature\": 0,"
                + " \"stop\": " + JSON.writeValueAsString(stop) + "}");
        assertEquals(full.substring(0, full.indexOf(stop)), stopped.body().get("choices").get(0).get("text").asText());
        assertEquals("stop", stopped.body().get("choices").get(0).get("finish_reason").asText());

        Answer echo = call("POST", "/v1/completions", "{\"prompt\": \"Hello world\", \"max_tokens\": 0, \"echo\": true,"
                + " \"logprobs\": 1}");
        assertEquals(200, echo.status(), echo.body().toString());
        JsonNode echoed = echo.body().get("choices").get(0);
        assertEquals("Hello world", echoed.get("text").asText());
        assertTrue(echoed.get("logprobs").get("token_logprobs").get(0).isNull());
        double[] promptLp = gpt.logprobReference(tokenizer.tokenize("Hello world"));
        assertEquals(promptLp[0], echoed.get("logprobs").get("token_logprobs").get(1).asDouble(), 2e-4);
        assertError(400, "prompt is required", call("POST", "/v1/completions", "{\"max_tokens\": 3}"));
        assertError(400, "n and best_of must be 1", call("POST", "/v1/completions", "{\"prompt\": \"a\", \"n\": 2}"));
        assertEquals(405, call("PUT", "/v1/completions", "{}").status());
    }

    @Test
    void clientCommandPrintsCompletionsAndErrors() throws Exception {
        var client = new org.megatronj.cli.ClientCommandAccess();
        String ok = client.send("127.0.0.1:" + server.port(), "Hi there", 3);
        assertTrue(ok.startsWith("Megatron Response: \nHi there"), ok);
        String bad = client.send("127.0.0.1:" + server.port(), "Hi", -2);
        assertEquals("Error 400: tokens_to_generate must be an integer greater than or equal to 0", bad);
    }
}
