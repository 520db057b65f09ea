package org.megatronj.cli;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.net.http.HttpClient;

/** Lets tests in other packages drive {@link ClientCommand}'s request/answer step. */
public final class ClientCommandAccess {
    public String send(String server, String prompt, int tokens) throws InterruptedException {
        ObjectNode body = JsonNodeFactory.instance.objectNode();
        body.putArray("prompts").add(prompt);
        body.put("tokens_to_generate", tokens);
        return new ClientCommand().send(HttpClient.newHttpClient(), ClientCommand.apiUri(server), body);
    }
}
