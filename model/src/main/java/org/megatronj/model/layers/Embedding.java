package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;
import org.megatronj.model.Parameter;

/**
 * Megatron's language-model embedding: {@code dropout(word[tokens] + position[positions])}, the
 * position table only with learned absolute positions (rope rotates q and k instead).
 *
 * <p>Gradients: the table gradients accumulate; nothing is written to any input.
 */
public final class Embedding {
    private final Backend backend;
    private final Parameter wordEmbeddings;       // [paddedVocab, h]
    private final Parameter positionEmbeddings;   // [maxPositions, h] or null (rope)
    private final float dropout;

    public Embedding(Backend backend, Parameter wordEmbeddings, Parameter positionEmbeddings, float dropout) {
        this.backend = backend;
        this.wordEmbeddings = wordEmbeddings;
        this.positionEmbeddings = positionEmbeddings;
        this.dropout = dropout;
    }

    public Parameter wordEmbeddings() {
        return wordEmbeddings;
    }

    /**
     * tokens, positions I32 {@code [s, b]} (positions ignored without a position table) ->
     * out {@code [s, b, h]} written; scratch {@code [s, b, h]} is overwritten. {@code key} null = no dropout.
     */
    public void forward(Tensor tokens, Tensor positions, Tensor out, Tensor scratch, DropoutKey key) {
        boolean drop = key != null && dropout > 0;
        Tensor sum = drop ? scratch : out;
        backend.embeddingForward(tokens, wordEmbeddings.data(), sum);                // [s, b, h]
        if (positionEmbeddings != null) {
            Tensor pos = drop ? out : scratch;
            backend.embeddingForward(positions, positionEmbeddings.data(), pos);     // [s, b, h]
            backend.add(sum, pos, sum);
        }
        if (drop) {
            backend.dropoutForward(sum, out, dropout, key.seed(), key.offset());
        }
    }

    /** dOut {@code [s, b, h]} (consumed: may be overwritten) -> table gradients accumulate. */
    public void backward(Tensor tokens, Tensor positions, Tensor dOut, Tensor scratch, DropoutKey key) {
        Tensor dSum = dOut;
        if (key != null && dropout > 0) {
            backend.dropoutBackward(dOut, scratch, dropout, key.seed(), key.offset());
            dSum = scratch;
        }
        backend.embeddingBackward(tokens, dSum, wordEmbeddings.grad());
        if (positionEmbeddings != null) {
            backend.embeddingBackward(positions, dSum, positionEmbeddings.grad());
        }
    }
}
