package org.megatronj.memory.cpu;

import org.megatronj.memory.TensorChecks;
import org.megatronj.memory.Backend;
import org.megatronj.memory.MemoryAccount;
import org.megatronj.memory.MemoryStats;
import org.megatronj.memory.DType;
import org.megatronj.memory.Device;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

import java.util.List;

import static org.megatronj.memory.cpu.Checks.checkEmbedding;
import static org.megatronj.memory.cpu.Checks.checkLogits;
import static org.megatronj.memory.cpu.Checks.checkLse;
import static org.megatronj.memory.cpu.Checks.checkNorm;
import static org.megatronj.memory.cpu.Checks.checkParamGrad;
import static org.megatronj.memory.cpu.Checks.checkPerRow;
import static org.megatronj.memory.cpu.Checks.checkStats;
import static org.megatronj.memory.cpu.Checks.checkSwiglu;
import static org.megatronj.memory.cpu.Checks.checkTargets;
import static org.megatronj.memory.cpu.Checks.checkVector;
import static org.megatronj.memory.cpu.Checks.cols;
import static org.megatronj.memory.cpu.Checks.dtype;
import static org.megatronj.memory.TensorChecks.fail;
import static org.megatronj.memory.cpu.Checks.floating;
import static org.megatronj.memory.cpu.Checks.host;
import static org.megatronj.memory.cpu.Checks.keyLengths;
import static org.megatronj.memory.cpu.Checks.keyStarts;
import static org.megatronj.memory.TensorChecks.numel;
import static org.megatronj.memory.cpu.Checks.rows;
import static org.megatronj.memory.TensorChecks.sameNumel;
import static org.megatronj.memory.TensorChecks.sameShape;
import static org.megatronj.memory.cpu.Checks.toInt;

/**
 * The CPU backend: every op of {@link Backend} on host memory, with Java Vector API kernels
 * (one family per class) spread over {@link CpuThreads}. This class checks arguments and
 * dispatches; the kernels assume valid input.
 *
 * <p>The vector width comes from {@link VectorWidth} ({@code -Dmegatron.vector.bits}, 0 for
 * the scalar path); it is a JVM-wide constant because the JIT compiles Vector API calls to
 * SIMD instructions only for a constant species. Each backend can still be told to use the
 * scalar kernels, so tests run both paths in one JVM.
 *
 * <p>Kernels keep no state between calls, so one backend may serve several threads at once
 * (tensor-parallel ranks run as threads). Reductions split their work into pieces fixed by
 * the shapes and add them in a fixed order, so the thread count never changes the arithmetic.
 * Lane sums and {@code exp}/{@code tanh} on vectors go through {@link LaneMath} (never
 * {@code reduceLanes(ADD)} or {@code lanewise(EXP)}, which round differently before and after JIT
 * compilation), so a run gives the same bits every time in either mode, vector or scalar.
 */
public final class CpuBackend implements Backend {
    private final CpuThreads threads;
    private final boolean ownsThreads;
    private final boolean vectorized;
    private final ElementwiseKernels elementwise;
    private final ActivationKernels activations;
    private final NormKernels norms;
    private final EmbeddingKernels embeddings;
    private final AttentionKernels attention;
    private final CrossEntropyKernels crossEntropy;
    private final OptimizerKernels optimizer;
    private final MemoryAccount memory = MemoryAccount.current();

    /** Threads from {@code -Dmegatron.cpu.threads}, vector width from {@code -Dmegatron.vector.bits}. */
    public CpuBackend() {
        this(CpuThreads.fromSystemProperties(), true, !VectorWidth.scalar());
    }

    /**
     * A backend on {@code threads} worker threads (owned and shut down by {@link #close}), with
     * the vector kernels ({@link VectorWidth}'s width) or, when {@code vectorized} is false or
     * the scalar path is forced, the scalar ones.
     */
    public CpuBackend(int threads, boolean vectorized) {
        this(new CpuThreads(threads), true, vectorized && !VectorWidth.scalar());
    }

    /** A backend sharing the caller's threads (not closed by {@link #close}). */
    public CpuBackend(CpuThreads threads, boolean vectorized) {
        this(threads, false, vectorized && !VectorWidth.scalar());
    }

    private CpuBackend(CpuThreads threads, boolean ownsThreads, boolean vectorized) {
        this.threads = threads;
        this.ownsThreads = ownsThreads;
        this.vectorized = vectorized;
        this.elementwise = new ElementwiseKernels(threads, vectorized);
        this.activations = new ActivationKernels(threads, vectorized);
        this.norms = new NormKernels(threads, vectorized);
        this.embeddings = new EmbeddingKernels(threads, vectorized);
        this.attention = new AttentionKernels(threads, vectorized);
        this.crossEntropy = new CrossEntropyKernels(threads, vectorized);
        this.optimizer = new OptimizerKernels(threads, vectorized);
    }

    public CpuThreads threads() {
        return threads;
    }

    /** Float lanes per vector, 0 on the scalar path. */
    public int vectorLanes() {
        return vectorized ? VectorMath.SPECIES.length() : 0;
    }

    @Override
    public String name() {
        return "cpu";
    }

    @Override
    public Device device() {
        return Device.CPU;
    }

    @Override
    public String toString() {
        return "CpuBackend[" + threads.threads() + " threads, "
                + (vectorized ? VectorMath.SPECIES.vectorBitSize() + "-bit vectors" : "scalar") + "]";
    }

    @Override
    public MemoryStats memoryStats() {
        return memory.stats();
    }

    @Override
    public Tensor allocate(TensorArena arena, DType dtype, long... shape) {
        if (arena == null) {
            throw fail("allocate", "arena is null");
        }
        return arena.allocate(dtype, shape);
    }

    @Override
    public void copy(Tensor src, Tensor dst) {
        host("copy", "src", src);
        host("copy", "dst", dst);
        if (src.dtype() != dst.dtype()) {
            throw fail("copy", "src is " + src.dtype() + " and dst is " + dst.dtype() + "; expected the same dtype (use cast)");
        }
        sameNumel("copy", "src", src, "dst", dst);
        ElementwiseKernels.copy(src, dst);
    }

    @Override
    public void fill(Tensor x, float value) {
        host("fill", "x", x);
        elementwise.fill(x, value);
    }

    @Override
    public void synchronize() {
        // CPU kernels return when their work is done.
    }

    // ------------------------------------------------------------------ matrix products

    @Override
    public void gemm(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        host("gemm", "a", a);
        host("gemm", "b", b);
        host("gemm", "c", c);
        if (SmallRowsGemm.accepts(transA, transB, a, b, c)) { // decode: stream the weight once, no packing
            SmallRowsGemm.gemm(threads, vectorized, transA, transB, alpha, a, b, beta, c);
            return;
        }
        CpuGemm.gemm(threads, transA, transB, alpha, a, b, beta, c);
    }

    @Override
    public void gemmBatched(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        host("gemmBatched", "a", a);
        host("gemmBatched", "b", b);
        host("gemmBatched", "c", c);
        CpuGemm.gemmBatched(threads, transA, transB, alpha, a, b, beta, c);
    }

    // ------------------------------------------------------------------ fused linear layers
    // Each is exactly the ops the layers called before the fused forms existed, in the same order,
    // so CPU results (and bit-exact resume) do not change.

    // ------------------------------------------------------------------ elementwise

    @Override
    public void add(Tensor a, Tensor b, Tensor out) {
        floating("add", "a", a);
        floating("add", "b", b);
        floating("add", "out", out);
        sameShape("add", "a", a, "b", b);
        sameShape("add", "a", a, "out", out);
        elementwise.add(a, b, out);
    }

    @Override
    public void axpy(float alpha, Tensor x, Tensor y) {
        floating("axpy", "x", x);
        floating("axpy", "y", y);
        sameShape("axpy", "x", x, "y", y);
        elementwise.axpy(alpha, x, y);
    }

    @Override
    public void scale(Tensor x, float alpha) {
        floating("scale", "x", x);
        elementwise.scale(x, alpha);
    }

    @Override
    public void scaleRows(Tensor x, Tensor scales, Tensor y) {
        floating("scaleRows", "x", x);
        floating("scaleRows", "y", y);
        dtype("scaleRows", "scales", scales, DType.F32);
        sameShape("scaleRows", "x", x, "y", y);
        int c = toInt("scaleRows", "cols", cols(x));
        numel("scaleRows", "scales", scales, rows(x), "one F32 per row of x " + Tensor.shapeString(x.shape()));
        elementwise.scaleRows(x, scales, y, c);
    }

    @Override
    public void rowDot(Tensor a, Tensor b, Tensor out) {
        floating("rowDot", "a", a);
        floating("rowDot", "b", b);
        dtype("rowDot", "out", out, DType.F32);
        sameShape("rowDot", "a", a, "b", b);
        int c = toInt("rowDot", "cols", cols(a));
        numel("rowDot", "out", out, rows(a), "one F32 per row of a " + Tensor.shapeString(a.shape()));
        elementwise.rowDot(a, b, out, c);
    }

    @Override
    public void biasAdd(Tensor x, Tensor bias) {
        floating("biasAdd", "x", x);
        floating("biasAdd", "bias", bias);
        int c = toInt("biasAdd", "cols", cols(x));
        checkVector("biasAdd", "bias", bias, c, x);
        elementwise.biasAdd(x, bias, c);
    }

    @Override
    public void biasBackward(Tensor dy, Tensor dBias) {
        floating("biasBackward", "dy", dy);
        dtype("biasBackward", "dBias", dBias, DType.F32);
        int c = toInt("biasBackward", "cols", cols(dy));
        checkVector("biasBackward", "dBias", dBias, c, dy);
        elementwise.biasBackward(dy, dBias, c);
    }

    @Override
    public void cast(Tensor src, Tensor dst) {
        floating("cast", "src", src);
        floating("cast", "dst", dst);
        sameNumel("cast", "src", src, "dst", dst);
        elementwise.cast(src, dst);
    }

    // ------------------------------------------------------------------ activations

    @Override
    public void geluForward(Tensor x, Tensor y, boolean tanhApproximation) {
        activationForward("geluForward", x, y, ActivationKernels.Kind.gelu(tanhApproximation));
    }

    @Override
    public void geluBackward(Tensor x, Tensor dy, Tensor dx, boolean tanhApproximation) {
        activationBackward("geluBackward", x, dy, dx, ActivationKernels.Kind.gelu(tanhApproximation));
    }

    @Override
    public void squaredReluForward(Tensor x, Tensor y) {
        activationForward("squaredReluForward", x, y, ActivationKernels.Kind.SQUARED_RELU);
    }

    @Override
    public void squaredReluBackward(Tensor x, Tensor dy, Tensor dx) {
        activationBackward("squaredReluBackward", x, dy, dx, ActivationKernels.Kind.SQUARED_RELU);
    }

    private void activationForward(String op, Tensor x, Tensor y, ActivationKernels.Kind kind) {
        floating(op, "x", x);
        floating(op, "y", y);
        sameShape(op, "x", x, "y", y);
        activations.forward(x, y, kind);
    }

    private void activationBackward(String op, Tensor x, Tensor dy, Tensor dx, ActivationKernels.Kind kind) {
        floating(op, "x", x);
        floating(op, "dy", dy);
        floating(op, "dx", dx);
        sameShape(op, "x", x, "dy", dy);
        sameShape(op, "x", x, "dx", dx);
        activations.backward(x, dy, dx, kind);
    }

    @Override
    public void swigluForward(Tensor x, Tensor y) {
        floating("swigluForward", "x", x);
        floating("swigluForward", "y", y);
        int f = checkSwiglu("swigluForward", x, "y", y);
        activations.swigluForward(x, y, f);
    }

    @Override
    public void swigluBackward(Tensor x, Tensor dy, Tensor dx) {
        floating("swigluBackward", "x", x);
        floating("swigluBackward", "dy", dy);
        floating("swigluBackward", "dx", dx);
        int f = checkSwiglu("swigluBackward", x, "dy", dy);
        sameShape("swigluBackward", "x", x, "dx", dx);
        activations.swigluBackward(x, dy, dx, f);
    }

    @Override
    public void dropoutForward(Tensor x, Tensor y, float p, long seed, long offset) {
        dropout("dropoutForward", "x", x, "y", y, p, seed, offset);
    }

    @Override
    public void dropoutBackward(Tensor dy, Tensor dx, float p, long seed, long offset) {
        dropout("dropoutBackward", "dy", dy, "dx", dx, p, seed, offset);
    }

    private void dropout(String op, String inName, Tensor in, String outName, Tensor out, float p, long seed, long offset) {
        floating(op, inName, in);
        floating(op, outName, out);
        sameShape(op, inName, in, outName, out);
        if (!(p >= 0f && p < 1f)) {
            throw fail(op, "drop probability p = " + p + "; expected 0 <= p < 1");
        }
        if (p == 0f) {
            elementwise.cast(in, out);
        } else {
            activations.dropout(in, out, p, seed, offset);
        }
    }

    // ------------------------------------------------------------------ embeddings and norms

    @Override
    public void embeddingForward(Tensor ids, Tensor table, Tensor out) {
        dtype("embeddingForward", "ids", ids, DType.I32);
        floating("embeddingForward", "table", table);
        floating("embeddingForward", "out", out);
        int h = checkEmbedding("embeddingForward", ids, table, "out", out);
        EmbeddingKernels.checkIds("embeddingForward", ids, table.dim(0));
        embeddings.forward(ids, table, out, h);
    }

    @Override
    public void embeddingBackward(Tensor ids, Tensor dOut, Tensor dTable) {
        dtype("embeddingBackward", "ids", ids, DType.I32);
        floating("embeddingBackward", "dOut", dOut);
        dtype("embeddingBackward", "dTable", dTable, DType.F32);
        int h = checkEmbedding("embeddingBackward", ids, dTable, "dOut", dOut);
        EmbeddingKernels.checkIds("embeddingBackward", ids, dTable.dim(0));
        embeddings.backward(ids, dOut, dTable, h);
    }

    @Override
    public void layerNormForward(Tensor x, Tensor gamma, Tensor beta, float eps, Tensor y, Tensor mean, Tensor rstd) {
        String op = "layerNormForward";
        int h = checkNorm(op, x, gamma, y);
        if (beta != null) {
            floating(op, "beta", beta);
            checkVector(op, "beta", beta, h, x);
        }
        checkStats(op, "mean", mean, x);
        checkStats(op, "rstd", rstd, x);
        norms.layerNormForward(x, gamma, beta, eps, y, mean, rstd, h);
    }

    @Override
    public void layerNormBackward(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd,
                                  Tensor dx, Tensor dGamma, Tensor dBeta) {
        layerNormBackward("layerNormBackward", dy, x, gamma, mean, rstd, dx, dGamma, dBeta, false);
    }

    @Override
    public void layerNormBackwardAccumulate(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd,
                                            Tensor dx, Tensor dGamma, Tensor dBeta) {
        layerNormBackward("layerNormBackwardAccumulate", dy, x, gamma, mean, rstd, dx, dGamma, dBeta, true);
    }

    private void layerNormBackward(String op, Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd,
                                   Tensor dx, Tensor dGamma, Tensor dBeta, boolean accumulate) {
        int h = checkNorm(op, x, gamma, dx);
        floating(op, "dy", dy);
        sameShape(op, "x", x, "dy", dy);
        checkStats(op, "mean", mean, x);
        checkStats(op, "rstd", rstd, x);
        checkParamGrad(op, "dGamma", dGamma, h, x);
        checkParamGrad(op, "dBeta", dBeta, h, x);
        norms.layerNormBackward(dy, x, gamma, mean, rstd, dx, dGamma, dBeta, h, accumulate);
    }

    @Override
    public void rmsNormForward(Tensor x, Tensor gamma, float eps, Tensor y, Tensor rstd) {
        String op = "rmsNormForward";
        int h = checkNorm(op, x, gamma, y);
        checkStats(op, "rstd", rstd, x);
        norms.rmsNormForward(x, gamma, eps, y, rstd, h);
    }

    @Override
    public void rmsNormBackward(Tensor dy, Tensor x, Tensor gamma, Tensor rstd, Tensor dx, Tensor dGamma) {
        rmsNormBackward("rmsNormBackward", dy, x, gamma, rstd, dx, dGamma, false);
    }

    @Override
    public void rmsNormBackwardAccumulate(Tensor dy, Tensor x, Tensor gamma, Tensor rstd, Tensor dx, Tensor dGamma) {
        rmsNormBackward("rmsNormBackwardAccumulate", dy, x, gamma, rstd, dx, dGamma, true);
    }

    private void rmsNormBackward(String op, Tensor dy, Tensor x, Tensor gamma, Tensor rstd, Tensor dx, Tensor dGamma,
                                 boolean accumulate) {
        int h = checkNorm(op, x, gamma, dx);
        floating(op, "dy", dy);
        sameShape(op, "x", x, "dy", dy);
        checkStats(op, "rstd", rstd, x);
        checkParamGrad(op, "dGamma", dGamma, h, x);
        norms.rmsNormBackward(dy, x, gamma, rstd, dx, dGamma, h, accumulate);
    }

    // ------------------------------------------------------------------ rotary embeddings

    @Override
    public void rotaryForward(Tensor x, Tensor freqs, Tensor out, boolean interleaved) {
        rotary("rotaryForward", x, freqs, out, false, interleaved);
    }

    @Override
    public void rotaryBackward(Tensor dOut, Tensor freqs, Tensor dx, boolean interleaved) {
        rotary("rotaryBackward", dOut, freqs, dx, true, interleaved);
    }

    private void rotary(String op, Tensor x, Tensor freqs, Tensor out, boolean inverse, boolean interleaved) {
        floating(op, "x", x);
        dtype(op, "freqs", freqs, DType.F32);
        floating(op, "out", out);
        TensorChecks.rank(op, "x", x, 4, "[s, b, heads, d]");
        sameShape(op, "x", x, "out", out);
        long s = x.dim(0);
        long d = x.dim(3);
        long r = cols(freqs);
        if (freqs.rank() == 0 || r % 2 != 0 || r > d || r == 0 || freqs.numel() != s * r) {
            throw fail(op, "freqs has shape " + Tensor.shapeString(freqs.shape()) + " for x " + Tensor.shapeString(x.shape())
                    + "; expected [" + s + ", r] (or [" + s + ", 1, 1, r]) with r even and 0 < r <= " + d);
        }
        embeddings.rotary(x, freqs, out, s, (int) r, toInt(op, "d", d), inverse, interleaved);
    }

    // ------------------------------------------------------------------ attention

    @Override
    public void attentionForward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse,
                                 float softmaxScale, boolean causal, Tensor keyLengths, Tensor keyStarts,
                                 float dropoutP, long seed, long offset) {
        String op = "attentionForward";
        floating(op, "q", q);
        floating(op, "k", k);
        floating(op, "v", v);
        floating(op, "out", out);
        AttentionShape a = AttentionShape.of(op, q, k, v);
        sameShape(op, "q", q, "out", out);
        checkLse(op, lse, a);
        attention.forward(a, q, k, v, out, lse, softmaxScale, attentionMask(op, a, causal, keyLengths, keyStarts),
                attentionDropout(op, dropoutP, seed, offset));
    }

    @Override
    public void attentionBackward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse,
                                  Tensor dq, Tensor dk, Tensor dv,
                                  float softmaxScale, boolean causal, Tensor keyLengths, Tensor keyStarts,
                                  float dropoutP, long seed, long offset) {
        String op = "attentionBackward";
        floating(op, "dOut", dOut);
        floating(op, "q", q);
        floating(op, "k", k);
        floating(op, "v", v);
        floating(op, "out", out);
        floating(op, "dq", dq);
        floating(op, "dk", dk);
        floating(op, "dv", dv);
        AttentionShape a = AttentionShape.of(op, q, k, v);
        sameShape(op, "q", q, "dOut", dOut);
        sameShape(op, "q", q, "out", out);
        sameShape(op, "q", q, "dq", dq);
        sameShape(op, "k", k, "dk", dk);
        sameShape(op, "v", v, "dv", dv);
        checkLse(op, lse, a);
        attention.backward(a, dOut, q, k, v, out, lse, dq, dk, dv, softmaxScale,
                attentionMask(op, a, causal, keyLengths, keyStarts), attentionDropout(op, dropoutP, seed, offset));
    }

    private static AttentionMask attentionMask(String op, AttentionShape a, boolean causal, Tensor keyLengths, Tensor keyStarts) {
        return new AttentionMask(causal, keyLengths(op, keyLengths, a), keyStarts(op, keyStarts, a));
    }

    private static AttentionDropout attentionDropout(String op, float p, long seed, long offset) {
        if (!(p >= 0f && p < 1f)) {
            throw fail(op, "attention dropout probability dropoutP = " + p + "; expected 0 <= dropoutP < 1");
        }
        return AttentionDropout.of(p, seed, offset);
    }

    // ------------------------------------------------------------------ cross-entropy

    @Override
    public void crossEntropyRowMax(Tensor logits, Tensor rowMax) {
        int v = checkLogits("crossEntropyRowMax", logits);
        checkPerRow("crossEntropyRowMax", "rowMax", rowMax, logits);
        crossEntropy.rowMax(logits, rowMax, v);
    }

    @Override
    public void crossEntropyTargetLogit(Tensor logits, Tensor targets, long vocabStart, Tensor targetLogit) {
        String op = "crossEntropyTargetLogit";
        int v = checkLogits(op, logits);
        checkTargets(op, targets, logits);
        checkPerRow(op, "targetLogit", targetLogit, logits);
        crossEntropy.targetLogit(logits, targets, vocabStart, targetLogit, v);
    }

    @Override
    public void crossEntropySumExp(Tensor logits, Tensor rowMax, Tensor sumExp) {
        String op = "crossEntropySumExp";
        int v = checkLogits(op, logits);
        checkPerRow(op, "rowMax", rowMax, logits);
        checkPerRow(op, "sumExp", sumExp, logits);
        crossEntropy.sumExp(logits, rowMax, sumExp, v);
    }

    @Override
    public void crossEntropyRowMaxSumExp(Tensor logits, Tensor rowMax, Tensor sumExp) {
        String op = "crossEntropyRowMaxSumExp";
        int v = checkLogits(op, logits);
        checkPerRow(op, "rowMax", rowMax, logits);
        checkPerRow(op, "sumExp", sumExp, logits);
        crossEntropy.rowMaxSumExp(logits, rowMax, sumExp, v);
    }

    @Override
    public void crossEntropyLoss(Tensor rowMax, Tensor sumExp, Tensor targetLogit, Tensor loss) {
        String op = "crossEntropyLoss";
        dtype(op, "rowMax", rowMax, DType.F32);
        for (Tensor t : new Tensor[] {sumExp, targetLogit, loss}) {
            String name = t == sumExp ? "sumExp" : t == targetLogit ? "targetLogit" : "loss";
            dtype(op, name, t, DType.F32);
            sameNumel(op, "rowMax", rowMax, name, t);
        }
        CrossEntropyKernels.loss(rowMax, sumExp, targetLogit, loss);
    }

    @Override
    public void crossEntropyBackward(Tensor logits, Tensor targets, long vocabStart, Tensor rowMax, Tensor sumExp,
                                     Tensor dLoss, Tensor dLogits) {
        String op = "crossEntropyBackward";
        int v = checkLogits(op, logits);
        checkTargets(op, targets, logits);
        checkPerRow(op, "rowMax", rowMax, logits);
        checkPerRow(op, "sumExp", sumExp, logits);
        checkPerRow(op, "dLoss", dLoss, logits);
        floating(op, "dLogits", dLogits);
        sameShape(op, "logits", logits, "dLogits", dLogits);
        crossEntropy.backward(logits, targets, vocabStart, rowMax, sumExp, dLoss, dLogits, v);
    }

    @Override
    public void crossEntropyForwardBackward(Tensor logits, Tensor targets, Tensor dLoss, Tensor rowMax,
                                            Tensor sumExp, Tensor targetLogit, Tensor loss, Tensor dLogits) {
        String op = "crossEntropyForwardBackward";
        int v = checkLogits(op, logits);
        checkTargets(op, targets, logits);
        for (Tensor t : new Tensor[] {dLoss, rowMax, sumExp, targetLogit, loss}) {
            String name = t == dLoss ? "dLoss" : t == rowMax ? "rowMax" : t == sumExp ? "sumExp"
                    : t == targetLogit ? "targetLogit" : "loss";
            checkPerRow(op, name, t, logits);
        }
        floating(op, "dLogits", dLogits);
        sameShape(op, "logits", logits, "dLogits", dLogits);
        crossEntropy.forwardBackward(logits, targets, dLoss, rowMax, sumExp, targetLogit, loss, dLogits, v);
    }

    // ------------------------------------------------------------------ optimizer and reductions

    @Override
    public void adamW(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq,
                      float lr, float beta1, float beta2, float eps, float weightDecay, long step) {
        String op = "adamW";
        dtype(op, "param", param, DType.F32);
        floating(op, "grad", grad);
        dtype(op, "expAvg", expAvg, DType.F32);
        dtype(op, "expAvgSq", expAvgSq, DType.F32);
        sameNumel(op, "param", param, "grad", grad);
        sameNumel(op, "param", param, "expAvg", expAvg);
        sameNumel(op, "param", param, "expAvgSq", expAvgSq);
        if (step < 1) {
            throw fail(op, "step = " + step + "; expected step >= 1 (steps count from 1)");
        }
        optimizer.adamW(param, grad, expAvg, expAvgSq, lr, beta1, beta2, eps, weightDecay, step, 1f, null);
    }

    /** One fused pass per tensor: the scaled gradient and the compute copy never go through memory on their own. */
    @Override
    public void multiTensorAdamW(List<Tensor> params, List<Tensor> grads, List<Tensor> expAvgs, List<Tensor> expAvgSqs,
                                 float[] weightDecays, float lr, float beta1, float beta2, float eps, long step,
                                 float gradScale, List<Tensor> computeCopies) {
        String op = "multiTensorAdamW";
        TensorChecks.multiTensorAdamW(params, grads, expAvgs, expAvgSqs, weightDecays, step, computeCopies);
        for (int i = 0; i < params.size(); i++) {
            String at = "[" + i + "]";
            host(op, "params" + at, params.get(i));
            host(op, "grads" + at, grads.get(i));
            host(op, "expAvgs" + at, expAvgs.get(i));
            host(op, "expAvgSqs" + at, expAvgSqs.get(i));
            if (computeCopies != null) {
                host(op, "computeCopies" + at, computeCopies.get(i));
            }
        }
        for (int i = 0; i < params.size(); i++) {
            optimizer.adamW(params.get(i), grads.get(i), expAvgs.get(i), expAvgSqs.get(i), lr, beta1, beta2, eps,
                    weightDecays[i], step, gradScale, computeCopies == null ? null : computeCopies.get(i));
        }
    }

    @Override
    public double sumOfSquares(Tensor x) {
        floating("sumOfSquares", "x", x);
        return optimizer.sumOfSquares(x);
    }

    @Override
    public boolean hasInfOrNan(Tensor x) {
        floating("hasInfOrNan", "x", x);
        return optimizer.hasInfOrNan(x);
    }

    @Override
    public long countZeros(Tensor x) {
        floating("countZeros", "x", x);
        return optimizer.countZeros(x);
    }

    @Override
    public void argmax(Tensor logits, Tensor out) {
        int v = checkLogits("argmax", logits);
        dtype("argmax", "out", out, DType.I32);
        numel("argmax", "out", out, rows(logits), "one I32 index per row of logits " + Tensor.shapeString(logits.shape()));
        crossEntropy.argmax(logits, out, v);
    }

    @Override
    public void logSoftmax(Tensor logits, float temperature, Tensor out) {
        int v = checkLogits("logSoftmax", logits);
        dtype("logSoftmax", "out", out, DType.F32);
        sameShape("logSoftmax", "logits", logits, "out", out);
        if (!(temperature > 0f) || Float.isInfinite(temperature)) {
            throw fail("logSoftmax", "temperature = " + temperature + "; expected a finite value > 0");
        }
        crossEntropy.logSoftmax(logits, temperature, out, v);
    }

    @Override
    public void close() {
        if (ownsThreads) {
            threads.close();
        }
    }
}
