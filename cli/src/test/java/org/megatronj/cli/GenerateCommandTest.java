package org.megatronj.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code megatron generate}: one --prompt, and Megatron's static inference (--prompts, --prompt-file, --output-path). */
class GenerateCommandTest {
    @TempDir
    static Path dir;
    static Path ckpt;

    /** The small random GPT-2 of {@link HfGpt2Fixture} (61 tokens, 16 positions), read with the NullTokenizer (eod 60). */
    @BeforeAll
    static void checkpoint() throws Exception {
        Path hf = dir.resolve("hf");
        HfGpt2Fixture.write(hf);
        ckpt = dir.resolve("ckpt");
        CliRun imp = CliRun.of("checkpoint", "import-hf", "--hf-dir", hf.toString(), "--save", ckpt.toString());
        assertEquals(0, imp.code(), imp.toString());
    }

    static CliRun generate(String... args) {
        List<String> all = new ArrayList<>(List.of("generate", "--load", ckpt.toString(), "--tokenizer-type", "NullTokenizer",
                "--vocab-size", "61"));
        all.addAll(List.of(args));
        return CliRun.of(all.toArray(String[]::new));
    }

    @Test
    void promptsRunAsMegatronsStaticInferenceAndMatchGreedyPrompt() throws Exception {
        Path out = dir.resolve("results/out.json");
        CliRun r = generate("--prompts", "1 2 3", "4 5", "1 2 3", "--num-tokens-to-generate", "4", "--return-log-probs",
                "--top-n-logprobs", "2", "--output-path", out.toString(), "--inference-max-requests", "2");
        assertEquals(0, r.code(), r.toString());
        assertTrue(r.out().contains("~~~~ Unique prompts + outputs. ~~~~\n"), r.out());
        assertTrue(r.out().matches("(?s).*\n0/2 \\[2]\\. 1 2 3 \\.\\.\\. ( [0-9]+){0,4}\n1/2 \\[1]\\. 4 5 \\.\\.\\. .*"), r.out());
        assertTrue(r.out().matches("(?s).*\nstatic \\| cg 0 \\| <user prompts> \\| reqs 3 \\[ batch 2 ] \\.\\.\\. mem [0-9.]+/[0-9.]+"
                + " \\.\\.\\. time [0-9.]+\\.\n"), r.out());
        assertTrue(r.err().contains("generated 2/3 requests ("), r.err());   // progress after the first batch
        JsonNode doc = new ObjectMapper().readTree(out.toFile());
        assertEquals(3, doc.size());
        JsonNode first = doc.get("0");
        assertEquals("1 2 3", first.get("input_prompt").asText());
        int generated = first.get("generated_tokens").size();
        assertEquals(generated, first.get("tpot").size());
        assertEquals(2 + generated, first.get("logprobs").size());            // prompt tokens after the first, then generated
        assertEquals(generated, first.get("generated_top_n_logprobs").size());
        assertEquals(first.get("generated_tokens"), doc.get("2").get("generated_tokens"));   // greedy: same prompt, same tokens

        // --prompt with the default greedy settings of the static mode continues the same way
        CliRun one = generate("--prompt", "1 2 3", "--tokens-to-generate", "4", "--temperature", "0");
        assertEquals(0, one.code(), one.toString());
        assertEquals("1 2 3" + first.get("generated_text").asText(), one.out().strip());
    }

    @Test
    void promptFileWithPerRequestLengthsAndTruncation() throws Exception {
        Path prompts = dir.resolve("prompts.jsonl");
        Files.writeString(prompts, """
                {"text": "7 8 9", "chatgpt_output_token_length": 2, "other": "ignored"}
                {"text": "10", "chatgpt_output_token_length": 0}
                {"text": "not read"}
                """);
        Path out = dir.resolve("file.json");
        CliRun r = generate("--prompt-file", prompts.toString(), "--num-tokens-from-file", "--prompt-file-num-truncate", "2",
                "--output-path", out.toString());
        assertEquals(0, r.code(), r.toString());
        assertTrue(r.out().contains("static | cg 0 | <prompt file> | reqs 2 [ batch 8 ]"), r.out());
        JsonNode doc = new ObjectMapper().readTree(out.toFile());
        assertEquals(2, doc.size());
        assertTrue(doc.get("0").get("generated_tokens").size() <= 2, doc.toString());
        assertEquals(0, doc.get("1").get("generated_tokens").size());
        assertFalse(doc.get("0").has("logprobs"), doc.toString());

        Files.writeString(prompts, "{\"text\": \"1\"}\n{\"prompt\": \"2\"}\n");
        CliRun bad = generate("--prompt-file", prompts.toString());
        assertEquals(1, bad.code(), bad.toString());
        assertTrue(bad.err().contains(prompts + " line 2: expected a JSON object with the prompt as a string in \"text\""),
                bad.err());
        CliRun noLength = generate("--prompt-file", dir.resolve("prompts.jsonl").toString(), "--num-tokens-from-file");
        assertEquals(1, noLength.code(), noLength.toString());
        assertTrue(noLength.err().contains("line 1: --num-tokens-from-file needs a whole number >= 0 in"), noLength.err());
    }

    @Test
    void settingsAndModesAreCheckedUpFront() {
        CliRun logprobsWithPrompt = generate("--prompt", "1 2", "--return-log-probs");
        assertEquals(2, logprobsWithPrompt.code(), logprobsWithPrompt.toString());
        assertTrue(logprobsWithPrompt.err().contains("--return-log-probs is a flag of Megatron's static inference: it needs the prompts as --prompts or --prompt-file"), logprobsWithPrompt.err());
        CliRun both = generate("--prompts", "1 2", "--top_k", "5", "--top_p", "0.9");
        assertEquals(1, both.code(), both.toString());
        assertTrue(both.err().contains("Cannot have top-p and top-k both greater than zero"), both.err());
        CliRun tooLong = generate("--prompts", "1 2 3", "--num-tokens-to-generate", "14");
        assertEquals(1, tooLong.code(), tooLong.toString());
        assertTrue(tooLong.err().contains("exceed the model's --max-position-embeddings 16"), tooLong.err());
        CliRun twoSources = generate("--prompt", "1", "--prompts", "2");
        assertEquals(2, twoSources.code(), twoSources.toString());
        assertTrue(twoSources.err().contains("mutually exclusive"), twoSources.err());
    }
}
