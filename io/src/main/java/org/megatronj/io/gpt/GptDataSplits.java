package org.megatronj.io.gpt;

import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

import org.megatronj.io.indexed.IndexedDataset;

/**
 * The train, valid and test datasets of a run (each possibly absent), with everything they opened;
 * closing this closes the indexed datasets and releases the mapped index files.
 */
public final class GptDataSplits implements AutoCloseable {
    private final Map<Split, GptSampleSource> splits = new EnumMap<>(Split.class);
    private final List<GptDataset> gptDatasets = new ArrayList<>();
    private final List<BlendedDataset> blendedDatasets = new ArrayList<>();
    private final List<IndexedDataset> indexedDatasets = new ArrayList<>();

    GptDataSplits() {
    }

    void put(Split split, GptSampleSource source) {
        splits.put(split, source);
    }

    void ownGpt(GptDataset d) {
        gptDatasets.add(d);
    }

    void ownBlended(BlendedDataset d) {
        blendedDatasets.add(d);
    }

    void ownIndexed(IndexedDataset d) {
        indexedDatasets.add(d);
    }

    /** The split's top-level dataset, or null when the split is not built. */
    public GptSampleSource get(Split split) {
        return splits.get(split);
    }

    /** Every GPT (mid-level) dataset built or loaded, in build order. */
    public List<GptDataset> gptDatasets() {
        return List.copyOf(gptDatasets);
    }

    /** Every blended (top-level) dataset. */
    public List<BlendedDataset> blendedDatasets() {
        return List.copyOf(blendedDatasets);
    }

    @Override
    public void close() {
        RuntimeException first = null;
        for (AutoCloseable c : closeOrder()) {
            try {
                c.close();
            } catch (Exception e) {
                if (first == null) {
                    first = new IllegalStateException("closing " + c + ": " + e.getMessage(), e);
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }

    private List<AutoCloseable> closeOrder() {
        List<AutoCloseable> all = new ArrayList<>(blendedDatasets);
        all.addAll(gptDatasets);
        all.addAll(indexedDatasets);
        return all;
    }
}
