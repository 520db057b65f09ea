package org.megatronj.cli.serve;

import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.GPTModel;
import org.megatronj.model.Normalization;
import org.megatronj.model.TransformerConfig;
import org.megatronj.model.generate.KvCache;
import org.megatronj.model.layers.HostTransfer;
import org.megatronj.model.layers.LayerActivations;
import org.megatronj.model.layers.TransformerLayer;
import org.megatronj.model.layers.Workspace;

import java.util.List;

/**
 * The KV-cached forward of a {@link GPTModel} for serving. Like the model module's
 * {@code IncrementalDecoder}, but it can return the logits of <em>every</em> new position, which
 * Megatron's server needs for the log-probabilities of prompt tokens, and it can reorder the cache
 * between steps, which beam search needs. Positions {@code [start, start + t)} of b sequences attend
 * to the cached keys of {@code [0, start)} and causally to each other.
 */
final class ServingDecoder implements AutoCloseable {
    private final GPTModel model;
    private final Backend backend;
    private final TransformerConfig config;
    private final KvCache cache;
    private final TensorArena arena = TensorArena.named("serving-decoder");
    private final int maxChunk;
    private final int batch;
    private final boolean allPositions;
    private final Tensor tokens;       // I32 [maxChunk, b]
    private final Tensor positions;    // I32 [maxChunk, b]
    private final Tensor hiddenA;      // [maxChunk, b, h]
    private final Tensor hiddenB;      // [maxChunk, b, h]
    private final LayerActivations activations;
    private final Workspace workspace;
    private final Tensor normOut;      // [maxChunk, b, h]
    private final Tensor normMean;     // [maxChunk, b] or null (RMSNorm)
    private final Tensor normRstd;     // [maxChunk, b]
    private final Tensor logits;       // F32 [maxChunk * b, V]

    /**
     * A KV cache of {@code maxSequence} positions for {@code batch} sequences, fed chunks of up to {@code maxChunk}
     * positions; {@code allPositions} sizes the logits buffer for every position of a chunk, else for the last one.
     */
    ServingDecoder(GPTModel model, int batch, int maxSequence, int maxChunk, boolean allPositions) {
        this.model = model;
        this.backend = model.backend();
        this.config = model.config();
        this.batch = batch;
        this.maxChunk = maxChunk;
        this.allPositions = allPositions;
        this.cache = new KvCache(backend, config, maxSequence, batch);
        int h = config.hiddenSize();
        tokens = backend.allocate(arena, DType.I32, maxChunk, batch);
        positions = backend.allocate(arena, DType.I32, maxChunk, batch);
        hiddenA = backend.allocate(arena, DType.F32, maxChunk, batch, h);
        hiddenB = backend.allocate(arena, DType.F32, maxChunk, batch, h);
        activations = LayerActivations.allocate(backend, arena, config, maxChunk, batch);
        workspace = Workspace.allocateForward(backend, arena, config, maxChunk, batch);
        int logitPositions = allPositions ? maxChunk : 1;
        normOut = backend.allocate(arena, DType.F32, logitPositions, batch, h);
        normMean = config.normalization() == Normalization.LAYER_NORM
                ? backend.allocate(arena, DType.F32, logitPositions, batch) : null;
        normRstd = backend.allocate(arena, DType.F32, logitPositions, batch);
        logits = backend.allocate(arena, DType.F32, (long) logitPositions * batch, config.paddedVocabSize());
    }

    int maxChunk() {
        return maxChunk;
    }

    int maxSequence() {
        return cache.maxSequence();
    }

    /**
     * Runs {@code t} new tokens per sequence at positions {@code [start, start + t)}; {@code newTokens} is
     * sequence-first {@code [t, b]}. Returns sequence-first logits {@code [t, b, V]} of every new position when
     * {@code allPositions}, else only the last position's {@code [b, V]}.
     */
    float[] forward(int[] newTokens, int t, int start, boolean allPositions) {
        if (allPositions && !this.allPositions) {
            throw new IllegalArgumentException("serving decoder: built for last-position logits only");
        }
        if (t < 1 || t > maxChunk || newTokens.length != t * batch) {
            throw new IllegalArgumentException("serving decoder: " + newTokens.length + " tokens for a chunk of " + t
                    + " x " + batch + " (at most " + maxChunk + " positions per call)");
        }
        if (start + t > cache.maxSequence()) {
            throw new IllegalArgumentException("serving decoder: positions [" + start + ", " + (start + t)
                    + ") exceed the KV cache of " + cache.maxSequence());
        }
        int[] pos = new int[t * batch];
        for (int i = 0; i < pos.length; i++) {
            pos[i] = start + i / batch;
        }
        Tensor tok = tokens.view(0, t);
        HostTransfer.uploadInts(backend, newTokens, tok);
        Tensor position = positions.view(0, t);
        HostTransfer.uploadInts(backend, pos, position);
        LayerActivations a = activations.firstPositions(t);
        Workspace ws = workspace.firstPositions(t);
        Tensor x = hiddenA.view(0, t);
        Tensor y = hiddenB.view(0, t);
        model.embedding().forward(tok, position, x, ws.hiddenA(), null);                   // [t, b, h]
        List<TransformerLayer> layers = model.layers();
        for (int l = 0; l < layers.size(); l++) {
            layers.get(l).forward(x, y, a, ws, null, null, cache.layer(l), start);         // [t, b, h]
            Tensor swap = x;
            x = y;
            y = swap;
        }
        int first = allPositions ? 0 : t - 1;
        int rows = t - first;
        Tensor out = normOut.view(0, rows);
        model.finalLayernorm().forward(x.view(first, t), out,
                normMean == null ? null : normMean.view(0, rows), normRstd.view(0, rows));  // [rows, b, h]
        Tensor logitRows = logits.view(0, (long) rows * batch);
        backend.gemm(false, true, 1f, out.reshape((long) rows * batch, config.hiddenSize()),
                model.outputWeight().data(), 0f, logitRows);                                // [rows*b, V]
        return HostTransfer.downloadFloats(backend, logitRows);
    }

    /**
     * Beam search: sequence {@code r} continues from what sequence {@code sources[r]} cached, for the first
     * {@code length} positions of every layer's keys and values.
     */
    void reorder(int[] sources, int length) {
        if (sources.length != batch) {
            throw new IllegalArgumentException("reorder: " + sources.length + " sources for " + batch + " sequences");
        }
        for (int l = 0; l < config.numLayers(); l++) {
            permute(cache.layer(l).keys().view(0, length), sources);
            permute(cache.layer(l).values().view(0, length), sources);
        }
    }

    private void permute(Tensor kv, int[] sources) {                                        // [len, b, g, d]
        float[] old = HostTransfer.downloadFloats(backend, kv);
        float[] permuted = new float[old.length];
        int row = (int) (old.length / (kv.dim(0) * batch));
        for (int p = 0; p < kv.dim(0); p++) {
            int base = p * batch * row;
            for (int r = 0; r < batch; r++) {
                System.arraycopy(old, base + sources[r] * row, permuted, base + r * row, row);
            }
        }
        HostTransfer.uploadFloats(backend, permuted, kv);
    }

    @Override
    public void close() {
        arena.close();
        cache.close();
    }
}
