package org.megatronj.io.preprocess;

import java.nio.file.Path;
import java.util.List;

/**
 * What {@code megatron preprocess} does, with Megatron's {@code tools/preprocess_data.py} meaning.
 *
 * @param input          loose JSON: one object per line
 * @param outputPrefix   outputs are {@code <prefix>_<key>_document.{bin,idx}} ({@code _sentence} when splitting); a
 *                       string, not a path, because Megatron appends to it as typed: {@code data/} gives
 *                       {@code data/_text_document.bin}, where a {@code Path} would drop the slash
 * @param jsonKeys       the keys whose text is tokenized, one dataset each (default {@code text})
 * @param appendEod      append the tokenizer's EOD id to every document that has tokens
 * @param splitSentences split each text into sentences, one sequence each
 * @param keepNewlines   with sentence splitting: keep the whitespace after a sentence inside it (no effect without)
 * @param workers        tokenizer threads (documents are written in input order whatever the count)
 * @param partitions     Megatron's {@code --partitions} without {@code --keep-sequential-samples}: line {@code i}
 *                       (0-based) goes to partition {@code i mod partitions} and the partitions are concatenated,
 *                       so documents come out in that order; 1 keeps the input order
 */
public record PreprocessConfig(Path input, String outputPrefix, List<String> jsonKeys, boolean appendEod,
                               boolean splitSentences, boolean keepNewlines, int workers, int partitions) {
    public PreprocessConfig {
        jsonKeys = List.copyOf(jsonKeys);
        if (jsonKeys.isEmpty()) {
            throw new IllegalArgumentException("--json-keys needs at least one key");
        }
        if (jsonKeys.stream().distinct().count() != jsonKeys.size()) {
            throw new IllegalArgumentException("--json-keys lists a key twice: " + jsonKeys);
        }
        if (workers < 1) {
            throw new IllegalArgumentException("--workers must be >= 1, got " + workers);
        }
        if (partitions < 1) {
            throw new IllegalArgumentException("--partitions must be >= 1, got " + partitions);
        }
    }

    /** Documents in input order (one partition). */
    public PreprocessConfig(Path input, String outputPrefix, List<String> jsonKeys, boolean appendEod,
                            boolean splitSentences, boolean keepNewlines, int workers) {
        this(input, outputPrefix, jsonKeys, appendEod, splitSentences, keepNewlines, workers, 1);
    }

    /** The dataset prefix written for one JSON key. */
    public Path outputPrefixFor(String key) {
        return Path.of(outputPrefix + "_" + key + "_" + (splitSentences ? "sentence" : "document"));
    }
}
