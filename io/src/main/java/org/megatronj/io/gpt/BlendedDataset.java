package org.megatronj.io.gpt;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;

import org.megatronj.io.npy.NpyArray;
import org.megatronj.io.npy.NpyFile;

/**
 * Megatron's {@code BlendedDataset}: several GPT datasets of one split mixed by weight, through a
 * dataset index (int16) and a dataset-sample index (int64), cached as
 * {@code <md5>-BlendedDataset-<split>-{dataset_index,dataset_sample_index}.npy} when a cache folder
 * is configured (Megatron keeps no default folder for blends).
 */
public final class BlendedDataset implements GptSampleSource, AutoCloseable {
    static final String[] ARRAYS = {"dataset_index.npy", "dataset_sample_index.npy"};

    private final List<? extends GptSampleSource> datasets;
    private final Split split;
    private final CacheDescription description;
    private final IndexCache cache;
    private final NpyArray datasetIndex;
    private final NpyArray datasetSampleIndex;
    private final Arena arena;

    private BlendedDataset(List<? extends GptSampleSource> datasets, Split split, CacheDescription description, IndexCache cache,
                           NpyArray datasetIndex, NpyArray datasetSampleIndex, Arena arena) {
        this.datasets = datasets;
        this.split = split;
        this.description = description;
        this.cache = cache;
        this.datasetIndex = datasetIndex;
        this.datasetSampleIndex = datasetSampleIndex;
        this.arena = arena;
    }

    /**
     * Blends {@code datasets} with {@code weights} (normalized here again, as Megatron does) into
     * {@code size} samples; checks that no dataset is asked for more samples than it has.
     */
    public static BlendedDataset open(List<? extends GptSampleSource> datasets, double[] weights, long size, Split split,
                                      GptDatasetConfig config) throws IOException {
        if (datasets.size() != weights.length) {
            throw new IllegalArgumentException(datasets.size() + " datasets but " + weights.length + " weights");
        }
        for (double w : weights) {
            if (!(w > 0)) {
                throw new IllegalArgumentException("blend weights must be > 0, got " + w);
            }
        }
        if (size > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("blend of " + size + " samples is larger than a Java array can index");
        }
        double[] normalized = Normalize.normalize(weights);
        List<CacheDescription> parts = new ArrayList<>();
        for (GptSampleSource d : datasets) {
            parts.add(d.description());
        }
        List<Double> weightList = new ArrayList<>();
        for (double w : normalized) {
            weightList.add(w);
        }
        CacheDescription description = CacheDescription.blended(parts, split, weightList, size);
        IndexCache cache = config.pathToCache() == null ? null
                : new IndexCache(config.pathToCache(), description, IndexCache.BLENDED_DATASET, split);
        if (cache != null && cache.isComplete(ARRAYS)) {
            Arena arena = Arena.ofShared();
            try {
                NpyArray di = NpyFile.read(cache.file(ARRAYS[0]), arena);
                NpyArray dsi = NpyFile.read(cache.file(ARRAYS[1]), arena);
                if (di.rank() != 1 || dsi.rank() != 1 || di.dim(0) != size || dsi.dim(0) != size) {
                    throw new IOException("cached blend indices " + cache.file(ARRAYS[0]) + " do not hold " + size
                            + " samples; delete them to rebuild");
                }
                return new BlendedDataset(datasets, split, description, cache, di, dsi, arena);
            } catch (IOException | RuntimeException e) {
                arena.close();
                throw e;
            }
        }
        BlendingIndices indices = BlendingIndices.build(normalized, (int) size);
        long[] counts = indices.countsPerDataset(datasets.size());
        for (int d = 0; d < counts.length; d++) {
            if (counts[d] > datasets.get(d).size()) {
                throw new IllegalArgumentException("the " + split.megatronName() + " blend oversamples the contributing datasets: it requests "
                        + counts[d] + " samples from dataset number " + d + " (" + parts.get(d).identifiers().get("dataset_path")
                        + ") in excess of its size " + datasets.get(d).size()
                        + "; raise --mid-level-dataset-surplus (now " + config.midLevelDatasetSurplus() + "), e.g. two- or ten-fold");
            }
        }
        NpyArray di = NpyArray.ofInt16(indices.datasetIndex());
        NpyArray dsi = NpyArray.ofInt64(indices.datasetSampleIndex());
        if (cache != null) {
            NpyFile.write(cache.file(ARRAYS[0]), di);
            NpyFile.write(cache.file(ARRAYS[1]), dsi);
            cache.writeDescription();
        }
        return new BlendedDataset(datasets, split, description, cache, di, dsi, null);
    }

    @Override
    public long size() {
        return datasetIndex.dim(0);
    }

    @Override
    public GptSample sample(long index) {
        checkIndex(index);
        return datasets.get((int) datasetIndex.getLong(index)).sample(datasetSampleIndex.getLong(index));
    }

    @Override
    public String origin(long index) {
        checkIndex(index);
        int d = (int) datasetIndex.getLong(index);
        return "blend dataset " + d + ": " + datasets.get(d).origin(datasetSampleIndex.getLong(index));
    }

    private void checkIndex(long index) {
        if (index < 0 || index >= size()) {
            throw new IndexOutOfBoundsException("sample " + index + " of the " + split.megatronName() + " blend: expected 0 <= index < " + size());
        }
    }

    @Override
    public CacheDescription description() {
        return description;
    }

    /** The cache entry, or null when no {@code --data-cache-path} is set. */
    public IndexCache cache() {
        return cache;
    }

    public List<? extends GptSampleSource> datasets() {
        return datasets;
    }

    public NpyArray datasetIndex() {
        return datasetIndex;
    }

    public NpyArray datasetSampleIndex() {
        return datasetSampleIndex;
    }

    @Override
    public void close() {
        if (arena != null) {
            arena.close();
        }
    }
}
