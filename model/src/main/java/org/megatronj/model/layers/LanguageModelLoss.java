package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;
import org.megatronj.model.LossResult;

/**
 * Megatron's masked language-model loss over the (padded) vocabulary:
 * {@code loss = sum_i mask_i * CE(logits_i, target_i) / sum_i mask_i}, built from the backend's
 * vocab-parallel cross-entropy pieces with {@code vocabStart = 0} (one tensor-parallel rank).
 * Padded vocabulary columns are ordinary columns, as in Megatron.
 *
 * <p>Gradients: the logits' gradient is written in place over the logits.
 */
public final class LanguageModelLoss {
    private final Backend backend;

    public LanguageModelLoss(Backend backend) {
        this.backend = backend;
    }

    /**
     * logits F32 {@code [n, V]}, targets I32 {@code [n]}; fills rowMax, sumExp, targetLogit and
     * per-token loss (F32 {@code [n]}) and returns the masked sum. {@code mask} is host-side,
     * in the same (sequence-first) order as the rows.
     */
    public LossResult forward(Tensor logits, Tensor targets, float[] mask,
                              Tensor rowMax, Tensor sumExp, Tensor targetLogit, Tensor loss) {
        backend.crossEntropyRowMax(logits, rowMax);
        backend.crossEntropyTargetLogit(logits, targets, 0, targetLogit);
        backend.crossEntropySumExp(logits, rowMax, sumExp);
        backend.crossEntropyLoss(rowMax, sumExp, targetLogit, loss);
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
        backend.crossEntropyBackward(logits, targets, 0, rowMax, sumExp, dLoss, logits);
    }
}
