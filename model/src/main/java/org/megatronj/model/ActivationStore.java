package org.megatronj.model;

import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.layers.LayerActivations;
import org.megatronj.model.layers.Workspace;

/**
 * Every activation buffer of one micro-batch shape {@code [s, b]}, planned up front in one arena
 * and reused by every micro-batch of that shape (llm.c's activation block). Nothing is allocated
 * during a forward or backward.
 */
final class ActivationStore implements AutoCloseable {
    final int seqLength;
    final int batchSize;
    private final TensorArena arena;

    final Tensor tokens;        // I32 [s, b]
    final Tensor positions;     // I32 [s, b]
    final Tensor targets;       // I32 [s * b]
    final Tensor[] hidden;      // L + 1 of [s, b, h]: hidden[0] the embedding output, hidden[l + 1] layer l's output
    final LayerActivations[] layers;  // one per layer, or a single shared set with full recompute
    final Workspace workspace;
    final Tensor finalNormOut;  // [s, b, h]
    final Tensor finalNormMean; // F32 [s, b] (LayerNorm) or null
    final Tensor finalNormRstd; // F32 [s, b]
    final Tensor logits;        // F32 [s * b, V]: logits, then their gradient in place
    final Tensor rowMax;        // F32 [s * b]
    final Tensor sumExp;        // F32 [s * b]
    final Tensor targetLogit;   // F32 [s * b]
    final Tensor loss;          // F32 [s * b]
    final Tensor dLoss;         // F32 [s * b]
    final Tensor dResidual;     // [s, b, h] gradient flowing down the residual stream

    final boolean recompute;

    /** Vocab rows of the tokens that other tensor-parallel ranks hold (runs, see VocabParallelIds); none on one rank. */
    int[] maskedVocabRows = org.megatronj.model.layers.VocabParallelIds.NONE_MASKED;

    /** c: what this rank computes (its TP shard); vocabRows: its columns of the logits. */
    ActivationStore(Backend backend, TransformerConfig c, int s, int b, boolean recompute, int vocabRows) {
        this.recompute = recompute;
        this.seqLength = s;
        this.batchSize = b;
        this.arena = TensorArena.named("activations[s=" + s + ",b=" + b + "]");
        int h = c.hiddenSize();
        long n = (long) s * b;
        tokens = backend.allocate(arena, DType.I32, s, b);
        positions = backend.allocate(arena, DType.I32, s, b);
        targets = backend.allocate(arena, DType.I32, n);
        hidden = new Tensor[c.numLayers() + 1];
        for (int i = 0; i < hidden.length; i++) {
            hidden[i] = backend.allocate(arena, DType.F32, s, b, h);
        }
        layers = new LayerActivations[recompute ? 1 : c.numLayers()];
        for (int l = 0; l < layers.length; l++) {
            layers[l] = LayerActivations.allocate(backend, arena, c, s, b);
        }
        workspace = Workspace.allocate(backend, arena, c, s, b);
        finalNormOut = backend.allocate(arena, DType.F32, s, b, h);
        finalNormMean = c.normalization() == Normalization.LAYER_NORM ? backend.allocate(arena, DType.F32, s, b) : null;
        finalNormRstd = backend.allocate(arena, DType.F32, s, b);
        logits = backend.allocate(arena, DType.F32, n, vocabRows);
        rowMax = backend.allocate(arena, DType.F32, n);
        sumExp = backend.allocate(arena, DType.F32, n);
        targetLogit = backend.allocate(arena, DType.F32, n);
        loss = backend.allocate(arena, DType.F32, n);
        dLoss = backend.allocate(arena, DType.F32, n);
        dResidual = backend.allocate(arena, DType.F32, s, b, h);
    }

    boolean fits(int s, int b, boolean withRecompute) {
        return s == seqLength && b == batchSize && recompute == withRecompute;
    }

    /** What layer l keeps for its backward (the shared set when recomputing). */
    LayerActivations layer(int l) {
        return layers[recompute ? 0 : l];
    }

    /** The activation budget in bytes (the number a run prints). */
    long bytes() {
        return arena.bytesAllocated();
    }

    @Override
    public void close() {
        arena.close();
    }
}
