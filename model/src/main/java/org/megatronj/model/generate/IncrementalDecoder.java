package org.megatronj.model.generate;

import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.GPTModel;
import org.megatronj.model.Normalization;
import org.megatronj.model.TransformerConfig;
import org.megatronj.model.layers.HostTransfer;
import org.megatronj.model.layers.LayerActivations;
import org.megatronj.model.layers.TransformerLayer;
import org.megatronj.model.layers.Workspace;

import java.util.List;

/**
 * The forward of a {@link GPTModel} over new tokens only, with a {@link KvCache}: positions
 * {@code [start, start + t)} of b sequences attend to the cached keys of {@code [0, start)} and
 * to each other causally. One set of activation buffers (sized for the longest chunk) serves
 * every layer, since nothing is kept for a backward. Returns the logits of the last new position,
 * or, when built with {@code allPositions}, of every new position (the server's prompt
 * log-probabilities need them).
 *
 * <p>A model computing in BF16/F16 ({@link GPTModel#precision()}) decodes as its full-sequence
 * forward computes: 16-bit weights ({@code Parameter#compute()}), activations and KV cache (the
 * cache must be of that dtype), F32 norm statistics and F32 logits. Reading 2 bytes per weight
 * instead of 4 is what makes batch-1 decode faster, since it is bound by the weights' memory
 * traffic.
 */
public final class IncrementalDecoder implements AutoCloseable {
    private final GPTModel model;
    private final Backend backend;
    private final TransformerConfig config;
    private final KvCache cache;
    private final TensorArena arena = TensorArena.named("decoder-buffers");
    private final int maxChunk;
    private final boolean allPositions;
    private final Tensor tokens;       // I32 [maxChunk, b]
    private final Tensor positions;    // I32 [maxChunk, b]
    private final Tensor hiddenA;      // [maxChunk, b, h]
    private final Tensor hiddenB;      // [maxChunk, b, h]
    private final LayerActivations activations;
    private final Workspace workspace;
    private final Tensor normOut;      // [rows, b, h]; rows = maxChunk with allPositions, else 1
    private final Tensor normMean;     // [rows, b] or null (RMSNorm)
    private final Tensor normRstd;     // [rows, b]
    private final Tensor logits;       // F32 [rows * b, V]

    /** Buffers for chunks of up to {@code maxChunk} tokens of {@code cache.batchSize()} sequences; last-position logits. */
    public IncrementalDecoder(GPTModel model, KvCache cache, int maxChunk) {
        this(model, cache, maxChunk, false);
    }

    /** As above; {@code allPositions} sizes the logits buffers for every position of a chunk. */
    public IncrementalDecoder(GPTModel model, KvCache cache, int maxChunk, boolean allPositions) {
        if (!model.chunk().whole()) {
            throw new IllegalArgumentException("generation needs the whole model on one rank; this model is pipeline chunk "
                    + model.chunk());
        }
        if (model.tensorParallelism().size() > 1) {
            throw new IllegalArgumentException("generation needs the whole model on one rank; this model is tensor-parallel "
                    + model.tensorParallelism().group().describe());
        }
        this.model = model;
        this.backend = model.backend();
        this.config = model.config();
        this.cache = cache;
        this.maxChunk = maxChunk;
        this.allPositions = allPositions;
        int b = cache.batchSize();
        int h = config.hiddenSize();
        DType x = model.precision().computeDtype();
        if (cache.dtype() != x) {
            throw new IllegalArgumentException("decoder: the KV cache holds " + cache.dtype() + " but the model computes in "
                    + x + " (build the cache with model.precision().computeDtype())");
        }
        tokens = backend.allocate(arena, DType.I32, maxChunk, b);
        positions = backend.allocate(arena, DType.I32, maxChunk, b);
        hiddenA = backend.allocate(arena, x, maxChunk, b, h);
        hiddenB = backend.allocate(arena, x, maxChunk, b, h);
        activations = LayerActivations.allocate(backend, arena, config, maxChunk, b, maxChunk, x);
        workspace = Workspace.allocateForward(backend, arena, config, maxChunk, b, x);
        int rows = allPositions ? maxChunk : 1;
        normOut = backend.allocate(arena, x, rows, b, h);
        normMean = config.normalization() == Normalization.LAYER_NORM ? backend.allocate(arena, DType.F32, rows, b) : null;
        normRstd = backend.allocate(arena, DType.F32, rows, b);
        logits = backend.allocate(arena, DType.F32, (long) rows * b, config.paddedVocabSize());
    }

    /** The most positions one {@link #forward} call takes. */
    public int maxChunk() {
        return maxChunk;
    }

    /**
     * Runs {@code t} new tokens per sequence at positions {@code [start, start + t)}; {@code newTokens}
     * is sequence-first {@code [t, b]}. Returns the last position's logits, {@code [b, V]} flattened.
     */
    public float[] forward(int[] newTokens, int t, int start) {
        return forward(newTokens, t, start, false);
    }

    /**
     * As {@link #forward(int[], int, int)}; with {@code allPositions} (the decoder must be built for it)
     * returns the sequence-first logits of every new position, {@code [t, b, V]} flattened.
     */
    public float[] forward(int[] newTokens, int t, int start, boolean allPositions) {
        if (allPositions && !this.allPositions) {
            throw new IllegalArgumentException("decoder: built for last-position logits only");
        }
        int b = cache.batchSize();
        if (t < 1 || t > maxChunk || newTokens.length != t * b) {
            throw new IllegalArgumentException("decoder: " + newTokens.length + " tokens for a chunk of " + t + " x " + b
                    + " (at most " + maxChunk + " positions per call)");
        }
        if (start + t > cache.maxSequence()) {
            throw new IllegalArgumentException("decoder: positions [" + start + ", " + (start + t) + ") exceed the KV cache of "
                    + cache.maxSequence());
        }
        int[] pos = new int[t * b];
        for (int i = 0; i < pos.length; i++) {
            pos[i] = start + i / b;
        }
        Tensor tok = tokens.view(0, t);
        Tensor position = positions.view(0, t);
        HostTransfer.uploadInts(backend, newTokens, tok);
        HostTransfer.uploadInts(backend, pos, position);
        LayerActivations a = activations.firstPositions(t);
        Workspace ws = workspace.firstPositions(t);
        Tensor x = hiddenA.view(0, t);
        Tensor y = hiddenB.view(0, t);
        model.embedding().forward(tok, position, x, ws.hiddenA(), null);                  // [t, b, h]
        List<TransformerLayer> layers = model.layers();
        for (int l = 0; l < layers.size(); l++) {
            layers.get(l).forward(x, y, a, ws, null, null, null, null, cache.layer(l), start);  // [t, b, h]
            Tensor swap = x;
            x = y;
            y = swap;
        }
        int first = allPositions ? 0 : t - 1;
        int rows = t - first;
        Tensor out = normOut.view(0, rows);
        model.finalLayernorm().forward(x.view(first, t), out,
                normMean == null ? null : normMean.view(0, rows), normRstd.view(0, rows)); // [rows, b, h]
        Tensor logitRows = logits.view(0, (long) rows * b);
        backend.gemm(false, true, 1f, out.reshape((long) rows * b, config.hiddenSize()),
                model.outputWeight().compute(), 0f, logitRows);                            // [rows*b, V]
        return HostTransfer.downloadFloats(backend, logitRows);
    }

    @Override
    public void close() {
        arena.close();
    }
}
