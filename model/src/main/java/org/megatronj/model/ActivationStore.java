package org.megatronj.model;

import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.layers.DropoutKey;
import org.megatronj.model.layers.LayerActivations;
import org.megatronj.model.layers.Workspace;

/**
 * Every activation buffer of one micro-batch shape {@code [s, b]}, planned up front in one arena
 * and reused by every micro-batch of that shape (llm.c's activation block). Nothing is allocated
 * during a forward or backward. Activations, logits included, are in the compute dtype {@code x}
 * (F32, or BF16/F16 with mixed precision: the cross-entropy ops read 16-bit logits and accumulate
 * in F32, as Megatron's {@code logits.float()}); statistics and per-token losses are F32.
 */
final class ActivationStore implements AutoCloseable {
    final int seqLength;
    final int batchSize;
    private final TensorArena arena;

    final Tensor tokens;        // I32 [s, b]
    final Tensor positions;     // I32 [s, b]
    final Tensor keyStarts;     // I32 [b, s]: the first key of each query row, with documents
    final Tensor targets;       // I32 [s * b]
    final Tensor[] hidden;      // L + 1 of x [s, b, h]: hidden[0] the embedding output, hidden[l + 1] layer l's output
    final LayerActivations[] layers;  // per layer, or shared between the layers of recompute groups
    final Workspace workspace;
    final Tensor finalNormOut;  // x [sl, b, h]
    final Tensor finalNormFull; // x [s, b, h]: finalNormOut all-gathered under sequence parallelism, else finalNormOut
    final Tensor finalNormMean; // F32 [s, b] (LayerNorm) or null
    final Tensor finalNormRstd; // F32 [s, b]
    final Tensor logits;        // x [s * b, V]: logits, then their gradient in place
    final Tensor rowMax;        // F32 [s * b]
    final Tensor sumExp;        // F32 [s * b]
    final Tensor targetLogit;   // F32 [s * b]
    final Tensor loss;          // F32 [s * b]
    final Tensor dLoss;         // F32 [s * b]
    final Tensor dResidual;     // x [s, b, h] gradient flowing down the residual stream

    final ActivationRecompute recompute;
    DropoutKey key;             // the dropout key of the micro-batch in flight here (null: no dropout)
    Tensor documents;           // keyStarts when that micro-batch has documents (--reset-attention-mask), else null
    float[] lossMask;           // its loss mask, sequence-first (last stage)
    boolean withMtp;            // whether the MTP depths ran forward on it (training on the last stage with MTP)

    /** Vocab rows of the tokens that other tensor-parallel ranks hold (runs, see VocabParallelIds); none on one rank. */
    int[] maskedVocabRows = org.megatronj.model.layers.VocabParallelIds.NONE_MASKED;

    /**
     * c: what this rank computes (its TP shard); vocabRows: its columns of the logits; sl: the
     * positions of the residual stream this rank holds (s / t under sequence parallelism, else s).
     */
    ActivationStore(Backend backend, TransformerConfig c, int s, int b, ActivationRecompute recompute, int vocabRows, int sl,
                    int numLayers, boolean postProcess, DType x) {
        this.recompute = recompute;
        this.seqLength = s;
        this.batchSize = b;
        this.arena = TensorArena.named("activations[s=" + s + ",b=" + b + "]");
        int h = c.hiddenSize();
        long n = (long) s * b;
        tokens = backend.allocate(arena, DType.I32, s, b);
        positions = backend.allocate(arena, DType.I32, s, b);
        keyStarts = backend.allocate(arena, DType.I32, b, s);
        targets = backend.allocate(arena, DType.I32, n);
        hidden = new Tensor[numLayers + 1];
        for (int i = 0; i < hidden.length; i++) {
            hidden[i] = backend.allocate(arena, x, sl, b, h);
        }
        // Selective recompute: the modules' buffers are the first layer's, shared by all (each backward refills them).
        layers = new LayerActivations[recompute.activationSets(numLayers)];
        for (int l = 0; l < layers.length; l++) {
            layers[l] = LayerActivations.allocate(backend, arena, c, s, b, sl, x, recompute.layerRecompute(),
                    l == 0 ? null : layers[0]);
        }
        workspace = Workspace.allocate(backend, arena, c, s, b, sl, x);
        finalNormOut = backend.allocate(arena, x, sl, b, h);
        finalNormFull = sl == s ? finalNormOut : backend.allocate(arena, x, s, b, h);
        finalNormMean = c.normalization() == Normalization.LAYER_NORM ? backend.allocate(arena, DType.F32, sl, b) : null;
        finalNormRstd = backend.allocate(arena, DType.F32, sl, b);
        // The output layer and loss only on the last pipeline stage.
        logits = postProcess ? backend.allocate(arena, x, n, vocabRows) : null;
        rowMax = postProcess ? backend.allocate(arena, DType.F32, n) : null;
        sumExp = postProcess ? backend.allocate(arena, DType.F32, n) : null;
        targetLogit = postProcess ? backend.allocate(arena, DType.F32, n) : null;
        loss = postProcess ? backend.allocate(arena, DType.F32, n) : null;
        dLoss = postProcess ? backend.allocate(arena, DType.F32, n) : null;
        dResidual = backend.allocate(arena, x, sl, b, h);
    }

    boolean fits(int s, int b, ActivationRecompute withRecompute) {
        return s == seqLength && b == batchSize && recompute.equals(withRecompute);
    }

    /** What layer l keeps for its backward (the shared set when recomputing). */
    LayerActivations layer(int l) {
        return layers[recompute.activationSet(l)];
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
