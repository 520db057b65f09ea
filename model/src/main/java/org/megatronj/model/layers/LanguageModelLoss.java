package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;
import org.megatronj.model.LossResult;
import org.megatronj.model.parallel.TensorParallelGroup;

/**
 * Megatron's masked language-model loss over the (padded) vocabulary:
 * {@code loss = sum_i mask_i * CE(logits_i, target_i) / sum_i mask_i}, built from the backend's
 * vocab-parallel cross-entropy pieces: each tensor-parallel rank holds the logits of the columns
 * {@code [vocabStart, vocabStart + V/t)}, and the row maximum, the sum of exponentials and the
 * target logit are reduced over the TP group (Megatron's {@code vocab_parallel_cross_entropy}).
 * Padded vocabulary columns are ordinary columns, as in Megatron.
 *
 * <p>Gradients: the logits' gradient is written in place over the logits.
 */
public final class LanguageModelLoss {
    private final Backend backend;
    private final TensorParallelGroup tp;
    private final long vocabStart;

    public LanguageModelLoss(Backend backend) {
        this(backend, TensorParallelGroup.single(), 0);
    }

    public LanguageModelLoss(Backend backend, TensorParallelGroup tp, long vocabStart) {
        this.backend = backend;
        this.tp = tp;
        this.vocabStart = vocabStart;
    }

    /**
     * logits F32 {@code [n, V]}, targets I32 {@code [n]}; fills rowMax, sumExp, targetLogit and
     * per-token loss (F32 {@code [n]}) and returns the masked sum. {@code mask} is host-side,
     * in the same (sequence-first) order as the rows.
     */
    public LossResult forward(Tensor logits, Tensor targets, float[] mask,
                              Tensor rowMax, Tensor sumExp, Tensor targetLogit, Tensor loss) {
        backend.crossEntropyTargetLogit(logits, targets, vocabStart, targetLogit);
        tp.allReduceSum(targetLogit);
        if (tp.size() == 1) {
            backend.crossEntropyRowMaxSumExp(logits, rowMax, sumExp);
        } else {
            backend.crossEntropyRowMax(logits, rowMax);
            tp.allReduceMax(rowMax);
            backend.crossEntropySumExp(logits, rowMax, sumExp);
            tp.allReduceSum(sumExp);
        }
        backend.crossEntropyLoss(rowMax, sumExp, targetLogit, loss);
        return maskedSum(loss, mask);
    }

    /**
     * {@link #forward} then {@link #backward} (the logits' gradient written over the logits), in one
     * pass over the logits when the vocabulary is held whole. Returns the masked loss sum.
     */
    public LossResult forwardBackward(Tensor logits, Tensor targets, float[] mask, float gradScale,
                                      Tensor rowMax, Tensor sumExp, Tensor targetLogit, Tensor loss, Tensor dLoss) {
        if (tp.size() > 1 || vocabStart != 0) {
            LossResult result = forward(logits, targets, mask, rowMax, sumExp, targetLogit, loss);
            backward(logits, targets, mask, gradScale, rowMax, sumExp, dLoss);
            return result;
        }
        uploadLossGradient(mask, gradScale, dLoss);
        backend.crossEntropyForwardBackward(logits, targets, dLoss, rowMax, sumExp, targetLogit, loss, logits);
        return maskedSum(loss, mask);
    }

    private LossResult maskedSum(Tensor loss, float[] mask) {
        float[] perToken = HostTransfer.downloadFloats(backend, loss);
        double sum = 0;
        long tokens = 0;
        for (int i = 0; i < perToken.length; i++) {
            if (mask[i] != 0f) {
                sum += (double) perToken[i] * mask[i];
                tokens++;
            }
        }
        return new LossResult(sum, tokens);
    }

    /**
     * The gradient of {@code gradScale * loss} with respect to the logits, written over the logits:
     * {@code dLoss_i = gradScale * mask_i / sum(mask)} (all zero when no label counts).
     */
    public void backward(Tensor logits, Tensor targets, float[] mask, float gradScale,
                         Tensor rowMax, Tensor sumExp, Tensor dLoss) {
        uploadLossGradient(mask, gradScale, dLoss);
        backend.crossEntropyBackward(logits, targets, vocabStart, rowMax, sumExp, dLoss, logits);
    }

    /** {@code dLoss_i = gradScale * mask_i / sum(mask)} (all zero when no label counts). */
    private void uploadLossGradient(float[] mask, float gradScale, Tensor dLoss) {
        double maskSum = 0;
        for (float m : mask) {
            maskSum += m;
        }
        float[] d = new float[mask.length];
        if (maskSum > 0) {
            for (int i = 0; i < d.length; i++) {
                d[i] = (float) (gradScale * mask[i] / maskSum);
            }
        }
        HostTransfer.uploadFloats(backend, d, dLoss);
    }
}
