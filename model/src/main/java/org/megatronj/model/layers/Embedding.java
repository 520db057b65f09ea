package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;
import org.megatronj.model.Parameter;
import org.megatronj.model.parallel.TensorParallelGroup;

/**
 * Megatron's language-model embedding: {@code dropout(word[tokens] + position[positions])}, the
 * position table only with learned absolute positions (rope rotates q and k instead).
 *
 * <p>With tensor parallelism the word table is Megatron's {@code VocabParallelEmbedding}: this
 * rank holds the rows of ids {@code [vocabStart, vocabStart + rows)}, looks up the ids it holds
 * (the caller passes them shifted, see {@link VocabParallelIds}), zeroes the rows of the others
 * and sums the partial embeddings over the TP group.
 *
 * <p>Gradients: the table gradients accumulate; nothing is written to any input.
 */
public final class Embedding {
    private final Backend backend;
    private final Parameter wordEmbeddings;       // [paddedVocab / t, h]
    private final Parameter positionEmbeddings;   // [maxPositions, h] or null (rope)
    private final float dropout;
    private final TensorParallelGroup tp;

    public Embedding(Backend backend, Parameter wordEmbeddings, Parameter positionEmbeddings, float dropout) {
        this(backend, wordEmbeddings, positionEmbeddings, dropout, TensorParallelGroup.single());
    }

    public Embedding(Backend backend, Parameter wordEmbeddings, Parameter positionEmbeddings, float dropout,
                     TensorParallelGroup tp) {
        this.backend = backend;
        this.wordEmbeddings = wordEmbeddings;
        this.positionEmbeddings = positionEmbeddings;
        this.dropout = dropout;
        this.tp = tp;
    }

    public Parameter wordEmbeddings() {
        return wordEmbeddings;
    }

    /**
     * tokens, positions I32 {@code [s, b]} (positions ignored without a position table) ->
     * out {@code [s, b, h]} written; scratch {@code [s, b, h]} is overwritten. {@code key} null = no dropout.
     */
    public void forward(Tensor tokens, Tensor positions, Tensor out, Tensor scratch, DropoutKey key) {
        forward(tokens, VocabParallelIds.NONE_MASKED, positions, out, scratch, key);
    }

    /**
     * As {@link #forward(Tensor, Tensor, Tensor, Tensor, DropoutKey)} with this rank's shifted ids
     * and the rows whose ids another TP rank holds ({@code maskedRuns}, see {@link VocabParallelIds}).
     */
    public void forward(Tensor tokens, int[] maskedRuns, Tensor positions, Tensor out, Tensor scratch, DropoutKey key) {
        boolean drop = key != null && dropout > 0;
        Tensor sum = drop ? scratch : out;
        backend.embeddingForward(tokens, wordEmbeddings.data(), sum);                // [s, b, h]
        VocabParallelIds.zeroRows(backend, sum, maskedRuns);
        tp.allReduceSum(sum);
        if (positionEmbeddings != null) {
            Tensor pos = drop ? out : scratch;
            backend.embeddingForward(positions, positionEmbeddings.data(), pos);     // [s, b, h]
            backend.add(sum, pos, sum);
        }
        if (drop) {
            backend.dropoutForward(sum, out, dropout, key.seed(), key.offset());
        }
    }

    /** dOut {@code [s, b, h]} (read only; scratch is overwritten) -> table gradients accumulate. */
    public void backward(Tensor tokens, Tensor positions, Tensor dOut, Tensor scratch, DropoutKey key) {
        backward(tokens, VocabParallelIds.NONE_MASKED, positions, dOut, scratch, key);
    }

    /** The vocab-parallel backward: rows of ids held by other ranks add nothing to this rank's table. */
    public void backward(Tensor tokens, int[] maskedRuns, Tensor positions, Tensor dOut, Tensor scratch, DropoutKey key) {
        Tensor dSum = dOut;
        if (key != null && dropout > 0) {
            backend.dropoutBackward(dOut, scratch, dropout, key.seed(), key.offset());
            dSum = scratch;
        }
        if (positionEmbeddings != null) {
            backend.embeddingBackward(positions, dSum, positionEmbeddings.grad());
        }
        if (maskedRuns.length > 0) {
            if (dSum != scratch) {
                backend.copy(dSum, scratch);
                dSum = scratch;
            }
            VocabParallelIds.zeroRows(backend, dSum, maskedRuns);   // their shifted id is 0: add zeros there
        }
        backend.embeddingBackward(tokens, dSum, wordEmbeddings.grad());
    }
}
