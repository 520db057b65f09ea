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
import java.util.Map;
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
    void failureInsideTheServerIs500NamingTheRequestAndTheServerKeepsServing() throws Exception {
        TinyGpt broken = new TinyGpt(tokenizer.vocabSize(), 64, 3);
        StringWriter log = new StringWriter();
        try (TextGenerationServer other = new TextGenerationServer(broken.model, tokenizer,
                new ServerConfig("127.0.0.1", 0, 4, 8, 2000, "tiny-gpt"), 1234, new PrintWriter(log, true))) {
            other.start();
            broken.close();                                 // the weights are gone: every forward now throws
            HttpRequest request = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + other.port() + "/api"))
                    .method("PUT", HttpRequest.BodyPublishers.ofString("{\"prompts\": [\"Hi\"], \"tokens_to_generate\": 2}"))
                    .header("Content-Type", "application/json").timeout(java.time.Duration.ofSeconds(60)).build();
            for (int attempt = 0; attempt < 2; attempt++) {
                HttpResponse<String> r = HTTP.send(request, HttpResponse.BodyHandlers.ofString());
                assertEquals(500, r.statusCode(), r.body());
                String message = JSON.readTree(r.body()).get("message").asText();
                assertTrue(message.startsWith("internal error while answering PUT /api: "), message);
                assertTrue(message.length() > "internal error while answering PUT /api: ".length(), message);
            }
            assertTrue(log.toString().contains("request failed: "), log.toString());
        }
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

    static Answer post(String path, String body) throws Exception {
        return call("POST", path, body);
    }

    @Test
    void tokenIdPromptsAreFedAsGiven() throws Exception {
        // [72, 72] is "ii", which GPT-2 encodes as one token: re-encoding would change the prompt.
        int[] ids = {72, 72};
        assertEquals(1, tokenizer.tokenize(tokenizer.detokenize(ids)).length);
        int[] expected = gpt.greedyReference(ids, 3, -1);
        Answer a = post("/v1/completions", "{\"prompt\": [72, 72], \"max_tokens\": 1, \"temperature\": 0, \"echo\": true,"
                + " \"logprobs\": 0}");
        assertEquals(200, a.status(), a.body().toString());
        JsonNode lp = a.body().get("choices").get(0).get("logprobs");
        assertEquals(JSON.valueToTree(List.of("i", "i", tokenizer.detokenize(new int[] {expected[2]}))), lp.get("tokens"));
        double[] reference = gpt.logprobReference(expected);
        assertTrue(lp.get("token_logprobs").get(0).isNull());
        assertEquals(reference[0], lp.get("token_logprobs").get(1).asDouble(), 2e-4);
        assertEquals(reference[1], lp.get("token_logprobs").get(2).asDouble(), 2e-4);
        assertEquals(2, a.body().get("usage").get("prompt_tokens").asInt());

        Answer batch = post("/v1/completions", "{\"prompt\": [[1, 2, 3], [4]], \"max_tokens\": 1, \"temperature\": 0}");
        assertEquals(200, batch.status(), batch.body().toString());
        int[][] prompts = {{1, 2, 3}, {4}};
        for (int i = 0; i < 2; i++) {
            int[] continued = gpt.greedyReference(prompts[i], prompts[i].length + 1, -1);
            assertEquals(tokenizer.detokenize(new int[] {continued[prompts[i].length]}),
                    batch.body().get("choices").get(i).get("text").asText());
        }
        assertEquals(4, batch.body().get("usage").get("prompt_tokens").asInt());
        assertEquals(6, batch.body().get("usage").get("total_tokens").asInt());
    }

    @Test
    void unsupportedOpenAiParametersAreRefusedUnlessNeutral() throws Exception {
        for (String field : List.of("\"frequency_penalty\": 0.5", "\"presence_penalty\": -1", "\"logit_bias\": {\"50256\": -100}",
                "\"suffix\": \" end\"")) {
            Answer a = post("/v1/completions", "{\"prompt\": \"a\", \"max_tokens\": 1, " + field + "}");
            String name = field.substring(1, field.indexOf('"', 1));
            assertEquals(400, a.status(), field + " -> " + a.body());
            assertTrue(a.body().get("message").asText().startsWith(name + " is not supported"), a.body().toString());
        }
        Answer neutral = post("/v1/completions", "{\"prompt\": \"a\", \"max_tokens\": 1, \"frequency_penalty\": 0,"
                + " \"presence_penalty\": 0.0, \"logit_bias\": {}, \"suffix\": null}");
        assertEquals(200, neutral.status(), neutral.body().toString());
    }

    /** The n most likely real tokens after {@code tokens} and their log-probabilities, by a full forward. */
    static Map<String, Double> topReference(int[] tokens, int n) {
        int v = gpt.model.config().paddedVocabSize();
        float[] logits = gpt.fullLogits(tokens);
        int at = (tokens.length - 1) * v;
        double logZ = gpt.logSumExp(logits, tokens.length - 1);
        Integer[] order = new Integer[tokenizer.vocabSize()];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        java.util.Arrays.sort(order, (x, y) -> Float.compare(logits[at + y], logits[at + x]));
        Map<String, Double> top = new java.util.LinkedHashMap<>();
        for (int j = 0; j < n; j++) {
            top.putIfAbsent(tokenizer.detokenize(new int[] {order[j]}), logits[at + order[j]] - logZ);
        }
        return top;
    }

    @Test
    void topLogprobsListTheMostLikelyTokens() throws Exception {
        int[] prompt = tokenizer.tokenize("Hello world");
        int[] expected = gpt.greedyReference(prompt, prompt.length + 2, -1);
        Answer a = post("/v1/completions", "{\"prompt\": \"Hello world\", \"max_tokens\": 2, \"temperature\": 0,"
                + " \"logprobs\": 3, \"echo\": true}");
        assertEquals(200, a.status(), a.body().toString());
        JsonNode top = a.body().get("choices").get(0).get("logprobs").get("top_logprobs");
        assertEquals(expected.length, top.size());
        assertTrue(top.get(0).isNull());                       // the first token has no context
        for (int t = 1; t < expected.length; t++) {
            Map<String, Double> reference = topReference(java.util.Arrays.copyOf(expected, t), 3);
            JsonNode entry = top.get(t);
            assertEquals(reference.size(), entry.size(), entry.toString());
            for (Map.Entry<String, Double> e : reference.entrySet()) {
                assertEquals(e.getValue(), entry.get(e.getKey()).asDouble(), 2e-4, "position " + t + " " + e.getKey());
            }
        }
        assertError(400, "logprobs must be an integer in [0, 5]",
                post("/v1/completions", "{\"prompt\": \"a\", \"logprobs\": 6}"));
    }

    @Test
    void megatronCompletionsRoute() throws Exception {
        String body = "{\"prompt\": \"Hello world\", \"max_tokens\": 3, \"temperature\": 0}";
        Answer megatron = post("/completions", body);
        Answer openAi = post("/v1/completions", body);
        assertEquals(200, megatron.status(), megatron.body().toString());
        assertEquals(List.of("choices"), iterable(megatron.body().fieldNames()));
        JsonNode choice = megatron.body().get("choices").get(0);
        assertEquals(List.of("index", "text", "logprobs"), iterable(choice.fieldNames()));
        assertEquals(openAi.body().get("choices").get(0).get("text"), choice.get("text"));
        assertEquals(choice.get("logprobs").get("tokens").size(), choice.get("logprobs").get("token_logprobs").size());

        Answer top = post("/completions", "{\"prompt\": \"Hello world\", \"max_tokens\": 0, \"echo\": true, \"logprobs\": 10}");
        assertEquals(200, top.status(), top.body().toString());
        assertEquals(10, top.body().get("choices").get(0).get("logprobs").get("top_logprobs").get(1).size());
        assertError(400, "max_tokens is required", post("/completions", "{\"prompt\": \"a\"}"));
        assertEquals(405, call("GET", "/completions", null).status());
    }

    static List<String> iterable(java.util.Iterator<String> names) {
        List<String> out = new ArrayList<>();
        names.forEachRemaining(out::add);
        return out;
    }

    @Test
    void badRequestContentIs400NotAServerFailure() throws Exception {
        Answer surrogate = put("{\"prompts\": [\"fine\", \"\\ud800\"], \"tokens_to_generate\": 1}");
        assertEquals(400, surrogate.status(), surrogate.body().toString());
        String message = surrogate.body().get("message").asText();
        assertTrue(message.startsWith("prompt 1 cannot be tokenized") && message.contains("lone surrogate"), message);
        Answer completion = post("/v1/completions", "{\"prompt\": [\"fine\", \"\\ud800\"], \"max_tokens\": 1}");
        assertEquals(400, completion.status(), completion.body().toString());
        assertTrue(completion.body().get("message").asText().startsWith("prompt 1 cannot be tokenized"));
        Answer deep = put("[".repeat(3000) + "]".repeat(3000));   // beyond Jackson's nesting limit: no location
        assertEquals(400, deep.status(), deep.body().toString());
        assertTrue(deep.body().get("message").asText().startsWith("the request body is not valid JSON"));
    }
}
