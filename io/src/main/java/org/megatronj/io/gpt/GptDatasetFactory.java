package org.megatronj.io.gpt;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.megatronj.io.indexed.IndexedDataset;
import org.megatronj.io.indexed.TokenSequences;

/**
 * Builds the train/valid/test datasets from {@code --data-path} and {@code --split}, or from
 * {@code --train-data-path/--valid-data-path/--test-data-path}, following Megatron's
 * {@code BlendedMegatronDatasetBuilder}:
 * <ul>
 *   <li>one unweighted prefix: each split is a {@link GptDataset} over its share of the sequences;</li>
 *   <li>several prefixes (or any weights): each prefix gets a GPT dataset per split asked for
 *       {@code ceil(ceil(size*w) * (1 + surplus))} samples, and a {@link BlendedDataset} of
 *       {@code sum(ceil(size*w))} samples mixes them; without weights the datasets' own lengths
 *       are the weights and the blend has {@code min(size, sum of lengths)} samples;</li>
 *   <li>per-split paths: each split uses its whole datasets (book-end 0..1); a single prefix,
 *       weighted or not, is used directly;</li>
 *   <li>mock data ({@code --mock-data}): like one unweighted prefix, over {@link MockGptLowLevelDataset}
 *       with the split {@link #MOCK_SPLIT}.</li>
 * </ul>
 */
public final class GptDatasetFactory {

    /** Megatron's split of mock data, whatever {@code --split} says ({@code BlendedMegatronDatasetConfig.__post_init__}). */
    public static final String MOCK_SPLIT = "1,1,1";

    /** One blend split by {@code --split}, one blend per split (entries may be null), or mock data. */
    public record Sources(DataBlend blend, DataBlend[] perSplit, MockGptLowLevelDataset mock) {
        public Sources {
            if ((blend != null ? 1 : 0) + (perSplit != null ? 1 : 0) + (mock != null ? 1 : 0) != 1) {
                throw new IllegalArgumentException("give one data source: --data-path, the per-split --train/--valid/--test-data-path,"
                        + " or --mock-data");
            }
            if (perSplit != null) {
                if (perSplit.length != 3) {
                    throw new IllegalArgumentException("per-split data paths need 3 entries (train, valid, test)");
                }
                perSplit = perSplit.clone();
            }
        }

        public static Sources of(DataBlend blend) {
            return new Sources(blend, null, null);
        }

        public static Sources perSplit(DataBlend train, DataBlend valid, DataBlend test) {
            return new Sources(null, new DataBlend[] {train, valid, test}, null);
        }

        /** Megatron's mock GPT data for a tokenizer's (unpadded) vocabulary size and EOD id. */
        public static Sources mock(int vocabSize, int eodId) {
            return new Sources(null, null, new MockGptLowLevelDataset(vocabSize, eodId));
        }
    }

    private final GptDatasetConfig config;
    private final GptDataSplits result = new GptDataSplits();
    private final Map<String, IndexedDataset> opened = new LinkedHashMap<>();

    private GptDatasetFactory(GptDatasetConfig config) {
        this.config = config;
    }

    /**
     * Builds (or loads from the cache) every split that has data.
     *
     * @param sizes samples requested per split (train, valid, test); null entries mean one epoch
     */
    public static GptDataSplits build(Sources sources, Long[] sizes, GptDatasetConfig config) throws IOException {
        if (sizes.length != 3) {
            throw new IllegalArgumentException("sizes must have 3 entries (train, valid, test)");
        }
        if (sources.mock() != null) {
            if (!MOCK_SPLIT.equals(config.split())) {
                throw new IllegalArgumentException("--mock-data uses Megatron's split " + MOCK_SPLIT + ", got " + config.split());
            }
        } else if ((sources.blend() != null) != (config.splitMatrix() != null)) {
            throw new IllegalArgumentException(sources.blend() != null ? "--data-path needs a --split"
                    : "--split cannot be used with per-split data paths (--train-data-path ...)");
        }
        GptDatasetFactory f = new GptDatasetFactory(config);
        try {
            if (sources.mock() != null) {
                f.putAll(f.buildSplits(sources.mock(), null, config.splitMatrix(), sizes));
            } else if (sources.blend() != null) {
                f.buildFromOneBlend(sources.blend(), sizes);
            } else {
                f.buildPerSplit(sources.perSplit(), sizes);
            }
            return f.result;
        } catch (IOException | RuntimeException e) {
            f.result.close();
            throw e;
        }
    }

    private void buildFromOneBlend(DataBlend blend, Long[] sizes) throws IOException {
        SplitMatrix matrix = config.splitMatrix();
        if (blend.isSingleUnweighted()) {
            putAll(buildSplits(blend.prefixes().getFirst(), matrix, sizes));
            return;
        }
        double[] weights = blend.weights() == null ? null : Normalize.normalize(blend.weights());
        // a split without a book-end is never built: its count does not matter
        Long[] counts = sizes.clone();
        for (Split s : Split.values()) {
            if (!matrix.has(s) && counts[s.ordinal()] == null) {
                counts[s.ordinal()] = 0L;
            }
        }
        long[][] target = weights == null ? null : sizesPerDataset(weights, counts, 0.0, blend);
        long[][] buffer = weights == null ? null : sizesPerDataset(weights, counts, config.midLevelDatasetSurplus(), blend);
        List<GptDataset[]> perPrefix = new ArrayList<>();
        for (int k = 0; k < blend.prefixes().size(); k++) {
            perPrefix.add(buildSplits(blend.prefixes().get(k), matrix, buffer == null ? new Long[3] : boxed(buffer[k])));
        }
        for (Split s : Split.values()) {
            if (matrix.has(s)) {
                blend(s, perPrefix, weights, target, sizes[s.ordinal()]);
            }
        }
    }

    private void buildPerSplit(DataBlend[] blends, Long[] sizes) throws IOException {
        for (Split s : Split.values()) {
            DataBlend blend = blends[s.ordinal()];
            if (blend == null) {
                continue;
            }
            SplitMatrix spoof = SplitMatrix.wholeDatasetFor(s);
            Long[] spoofSizes = {0L, 0L, 0L};
            spoofSizes[s.ordinal()] = sizes[s.ordinal()];
            if (blend.prefixes().size() == 1) {
                result.put(s, buildSplits(blend.prefixes().getFirst(), spoof, spoofSizes)[s.ordinal()]);
                continue;
            }
            double[] weights = blend.weights() == null ? null : Normalize.normalize(blend.weights());
            long[][] target = weights == null ? null : sizesPerDataset(weights, spoofSizes, 0.0, blend);
            long[][] buffer = weights == null ? null : sizesPerDataset(weights, spoofSizes, config.midLevelDatasetSurplus(), blend);
            List<GptDataset[]> perPrefix = new ArrayList<>();
            for (int k = 0; k < blend.prefixes().size(); k++) {
                perPrefix.add(buildSplits(blend.prefixes().get(k), spoof, buffer == null ? new Long[3] : boxed(buffer[k])));
            }
            blend(s, perPrefix, weights, target, sizes[s.ordinal()]);
        }
    }

    private void blend(Split s, List<GptDataset[]> perPrefix, double[] weights, long[][] target, Long requested) throws IOException {
        List<GptDataset> members = new ArrayList<>();
        for (GptDataset[] d : perPrefix) {
            members.add(d[s.ordinal()]);
        }
        double[] blendWeights;
        long size;
        if (weights != null) {
            blendWeights = weights;
            size = 0;
            for (long[] t : target) {
                size += t[s.ordinal()];
            }
        } else {
            blendWeights = new double[members.size()];
            long total = 0;
            for (int k = 0; k < members.size(); k++) {
                blendWeights[k] = members.get(k).size();
                total += members.get(k).size();
            }
            if (requested == null) {
                throw new IllegalArgumentException("an unweighted blend of several datasets needs a sample count for the "
                        + s.megatronName() + " split (Megatron's exhaustive blending is not supported)");
            }
            size = Math.min(requested, total);
        }
        BlendedDataset blended = BlendedDataset.open(members, blendWeights, size, s, config);
        result.ownBlended(blended);
        result.put(s, blended);
    }

    private void putAll(GptDataset[] datasets) {
        for (Split s : Split.values()) {
            if (datasets[s.ordinal()] != null) {
                result.put(s, datasets[s.ordinal()]);
            }
        }
    }

    /** Opens (once) the prefix's indexed dataset and builds each split the matrix defines. */
    private GptDataset[] buildSplits(String prefix, SplitMatrix matrix, Long[] sizes) throws IOException {
        IndexedDataset indexed = opened.get(prefix);
        if (indexed == null) {
            indexed = IndexedDataset.open(Path.of(prefix));
            opened.put(prefix, indexed);
            result.ownIndexed(indexed);
        }
        return buildSplits(indexed, prefix, matrix, sizes);
    }

    /** Builds each split the matrix defines over {@code indexed}; {@code prefix} is null for mock data. */
    private GptDataset[] buildSplits(TokenSequences indexed, String prefix, SplitMatrix matrix, Long[] sizes) throws IOException {
        GptDataset[] out = new GptDataset[3];
        for (Split s : Split.values()) {
            int[] range = matrix.range(s, indexed.sequenceCount());
            if (range == null) {
                continue;
            }
            if (range[0] == range[1]) {
                throw new IllegalArgumentException("the " + s.megatronName() + " split of " + (prefix == null ? "mock data" : prefix) + " is empty: --split "
                        + (config.split() == null ? "(per-split path)" : "'" + config.split() + "'") + " gives it sequences ["
                        + range[0] + ", " + range[1] + ") of " + indexed.sequenceCount()
                        + ". Megatron would loop forever here; give the split a larger share, use more data, or set its weight to 0");
            }
            GptDataset d = GptDataset.open(indexed, prefix, range, sizes[s.ordinal()], s, config);
            result.ownGpt(d);
            out[s.ordinal()] = d;
        }
        return out;
    }

    /**
     * Megatron's {@code _get_size_per_split_per_dataset}: {@code int(ceil(ceil(size * w) * (1 + surplus)))}
     * for each dataset (rows) and split (columns).
     */
    static long[][] sizesPerDataset(double[] normalizedWeights, Long[] sizes, double surplus, DataBlend blend) {
        long[][] out = new long[normalizedWeights.length][3];
        for (int k = 0; k < normalizedWeights.length; k++) {
            for (int s = 0; s < 3; s++) {
                if (sizes[s] == null) {
                    throw new IllegalArgumentException("a weighted blend " + blend + " needs a sample count for the "
                            + Split.values()[s].megatronName() + " split (weights share out a requested number of samples)");
                }
                double scaled = Math.ceil(Math.ceil(sizes[s] * normalizedWeights[k]) * (1 + surplus));
                out[k][s] = (long) scaled;
            }
        }
        return out;
    }

    private static Long[] boxed(long[] a) {
        return new Long[] {a[0], a[1], a[2]};
    }
}
