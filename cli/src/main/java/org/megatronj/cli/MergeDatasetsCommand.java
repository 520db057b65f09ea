package org.megatronj.cli;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.TreeSet;
import java.util.concurrent.Callable;
import java.util.stream.Stream;

import org.megatronj.io.indexed.DatasetFormatException;
import org.megatronj.io.indexed.IndexedDataset;
import org.megatronj.io.indexed.IndexedDatasetBuilder;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Option;

/** {@code megatron merge-datasets}: Megatron's {@code tools/merge_datasets.py}. */
@Command(name = "merge-datasets", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Concatenate the indexed datasets of a folder into one (Megatron's tools/merge_datasets.py).",
                "Every .bin/.idx pair in --input is appended in sorted name order."})
final class MergeDatasetsCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--input", required = true, paramLabel = "DIR", description = "Folder holding the datasets to merge.")
    Path input;

    @Option(names = "--output-prefix", required = true, paramLabel = "PREFIX", description = "Output dataset, without .bin/.idx.")
    Path outputPrefix;

    @Option(names = "--multimodal", description = "The datasets carry a per-sequence mode array.")
    boolean multimodal;

    @Override
    public Integer call() {
        List<Path> prefixes = datasetPrefixes(input);
        Path output = outputPrefix.toAbsolutePath().normalize();
        if (prefixes.stream().anyMatch(p -> p.toAbsolutePath().normalize().equals(output))) {
            // A second run into the same folder would otherwise merge the first run's output into the new one.
            throw new IllegalArgumentException("--output-prefix " + outputPrefix + " is one of the datasets in --input " + input
                    + " (its .bin/.idx exist there), so it would be merged into itself; write the output outside " + input
                    + " or delete the old output first");
        }
        long sequences = 0, tokens = 0;
        IndexedDatasetBuilder builder = null;
        try {
            for (Path prefix : prefixes) {
                try (IndexedDataset dataset = IndexedDataset.open(prefix, multimodal)) {
                    if (builder == null) {
                        builder = new IndexedDatasetBuilder(outputPrefix, dataset.dtype(), multimodal);
                    }
                    builder.addDataset(dataset);
                    sequences += dataset.sequenceCount();
                    tokens += dataset.totalTokens();
                    spec.commandLine().getErr().printf("merged %s: %,d sequences, %,d documents, %,d tokens%n", prefix.getFileName(),
                            dataset.sequenceCount(), dataset.documentCount(), dataset.totalTokens());
                }
            }
            builder.finish();
        } finally {
            if (builder != null) builder.close();
        }
        spec.commandLine().getErr().printf("wrote %s.{bin,idx}: %d datasets, %,d sequences, %,d tokens%n", outputPrefix, prefixes.size(), sequences, tokens);
        return 0;
    }

    /** The prefixes of all .bin/.idx pairs in a folder, sorted by code point like Python's {@code sorted}. */
    static List<Path> datasetPrefixes(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new IllegalArgumentException("--input " + dir + " is not a directory or does not exist");
        }
        TreeSet<String> names = new TreeSet<>(CODE_POINT_ORDER);
        try (Stream<Path> files = Files.list(dir)) {
            for (Path f : (Iterable<Path>) files::iterator) {
                String name = f.getFileName().toString();
                if (!Files.isRegularFile(f) || !(name.endsWith(".bin") || name.endsWith(".idx"))) continue;
                String base = name.substring(0, name.length() - 4);
                String pair = base + (name.endsWith(".bin") ? ".idx" : ".bin");
                if (!Files.isRegularFile(dir.resolve(pair))) {
                    throw new DatasetFormatException(f + " has no partner " + dir.resolve(pair) + ": every dataset needs both .bin and .idx");
                }
                names.add(base);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + dir + ": " + e.getMessage(), e);
        }
        if (names.isEmpty()) {
            throw new IllegalArgumentException("--input " + dir + " holds no .bin/.idx pairs to merge");
        }
        List<Path> prefixes = new ArrayList<>();
        for (String n : names) prefixes.add(dir.resolve(n));
        return prefixes;
    }

    static final Comparator<String> CODE_POINT_ORDER = (a, b) -> {
        int i = 0, j = 0;
        while (i < a.length() && j < b.length()) {
            int ca = a.codePointAt(i), cb = b.codePointAt(j);
            if (ca != cb) return Integer.compare(ca, cb);
            i += Character.charCount(ca);
            j += Character.charCount(cb);
        }
        return Integer.compare(a.length() - i, b.length() - j);
    };
}
