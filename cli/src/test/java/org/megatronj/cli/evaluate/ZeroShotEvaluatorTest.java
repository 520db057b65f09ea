package org.megatronj.cli.evaluate;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.cli.serve.TinyGpt;
import org.megatronj.io.tokenizer.Tokenizer;
import org.megatronj.io.tokenizer.TokenizerType;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Perplexity and LAMBADA accuracy against values computed independently from full forwards in the test. */
class ZeroShotEvaluatorTest {
    static final Path GPT2 = Path.of("..", "data", "gpt2");
    static final String WIKI = " = Robert Boulter = \n \n Robert Boulter is an English film , television and theatre actor ."
            + " He had a guest @-@ starring role on the television series The Bill in 2000 . \n";
    static Tokenizer tokenizer;
    static TinyGpt gpt;

    @BeforeAll
    static void model() {
        tokenizer = TokenizerType.GPT2BPETokenizer.create(GPT2.resolve("gpt2-vocab.json"), GPT2.resolve("gpt2-merges.txt"), null, 0);
        gpt = new TinyGpt(tokenizer.vocabSize(), 32, 11);
    }

    @AfterAll
    static void close() {
        gpt.close();
    }

    static EvaluationProgress quiet(long total) {
        return new EvaluationProgress(new PrintWriter(new StringWriter()), "test", total);
    }

    /** -log p(tokens[j] | tokens[start..j)) from one full forward of the context. */
    static double nll(int[] tokens, int start, int j) {
        int v = gpt.model.config().paddedVocabSize();
        int[] context = Arrays.copyOfRange(tokens, start, j);
        float[] logits = gpt.fullLogits(context);
        int last = context.length - 1;
        return -(logits[last * v + tokens[j]] - gpt.logSumExp(logits, last));
    }

    /** Every target once, with the context Megatron's windows give it: from 0 within the first window, else from the start of the window that scores it. */
    static double referenceLoss(int[] tokens, int seq, int overlap) {
        double total = 0;
        for (int j = 1; j < tokens.length; j++) {
            int start = j <= seq ? 0 : (int) Math.ceil((j - seq) / (double) overlap) * overlap;
            total += nll(tokens, start, j);
        }
        return total;
    }

    @Test
    void wikitextPerplexityWithAndWithoutOverlap(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("wiki.test.tokens");
        Files.writeString(file, WIKI);
        WikitextData data = WikitextData.load(file, tokenizer, Detokenizers::wikitext);
        assertEquals(WIKI.strip().split(" ").length, data.originalTokens());
        assertEquals(tokenizer.tokenize(Detokenizers.wikitext(WIKI)).length, data.tokens().length);
        for (int overlap : new int[] {16, 5}) {
            LmWindows windows = new LmWindows(data.tokens(), 16, overlap, tokenizer.eod());
            ZeroShotEvaluator.Perplexity p = ZeroShotEvaluator.perplexity(gpt.model, data.tokens(), data.originalTokens(),
                    windows, 3, quiet(windows.size()));
            double expected = referenceLoss(data.tokens(), 16, overlap);
            assertEquals(expected, p.lossSum(), 1e-4 * expected, "overlap " + overlap);
            int n = data.tokens().length;
            double avg = expected / (n - 1);
            assertEquals(Math.exp(avg), p.perplexity(), 1e-4 * Math.exp(avg));
            double ratio = (n - 1) / (double) (data.originalTokens() - 1);
            assertEquals(ratio, p.tokenRatio(), 1e-12);
            assertEquals(Math.exp(Math.min(20, avg * ratio)), p.adjustedPerplexity(), 1e-3 * p.adjustedPerplexity());
        }
    }

    @Test
    void lambadaAccuracy(@TempDir Path dir) throws IOException {
        // Half the samples end with the model's own greedy choice (so they must count), half with a fixed word.
        String[] contexts = {"The cat sat on the", "She opened the door and saw", "In the morning we", "He could not find his",
                "They walked along the river until", "Nobody expected the"};
        List<String> lines = new ArrayList<>();
        int v = gpt.model.config().paddedVocabSize();
        int mustBeRight = 0;
        for (int i = 0; i < contexts.length; i++) {
            int[] ctx = tokenizer.tokenize(contexts[i]);
            float[] logits = gpt.fullLogits(ctx);
            int best = 0;
            for (int t = 1; t < tokenizer.vocabSize(); t++) {
                if (logits[(ctx.length - 1) * v + t] > logits[(ctx.length - 1) * v + best]) {
                    best = t;
                }
            }
            String text = i % 2 == 0 ? contexts[i] + tokenizer.detokenize(new int[] {best}) : contexts[i] + " house";
            int[] all = tokenizer.tokenize(text);
            if (i % 2 == 0 && Arrays.equals(Arrays.copyOf(all, all.length - 1), ctx) && all[all.length - 1] == best) {
                mustBeRight++;
            }
            lines.add("{\"text\": " + new com.fasterxml.jackson.databind.ObjectMapper().writeValueAsString(text) + "}");
        }
        Path file = dir.resolve("lambada_test.jsonl");
        Files.write(file, lines);
        for (boolean strict : new boolean[] {false, true}) {
            List<LambadaSamples.Sample> samples = LambadaSamples.read(file, tokenizer, strict);
            int expected = 0;
            for (LambadaSamples.Sample s : samples) {
                int[] all = new int[s.context().length + s.target().length];
                System.arraycopy(s.context(), 0, all, 0, s.context().length);
                System.arraycopy(s.target(), 0, all, s.context().length, s.target().length);
                boolean right = true;
                for (int k = 0; k < s.target().length; k++) {
                    int j = s.context().length + k;
                    float[] logits = gpt.fullLogits(Arrays.copyOf(all, j));
                    int best = 0;
                    for (int t = 1; t < v; t++) {
                        if (logits[(j - 1) * v + t] > logits[(j - 1) * v + best]) {
                            best = t;
                        }
                    }
                    right &= best == all[j];
                }
                expected += right ? 1 : 0;
            }
            ZeroShotEvaluator.Accuracy a = ZeroShotEvaluator.lambada(gpt.model, samples, 32, tokenizer.eod(), 4,
                    quiet(samples.size()));
            assertEquals(expected, a.correct(), "strict " + strict);
            assertEquals(contexts.length, a.total());
            if (!strict) {
                assertTrue(a.correct() >= mustBeRight && mustBeRight > 0, a.correct() + " correct, " + mustBeRight + " certain");
            }
        }
    }

    @Test
    void unreadableOrMalformedFilesFailClearly(@TempDir Path dir) throws IOException {
        IOException missing = assertThrows(IOException.class, () -> LambadaSamples.read(dir.resolve("none.jsonl"), tokenizer, false));
        assertTrue(missing.getMessage().contains("not a readable file"));
        Path bad = dir.resolve("bad.jsonl");
        Files.writeString(bad, "{\"text\": \"fine line here\"}\n{\"txt\": 3}\n");
        IOException e = assertThrows(IOException.class, () -> LambadaSamples.read(bad, tokenizer, false));
        assertTrue(e.getMessage().contains("line 2"), e.getMessage());
        Path binary = dir.resolve("wiki.bin");
        Files.write(binary, new byte[] {(byte) 0xff, (byte) 0xfe, 0x41});
        assertThrows(IOException.class, () -> WikitextData.load(binary, tokenizer, Detokenizers::wikitext));
    }
}
