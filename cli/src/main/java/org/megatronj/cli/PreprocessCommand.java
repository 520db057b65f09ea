package org.megatronj.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

import org.megatronj.io.indexed.IndexedDataset;
import org.megatronj.io.preprocess.EnglishSentenceSplitter;
import org.megatronj.io.preprocess.PreprocessConfig;
import org.megatronj.io.preprocess.PreprocessProgress;
import org.megatronj.io.preprocess.Preprocessor;
import org.megatronj.io.tokenizer.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code megatron preprocess}: Megatron's {@code tools/preprocess_data.py}, loose JSON to indexed datasets. */
@Command(name = "preprocess", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Tokenize loose JSON (one object per line) into Megatron indexed datasets.",
                "Writes <output-prefix>_<key>_document.bin/.idx per JSON key (_sentence with --split-sentences).",
                "Same flags and same output bytes as Megatron-LM's tools/preprocess_data.py."})
final class PreprocessCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--input", required = true, paramLabel = "FILE", description = "Loose JSON input: one object per line (gzip-compressed input is read as such).")
    Path input;

    @Option(names = "--output-prefix", required = true, paramLabel = "PREFIX", description = "Prefix of the output files.")
    String outputPrefix;

    @Option(names = "--json-keys", arity = "1..*", paramLabel = "KEY", defaultValue = "text",
            description = "Keys to extract; one dataset each. Default: ${DEFAULT-VALUE}.")
    List<String> jsonKeys;

    @Mixin
    TokenizerOptions tokenizer;

    @Option(names = "--append-eod", description = "Append the end-of-document token to every document.")
    boolean appendEod;

    @Option(names = "--split-sentences", description = "Split texts into sentences (English rules, see README), one sequence each.")
    boolean splitSentences;

    @Option(names = "--keep-newlines", description = "With --split-sentences: keep the newlines after a sentence in it.")
    boolean keepNewlines;

    @Option(names = "--lang", paramLabel = "LANG", defaultValue = "english", description = "Sentence-splitting language; only english.")
    String lang;

    @Option(names = "--workers", paramLabel = "N", description = "Tokenizer threads. Default: the number of processors.")
    Integer workers;

    @Option(names = "--partitions", paramLabel = "P", defaultValue = "1",
            description = "As Megatron: input line i goes to partition i mod P and the partitions are concatenated, "
                    + "which changes the document order (threads do the parallel work here). Default: ${DEFAULT-VALUE}.")
    int partitions;

    @Option(names = "--keep-sequential-samples",
            description = "With --partitions: partitions are consecutive runs of lines, so the input order is kept.")
    boolean keepSequentialSamples;

    @Option(names = "--log-interval", paramLabel = "N", defaultValue = "1000",
            description = "Report progress every N documents (at most twice a second). Default: ${DEFAULT-VALUE}.")
    long logInterval;

    @Override
    public Integer call() {
        if (!"english".equalsIgnoreCase(lang)) {
            throw new IllegalArgumentException("--lang " + lang + ": only english sentence splitting is implemented");
        }
        if (!java.nio.file.Files.exists(input) && input.toString().matches(".*[*?\\[].*")) {
            throw new IllegalArgumentException("--input " + input + ": a glob of several files (Megatron reads one with --partitions) is not "
                    + "supported; concatenate the files into one (cat, or zcat for .gz) or preprocess each and use merge-datasets");
        }
        int threads = workers != null ? workers : Runtime.getRuntime().availableProcessors();
        PreprocessConfig config = new PreprocessConfig(input, outputPrefix, jsonKeys, appendEod, splitSentences, keepNewlines, threads,
                keepSequentialSamples ? Math.min(partitions, 1) : partitions);
        Tokenizer tok = tokenizer.build();
        Preprocessor preprocessor = new Preprocessor(config, tok, splitSentences ? new EnglishSentenceSplitter(keepNewlines) : null);
        PrintWriter err = spec.commandLine().getErr();
        err.printf(Locale.ROOT, "preprocess: %s -> %s (%s, vocab %d, dtype %s, %d worker%s)%n", input,
                config.outputPrefixFor(jsonKeys.getFirst()) + ".{bin,idx}" + (jsonKeys.size() > 1 ? " and " + (jsonKeys.size() - 1) + " more" : ""),
                tok.typeName(), tok.vocabSize(), preprocessor.dtype().numpyName(), threads, threads == 1 ? "" : "s");
        ProgressLine line = new ProgressLine(err, logInterval);
        PreprocessProgress result = preprocessor.run(line::update);
        line.finish(result);
        for (String key : jsonKeys) {
            Path prefix = config.outputPrefixFor(key);
            err.println("wrote " + IndexedDataset.binPath(prefix) + " and " + IndexedDataset.idxPath(prefix));
        }
        return 0;
    }

    /** The progress line on stderr: rewritten in place on a terminal, one line per report otherwise. */
    static final class ProgressLine {
        private final PrintWriter err;
        private final long interval;
        private final boolean terminal;
        private long nextReport;
        private long lastNanos;

        ProgressLine(PrintWriter err, long interval) {
            this.err = err;
            this.interval = Math.max(1, interval);
            this.nextReport = this.interval;
            var console = System.console();
            this.terminal = console != null && console.isTerminal();
        }

        void update(PreprocessProgress p) {
            if (p.documents() < nextReport || p.elapsedNanos() - lastNanos < 500_000_000L) {
                return;
            }
            nextReport = (p.documents() / interval + 1) * interval;
            lastNanos = p.elapsedNanos();
            String text = format(p);
            if (terminal) err.print("\r" + text + "\033[K"); else err.println(text);
            err.flush();
        }

        void finish(PreprocessProgress p) {
            if (terminal) err.print("\r\033[K");
            err.printf(Locale.ROOT, "done: %,d documents, %,d tokens, %.1f MB in %.1f s (%,.0f docs/s, %,.0f tokens/s, %.2f MB/s)%n",
                    p.documents(), p.tokens(), p.bytesRead() / 1e6, p.seconds(), p.documentsPerSecond(), p.tokensPerSecond(),
                    p.megabytesPerSecond());
        }

        static String format(PreprocessProgress p) {
            double eta = p.etaSeconds();
            return String.format(Locale.ROOT, "processed %,d documents (%,.0f docs/s, %,.0f tokens/s, %.2f MB/s), %.1f%% of input, ETA %s",
                    p.documents(), p.documentsPerSecond(), p.tokensPerSecond(), p.megabytesPerSecond(),
                    100.0 * p.bytesRead() / Math.max(1, p.inputBytes()), Double.isNaN(eta) ? "?" : duration(eta));
        }

        static String duration(double seconds) {
            long s = Math.round(seconds);
            return s >= 3600 ? String.format(Locale.ROOT, "%dh%02dm%02ds", s / 3600, s / 60 % 60, s % 60)
                    : s >= 60 ? String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60) : s + "s";
        }
    }
}
