package org.megatronj.io.tokenizer;

import java.nio.file.Files;
import java.nio.file.Path;

import org.junit.jupiter.api.Assumptions;

/**
 * Finds the GPT-2 vocab/merges that tests use: {@code shared/data/gpt2} beside or above the working
 * directory, else the copy the repository ships in {@code data/gpt2}.
 */
public final class Gpt2Files {
    private Gpt2Files() {
    }

    public static Path dir() {
        for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
            for (Path candidate : new Path[] {p.resolve("shared/data/gpt2"), p.resolveSibling("shared").resolve("data/gpt2"), p.resolve("data/gpt2")}) {
                if (Files.isRegularFile(candidate.resolve("gpt2-vocab.json"))) {
                    return candidate;
                }
            }
        }
        Assumptions.abort("shared/data/gpt2 (GPT-2 vocab and merges) not found above " + Path.of("").toAbsolutePath());
        throw new AssertionError();
    }

    public static Path vocab() {
        return dir().resolve("gpt2-vocab.json");
    }

    public static Path merges() {
        return dir().resolve("gpt2-merges.txt");
    }

    private static Gpt2BpeTokenizer shared;

    /** One tokenizer for all tests of a JVM (loading takes a fraction of a second). */
    public static synchronized Gpt2BpeTokenizer tokenizer() {
        if (shared == null) shared = Gpt2BpeTokenizer.load(vocab(), merges());
        return shared;
    }
}
