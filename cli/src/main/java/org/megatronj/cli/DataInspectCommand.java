package org.megatronj.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.concurrent.Callable;

import org.megatronj.io.indexed.IndexedDataset;
import org.megatronj.io.tokenizer.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code megatron data inspect PREFIX}: what an indexed dataset holds. */
@Command(name = "inspect", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Show an indexed dataset's dtype, counts and sequence-length histogram.",
                "Counts of sequences, documents and tokens; with a tokenizer, the text of the first sequences."})
final class DataInspectCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Parameters(paramLabel = "PREFIX", description = "Dataset path without .bin/.idx (a path ending in .bin or .idx is accepted).")
    Path prefix;

    @Option(names = "--multimodal", description = "The index ends with a per-sequence mode array.")
    boolean multimodal;

    @Option(names = "--legacy-dtypes", description = "Read dtype code 7 as float64, as legacy Megatron (megatron/data) wrote it.")
    boolean legacyDtypes;

    @Option(names = "--show", paramLabel = "N", defaultValue = "0",
            description = "Print the token ids (and text, with --tokenizer-type) of the first N sequences.")
    int show;

    @Mixin
    TokenizerOptions tokenizer;

    @Override
    public Integer call() throws IOException {
        Path p = stripExtension(prefix);
        try (IndexedDataset ds = legacyDtypes ? IndexedDataset.openLegacy(p, multimodal) : IndexedDataset.open(p, multimodal)) {
            PrintWriter out = spec.commandLine().getOut();
            int[] lengths = ds.sequenceLengths();
            long[] docs = ds.documentIndex();
            out.println("dataset:    " + p);
            out.printf(Locale.ROOT, "files:      %s (%,d bytes), %s (%,d bytes)%n", IndexedDataset.binPath(p).getFileName(),
                    Files.size(IndexedDataset.binPath(p)), IndexedDataset.idxPath(p).getFileName(), Files.size(IndexedDataset.idxPath(p)));
            out.printf(Locale.ROOT, "dtype:      %s (code %d, %d bytes per token)%s%n", ds.dtype().numpyName(), ds.dtype().code(),
                    ds.dtype().byteSize(), ds.isMultimodal() ? ", multimodal" : "");
            out.printf(Locale.ROOT, "sequences:  %,d%n", ds.sequenceCount());
            int emptyDocs = 0;
            for (int k = 0; k + 1 < docs.length; k++) if (docs[k + 1] == docs[k]) emptyDocs++;
            out.printf(Locale.ROOT, "documents:  %,d%s%n", ds.documentCount(), emptyDocs > 0 ? String.format(Locale.ROOT, " (%,d without sequences)", emptyDocs) : "");
            out.printf(Locale.ROOT, "tokens:     %,d%n", ds.totalTokens());
            if (lengths.length > 0) {
                int[] sorted = lengths.clone();
                Arrays.sort(sorted);
                out.printf(Locale.ROOT, "length:     min %,d, median %,.1f, mean %,.1f, p99 %,.1f, max %,d tokens%n", sorted[0],
                        percentile(sorted, 0.5), (double) ds.totalTokens() / lengths.length, percentile(sorted, 0.99), sorted[sorted.length - 1]);
                printHistogram(out, lengths);
            }
            if (show > 0) {
                Tokenizer tok = tokenizer.isSet() ? tokenizer.build() : null;
                for (int i = 0; i < Math.min(show, ds.sequenceCount()); i++) {
                    int[] ids = ds.sequenceTokens(i);
                    out.printf(Locale.ROOT, "%nsequence %d (%d tokens): %s%n", i, ids.length, abbreviate(Arrays.toString(ids), 400));
                    if (tok != null) out.println("  text: " + abbreviate(tok.detokenize(ids), 400).replace("\n", "\\n"));
                }
            }
        }
        return 0;
    }

    /** Power-of-two buckets: [0], [1], [2,3], [4,7], ... with a bar of '#' per bucket. */
    static void printHistogram(PrintWriter out, int[] lengths) {
        long[] buckets = new long[33];
        for (int len : lengths) buckets[len == 0 ? 0 : 32 - Integer.numberOfLeadingZeros(len)]++;
        long max = Arrays.stream(buckets).max().orElse(1);
        out.println("histogram of sequence lengths (tokens):");
        for (int b = 0; b < buckets.length; b++) {
            if (buckets[b] == 0) continue;
            long lo = b == 0 ? 0 : 1L << (b - 1), hi = b == 0 ? 0 : (1L << b) - 1;
            String range = lo == hi ? String.valueOf(lo) : lo + "-" + hi;
            int bar = (int) Math.max(1, Math.round(40.0 * buckets[b] / max));
            out.printf(Locale.ROOT, "  %15s %,12d  %s%n", range, buckets[b], "#".repeat(bar));
        }
    }

    private static Path stripExtension(Path p) {
        String name = p.getFileName().toString();
        return name.endsWith(".bin") || name.endsWith(".idx") ? p.resolveSibling(name.substring(0, name.length() - 4)) : p;
    }

    private static String abbreviate(String s, int max) {
        return s.length() <= max ? s : s.substring(0, max) + "... (" + (s.length() - max) + " more chars)";
    }

    /**
     * NumPy's default {@code percentile} (linear between the two nearest ranks), so that the numbers
     * agree with {@code np.median} and {@code np.percentile} on the same lengths.
     */
    static double percentile(int[] sorted, double q) {
        double position = q * (sorted.length - 1);
        int below = (int) Math.floor(position);
        int above = Math.min(below + 1, sorted.length - 1);
        return sorted[below] + (sorted[above] - sorted[below]) * (position - below);
    }

}
