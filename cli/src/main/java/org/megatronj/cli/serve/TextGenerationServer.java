package org.megatronj.cli.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import org.megatronj.io.tokenizer.Tokenizer;
import org.megatronj.model.GPTModel;

import java.io.IOException;
import java.io.PrintWriter;
import java.net.InetSocketAddress;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Megatron's text generation server ({@code tools/run_text_generation_server.py}) on the JDK's
 * {@link HttpServer}: {@code PUT /api} with Megatron's request and response, Megatron's OpenAI-like
 * {@code POST /completions}, OpenAI's {@code POST /v1/completions}, and {@code GET /health}. Each request is handled on its own virtual
 * thread, validated, tokenised and queued in the {@link GenerationService}, whose single worker
 * batches waiting requests. Every refused request gets HTTP 400 and {@code {"message": ...}}; a
 * failure inside generation gets 500; the server keeps serving either way.
 */
public final class TextGenerationServer implements AutoCloseable {
    private final ServerConfig config;
    private final GPTModel model;
    private final PrintWriter log;
    private final MegatronRequestParser parser;
    private final JobFactory jobs;
    private final ResponseBuilder responses;
    private final CompletionsApi completions;
    private final GenerationService service;
    private final ExecutorService handlers = Executors.newVirtualThreadPerTaskExecutor();
    private final HttpServer http;
    private final AtomicLong completionIds = new AtomicLong();
    private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();

    /** Binds the port; call {@link #start()} to serve. */
    public TextGenerationServer(GPTModel model, Tokenizer tokenizer, ServerConfig config, long seed, PrintWriter log)
            throws IOException {
        this.config = config;
        this.model = model;
        this.log = log;
        this.parser = new MegatronRequestParser(config.maxPrompts());
        this.jobs = new JobFactory(tokenizer, model.config(), config, seed);
        this.responses = new ResponseBuilder(tokenizer);
        this.completions = new CompletionsApi(tokenizer, model.config().vocabSize(), config.maxPrompts());
        this.service = new GenerationService(model, SpecialTokens.of(tokenizer), config.maxBatchRows(),
                config.maxTokensToOom());
        try {
            this.http = HttpServer.create(new InetSocketAddress(config.host(), config.port()), 128);
        } catch (java.net.BindException e) {
            service.close();
            throw new java.net.BindException("cannot listen on " + config.host() + ":" + config.port() + ": " + e.getMessage()
                    + " (another server on that port? pick another with --port)");
        }
        http.setExecutor(handlers);
        http.createContext("/api", exchange -> handle(exchange, "PUT", "/api", this::megatronApi));
        http.createContext("/completions", exchange -> handle(exchange, "POST", "/completions",
                e -> completions(e, CompletionsApi.Route.MEGATRON)));
        http.createContext("/v1/completions", exchange -> handle(exchange, "POST", "/v1/completions",
                e -> completions(e, CompletionsApi.Route.OPENAI)));
        http.createContext("/health", exchange -> handle(exchange, "GET", "/health", this::health));
        http.createContext("/", exchange -> {
            try (exchange) {
                HttpJson.sendError(exchange, 404, "no such endpoint: " + exchange.getRequestURI().getPath()
                        + " (PUT /api, POST /completions, POST /v1/completions, GET /health)");
            }
        });
    }

    public void start() {
        http.start();
    }

    /** The port listened on (the one chosen when the config asked for 0). */
    public int port() {
        return http.getAddress().getPort();
    }

    private interface Endpoint {
        JsonNode answer(HttpExchange exchange) throws Exception;
    }

    private void handle(HttpExchange exchange, String method, String path, Endpoint endpoint) {
        try (exchange) {
            try {
                if (!exchange.getRequestURI().getPath().equals(path)) {
                    HttpJson.sendError(exchange, 404, "no such endpoint: " + exchange.getRequestURI().getPath());
                } else if (!exchange.getRequestMethod().equalsIgnoreCase(method)) {
                    exchange.getResponseHeaders().set("Allow", method);
                    HttpJson.sendError(exchange, 405, path + " accepts " + method + ", not " + exchange.getRequestMethod());
                } else {
                    HttpJson.send(exchange, 200, endpoint.answer(exchange));
                }
            } catch (BadRequestException e) {
                HttpJson.sendError(exchange, 400, e.getMessage());
            } catch (Exception | Error e) {
                log.println("request failed: " + e);
                log.flush();
                // not the client's fault: say which request failed and why, without blaming generation for
                // what may have gone wrong in tokenising or in building the answer
                String why = e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName();
                HttpJson.sendError(exchange, 500, "internal error while answering " + method + " " + path + ": " + why);
            }
        } catch (IOException | RuntimeException e) {   // the client went away mid-answer: nothing left to tell it
            log.println("could not answer " + exchange.getRemoteAddress() + ": " + e);
            log.flush();
        }
    }

    private JsonNode megatronApi(HttpExchange exchange) throws Exception {
        JsonNode body = HttpJson.readBody(exchange);
        GenerationRequest request = parser.parse(body);
        GenerationJob job = jobs.create(request);
        if (!request.noLog()) {
            log.println("request IP: " + exchange.getRemoteAddress().getAddress().getHostAddress());
            log.println(HttpJson.MAPPER.writeValueAsString(body));
            log.println("start time: " + Instant.now());
            log.flush();
        }
        return responses.megatron(await(service.submit(job)));
    }

    private JsonNode completions(HttpExchange exchange, CompletionsApi.Route route) throws Exception {
        CompletionsApi.Parsed parsed = completions.parse(HttpJson.readBody(exchange), route);
        List<GenerationJob> queued = new ArrayList<>();
        List<CompletableFuture<GenerationOutput>> results = new ArrayList<>();
        for (int i = 0; i < parsed.requests().size(); i++) {   // all validated before any is queued
            queued.add(jobs.create(parsed.requests().get(i), new int[][] {parsed.prompts().get(i)}));
        }
        for (GenerationJob job : queued) {
            results.add(service.submit(job));
        }
        ObjectNode body = HttpJson.MAPPER.createObjectNode();
        if (route == CompletionsApi.Route.OPENAI) {
            body.put("id", "cmpl-" + completionIds.incrementAndGet());
            body.put("object", "text_completion");
            body.put("created", Instant.now().getEpochSecond());
            body.put("model", config.modelName());
        }
        ArrayNode choices = body.putArray("choices");
        long promptTokens = 0;
        long completionTokens = 0;
        for (int i = 0; i < queued.size(); i++) {
            ObjectNode choice = completions.choice(i, queued.get(i), await(results.get(i)), parsed, responses);
            completionTokens += choice.remove("completion_tokens").asLong();
            promptTokens += queued.get(i).prompts()[0].length;
            choices.add(choice);
        }
        if (route == CompletionsApi.Route.OPENAI) {
            ObjectNode usage = body.putObject("usage");
            usage.put("prompt_tokens", promptTokens);
            usage.put("completion_tokens", completionTokens);
            usage.put("total_tokens", promptTokens + completionTokens);
        }
        return body;
    }

    private JsonNode health(HttpExchange exchange) {
        ObjectNode body = HttpJson.MAPPER.createObjectNode();
        body.put("status", "ok");
        body.put("model", config.modelName());
        body.put("parameters", model.parameterCount());
        body.put("max_position_embeddings", model.config().maxPositionEmbeddings());
        body.put("queued_requests", service.queued());
        body.put("batches_run", service.batchesRun());
        body.put("requests_run", service.jobsRun());
        return body;
    }

    private static GenerationOutput await(CompletableFuture<GenerationOutput> result) throws Exception {
        try {
            return result.get();
        } catch (ExecutionException e) {
            if (e.getCause() instanceof Exception cause) {
                throw cause;
            }
            throw e;
        }
    }

    /** Stops listening, lets the worker finish its batch, fails what is still queued. */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        http.stop(0);
        service.close();
        handlers.shutdownNow();
    }
}
