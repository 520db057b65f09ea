package org.megatronj.memory;

import java.util.List;

/**
 * The op set every layer is written against. Two implementations must agree to rounding:
 * {@code CpuBackend} (Vector API, the reference and the default) and {@code CudaBackend}.
 *
 * <p>Conventions, as in llm.c:
 * <ul>
 *   <li>Outputs are passed in, allocated by the caller (memory is planned up front).</li>
 *   <li>Activation gradients are written ({@code =}); parameter gradients accumulate
 *       ({@code +=}), so gradient accumulation over micro-batches needs no extra buffer.
 *       Each method says which.</li>
 *   <li>All tensors are contiguous and row-major; "rows" means the product of all leading
 *       dimensions, "cols" the last dimension.</li>
 *   <li>Floating point tensors may be F32, BF16 or F16 unless a method says otherwise;
 *       accumulation is always in fp32 (or wider). Statistics kept for backward
 *       (mean, rstd, log-sum-exp, row max, sum-exp) are always F32.</li>
 *   <li>A bad argument throws {@link TensorException} naming the op, the shapes or dtypes
 *       it got and what it expected; so does a tensor whose arena is closed.</li>
 * </ul>
 */
public interface Backend extends AutoCloseable {

    /** "cpu" or "cuda", as {@code --device} names it. */
    String name();

    Device device();

    /** A zero-filled tensor on this backend's device, freed when {@code arena} closes. */
    Tensor allocate(TensorArena arena, DType dtype, long... shape);

    /**
     * The memory of this backend's tensors, as Megatron's memory report prints it: on the CPU the host
     * tensors of the {@link MemoryAccount} this backend was made in (its rank's), on a GPU the device pool's.
     */
    MemoryStats memoryStats();

    /** Copies {@code src} into {@code dst}; either may be on the host or on this device; same dtype and element count. */
    void copy(Tensor src, Tensor dst);

    /** Sets every element of {@code x} to {@code value}. */
    void fill(Tensor x, float value);

    /** Waits until all work queued on this backend has finished (a no-op on the CPU). */
    void synchronize();

    // ------------------------------------------------------------------ matrix products

    /**
     * {@code c = alpha * op(a) @ op(b) + beta * c} on 2-D row-major tensors, where
     * {@code op(a)} is {@code [m, k]} (stored {@code [k, m]} when {@code transA}) and
     * {@code op(b)} is {@code [k, n]} (stored {@code [n, k]} when {@code transB}); {@code c} is
     * {@code [m, n]}. Inputs F32/BF16/F16 (a and b the same dtype), fp32 accumulate; {@code c}
     * F32 or the input dtype. With {@code beta == 0} the old contents of c are ignored (NaN
     * included).
     *
     * <p>A linear layer with Megatron's {@code [out, in]} weight is
     * {@code gemm(false, true, 1, x, w, 0, y)}; its weight gradient
     * {@code gemm(true, false, 1, dy, x, 1, dw)} (accumulating).
     */
    void gemm(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c);

    /**
     * {@link #gemm} on each of {@code batch} independent matrices: a, b and c are 3-D with the
     * batch in dim 0 ({@code [batch, m, k]} etc., transposes applying to the last two dims).
     */
    void gemmBatched(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c);

    // ------------------------------------------------------------------ fused linear layers

    /**
     * The activation a linear layer applies to its output ({@link #linearForward}) and whose
     * derivative the input gradient of the next linear layer applies ({@link #linearDgrad}).
     * {@code GELU_TANH} is GPT-2's and Megatron's fused bias-gelu, and what cuBLASLt's GELU
     * epilogues compute; {@code GELU_ERF} is the exact form ({@code --no-bias-gelu-fusion});
     * {@code SQUARED_RELU} is {@code relu(x)^2} ({@code --squared-relu}), which no epilogue computes.
     */
    enum Activation {
        NONE, GELU_TANH, GELU_ERF, SQUARED_RELU;

        /** GELU_TANH or GELU_ERF as {@link #geluForward}'s flag names them. */
        public static Activation gelu(boolean tanhApproximation) {
            return tanhApproximation ? GELU_TANH : GELU_ERF;
        }

        /** {@code y = act(x)} by {@code backend}'s elementwise op; NONE has none (its output is its input). */
        public void apply(Backend backend, Tensor x, Tensor y) {
            switch (this) {
                case GELU_TANH, GELU_ERF -> backend.geluForward(x, y, this == GELU_TANH);
                case SQUARED_RELU -> backend.squaredReluForward(x, y);
                case NONE -> { }
            }
        }

        /** {@code dx = dy * act'(x)} by {@code backend}'s elementwise op; NONE has none (dy is the gradient). */
        public void applyGradient(Backend backend, Tensor x, Tensor dy, Tensor dx) {
            switch (this) {
                case GELU_TANH, GELU_ERF -> backend.geluBackward(x, dy, dx, this == GELU_TANH);
                case SQUARED_RELU -> backend.squaredReluBackward(x, dy, dx);
                case NONE -> { }
            }
        }
    }

    /**
     * A linear layer's forward in one op: {@code pre = x W^T + bias}, {@code y = act(pre)}.
     * x {@code [n, in]}, weight {@code [out, in]} (Megatron's layout, x's dtype), bias {@code [out]}
     * or null, y {@code [n, out]} (written, F32 or x's dtype). With an activation,
     * {@code preActivation} {@code [n, out]} (y's dtype) receives pre (written; the backward's
     * {@link #linearDgrad} needs it); with {@code NONE} it must be null.
     *
     * <p>Exactly {@code gemm(false, true, 1, x, weight, 0, pre)}, {@code biasAdd(pre, bias)},
     * {@code activation.apply(pre, y)} (pre = y without activation): this default runs those ops (the CPU's). The GPU
     * runs one cuBLASLt matmul with the BIAS or GELU_AUX_BIAS epilogue, which applies the gelu to
     * the fp32 sum before rounding, so y agrees to rounding; GELU_ERF and SQUARED_RELU fuse the bias only.
     */
    default void linearForward(Tensor x, Tensor weight, Tensor bias, Activation activation, Tensor y, Tensor preActivation) {
        TensorChecks.linearForward(x, weight, bias, activation, y, preActivation);
        Tensor pre = activation == Activation.NONE ? y : preActivation;   // [n, out]
        gemm(false, true, 1f, x, weight, 0f, pre);
        if (bias != null) {
            biasAdd(pre, bias);
        }
        activation.apply(this, pre, y);
    }

    /**
     * A linear layer whose output joins the residual stream: {@code y = residual + (x W^T + bias)}
     * (Megatron's bias-add-residual without dropout), residual {@code [n, out]} of y's dtype and
     * distinct from y. Exactly {@link #linearForward} then {@code add(y, residual, y)}; on the GPU
     * one matmul that reads the residual as its C operand.
     */
    default void linearForwardAdd(Tensor x, Tensor weight, Tensor bias, Tensor residual, Tensor y) {
        TensorChecks.linearForwardAdd(x, weight, bias, residual, y);
        linearForward(x, weight, bias, Activation.NONE, y, null);
        add(y, residual, y);
    }

    /**
     * A linear layer's input gradient: {@code dx = dy W}, and when the layer's input was
     * {@code act(preActivation)}, times {@code act'(preActivation)}, making dx the gradient of
     * preActivation. dy {@code [n, out]}, weight {@code [out, in]} (dy's dtype), preActivation
     * {@code [n, in]} (null with {@code NONE}), dx {@code [n, in]} written (F32 or dy's dtype).
     * Exactly {@code gemm(false, false, 1, dy, weight, 0, dx)} then
     * {@code activation.applyGradient(preActivation, dx, dx)}; on the GPU GELU_TANH is one matmul with the DGELU epilogue.
     */
    default void linearDgrad(Tensor dy, Tensor weight, Activation activation, Tensor preActivation, Tensor dx) {
        TensorChecks.linearDgrad(dy, weight, activation, preActivation, dx);
        gemm(false, false, 1f, dy, weight, 0f, dx);                       // dx [n, in] = dy W
        activation.applyGradient(this, preActivation, dx, dx);           // elementwise, in place
    }

    /**
     * A linear layer's parameter gradients into fp32 main gradients (Megatron's gradient
     * accumulation fusion): {@code dWeight += dy^T x} ({@code [out, in]}, F32) and
     * {@code dBias += sum over rows of dy} ({@code [out]}, F32, may be null); both accumulate.
     * dy {@code [n, out]}, x {@code [n, in]} of one dtype. Exactly {@code biasBackward(dy, dBias)}
     * then {@code gemm(true, false, 1, dy, x, 1, dWeight)}; on the GPU one matmul with the BGRADB
     * epilogue (which writes the bias gradient: it lands in a scratch vector added to dBias).
     */
    default void linearWgrad(Tensor dy, Tensor x, Tensor dWeight, Tensor dBias) {
        TensorChecks.linearWgrad(dy, x, dWeight, dBias);
        if (dBias != null) {
            biasBackward(dy, dBias);
        }
        gemm(true, false, 1f, dy, x, 1f, dWeight);                        // dW [out, in] += dy^T x
    }

    // ------------------------------------------------------------------ elementwise

    /** {@code out = a + b} (same shapes; out may alias a or b). The residual add. */
    void add(Tensor a, Tensor b, Tensor out);

    /** {@code y += alpha * x} (same shapes). */
    void axpy(float alpha, Tensor x, Tensor y);

    /** {@code x *= alpha} in place. */
    void scale(Tensor x, float alpha);

    /**
     * {@code y[r, :] = x[r, :] * scales[r]} for every row r ({@code scales} F32 of length rows; y may alias x): the
     * routing probabilities of a mixture-of-experts layer applied to its experts' rows.
     */
    void scaleRows(Tensor x, Tensor scales, Tensor y);

    /** {@code out[r] = sum over c of a[r, c] * b[r, c]}, accumulated in F32 ({@code out} F32 of length rows, written). */
    void rowDot(Tensor a, Tensor b, Tensor out);

    /** {@code x[r, :] += bias} for every row r; bias is 1-D of length cols. In place. */
    void biasAdd(Tensor x, Tensor bias);

    /** {@code dBias += sum over rows of dy} (accumulates; dBias F32 of length cols). */
    void biasBackward(Tensor dy, Tensor dBias);

    /** Converts between F32, BF16 and F16 (round to nearest even), or copies when the dtypes match. Same element count. */
    void cast(Tensor src, Tensor dst);

    // ------------------------------------------------------------------ activations

    /** {@code y = gelu(x)}: the tanh approximation when {@code tanhApproximation} (GPT-2, Megatron's default bias-gelu fusion), else the exact erf form. */
    void geluForward(Tensor x, Tensor y, boolean tanhApproximation);

    /** {@code dx = dy * gelu'(x)} (written). */
    void geluBackward(Tensor x, Tensor dy, Tensor dx, boolean tanhApproximation);

    /** {@code y = relu(x)^2}, Megatron's {@code squared_relu} (Primer, Nemotron); NaN stays NaN, as in torch. */
    void squaredReluForward(Tensor x, Tensor y);

    /** {@code dx = dy * 2 relu(x)} (written). */
    void squaredReluBackward(Tensor x, Tensor dy, Tensor dx);

    /**
     * SwiGLU as Megatron computes it: x is {@code [rows, 2f]}, split into halves
     * {@code x1 = x[:, :f]}, {@code x2 = x[:, f:]}; {@code y = silu(x1) * x2} is {@code [rows, f]}.
     */
    void swigluForward(Tensor x, Tensor y);

    /** Gradient of {@link #swigluForward}: {@code dx} {@code [rows, 2f]} written from {@code dy} {@code [rows, f]}. */
    void swigluBackward(Tensor x, Tensor dy, Tensor dx);

    /**
     * Inverted dropout: {@code y = x * mask / (1 - p)} where element {@code i} is dropped with
     * probability p. The mask is a pure function of {@code (seed, offset + i)} (counter-based
     * Philox4x32-10 RNG, defined bit for bit in {@code org.megatronj.memory.cpu.Philox}), so
     * recompute and resume reproduce it and the CPU and CUDA backends agree. Element i of a
     * call with offset o has the mask of element i + k of a call with offset o - k: a caller
     * advances the offset by the element count of each dropout it applies.
     * {@code p == 0} copies; p must be in {@code [0, 1)}. x and y have the same shape.
     */
    void dropoutForward(Tensor x, Tensor y, float p, long seed, long offset);

    /** {@code dx = dy * mask / (1 - p)} with the mask of the same {@code (seed, offset)} (written). */
    void dropoutBackward(Tensor dy, Tensor dx, float p, long seed, long offset);

    // ------------------------------------------------------------------ embeddings and norms

    /**
     * {@code out[i, :] = table[ids[i], :]}; ids I32 of any shape with n elements, table
     * {@code [vocab, h]}, out {@code [n, h]} (or ids' shape + h). An id outside the table throws
     * naming the id and its position: on the CPU at once, on a GPU when the queued work next
     * completes (a download, {@link #synchronize}, a reduction), so that lookups never stall the stream.
     */
    void embeddingForward(Tensor ids, Tensor table, Tensor out);

    /** {@code dTable[ids[i], :] += dOut[i, :]} (accumulates; dTable F32). */
    void embeddingBackward(Tensor ids, Tensor dOut, Tensor dTable);

    /**
     * LayerNorm over the last dimension: {@code y = (x - mean) * rstd * gamma + beta}
     * (beta may be null). Saves {@code mean} and {@code rstd} (F32, one per row) for backward.
     */
    void layerNormForward(Tensor x, Tensor gamma, Tensor beta, float eps, Tensor y, Tensor mean, Tensor rstd);

    /** dx written; dGamma and dBeta (F32, may be null) accumulate. */
    void layerNormBackward(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd,
                           Tensor dx, Tensor dGamma, Tensor dBeta);

    /** RMSNorm over the last dimension: {@code y = x * rstd * gamma}, {@code rstd = 1/sqrt(mean(x^2) + eps)} saved (F32). */
    void rmsNormForward(Tensor x, Tensor gamma, float eps, Tensor y, Tensor rstd);

    /** dx written; dGamma (F32) accumulates. */
    void rmsNormBackward(Tensor dy, Tensor x, Tensor gamma, Tensor rstd, Tensor dx, Tensor dGamma);

    /**
     * {@link #layerNormBackward} with dx accumulated ({@code dx +=}) instead of written: the backward of
     * a pre-norm residual block, whose input feeds both the norm and the skip connection. The same
     * values as writing the norm's input gradient into a tensor of dx's dtype and adding that to dx.
     */
    default void layerNormBackwardAccumulate(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd,
                                             Tensor dx, Tensor dGamma, Tensor dBeta) {
        try (TensorArena scratch = TensorArena.named("norm-input-grad")) {
            Tensor normGrad = allocate(scratch, dx.dtype(), dx.shape());
            layerNormBackward(dy, x, gamma, mean, rstd, normGrad, dGamma, dBeta);
            add(dx, normGrad, dx);
            synchronize();  // the scratch is freed when the arena closes
        }
    }

    /** {@link #rmsNormBackward} with dx accumulated, as {@link #layerNormBackwardAccumulate}. */
    default void rmsNormBackwardAccumulate(Tensor dy, Tensor x, Tensor gamma, Tensor rstd, Tensor dx, Tensor dGamma) {
        try (TensorArena scratch = TensorArena.named("norm-input-grad")) {
            Tensor normGrad = allocate(scratch, dx.dtype(), dx.shape());
            rmsNormBackward(dy, x, gamma, rstd, normGrad, dGamma);
            add(dx, normGrad, dx);
            synchronize();
        }
    }

    // ------------------------------------------------------------------ rotary embeddings

    /**
     * Rotary position embedding as Megatron applies it: x is {@code [s, b, heads, d]}; {@code freqs}
     * is F32 {@code [s, r]} holding the angle of each position and rotary channel ({@code r <= d},
     * even; Megatron's {@code cat(theta, theta)}, or each theta twice in a row when interleaved).
     * Channels {@code [0, r)} become {@code x * cos(freqs) + rotate(x) * sin(freqs)}: "rotate half"
     * {@code rotate(x) = cat(-x2, x1)} over the halves of {@code [0, r)}, or with {@code interleaved}
     * ({@code --rotary-interleaved}) {@code rotate(x) = (-x1, x0, -x3, x2, ...)} over its pairs;
     * channels {@code [r, d)} pass through. out may alias x.
     */
    void rotaryForward(Tensor x, Tensor freqs, Tensor out, boolean interleaved);

    /** Gradient of {@link #rotaryForward} (the inverse rotation); dx written, may alias dOut. */
    void rotaryBackward(Tensor dOut, Tensor freqs, Tensor dx, boolean interleaved);

    // ------------------------------------------------------------------ attention

    /**
     * Memory-efficient (tiled, online-softmax) scaled dot-product attention, Megatron layout:
     * q {@code [s, b, np, d]}, k and v {@code [sk, b, ng, d]} with {@code np % ng == 0}
     * (MHA: ng = np; GQA; MQA: ng = 1), query head {@code h} attending to key group
     * {@code h / (np / ng)}; out {@code [s, b, np, d]}; {@code lse} F32 {@code [b, np, s]} the
     * natural log-sum-exp of each row of scaled scores, saved for backward.
     * {@code softmaxScale} is usually {@code 1/sqrt(d)}. With {@code causal}, query i sees keys
     * {@code j <= i + (sk - s)}. {@code keyLengths} (I32 {@code [b]}, may be null) masks keys at
     * positions {@code >= keyLengths[b]} (padding). {@code keyStarts} (I32 {@code [b, s]}, may be
     * null) hides from query i of batch entry b the keys {@code j < keyStarts[b, i]}: document
     * masking, Megatron's {@code --reset-attention-mask}, where a query sees only the keys of its own
     * document. A fully masked row gives zeros and {@code lse = -inf}.
     *
     * <p>Dropout on the probabilities, as Megatron's {@code attention_dropout} and FlashAttention's
     * {@code dropout_p}: {@code out = (P * mask / (1 - dropoutP)) V}, with the mask of probability
     * {@code (h, b, i, j)} (query head, batch entry, query row, key column) that of element
     * {@code ((h * b_size + b) * s + i) * sk + j} of {@link #dropoutForward} with the same
     * {@code (seed, offset)}: one Philox counter per probability, independent of tiling and threads,
     * regenerated (never stored) by the backward. Head-major, so the heads {@code [h0, h0 + np)} of
     * a tensor-parallel rank draw the single-rank masks of those heads from
     * {@code offset + h0 * b_size * s * sk}. lse stays that of the undropped softmax. {@code dropoutP}
     * must be in {@code [0, 1)}; 0 is exactly the attention without dropout.
     */
    void attentionForward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse,
                          float softmaxScale, boolean causal, Tensor keyLengths, Tensor keyStarts,
                          float dropoutP, long seed, long offset);

    /** {@link #attentionForward} without dropout. */
    default void attentionForward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse,
                                  float softmaxScale, boolean causal, Tensor keyLengths) {
        attentionForward(q, k, v, out, lse, softmaxScale, causal, keyLengths, null, 0f, 0L, 0L);
    }

    /**
     * Gradients of {@link #attentionForward} from the saved out and lse, with the forward's masks
     * and {@code (dropoutP, seed, offset)}; dq, dk, dv written. With {@code Z = mask / (1 - dropoutP)}:
     * {@code dV = (P Z)^T dO}, {@code dP = (dO V^T) Z}, {@code dS = P (dP - rowsum(dO * out))}.
     */
    void attentionBackward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse,
                           Tensor dq, Tensor dk, Tensor dv,
                           float softmaxScale, boolean causal, Tensor keyLengths, Tensor keyStarts,
                           float dropoutP, long seed, long offset);

    /** {@link #attentionBackward} without dropout. */
    default void attentionBackward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse,
                                   Tensor dq, Tensor dk, Tensor dv,
                                   float softmaxScale, boolean causal, Tensor keyLengths) {
        attentionBackward(dOut, q, k, v, out, lse, dq, dk, dv, softmaxScale, causal, keyLengths, null, 0f, 0L, 0L);
    }

    /**
     * Whether {@link #attentionForwardFusedQkv} and {@link #attentionBackwardFusedQkv} read and write
     * the fused layout in place for this dtype and head dim (no copies); otherwise they separate and
     * merge through copies, and a caller with gather buffers of its own does better with
     * {@link #attentionForward}.
     */
    default boolean readsFusedQkv(DType dtype, int headDim) {
        return false;
    }

    /**
     * {@link #attentionForward} (no key lengths, no dropout; {@code keyStarts} may be null) with q, k and v taken from Megatron's
     * fused {@code linear_qkv} output {@code qkv [s, b, (np + 2 ng) d]}: per token and query group g,
     * the group's {@code np / ng} query heads (global heads {@code g np/ng ..}), then its key head,
     * then its value head. The same results as separating them and calling {@code attentionForward}.
     */
    default void attentionForwardFusedQkv(Tensor qkv, int np, int ng, Tensor out, Tensor lse, float softmaxScale,
                                          boolean causal, Tensor keyStarts) {
        FusedQkv fused = new FusedQkv("attentionForwardFusedQkv", qkv, np, ng);
        long s = qkv.dim(0), b = qkv.dim(1);
        try (TensorArena scratch = TensorArena.named("fused-qkv-split")) {
            Tensor q = allocate(scratch, qkv.dtype(), s, b, np, fused.headDim());
            Tensor k = allocate(scratch, qkv.dtype(), s, b, ng, fused.headDim());
            Tensor v = allocate(scratch, qkv.dtype(), s, b, ng, fused.headDim());
            fused.split(this, q, k, v);
            attentionForward(q, k, v, out, lse, softmaxScale, causal, null, keyStarts, 0f, 0L, 0L);
            synchronize();  // the scratch is freed when the arena closes
        }
    }

    /**
     * Gradients of {@link #attentionForwardFusedQkv}: {@code dqkv} (qkv's shape and layout) written
     * with dq, dk and dv in their fused places.
     */
    default void attentionBackwardFusedQkv(Tensor dOut, Tensor qkv, int np, int ng, Tensor out, Tensor lse, Tensor dqkv,
                                           float softmaxScale, boolean causal, Tensor keyStarts) {
        FusedQkv fused = new FusedQkv("attentionBackwardFusedQkv", qkv, np, ng);
        TensorChecks.sameShape("attentionBackwardFusedQkv", "qkv", qkv, "dqkv", dqkv);
        long s = qkv.dim(0), b = qkv.dim(1);
        int d = fused.headDim();
        try (TensorArena scratch = TensorArena.named("fused-qkv-split")) {
            DType dt = qkv.dtype();
            Tensor q = allocate(scratch, dt, s, b, np, d), dq = allocate(scratch, dt, s, b, np, d);
            Tensor k = allocate(scratch, dt, s, b, ng, d), dk = allocate(scratch, dt, s, b, ng, d);
            Tensor v = allocate(scratch, dt, s, b, ng, d), dv = allocate(scratch, dt, s, b, ng, d);
            fused.split(this, q, k, v);
            attentionBackward(dOut, q, k, v, out, lse, dq, dk, dv, softmaxScale, causal, null, keyStarts, 0f, 0L, 0L);
            new FusedQkv("attentionBackwardFusedQkv", dqkv, np, ng).merge(this, dq, dk, dv);
            synchronize();
        }
    }

    // ------------------------------------------------------------------ cross-entropy

    /*
     * Softmax cross-entropy in Megatron's vocab-parallel pieces. logits [n, vLocal] hold the
     * columns [vocabStart, vocabStart + vLocal) of the full vocabulary; targets I32 [n] are full
     * vocabulary ids. A single rank is vocabStart = 0, vLocal = vocab. Between the pieces a
     * tensor-parallel run all-reduces rowMax (max), sumExp (sum) and targetLogit (sum).
     *   loss[i] = log(sumExp[i]) + rowMax[i] - targetLogit[i]
     */

    /** {@code rowMax[i] = max_j logits[i, j]} (F32 [n]). */
    void crossEntropyRowMax(Tensor logits, Tensor rowMax);

    /** {@code targetLogit[i] = logits[i, targets[i] - vocabStart]} if that column is local, else 0 (F32 [n]). */
    void crossEntropyTargetLogit(Tensor logits, Tensor targets, long vocabStart, Tensor targetLogit);

    /** {@code sumExp[i] = sum_j exp(logits[i, j] - rowMax[i])} (F32 [n]) with the global rowMax. */
    void crossEntropySumExp(Tensor logits, Tensor rowMax, Tensor sumExp);

    /**
     * Both reductions for a vocabulary held whole (one tensor-parallel rank, nothing to all-reduce
     * in between): {@link #crossEntropyRowMax} then {@link #crossEntropySumExp}, the same values.
     * A backend may do them in one pass over the logits, which are the largest activation.
     */
    default void crossEntropyRowMaxSumExp(Tensor logits, Tensor rowMax, Tensor sumExp) {
        crossEntropyRowMax(logits, rowMax);
        crossEntropySumExp(logits, rowMax, sumExp);
    }

    /** {@code loss[i] = log(sumExp[i]) + rowMax[i] - targetLogit[i]} (F32 [n]). */
    void crossEntropyLoss(Tensor rowMax, Tensor sumExp, Tensor targetLogit, Tensor loss);

    /**
     * {@code dLogits[i, j] = dLoss[i] * (softmax[i, j] - [j + vocabStart == targets[i]])} (written),
     * softmax rebuilt from the global rowMax and sumExp; dLoss F32 [n] (loss mask and averaging
     * folded in by the caller). dLogits may alias logits.
     */
    void crossEntropyBackward(Tensor logits, Tensor targets, long vocabStart, Tensor rowMax, Tensor sumExp,
                              Tensor dLoss, Tensor dLogits);

    /**
     * The whole loss of a vocabulary held whole (one tensor-parallel rank) and its gradient, for a
     * caller that knows dLoss before the forward (forward and backward of one micro-batch back to
     * back): {@link #crossEntropyTargetLogit}, {@link #crossEntropyRowMaxSumExp}, {@link #crossEntropyLoss}
     * and {@link #crossEntropyBackward}, the same values. A backend may do it in one pass over the
     * logits (read once, gradient written once) instead of three.
     */
    default void crossEntropyForwardBackward(Tensor logits, Tensor targets, Tensor dLoss, Tensor rowMax,
                                             Tensor sumExp, Tensor targetLogit, Tensor loss, Tensor dLogits) {
        crossEntropyTargetLogit(logits, targets, 0, targetLogit);
        crossEntropyRowMaxSumExp(logits, rowMax, sumExp);
        crossEntropyLoss(rowMax, sumExp, targetLogit, loss);
        crossEntropyBackward(logits, targets, 0, rowMax, sumExp, dLoss, dLogits);
    }

    // ------------------------------------------------------------------ optimizer and reductions

    /**
     * One AdamW step over flat F32 tensors of equal size (Megatron's fused Adam in adam_w_mode):
     * {@code m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
     * p -= lr * ((m / (1-b1^step)) / (sqrt(v / (1-b2^step)) + eps) + wd * p)}.
     * {@code step} counts from 1.
     */
    void adamW(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq,
               float lr, float beta1, float beta2, float eps, float weightDecay, long step);

    /**
     * {@link #adamW} on many parameters in one op (Megatron's multi-tensor Adam): element i of each
     * list (same length) and {@code weightDecays[i]} make one {@code adamW} call, with the same
     * results bit for bit. The GPU walks all tensors in one launch.
     */
    default void multiTensorAdamW(List<Tensor> params, List<Tensor> grads, List<Tensor> expAvgs,
                                  List<Tensor> expAvgSqs, float[] weightDecays,
                                  float lr, float beta1, float beta2, float eps, long step) {
        multiTensorAdamW(params, grads, expAvgs, expAvgSqs, weightDecays, lr, beta1, beta2, eps, step, 1f, null);
    }

    /**
     * {@link #multiTensorAdamW} with the gradient clip before it and the refresh of the 16-bit
     * compute weights after it folded in, so that the step reads the gradients and writes the
     * weights once: each gradient element is used as {@code g * gradScale} (rounded to F32), and
     * when {@code computeCopies} is not null its element i (F32, BF16 or F16, the size of
     * {@code params[i]}) receives the updated {@code params[i]} rounded to nearest even. The same
     * bits as {@code scale(grads[i], gradScale)}, the step, then {@code cast(params[i],
     * computeCopies[i])}, except that the gradients are left as they were.
     *
     * <p>This default, for any backend, steps on a scaled copy of each gradient and casts after;
     * the CPU and CUDA backends do it all in the one pass.
     */
    default void multiTensorAdamW(List<Tensor> params, List<Tensor> grads, List<Tensor> expAvgs,
                                  List<Tensor> expAvgSqs, float[] weightDecays,
                                  float lr, float beta1, float beta2, float eps, long step,
                                  float gradScale, List<Tensor> computeCopies) {
        TensorChecks.multiTensorAdamW(params, grads, expAvgs, expAvgSqs, weightDecays, step, computeCopies);
        long largest = grads.stream().mapToLong(Tensor::numel).max().orElse(0);
        try (TensorArena arena = TensorArena.named("adamw-scaled-grad")) {
            Tensor scaled = gradScale == 1f ? null : allocate(arena, DType.F32, largest);
            for (int i = 0; i < params.size(); i++) {
                Tensor grad = grads.get(i);
                if (scaled != null) {
                    grad = scaled.view(0, grad.numel());
                    copy(grads.get(i), grad);
                    scale(grad, gradScale);
                }
                adamW(params.get(i), grad, expAvgs.get(i), expAvgSqs.get(i), lr, beta1, beta2, eps, weightDecays[i],
                        step);
                if (computeCopies != null) {
                    cast(params.get(i), computeCopies.get(i));
                }
            }
            synchronize(); // the scaled copy is freed when the arena closes
        }
    }

    /**
     * Sum of squares of all elements, accumulated in double (for grad-norm clipping); partial
     * sums of a few hundred squares may be fp32, so the relative error stays near 1e-7.
     */
    double sumOfSquares(Tensor x);

    /** True when any element is NaN or infinite (fp16 loss-scale overflow check). */
    boolean hasInfOrNan(Tensor x);

    /** The elements equal to zero, +0 or -0 (Megatron's {@code --log-num-zeros-in-grad}); NaN is not zero. */
    long countZeros(Tensor x);

    /** Index of the largest entry of each row: logits {@code [n, v]}, out I32 {@code [n]} (ties: lowest index). */
    void argmax(Tensor logits, Tensor out);

    /**
     * {@code out[i, :] = log_softmax(logits[i, :] / temperature)} (F32 out, may alias logits when
     * F32), the building block of sampling and of log-probabilities.
     */
    void logSoftmax(Tensor logits, float temperature, Tensor out);

    @Override
    void close();
}
