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
 * every layer, since nothing is kept for a backward. Returns the logits of the last new position.
 */
public final class IncrementalDecoder implements AutoCloseable {
    private final GPTModel model;
    private final Backend backend;
    private final TransformerConfig config;
    private final KvCache cache;
    private final TensorArena arena = TensorArena.named("decoder-buffers");
    private final int maxChunk;
    private final Tensor tokens;       // I32 [maxChunk, b]
    private final Tensor positions;    // I32 [maxChunk, b]
    private final Tensor hiddenA;      // [maxChunk, b, h]
    private final Tensor hiddenB;      // [maxChunk, b, h]
    private final LayerActivations activations;
    private final Workspace workspace;
    private final Tensor normOut;      // [1, b, h]
    private final Tensor normMean;     // [1, b] or null
    private final Tensor normRstd;     // [1, b]
    private final Tensor logits;       // F32 [b, V]

    /** Buffers for chunks of up to {@code maxChunk} tokens of {@code cache.batchSize()} sequences. */
    public IncrementalDecoder(GPTModel model, KvCache cache, int maxChunk) {
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
        int b = cache.batchSize();
        int h = config.hiddenSize();
        tokens = backend.allocate(arena, DType.I32, maxChunk, b);
        positions = backend.allocate(arena, DType.I32, maxChunk, b);
        hiddenA = backend.allocate(arena, DType.F32, maxChunk, b, h);
        hiddenB = backend.allocate(arena, DType.F32, maxChunk, b, h);
        activations = LayerActivations.allocate(backend, arena, config, maxChunk, b);
        workspace = Workspace.allocateForward(backend, arena, config, maxChunk, b);
        normOut = backend.allocate(arena, DType.F32, 1, b, h);
        normMean = config.normalization() == Normalization.LAYER_NORM ? backend.allocate(arena, DType.F32, 1, b) : null;
        normRstd = backend.allocate(arena, DType.F32, 1, b);
        logits = backend.allocate(arena, DType.F32, b, config.paddedVocabSize());
    }

    /**
     * Runs {@code t} new tokens per sequence at positions {@code [start, start + t)}; {@code newTokens}
     * is sequence-first {@code [t, b]}. Returns the last position's logits, {@code [b, V]} flattened.
     */
    public float[] forward(int[] newTokens, int t, int start) {
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
            layers.get(l).forward(x, y, a, ws, null, null, cache.layer(l), start);        // [t, b, h]
            Tensor swap = x;
            x = y;
            y = swap;
        }
        model.finalLayernorm().forward(x.view(t - 1, t), normOut, normMean, normRstd);    // [1, b, h]
        backend.gemm(false, true, 1f, normOut.reshape(b, config.hiddenSize()), model.outputWeight().data(), 0f, logits);
        return HostTransfer.downloadFloats(backend, logits);                              // [b, V]
    }

    @Override
    public void close() {
        arena.close();
    }
}
