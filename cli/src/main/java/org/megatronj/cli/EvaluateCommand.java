package org.megatronj.cli;

import org.megatronj.cli.evaluate.Detokenizers;
import org.megatronj.cli.evaluate.EvaluationProgress;
import org.megatronj.cli.evaluate.LambadaSamples;
import org.megatronj.cli.evaluate.LmWindows;
import org.megatronj.cli.evaluate.WikitextData;
import org.megatronj.cli.evaluate.ZeroShotEvaluator;
import org.megatronj.model.GPTModel;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.function.UnaryOperator;

/** {@code megatron evaluate}: Megatron's zero-shot GPT tasks ({@code tasks/main.py --task WIKITEXT103|LAMBADA}). */
@Command(name = "evaluate", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Zero-shot evaluation of a checkpoint's GPT model, as Megatron's tasks/zeroshot_gpt.",
                "WIKITEXT103: perplexity of a word-level WikiText file (wiki.test.tokens), detokenized and BPE-encoded,"
                        + " in windows of --seq-length (overlapping with --overlapping-eval); prints the subword"
                        + " perplexity and the word-level one adjusted by the token ratio.",
                "LAMBADA: accuracy of predicting the last word of each {\"text\": ...} line (--strict-lambada: the"
                        + " whole last word, else its last token)."})
final class EvaluateCommand implements Callable<Integer> {
    enum Task { WIKITEXT103, LAMBADA }

    @Option(names = "--task", required = true, paramLabel = "TASK", description = "WIKITEXT103 or LAMBADA.")
    Task task;

    @Option(names = "--valid-data", required = true, paramLabel = "FILE", description = "WikiText test file, or LAMBADA JSON lines.")
    Path validData;

    @Option(names = "--load", required = true, paramLabel = "DIR", description = "Checkpoint folder (pretrain --save, or checkpoint import-hf --save).")
    Path load;

    @Option(names = "--seq-length", paramLabel = "N", description = "Window length (default: the checkpoint's --seq-length).")
    Integer seqLength;

    @Option(names = "--overlapping-eval", paramLabel = "N", description = "WIKITEXT103: windows advance by N tokens and score only their last N (default: --seq-length, disjoint windows).")
    Integer overlappingEval;

    @Option(names = "--strict-lambada", description = "LAMBADA: the target is the whole last word, not just its last token.")
    boolean strictLambada;

    @Option(names = "--micro-batch-size", paramLabel = "B", defaultValue = "4", description = "Windows per forward (default ${DEFAULT-VALUE}).")
    int microBatchSize;

    @Option(names = "--detokenizer", paramLabel = "NAME", description = "wiki, ptb, lambada or none (default: by file name as Megatron, else the task's own).")
    String detokenizer;

    @Mixin
    DeviceOptions deviceOptions;

    @Mixin
    TokenizerOptions tokenizer;

    @Mixin
    InferencePrecisionOptions precision = new InferencePrecisionOptions();

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        if (microBatchSize < 1) {
            throw new IllegalArgumentException("--micro-batch-size must be >= 1, got " + microBatchSize);
        }
        refuseOtherTasksFlags();
        if (overlappingEval != null && overlappingEval < 1) {
            throw new IllegalArgumentException("--overlapping-eval must be >= 1, got " + overlappingEval);
        }
        if (overlappingEval != null && seqLength != null) {
            checkOverlap(seqLength);                          // before the checkpoint is loaded, when we can
        }
        try (CheckpointModel loaded = CheckpointModel.load(load, tokenizer, deviceOptions.device(), precision.precision())) {
            GPTModel model = loaded.model();
            int s = seqLength != null ? seqLength : model.config().seqLength();
            if (s < 1 || s > model.config().maxPositionEmbeddings()) {
                throw new IllegalArgumentException("--seq-length " + s + " must be in [1, --max-position-embeddings "
                        + model.config().maxPositionEmbeddings() + "]");
            }
            if (overlappingEval != null) {
                checkOverlap(s);
            }
            UnaryOperator<String> detok = detokenizer != null ? Detokenizers.named(detokenizer)
                    : fallback(Detokenizers.forPath(validData.toString()));
            String line;
            if (task == Task.WIKITEXT103) {
                WikitextData data = WikitextData.load(validData, loaded.tokenizer(), detok);
                LmWindows windows = new LmWindows(data.tokens(), s, overlappingEval, loaded.tokenizer().eod());
                err.printf("> number of original tokens: %d, number of detokenized tokens: %d, windows: %d%n",
                        data.originalTokens(), data.tokens().length, windows.size());
                ZeroShotEvaluator.Perplexity p = ZeroShotEvaluator.perplexity(model, data.tokens(), data.originalTokens(),
                        windows, microBatchSize, new EvaluationProgress(err, "WIKITEXT103", windows.size()));
                line = String.format(Locale.ROOT, " validation results on WIKITEXT103 | avg loss: %.4E | ppl: %.4E |"
                        + " adjusted ppl: %.4E | token ratio: %s |", p.averageLoss(), p.perplexity(),
                        p.adjustedPerplexity(), p.tokenRatio());
            } else {
                List<LambadaSamples.Sample> samples = LambadaSamples.read(validData, loaded.tokenizer(), strictLambada);
                err.printf("> found %d samples%n", samples.size());
                ZeroShotEvaluator.Accuracy a = ZeroShotEvaluator.lambada(model, samples, s, loaded.tokenizer().eod(),
                        microBatchSize, new EvaluationProgress(err, "LAMBADA", samples.size()));
                if (a.truncated() > 0) {
                    err.printf("> %d samples were longer than --seq-length + 1 tokens: their context was cut on the left%n",
                            a.truncated());
                }
                line = String.format(Locale.ROOT, " validation results on LAMBADA | number correct: %.4E |"
                        + " total examples: %.4E | avg accuracy: %.4E", (double) a.correct(), (double) a.total(), a.accuracy());
            }
            String rule = "-".repeat(line.length() + 1);
            out.println(rule);
            out.println(line);
            out.println(rule);
            out.flush();
        }
        return 0;
    }

    /**
     * A flag of the other task would be ignored, and the user would believe it applied: refuse it. picocli's parse
     * result says whether the user gave it (also from an @file), whatever its value.
     */
    private void refuseOtherTasksFlags() {
        CommandLine.ParseResult given = spec.commandLine().getParseResult();
        String flag = null;
        if (task != Task.WIKITEXT103 && given != null && given.hasMatchedOption("--overlapping-eval")) {
            flag = "--overlapping-eval applies only to --task WIKITEXT103";
        } else if (task != Task.LAMBADA && given != null && given.hasMatchedOption("--strict-lambada")) {
            flag = "--strict-lambada applies only to --task LAMBADA";
        }
        if (flag != null) {
            throw new IllegalArgumentException(flag + ", not to --task " + task + "; leave it out");
        }
    }

    /** Windows advancing by more than their length would leave tokens unscored but counted in the perplexity. */
    private void checkOverlap(int s) {
        if (overlappingEval > s) {
            throw new IllegalArgumentException("--overlapping-eval " + overlappingEval + " must be at most --seq-length "
                    + s + " (each window scores only its last N tokens, so a larger N skips tokens)");
        }
    }

    /** Megatron picks the detokenizer by file name; a file named otherwise gets the task's own. */
    private UnaryOperator<String> fallback(UnaryOperator<String> byPath) {
        if (byPath != null) {
            return byPath;
        }
        return task == Task.WIKITEXT103 ? Detokenizers::wikitext : Detokenizers::lambada;
    }
}
