package org.megatronj.cli.evaluate;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.cli.Megatron;
import org.megatronj.cli.serve.TinyGpt;
import org.megatronj.io.tokenizer.Tokenizer;
import org.megatronj.io.tokenizer.TokenizerType;
import org.megatronj.memory.Tensor;
import org.megatronj.model.Parameter;
import org.megatronj.parallel.train.TrainingCheckpointer;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code megatron evaluate} end to end: a checkpoint written by the trainer's checkpointer, the shape from its metadata. */
class EvaluateCommandTest {
    static final Path GPT2 = Path.of("..", "data", "gpt2").toAbsolutePath().normalize();

    record Run(int code, String out, String err) {
    }

    static Run run(String... args) {
        CommandLine cli = Megatron.commandLine();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cli.setOut(new PrintWriter(out, true));
        cli.setErr(new PrintWriter(err, true));
        return new Run(cli.execute(args), out.toString(), err.toString());
    }

    @Test
    void wikitextAndLambadaFromACheckpoint(@TempDir Path dir) throws Exception {
        Tokenizer tokenizer = TokenizerType.GPT2BPETokenizer.create(GPT2.resolve("gpt2-vocab.json"), GPT2.resolve("gpt2-merges.txt"), null, 0);
        Path ckpt = dir.resolve("ckpt");
        Path wiki = dir.resolve("wiki.test.tokens");
        Files.writeString(wiki, ZeroShotEvaluatorTest.WIKI);
        double expectedPpl;
        try (TinyGpt gpt = new TinyGpt(tokenizer.vocabSize(), 32, 21)) {
            save(gpt, ckpt);
            WikitextData data = WikitextData.load(wiki, tokenizer, Detokenizers::wikitext);
            LmWindows windows = new LmWindows(data.tokens(), 16, 4, tokenizer.eod());
            expectedPpl = ZeroShotEvaluator.perplexity(gpt.model, data.tokens(), data.originalTokens(), windows, 2,
                    new EvaluationProgress(new PrintWriter(new StringWriter()), "x", windows.size())).perplexity();
        }
        Run r = run("evaluate", "--task", "WIKITEXT103", "--valid-data", wiki.toString(), "--load", ckpt.toString(),
                "--seq-length", "16", "--overlapping-eval", "4", "--micro-batch-size", "2");
        assertEquals(0, r.code(), r.err());
        Matcher m = Pattern.compile("\\| ppl: ([0-9.E+-]+) \\|").matcher(r.out());
        assertTrue(m.find(), r.out());
        assertEquals(expectedPpl, Double.parseDouble(m.group(1)), 1e-3 * expectedPpl);
        assertTrue(r.out().contains("adjusted ppl:") && r.out().contains("token ratio:"), r.out());
        assertTrue(r.err().contains("ETA"), r.err());

        Path lambada = dir.resolve("lambada.jsonl");
        Files.writeString(lambada, "{\"text\": \"The cat sat on the mat\"}\n{\"text\": \"A dog ran into the house\"}\n");
        Run l = run("evaluate", "--task", "LAMBADA", "--valid-data", lambada.toString(), "--load", ckpt.toString(),
                "--strict-lambada");
        assertEquals(0, l.code(), l.err());
        assertTrue(l.out().contains("total examples: 2.0000E+00"), l.out());

        Run missing = run("evaluate", "--task", "LAMBADA", "--valid-data", dir.resolve("nope.jsonl").toString(),
                "--load", ckpt.toString());
        assertEquals(1, missing.code());
        assertTrue(missing.err().contains("nope.jsonl is not a readable file"), missing.err());
    }

    /** Writes the model as the trainer's checkpointer does (its seq length, 32 for TinyGpt(..., 32, ...), included). */
    static void save(TinyGpt gpt, Path ckpt) throws Exception {
        ObjectMapper json = new ObjectMapper();
        ObjectNode args = json.createObjectNode();
        args.put("tokenizer-type", "GPT2BPETokenizer");
        args.put("vocab-file", GPT2.resolve("gpt2-vocab.json").toString());
        args.put("merge-file", GPT2.resolve("gpt2-merges.txt").toString());
        Map<String, Tensor> weights = new LinkedHashMap<>();
        for (Parameter p : gpt.model.parameters()) {
            weights.put(p.name(), p.data());
        }
        new TrainingCheckpointer(json.valueToTree(gpt.model.config()), args).saveRelease(ckpt, weights, null);
    }

    @Test
    void overlapLongerThanTheWindowIsRefusedBeforeAnyWork(@TempDir Path dir) throws Exception {
        Path wiki = dir.resolve("wiki.test.tokens");
        Files.writeString(wiki, ZeroShotEvaluatorTest.WIKI);
        Path ckpt = dir.resolve("ckpt");
        try (TinyGpt gpt = new TinyGpt(50257, 32, 21)) {
            save(gpt, ckpt);
        }
        Run given = run("evaluate", "--task", "WIKITEXT103", "--valid-data", wiki.toString(), "--load", ckpt.toString(),
                "--seq-length", "16", "--overlapping-eval", "17");
        assertEquals(1, given.code());
        assertTrue(given.err().contains("--overlapping-eval 17 must be at most --seq-length 16"), given.err());
        assertTrue(!given.err().contains("windows:") && given.out().isEmpty(), given.err() + given.out());

        Run fromCheckpoint = run("evaluate", "--task", "WIKITEXT103", "--valid-data", wiki.toString(), "--load",
                ckpt.toString(), "--overlapping-eval", "33");
        assertEquals(1, fromCheckpoint.code());
        assertTrue(fromCheckpoint.err().contains("--overlapping-eval 33 must be at most --seq-length 32"), fromCheckpoint.err());
        assertTrue(!fromCheckpoint.err().contains("windows:"), fromCheckpoint.err());

        Run zero = run("evaluate", "--task", "WIKITEXT103", "--valid-data", wiki.toString(), "--load", ckpt.toString(),
                "--overlapping-eval", "0");
        assertEquals(1, zero.code());
        assertTrue(zero.err().contains("--overlapping-eval must be >= 1, got 0"), zero.err());
    }

    @Test
    void flagsOfTheOtherTaskAreRefused(@TempDir Path dir) {
        Path missing = dir.resolve("no-checkpoint");   // refused before the checkpoint is looked at
        Run lambada = run("evaluate", "--task", "LAMBADA", "--valid-data", "lambada.jsonl", "--load", missing.toString(),
                "--overlapping-eval", "32");
        assertEquals(1, lambada.code());
        assertTrue(lambada.err().contains("--overlapping-eval applies only to --task WIKITEXT103, not to --task LAMBADA"),
                lambada.err());
        Run wikitext = run("evaluate", "--task", "WIKITEXT103", "--valid-data", "wiki.test.tokens", "--load",
                missing.toString(), "--strict-lambada");
        assertEquals(1, wikitext.code());
        assertTrue(wikitext.err().contains("--strict-lambada applies only to --task LAMBADA, not to --task WIKITEXT103"),
                wikitext.err());
    }
}
