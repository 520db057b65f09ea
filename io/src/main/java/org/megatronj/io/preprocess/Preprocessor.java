package org.megatronj.io.preprocess;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Consumer;

import org.megatronj.io.indexed.IndexedDataset;
import org.megatronj.io.indexed.IndexedDatasetBuilder;
import org.megatronj.io.indexed.IndexedDtype;
import org.megatronj.io.tokenizer.Tokenizer;

/**
 * Megatron's {@code tools/preprocess_data.py}: loose JSON in, one indexed dataset per JSON key out.
 * The main thread reads batches of lines and writes results; {@code workers} threads parse and
 * tokenize. Results are written strictly in input order, and at most {@code 2 x workers + 1}
 * batches are in flight, so memory is bounded whatever the input size. Outputs appear under their
 * final names only when everything succeeded. With {@code --partitions P}, documents go to P
 * partition datasets by line number and these are then concatenated, which reproduces the document
 * order of Megatron's partitioned run.
 */
public final class Preprocessor {
    private static final int DEFAULT_BATCH_BYTES = 1 << 20;

    private final PreprocessConfig config;
    private final Tokenizer tokenizer;
    private final DocumentEncoder encoder;
    private final int batchBytes;

    /**
     * @param splitter required with {@code --split-sentences}, else ignored
     */
    public Preprocessor(PreprocessConfig config, Tokenizer tokenizer, SentenceSplitter splitter) {
        this(config, tokenizer, splitter, DEFAULT_BATCH_BYTES);
    }

    /** With batches of about {@code batchBytes} input bytes (tests use tiny batches to exercise ordering). */
    Preprocessor(PreprocessConfig config, Tokenizer tokenizer, SentenceSplitter splitter, int batchBytes) {
        this.config = config;
        this.batchBytes = batchBytes;
        this.tokenizer = tokenizer;
        if (config.appendEod()) {
            try {
                tokenizer.eod();
            } catch (UnsupportedOperationException e) {
                throw new IllegalArgumentException("--append-eod: " + e.getMessage(), e);
            }
        }
        if (config.splitSentences() && splitter == null) {
            throw new IllegalArgumentException("--split-sentences needs a sentence splitter");
        }
        this.encoder = new DocumentEncoder(config, tokenizer, config.splitSentences() ? splitter : null);
    }

    /** The dtype of the outputs: Megatron's choice for the tokenizer's vocabulary size. */
    public IndexedDtype dtype() {
        return IndexedDtype.forVocabSize(tokenizer.vocabSize());
    }

    /** Runs to the end; {@code progress} is called on this thread after every batch and once at the end. */
    public PreprocessProgress run(Consumer<PreprocessProgress> progress) {
        Path input = config.input();
        if (Files.isDirectory(input)) {
            throw new PreprocessException("--input " + input + " is a folder; expected a loose JSON file (one object per line)");
        }
        if (!Files.isRegularFile(input)) {
            throw new PreprocessException("--input " + input + ": no such file");
        }
        long inputBytes;
        try {
            inputBytes = Files.size(input);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the size of " + input + ": " + e.getMessage(), e);
        }
        long start = System.nanoTime();
        List<IndexedDatasetBuilder> builders = new ArrayList<>();
        List<IndexedDatasetBuilder> partitionBuilders = new ArrayList<>();  // [key][partition], only with partitions > 1
        int partitions = config.partitions();
        ExecutorService pool = config.workers() > 1 ? Executors.newFixedThreadPool(config.workers(), r -> {
            Thread t = new Thread(r, "preprocess-worker");
            t.setDaemon(true);
            return t;
        }) : null;
        try (LineBatchReader reader = new LineBatchReader(input, batchBytes)) {
            for (String key : config.jsonKeys()) {
                builders.add(new IndexedDatasetBuilder(config.outputPrefixFor(key), dtype()));
                for (int p = 0; partitions > 1 && p < partitions; p++) {
                    partitionBuilders.add(new IndexedDatasetBuilder(partitionPrefix(key, p), dtype()));
                    // Finished partitions look like datasets (a later merge-datasets of the folder would take
                    // them): gone even if the run is stopped while they are merged.
                    IndexedDataset.binPath(partitionPrefix(key, p)).toFile().deleteOnExit();
                    IndexedDataset.idxPath(partitionPrefix(key, p)).toFile().deleteOnExit();
                }
            }
            ArrayDeque<Future<EncodedBatch>> inFlight = new ArrayDeque<>();
            Totals totals = new Totals(partitions > 1 ? partitionBuilders : builders, partitions, inputBytes, start, progress);
            LineBatch batch;
            while ((batch = reader.next()) != null) {
                if (pool == null) {
                    totals.write(encoder.encode(batch));
                } else {
                    LineBatch b = batch;
                    inFlight.add(pool.submit(() -> encoder.encode(b)));
                    if (inFlight.size() > 2 * config.workers()) totals.write(await(inFlight.poll()));
                }
            }
            while (!inFlight.isEmpty()) {
                totals.write(await(inFlight.poll()));
            }
            for (IndexedDatasetBuilder b : partitionBuilders) {
                b.finish();
            }
            for (int k = 0; partitions > 1 && k < builders.size(); k++) {
                for (int p = 0; p < partitions; p++) {
                    try (IndexedDataset part = IndexedDataset.open(partitionPrefix(config.jsonKeys().get(k), p))) {
                        builders.get(k).addDataset(part);
                    }
                }
            }
            for (IndexedDatasetBuilder b : builders) {
                b.finish();
            }
            PreprocessProgress result = totals.snapshot();
            progress.accept(result);
            return result;
        } finally {
            if (pool != null) pool.shutdownNow();
            for (IndexedDatasetBuilder b : builders) {
                b.close();  // deletes the temporary files unless finished
            }
            for (IndexedDatasetBuilder b : partitionBuilders) {
                b.close();
            }
            for (int p = 0; partitions > 1 && p < partitions; p++) {
                for (String key : config.jsonKeys()) {
                    deleteQuietly(IndexedDataset.binPath(partitionPrefix(key, p)));
                    deleteQuietly(IndexedDataset.idxPath(partitionPrefix(key, p)));
                }
            }
        }
    }

    /** A partition's dataset, next to the output and named after it, deleted once merged. */
    private Path partitionPrefix(String key, int partition) {
        Path out = config.outputPrefixFor(key);
        return out.resolveSibling(out.getFileName() + ".partition" + partition);
    }

    private static void deleteQuietly(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException ignored) {
            // a leftover partition file never shadows an output's final name
        }
    }

    private static EncodedBatch await(Future<EncodedBatch> f) {
        try {
            return f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new PreprocessException("interrupted", e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) throw r;
            throw new PreprocessException(e.getCause().toString(), e.getCause());
        }
    }

    /** Writes finished batches, in order, and reports the running totals. */
    private static final class Totals {
        private final List<IndexedDatasetBuilder> builders;  // [key][partition]
        private final int partitions;
        private final long inputBytes;
        private final long start;
        private final Consumer<PreprocessProgress> progress;
        private long documents, tokens, bytesRead;

        Totals(List<IndexedDatasetBuilder> builders, int partitions, long inputBytes, long start, Consumer<PreprocessProgress> progress) {
            this.builders = builders;
            this.partitions = partitions;
            this.inputBytes = inputBytes;
            this.start = start;
            this.progress = progress;
        }

        void write(EncodedBatch batch) {
            for (int k = 0; k < builders.size() / partitions; k++) {
                int[] ids = batch.tokens[k].array();
                int tokenPos = 0, seq = 0;
                for (int d = 0; d < batch.documents; d++) {
                    // Megatron deals lines out round-robin: 0-based line i goes to partition i mod P
                    long line = batch.firstLine + batch.documentLineOffsets.get(d);
                    IndexedDatasetBuilder builder = builders.get(k * partitions + (int) ((line - 1) % partitions));
                    int count = batch.sequencesPerDocument[k].get(d);
                    for (int s = 0; s < count; s++, seq++) {
                        int length = batch.sequenceLengths[k].get(seq);
                        builder.addSequence(ids, tokenPos, length);
                        tokenPos += length;
                    }
                    builder.endDocument();
                }
            }
            documents += batch.documents;
            tokens += batch.tokenCount;
            bytesRead = batch.endOffset;
            progress.accept(snapshot());
        }

        PreprocessProgress snapshot() {
            return new PreprocessProgress(documents, tokens, bytesRead, inputBytes, System.nanoTime() - start);
        }
    }
}
