package org.megatronj.model.layers;

/**
 * Where one dropout site draws its mask from the counter-based RNG: a Philox key ({@code seed})
 * and a counter start ({@code offset}). Each site of a micro-batch gets its own disjoint range
 * of {@link #SITE_STRIDE} counters, so masks never overlap and a recompute or a resumed run
 * reproduces them from the same {@code (seed, rngOffset)}.
 */
public record DropoutKey(long seed, long offset) {
    /** Counters reserved per site: more than any activation has elements (2^36 ≈ 6.9e10). */
    public static final long SITE_STRIDE = 1L << 36;
    /** Counters reserved per layer for its attention probabilities ({@code np b s sk} of them; 2^44 ≈ 1.8e13). */
    public static final long PROBS_STRIDE = 1L << 44;
    /** Mixed into the micro-batch key to give the attention probabilities a Philox key of their own. */
    private static final long PROBS_STREAM = 0x6174746E50726F62L; // "attnProb"

    /**
     * The key of micro-batch {@code rngOffset} of a model seeded with {@code modelSeed}: the two are
     * mixed (SplitMix64) into the Philox key, so neighbouring micro-batches get unrelated masks.
     */
    public static DropoutKey forMicroBatch(long modelSeed, long rngOffset) {
        return new DropoutKey(mix(mix(modelSeed) ^ rngOffset), 0);
    }

    /** Mixed into the micro-batch key of a context-parallel rank, which holds other positions than its peers. */
    private static final long CONTEXT_STREAM = 0x636F6E7465787450L; // "contextP"

    /**
     * The key of context-parallel rank {@code rank}'s part of the micro-batch: a Philox key of its own, so that the
     * ranks holding different chunks of a sequence draw independent masks for them (the chunks' activations have
     * the same shapes and would otherwise share counters). Not the masks of a run without context parallelism.
     */
    public DropoutKey forContextParallelRank(int rank) {
        return new DropoutKey(mix(seed ^ (CONTEXT_STREAM + rank)), offset);
    }

    /** The key of dropout site {@code site} (embedding = 0, then two per layer: attention and MLP branch). */
    public DropoutKey site(int site) {
        return new DropoutKey(seed, offset + site * SITE_STRIDE);
    }

    /**
     * The key of the attention probabilities of layer {@code layer} (global index) of this
     * micro-batch: a second Philox key (this key mixed once more), so the probabilities' far larger
     * ranges of counters, {@link #PROBS_STRIDE} per layer, never meet the hidden-dropout sites.
     */
    public DropoutKey attentionProbabilities(int layer) {
        return new DropoutKey(mix(seed ^ PROBS_STREAM), offset + layer * PROBS_STRIDE);
    }

    /**
     * The key of the elements from {@code elements} on: a sequence-parallel rank holding rows
     * {@code [r s/t, (r+1) s/t)} of an {@code [s, b, h]} activation shifts by {@code r (s/t) b h}
     * and so draws exactly the single-rank mask of its rows.
     */
    public DropoutKey shifted(long elements) {
        return new DropoutKey(seed, offset + elements);
    }

    /** {@code key.site(site)}, or null without dropout (a null key). */
    public static DropoutKey site(DropoutKey key, int site) {
        return key == null ? null : key.site(site);
    }

    /** {@code key.attentionProbabilities(layer)}, or null without dropout (a null key). */
    public static DropoutKey probs(DropoutKey key, int layer) {
        return key == null ? null : key.attentionProbabilities(layer);
    }

    static long mix(long z) {
        z += 0x9E3779B97F4A7C15L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
