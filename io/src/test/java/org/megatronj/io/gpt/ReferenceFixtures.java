package org.megatronj.io.gpt;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Path;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/** The NumPy reference fixtures made by {@code reference/make_fixtures.py} (test resources). */
final class ReferenceFixtures {
    private ReferenceFixtures() {
    }

    static Path dir() {
        try {
            return Path.of(ReferenceFixtures.class.getResource("reference/cases.json").toURI()).getParent();
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    static JsonNode cases() throws IOException {
        return new ObjectMapper().readTree(dir().resolve("cases.json").toFile());
    }

    static Path file(String name) {
        return dir().resolve(name);
    }
}
