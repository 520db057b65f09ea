package org.megatronj.io.gpt;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.megatronj.io.indexed.TokenSequences;
import org.megatronj.io.npy.NpyArray;
import org.megatronj.io.npy.NpyDtype;
import org.megatronj.io.npy.NpyFile;

/**
 * One split of a GPT dataset over an indexed dataset — Megatron's {@code GPTDataset}: the
 * document, sample and shuffle indices (loaded from Megatron's cache when present, built and cached
 * otherwise) and sample assembly. Samples run across sequence boundaries; consecutive samples share
 * one token when {@code addExtraToken}. Over {@link MockGptLowLevelDataset} it is Megatron's
 * {@code MockGPTDataset}: the same indices, cached only under {@code --data-cache-path}.
 *
 * <p>The indexed dataset is borrowed (closed by its owner); the mapped cache files are released by
 * {@link #close()}.
 */
public final class GptDataset implements GptSampleSource, AutoCloseable {
    static final String[] ARRAYS = {"document_index.npy", "sample_index.npy", "shuffle_index.npy"};

    private final TokenSequences dataset;
    private final String datasetPath;
    private final Split split;
    private final GptDatasetConfig config;
    private final CacheDescription description;
    private final IndexCache cache;
    private final Arena arena;
    private final NpyArray documentIndex;
    private final NpyArray sampleIndex;
    private final NpyArray shuffleIndex;
    private final boolean loadedFromCache;

    private GptDataset(TokenSequences dataset, String datasetPath, Split split, GptDatasetConfig config, CacheDescription description,
                       IndexCache cache, Arena arena, NpyArray[] indices, boolean loadedFromCache) {
        this.dataset = dataset;
        this.datasetPath = datasetPath;
        this.split = split;
        this.config = config;
        this.description = description;
        this.cache = cache;
        this.arena = arena;
        this.documentIndex = indices[0];
        this.sampleIndex = indices[1];
        this.shuffleIndex = indices[2];
        this.loadedFromCache = loadedFromCache;
    }

    /**
     * Opens split {@code split} = sequences {@code [range[0], range[1])} of {@code dataset}: loads its
     * indices from the cache folder (the config's, or Megatron's default next to the data) when
     * complete there, otherwise builds them and writes them there.
     *
     * @param datasetPath the prefix exactly as given in {@code --data-path} (it is part of the hashed description);
     *                    null for mock data, which has no files (Megatron's {@code dataset_path=None})
     * @param numSamples samples requested, or null for one epoch
     */
    public static GptDataset open(TokenSequences dataset, String datasetPath, int[] range, Long numSamples, Split split,
                                  GptDatasetConfig config) throws IOException {
        boolean mock = dataset instanceof MockGptLowLevelDataset;
        String className = mock ? IndexCache.MOCK_GPT_DATASET : IndexCache.GPT_DATASET;
        CacheDescription description = CacheDescription.gpt(className, datasetPath, numSamples, split, config);
        // mock data has no folder of its own: like Megatron, cache its indices only where --data-cache-path says
        Path dir = config.pathToCache() != null ? config.pathToCache() : mock ? null : IndexCache.defaultGptDirectory(datasetPath);
        IndexCache cache = dir == null ? null : new IndexCache(dir, description, className, split);
        if (cache != null && cache.isComplete(ARRAYS)) {
            Arena arena = Arena.ofShared();
            try {
                NpyArray[] indices = loadCached(cache, arena, dataset.sequenceCount());
                return new GptDataset(dataset, datasetPath, split, config, description, cache, arena, indices, true);
            } catch (IOException | RuntimeException e) {
                arena.close();
                throw e;
            }
        }
        GptIndices built = GptIndexBuilder.build(request(dataset.sequenceLengths(), range, numSamples, split, config));
        NpyArray[] indices = {built.documentIndexArray(), built.sampleIndexArray(), built.shuffleIndexArray()};
        if (cache != null) {
            for (int i = 0; i < ARRAYS.length; i++) {
                NpyFile.write(cache.file(ARRAYS[i]), indices[i]);
            }
            cache.writeDescription();
        }
        return new GptDataset(dataset, datasetPath, split, config, description, cache, null, indices, false);
    }

    /** The index-building request for a split, with Megatron's drop-last rule (only validation may keep a partial sample). */
    public static GptIndexBuilder.Request request(int[] sequenceLengths, int[] range, Long numSamples, Split split, GptDatasetConfig config) {
        boolean dropLast = split != Split.VALID || config.dropLastPartialValidationSequence();
        return new GptIndexBuilder.Request(sequenceLengths, range[0], range[1], numSamples, config.sequenceLength(),
                config.randomSeed(), config.addExtraToken(), dropLast);
    }

    private static NpyArray[] loadCached(IndexCache cache, Arena arena, int sequenceCount) throws IOException {
        NpyArray doc = NpyFile.read(cache.file(ARRAYS[0]), arena);
        NpyArray sample = NpyFile.read(cache.file(ARRAYS[1]), arena);
        NpyArray shuffle = NpyFile.read(cache.file(ARRAYS[2]), arena);
        requireInteger(cache, ARRAYS[0], doc);
        requireInteger(cache, ARRAYS[1], sample);
        requireInteger(cache, ARRAYS[2], shuffle);
        if (doc.rank() != 1 || sample.rank() != 2 || sample.dim(1) != 2 || shuffle.rank() != 1
                || shuffle.dim(0) != sample.dim(0) - 1) {
            throw new IOException("cached indices in " + cache.directory() + " (" + cache.description().md5()
                    + ") have inconsistent shapes: document " + Arrays.toString(doc.shape()) + ", sample "
                    + Arrays.toString(sample.shape()) + ", shuffle " + Arrays.toString(shuffle.shape())
                    + "; expected [n], [S+1, 2], [S]. Delete these files to rebuild them");
        }
        for (long i = 0; i < doc.elementCount(); i += Math.max(1, doc.elementCount() / 64)) {
            long s = doc.getLong(i);
            if (s < 0 || s >= sequenceCount) {
                throw new IOException(cache.file(ARRAYS[0]) + ": entry " + i + " = " + s + " is not a sequence of this dataset (0.."
                        + (sequenceCount - 1) + "); the cache belongs to other data. Delete it to rebuild");
            }
        }
        return new NpyArray[] {doc, sample, shuffle};
    }

    private static void requireInteger(IndexCache cache, String affix, NpyArray a) throws IOException {
        if (a.dtype().isFloatingPoint() || a.dtype() == NpyDtype.UINT64) {
            throw new IOException(cache.file(affix) + ": dtype " + a.dtype().descr() + " is not an index type (expected int32/int64/uint32)");
        }
    }

    @Override
    public long size() {
        return shuffleIndex.dim(0);
    }

    @Override
    public CacheDescription description() {
        return description;
    }

    public Split split() {
        return split;
    }

    /** The prefix as given in {@code --data-path}; null for mock data. */
    public String datasetPath() {
        return datasetPath;
    }

    /** How logs and errors name the data: its prefix, or "mock data". */
    private String name() {
        return datasetPath == null ? "mock data" : datasetPath;
    }

    /** The cache entry (folder and file names) of this split; null for mock data without {@code --data-cache-path}. */
    public IndexCache cache() {
        return cache;
    }

    public boolean loadedFromCache() {
        return loadedFromCache;
    }

    public NpyArray documentIndex() {
        return documentIndex;
    }

    public NpyArray sampleIndex() {
        return sampleIndex;
    }

    public NpyArray shuffleIndex() {
        return shuffleIndex;
    }

    @Override
    public String origin(long index) {
        long j = shuffledIndex(index);
        long p0 = sampleIndex.getLong(2 * j);
        long p1 = sampleIndex.getLong(2 * j + 2);
        return name() + " " + split.megatronName() + " sample " + j + " (sequences " + documentIndex.getLong(p0)
                + (p1 > p0 ? " .. " + documentIndex.getLong(p1) + ", " + (p1 - p0 + 1) + " pieces" : "") + ")";
    }

    private long shuffledIndex(long index) {
        if (index < 0 || index >= size()) {
            throw new IndexOutOfBoundsException("sample " + index + " of " + name() + " " + split.megatronName()
                    + ": expected 0 <= index < " + size());
        }
        return shuffleIndex.getLong(index);
    }

    /** The raw {@code L + X} token ids of sample {@code index} (after the shuffle), padded with the pad id. */
    public int[] text(long index) {
        return text(index, null);
    }

    /**
     * As {@link #text(long)}; {@code pieces}, when given, receives the number of tokens the sample takes
     * from each document it spans, in order (Megatron's {@code document_lengths}).
     */
    private int[] text(long index, List<Integer> pieces) {
        long j = shuffledIndex(index);
        int x = config.extraTokens();
        int want = config.sequenceLength() + x;
        int[] text = new int[want];
        long p0 = sampleIndex.getLong(2 * j);
        long o0 = sampleIndex.getLong(2 * j + 1);
        long p1 = sampleIndex.getLong(2 * j + 2);
        long o1 = sampleIndex.getLong(2 * j + 3);
        int filled = 0;
        for (long p = p0; p <= p1; p++) {
            int sequence = (int) documentIndex.getLong(p);
            int offset = (int) (p == p0 ? o0 : 0);
            int length = p < p1 ? dataset.sequenceLength(sequence) - offset : (int) (o1 + x - offset);
            if (length < 0 || filled + length > want) {
                throw new IllegalStateException("sample " + j + " of " + name() + " spans more than " + want
                        + " tokens at document-index position " + p + ": the cached indices do not match this dataset");
            }
            dataset.readTokens(sequence, offset, length, text, filled);
            filled += length;
            if (pieces != null) {
                pieces.add(length);
            }
        }
        Arrays.fill(text, filled, want, config.padId());
        return text;
    }

    @Override
    public GptSample sample(long index) {
        if (!config.interDocumentMasking()) {
            return GptSampleAssembler.assemble(text(index), config);
        }
        List<Integer> pieces = new ArrayList<>();
        int[] text = text(index, pieces);
        return GptSampleAssembler.assemble(text, config, pieces.stream().mapToInt(Integer::intValue).toArray());
    }

    @Override
    public void close() {
        if (arena != null) {
            arena.close();
        }
    }
}
