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
        backend.embeddingForward(tokens, wordEmbeddings.compute(), sum);                // [s, b, h]
        VocabParallelIds.zeroRows(backend, sum, maskedRuns);
        tp.allReduceSum(sum);
        if (positionEmbeddings != null) {
            Tensor pos = drop ? out : scratch;
            backend.embeddingForward(positions, positionEmbeddings.compute(), pos);     // [s, b, h]
            backend.add(sum, pos, sum);
        }
        if (drop) {
            backend.dropoutForward(sum, out, dropout, key.seed(), key.offset());
        }
    }

    /**
     * Sequence-parallel forward: this rank's rows {@code [r s/t, (r+1) s/t)} of the embedding land
     * in {@code outShard [s/t, b, h]}. As Megatron-core: with a position table the word embedding
     * is all-reduced, the positions added and the rank's rows taken; with rope the word embedding
     * is reduce-scattered directly. Dropout draws the single-rank mask of these rows.
     * {@code fullA}, {@code fullB} are {@code [s, b, h]} scratch.
     */
    public void forwardSequenceParallel(Tensor tokens, int[] maskedRuns, Tensor positions, Tensor outShard,
                                        Tensor fullA, Tensor fullB, DropoutKey key) {
        boolean drop = key != null && dropout > 0;
        long rows = outShard.dim(0);
        DropoutKey mine = key == null ? null : key.shifted(tp.rank() * outShard.numel());
        backend.embeddingForward(tokens, wordEmbeddings.compute(), fullA);                      // [s, b, h] partial
        VocabParallelIds.zeroRows(backend, fullA, maskedRuns);
        Tensor shard;
        if (positionEmbeddings != null) {
            tp.allReduceSum(fullA);
            backend.embeddingForward(positions, positionEmbeddings.compute(), fullB);
            backend.add(fullA, fullB, fullA);
            shard = fullA.view(tp.rank() * rows, (tp.rank() + 1) * rows);
        } else {
            shard = drop ? fullB.view(0, rows) : outShard;
            tp.reduceScatterFirstDim(fullA, shard);
        }
        if (drop) {
            backend.dropoutForward(shard, outShard, dropout, mine.seed(), mine.offset());
        } else if (shard != outShard) {
            backend.copy(shard, outShard);
        }
    }

    /**
     * Sequence-parallel backward from {@code dOutShard [s/t, b, h]}: the gradient is all-gathered
     * into {@code fullScratch [s, b, h]} (the backward of both the split and the reduce-scatter),
     * then the tables' gradients accumulate as on one rank. {@code shardScratch} is {@code [s/t, b, h]}.
     */
    public void backwardSequenceParallel(Tensor tokens, int[] maskedRuns, Tensor positions, Tensor dOutShard,
                                         Tensor shardScratch, Tensor fullScratch, DropoutKey key) {
        Tensor dShard = dOutShard;
        if (key != null && dropout > 0) {
            DropoutKey mine = key.shifted(tp.rank() * dOutShard.numel());
            backend.dropoutBackward(dOutShard, shardScratch, dropout, mine.seed(), mine.offset());
            dShard = shardScratch;
        }
        tp.allGatherFirstDim(dShard, fullScratch);
        if (positionEmbeddings != null) {
            backend.embeddingBackward(positions, fullScratch, positionEmbeddings.grad());
        }
        VocabParallelIds.zeroRows(backend, fullScratch, maskedRuns);
        backend.embeddingBackward(tokens, fullScratch, wordEmbeddings.grad());
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
