package org.megatronj.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.Callable;

/** {@code megatron client HOST[:PORT]}: Megatron's {@code tools/text_generation_cli.py}. */
@Command(name = "client", mixinStandardHelpOptions = true,
        description = {"Interactive client of `megatron serve`: asks for a prompt and a number of tokens, sends them"
                + " to PUT /api and prints the completion. End with Ctrl-D (end of input)."})
final class ClientCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "HOST[:PORT]", description = "The server, e.g. localhost:5000 (port 5000 when left out).")
    String server;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    private final ObjectMapper json = new ObjectMapper();

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        URI uri = apiUri(server);
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        while (true) {
            out.print("Enter prompt: ");
            out.flush();
            String prompt = in.readLine();
            if (prompt == null) {
                break;
            }
            out.print("Enter number of tokens to generate: ");
            out.flush();
            String count = in.readLine();
            if (count == null) {
                break;
            }
            int tokens;
            try {
                tokens = Integer.parseInt(count.strip());
            } catch (NumberFormatException e) {
                out.println("Error: '" + count.strip() + "' is not a whole number of tokens");
                continue;
            }
            ObjectNode body = json.createObjectNode();
            body.putArray("prompts").add(prompt);
            body.put("tokens_to_generate", tokens);
            out.println(send(http, uri, body));
            out.flush();
        }
        out.println();
        out.flush();
        return 0;
    }

    /** The text to show for one request: the completion, or "Error STATUS: message". */
    String send(HttpClient http, URI uri, JsonNode body) throws InterruptedException {
        HttpRequest request = HttpRequest.newBuilder(uri)
                .header("Content-Type", "application/json")
                .PUT(HttpRequest.BodyPublishers.ofString(body.toString(), StandardCharsets.UTF_8))
                .build();
        try {
            HttpResponse<String> response = http.send(request, HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
            JsonNode answer;
            try {
                answer = json.readTree(response.body());
            } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                return "Error " + response.statusCode() + ": the answer is not JSON: " + response.body();
            }
            if (response.statusCode() != 200) {
                return "Error " + response.statusCode() + ": " + answer.path("message").asText(response.body());
            }
            return "Megatron Response: \n" + answer.path("text").path(0).asText();
        } catch (IOException e) {
            return "Error: cannot reach " + uri + ": " + ErrorReporter.describe(e);
        }
    }

    static URI apiUri(String server) {
        String hostPort = server.contains(":") ? server : server + ":5000";
        try {
            URI uri = URI.create("http://" + hostPort + "/api");
            if (uri.getHost() == null || uri.getPort() < 0) {
                throw new IllegalArgumentException();
            }
            return uri;
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("'" + server + "' is not HOST[:PORT], e.g. localhost:5000");
        }
    }
}
