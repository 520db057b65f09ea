package org.megatronj.memory.cuda;

import static org.megatronj.memory.TensorChecks.*;
import static org.megatronj.memory.cuda.DeviceChecks.*;

import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;

/** Cross-entropy pieces, sampling helpers and AdamW of {@link CudaBackend} ({@code cross_entropy.cu}, {@code optimizer.cu}). */
final class CudaLossOps {
    private final CudaBackend backend;

    CudaLossOps(CudaBackend backend) {
        this.backend = backend;
    }

    void crossEntropyRowMax(Tensor logits, Tensor rowMax) {
        String op = "crossEntropyRowMax";
        int v = logitRows(op, logits);
        long n = logits.numel() / Math.max(v, 1);
        stat(op, "rowMax", rowMax, n);
        backend.enter();
        backend.launch("megatron_ce_row_max", n, 1, CudaBackend.THREADS, 0, logits.address(), code(op, logits),
                rowMax.address(), v);
    }

    void crossEntropyTargetLogit(Tensor logits, Tensor targets, long vocabStart, Tensor targetLogit) {
        String op = "crossEntropyTargetLogit";
        int v = logitRows(op, logits);
        long n = logits.numel() / Math.max(v, 1);
        dtype(op, "targets", targets, DType.I32);
        numel(op, "targets", targets, n, "one per row of logits");
        stat(op, "targetLogit", targetLogit, n);
        backend.enter();
        backend.launch("megatron_ce_target_logit", backend.grid(n), 1, CudaBackend.THREADS, 0, logits.address(),
                code(op, logits), targets.address(),
                vocabStart, targetLogit.address(), n, v);
    }

    void crossEntropySumExp(Tensor logits, Tensor rowMax, Tensor sumExp) {
        rowReductions("crossEntropySumExp", "megatron_ce_sum_exp", logits, rowMax, sumExp);
    }

    /** Both row reductions in one read of the logits (an online softmax); sumExp agrees with the two pieces to fp32 rounding. */
    void crossEntropyRowMaxSumExp(Tensor logits, Tensor rowMax, Tensor sumExp) {
        rowReductions("crossEntropyRowMaxSumExp", "megatron_ce_row_max_sum_exp", logits, rowMax, sumExp);
    }

    /** A kernel taking (logits, dtype, rowMax, sumExp, v), one block per row: the sum-exp pass, or max and sum-exp in one. */
    private void rowReductions(String op, String kernel, Tensor logits, Tensor rowMax, Tensor sumExp) {
        int v = logitRows(op, logits);
        long n = logits.numel() / Math.max(v, 1);
        stat(op, "rowMax", rowMax, n);
        stat(op, "sumExp", sumExp, n);
        backend.enter();
        backend.launch(kernel, n, 1, CudaBackend.THREADS, 0, logits.address(), code(op, logits), rowMax.address(),
                sumExp.address(), v);
    }

    void crossEntropyLoss(Tensor rowMax, Tensor sumExp, Tensor targetLogit, Tensor loss) {
        String op = "crossEntropyLoss";
        long n = rowMax.numel();
        stat(op, "rowMax", rowMax, n);
        stat(op, "sumExp", sumExp, n);
        stat(op, "targetLogit", targetLogit, n);
        stat(op, "loss", loss, n);
        backend.enter();
        backend.launch("megatron_ce_loss", backend.grid(n), 1, CudaBackend.THREADS, 0, rowMax.address(),
                sumExp.address(), targetLogit.address(),
                loss.address(), n);
    }

    void crossEntropyBackward(Tensor logits, Tensor targets, long vocabStart, Tensor rowMax, Tensor sumExp,
                                     Tensor dLoss, Tensor dLogits) {
        String op = "crossEntropyBackward";
        int v = logitRows(op, logits);
        long n = logits.numel() / Math.max(v, 1);
        dtype(op, "targets", targets, DType.I32);
        numel(op, "targets", targets, n, "one per row of logits");
        stat(op, "rowMax", rowMax, n);
        stat(op, "sumExp", sumExp, n);
        stat(op, "dLoss", dLoss, n);
        floating(op, "dLogits", dLogits);
        sameShape(op, "logits", logits, "dLogits", dLogits);
        backend.enter();
        backend.launch("megatron_ce_backward", n, 1, CudaBackend.THREADS, 0, logits.address(), code(op, logits),
                targets.address(), vocabStart,
                rowMax.address(), sumExp.address(), dLoss.address(), dLogits.address(), code(op, dLogits), v);
    }

    private static int logitRows(String op, Tensor logits) {
        floating(op, "logits", logits);
        return cols(op, "logits", logits);
    }

    private static void stat(String op, String name, Tensor t, long n) {
        dtype(op, name, t, DType.F32);
        numel(op, name, t, n, "one per row");
    }

    void adamW(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq, float lr, float beta1, float beta2,
                      float eps, float weightDecay, long step) {
        String op = "adamW";
        for (Tensor t : new Tensor[] {param, grad, expAvg, expAvgSq}) {
            dtype(op, "state", t, DType.F32);
        }
        sameNumel(op, "param", param, "grad", grad);
        sameNumel(op, "param", param, "expAvg", expAvg);
        sameNumel(op, "param", param, "expAvgSq", expAvgSq);
        if (step < 1) {
            throw fail(op, "step = " + step + "; steps count from 1");
        }
        float bc1 = (float) (1.0 - Math.pow(beta1, step));
        float bc2 = (float) (1.0 - Math.pow(beta2, step));
        backend.enter();
        backend.launch("megatron_adamw", backend.grid(param.numel()), 1, CudaBackend.THREADS, 0, param.address(),
                grad.address(), expAvg.address(),
                expAvgSq.address(), param.numel(), lr, beta1, beta2, eps, weightDecay, bc1, bc2);
    }

    void argmax(Tensor logits, Tensor out) {
        String op = "argmax";
        int v = logitRows(op, logits);
        long n = logits.numel() / Math.max(v, 1);
        dtype(op, "out", out, DType.I32);
        numel(op, "out", out, n, "one per row of logits");
        backend.enter();
        backend.launch("megatron_argmax", n, 1, CudaBackend.THREADS, 0, logits.address(), code(op, logits),
                out.address(), v);
    }

    void logSoftmax(Tensor logits, float temperature, Tensor out) {
        String op = "logSoftmax";
        int v = logitRows(op, logits);
        dtype(op, "out", out, DType.F32);
        sameShape(op, "logits", logits, "out", out);
        if (!(temperature > 0.0f)) {
            throw fail(op, "temperature = " + temperature + "; expected > 0");
        }
        backend.enter();
        backend.launch("megatron_log_softmax", logits.numel() / Math.max(v, 1), 1, CudaBackend.THREADS, 0,
                logits.address(), code(op, logits),
                temperature, out.address(), v);
    }
}
