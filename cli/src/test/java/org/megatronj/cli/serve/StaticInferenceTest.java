package org.megatronj.cli.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.io.tokenizer.NullTokenizer;
import org.megatronj.io.tokenizer.Tokenizer;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Megatron's static inference semantics over the sampling engine, against full-forward references. */
class StaticInferenceTest {
    static final int VOCAB = 40;
    static TinyGpt gpt;

    @BeforeAll
    static void model() {
        gpt = new TinyGpt(VOCAB, 48, 11);
    }

    @AfterAll
    static void close() {
        gpt.close();
    }

    static Tokenizer tokenizer(int eod) {
        return new NullTokenizer.Form(false, eod, -1).create(VOCAB);
    }

    static StaticInference.Settings greedy(boolean logprobs, boolean skipPrompt, int topN, int maxRequests) {
        return new StaticInference.Settings(1.0, 1, 0.0, logprobs, skipPrompt, topN, maxRequests, 2560, 12000, 1234);
    }

    static final List<String> PROMPTS = List.of("3 14 15 9 2 6", "5 3", "8 9 7 9");

    static int[] ids(String prompt) {
        return Arrays.stream(prompt.split(" ")).mapToInt(Integer::parseInt).toArray();
    }

    static List<StaticInference.Request> requests(int n) {
        return PROMPTS.stream().map(p -> new StaticInference.Request(p, n)).toList();
    }

    static List<StaticInference.Result> run(Tokenizer tok, StaticInference.Settings s, List<StaticInference.Request> r) {
        return new StaticInference(gpt.model, tok, s).run(r, (done, total) -> { });
    }

    @Test
    void greedyRequestsGenerateTheirOwnTokensWhateverTheBatch() {
        int n = 6;
        Tokenizer tok = tokenizer(unusedEod(n));
        List<StaticInference.Result> batched = run(tok, greedy(false, false, 0, 8), requests(n));
        List<StaticInference.Result> alone = run(tok, greedy(false, false, 0, 1), requests(n));
        for (int i = 0; i < PROMPTS.size(); i++) {
            int[] prompt = ids(PROMPTS.get(i));
            int[] reference = gpt.greedyReference(prompt, prompt.length + n, -1);
            int[] expected = Arrays.copyOfRange(reference, prompt.length, reference.length);
            StaticInference.Result r = batched.get(i);
            assertArrayEquals(expected, r.generatedTokens(), "prompt " + i);   // n tokens: Megatron trims longer rows
            assertArrayEquals(expected, alone.get(i).generatedTokens(), "prompt " + i + " alone");
            assertArrayEquals(prompt, r.promptTokens());
            assertEquals(n, r.tokenSeconds().length);
            assertTrue(Arrays.stream(r.tokenSeconds()).allMatch(t -> t >= 0), Arrays.toString(r.tokenSeconds()));
            StringBuilder text = new StringBuilder();
            for (int t : expected) {
                text.append(' ').append(t);
            }
            assertEquals(text.toString(), r.generatedText());   // the detokenized sequence after the prompt's characters
            assertNull(r.logprobs());
            assertNull(r.topLogprobs());
        }
    }

    @Test
    void generationEndsBeforeTheEndOfDocumentToken() {
        int[] prompt = ids(PROMPTS.get(0));
        int[] free = gpt.greedyReference(prompt, prompt.length + 6, -1);
        int eod = free[prompt.length + 2];                 // make the third greedy token the end of document
        int[] stopped = gpt.greedyReference(prompt, prompt.length + 6, eod);
        int[] expected = Arrays.copyOfRange(stopped, prompt.length, stopped.length - 1);   // without the eod
        StaticInference.Result r = run(tokenizer(eod), greedy(true, false, 2, 8),
                List.of(new StaticInference.Request(PROMPTS.get(0), 6))).getFirst();
        assertArrayEquals(expected, r.generatedTokens());
        assertTrue(expected.length <= 2, Arrays.toString(expected));
        assertEquals(expected.length, r.tokenSeconds().length);
        assertEquals(prompt.length - 1 + expected.length, r.logprobs().length);   // the eod's own log-prob is not kept
        assertEquals(expected.length, r.topLogprobs().size());
    }

    @Test
    void logprobsArePromptThenGeneratedTokensAndTopNListsTheGreedyToken() {
        int n = 4;
        Tokenizer tok = tokenizer(unusedEod(n));
        List<StaticInference.Result> all = run(tok, greedy(true, false, 3, 2), requests(n));
        List<StaticInference.Result> skipped = run(tok, greedy(true, true, 0, 2), requests(n));
        for (int i = 0; i < PROMPTS.size(); i++) {
            StaticInference.Result r = all.get(i);
            int[] sequence = concat(r.promptTokens(), r.generatedTokens());
            double[] reference = gpt.logprobReference(sequence);
            assertEquals(sequence.length - 1, r.logprobs().length);
            for (int j = 0; j < reference.length; j++) {
                assertEquals(reference[j], r.logprobs()[j], 2e-4, "prompt " + i + ", position " + j);
            }
            float[] generatedOnly = skipped.get(i).logprobs();
            assertArrayEquals(Arrays.copyOfRange(r.logprobs(), r.promptTokens().length - 1, r.logprobs().length),
                    generatedOnly, "prompt " + i);
            assertEquals(n, r.topLogprobs().size());
            for (int t = 0; t < n; t++) {
                Map<String, Float> top = r.topLogprobs().get(t);
                assertEquals(3, top.size());
                Iterator<Map.Entry<String, Float>> it = top.entrySet().iterator();
                Map.Entry<String, Float> best = it.next();
                assertEquals(Integer.toString(r.generatedTokens()[t]), best.getKey(), "greedy picks the most likely");
                assertEquals(r.logprobs()[r.promptTokens().length - 1 + t], best.getValue(), 1e-6f);
                float previous = best.getValue();
                while (it.hasNext()) {
                    float v = it.next().getValue();
                    assertTrue(v <= previous, top.toString());
                    previous = v;
                }
            }
            assertNull(skipped.get(i).topLogprobs());
        }
    }

    @Test
    void samplingRequestsDrawFromTheirOwnStreams() {
        Tokenizer tok = tokenizer(VOCAB - 1);
        StaticInference.Settings sampling = new StaticInference.Settings(1.5, 0, 0.0, false, false, 0, 8, 2560, 12000, 7);
        List<StaticInference.Request> same = List.of(new StaticInference.Request("5 3", 12),
                new StaticInference.Request("5 3", 12));
        List<StaticInference.Result> a = run(tok, sampling, same);
        List<StaticInference.Result> b = run(tok, new StaticInference.Settings(1.5, 0, 0.0, false, false, 0, 1, 2560,
                12000, 7), same);
        assertFalse(Arrays.equals(a.get(0).generatedTokens(), a.get(1).generatedTokens()),
                "two requests with one prompt sample differently");
        for (int i = 0; i < 2; i++) {
            assertArrayEquals(a.get(i).generatedTokens(), b.get(i).generatedTokens(), "request " + i + " batch-independent");
        }
    }

    @Test
    void limitsAndSettingsAreCheckedWithMegatronsWords() {
        Tokenizer tok = tokenizer(VOCAB - 1);
        IllegalArgumentException tooLong = assertThrows(IllegalArgumentException.class, () -> run(tok,
                new StaticInference.Settings(1.0, 1, 0.0, false, false, 0, 8, 10, 12000, 1),
                List.of(new StaticInference.Request("1 2 3", 8))));
        assertTrue(tooLong.getMessage().contains("Maximum allowed sequence length was set to 10 tokens but requested"
                + " generation of 11 tokens"), tooLong.getMessage());
        IllegalArgumentException positions = assertThrows(IllegalArgumentException.class, () -> run(tok,
                greedy(false, false, 0, 8), List.of(new StaticInference.Request("1 2 3", 46))));
        assertTrue(positions.getMessage().contains("exceed the model's --max-position-embeddings 48"), positions.getMessage());
        IllegalArgumentException both = assertThrows(IllegalArgumentException.class,
                () -> new StaticInference.Settings(1.0, 5, 0.9, false, false, 0, 8, 2560, 12000, 1));
        assertTrue(both.getMessage().contains("Cannot have top-p and top-k both greater than zero"), both.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> new StaticInference.Settings(0.0, 1, 0.0, false, false, 0, 8, 2560, 12000, 1));
    }

    @Test
    void outputFileHasTheScriptsFieldsPerRequest(@TempDir Path dir) throws Exception {
        Tokenizer tok = tokenizer(unusedEod(3));
        List<StaticInference.Result> results = run(tok, greedy(true, false, 2, 8), requests(3));
        Path file = dir.resolve("out/results.json");
        StaticInference.writeJson(results, 1.25, file);
        assertFalse(Files.exists(dir.resolve("out/results.json.tmp")));
        JsonNode doc = new ObjectMapper().readTree(file.toFile());
        assertEquals(List.of("0", "1", "2"), names(doc));
        for (int i = 0; i < 3; i++) {
            JsonNode r = doc.get(Integer.toString(i));
            assertEquals(List.of("input_prompt", "generated_text", "generated_tokens", "tpot", "latency",
                    "generated_top_n_logprobs", "logprobs"), names(r));
            assertEquals(PROMPTS.get(i), r.get("input_prompt").asText());
            assertEquals(results.get(i).generatedText(), r.get("generated_text").asText());
            assertEquals(3, r.get("generated_tokens").size());
            assertEquals(results.get(i).generatedTokens()[2], r.get("generated_tokens").get(2).asInt());
            assertEquals(3, r.get("tpot").size());
            assertEquals(1.25, r.get("latency").asDouble());
            assertEquals(results.get(i).logprobs().length, r.get("logprobs").size());
            assertEquals(results.get(i).logprobs()[0], (float) r.get("logprobs").get(0).asDouble());
            assertEquals(2, r.get("generated_top_n_logprobs").get(0).size());
        }
    }

    /** An end-of-document id that no prompt's first n greedy tokens contain, so every request runs to n tokens. */
    static int unusedEod(int n) {
        boolean[] used = new boolean[VOCAB];
        for (String p : PROMPTS) {
            int[] prompt = ids(p);
            int[] reference = gpt.greedyReference(prompt, prompt.length + n, -1);
            for (int t = prompt.length; t < reference.length; t++) {
                used[reference[t]] = true;
            }
        }
        for (int id = VOCAB - 1; id >= 0; id--) {
            if (!used[id]) {
                return id;
            }
        }
        throw new AssertionError("every id is generated");
    }

    static List<String> names(JsonNode node) {
        List<String> names = new ArrayList<>();
        node.fieldNames().forEachRemaining(names::add);
        return names;
    }

    static int[] concat(int[] a, int[] b) {
        int[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
