package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.TransformerConfig;

/**
 * Scratch of the mixture-of-experts layers for one {@code [s, b]} shape (nothing survives from a layer's forward to
 * its backward).
 *
 * @param expertOut {@code [rows + 1, h]} the experts' outputs, the last row zero (a dropped slot gathers it); the
 *                  gradient of the outputs in backward
 * @param scaled    {@code [rows, ffn]} the activations times the routing weights (fc2's input); their gradient in
 *                  backward
 * @param dFc1      {@code [rows, fc1]} the gradient of the experts' fc1 outputs
 * @param dInput    {@code [rows + 1, h]} the gradient of the experts' inputs, the last row zero
 * @param full      {@code [s, b, h]} the combined outputs (or their gradient) before the tensor ranks' reduction
 * @param gathered  {@code [s, b, h]} one slot's gathered rows, added into {@code full}
 * @param shard     {@code [s/t, b, h]} the reduced routed output of this rank (sequence parallelism), else null
 * @param logits    {@code [s b, E]} the router logits; the gradient of this rank's rows in backward
 * @param dProb     F32 {@code [rows]} the gradient of each row's routing weight
 * @param sharedDFc1 {@code [s, b, shared fc1]} the shared experts' fc1 gradient, or null
 * @param sharedDAct {@code [s, b, shared ffn]} their SwiGLU output's gradient, or null
 * @param gateLogit  {@code [s b, 1]} the shared experts' gate logits (their gradient in backward), or null
 * @param dShared    {@code [s/t or s, b, h]} the gradient of the shared experts' output before the gate, or null
 * @param dGate      F32 {@code [s b]} the gradient of the gate's sigmoid, or null
 * @param routerX    F32 {@code [s b, h]} the router's input in F32 ({@code --moe-router-dtype fp32} with 16-bit compute),
 *                   else null
 * @param routerW    F32 {@code [E, h]} the router's 16-bit weight in F32, or null
 * @param routerDx   F32 {@code [s b, h]} the router's input gradient before its cast, or null
 */
public record MoeWorkspace(Tensor expertOut, Tensor scaled, Tensor dFc1, Tensor dInput, Tensor full, Tensor gathered,
                           Tensor shard, Tensor logits, Tensor dProb, Tensor sharedDFc1, Tensor sharedDAct, Tensor gateLogit,
                           Tensor dShared, Tensor dGate, Tensor routerX, Tensor routerW, Tensor routerDx) {

    static MoeWorkspace allocate(Backend backend, TensorArena arena, TransformerConfig c, int s, int b, int shardLength,
                                 DType dtype) {
        long n = (long) s * b;
        long rows = new TopKRouter(c.moe(), dtype).maxRows(n, s / shardLength);
        int h = c.hiddenSize();
        int shared = c.moe().sharedExpertIntermediateSize();
        boolean gate = c.moe().sharedExpertGate();
        boolean fp32Router = c.moe().routerDtypeFp32() && dtype != DType.F32;
        return new MoeWorkspace(
                backend.allocate(arena, dtype, rows + 1, h),
                backend.allocate(arena, dtype, rows, c.moe().ffnHiddenSize()),
                backend.allocate(arena, dtype, rows, c.expertFc1Width()),
                backend.allocate(arena, dtype, rows + 1, h),
                backend.allocate(arena, dtype, s, b, h),
                backend.allocate(arena, dtype, s, b, h),
                shardLength == s ? null : backend.allocate(arena, dtype, shardLength, b, h),
                backend.allocate(arena, fp32Router ? DType.F32 : dtype, n, c.moe().numExperts()),
                backend.allocate(arena, DType.F32, rows),
                shared == 0 ? null : backend.allocate(arena, dtype, s, b, c.sharedExpertFc1Width()),
                shared == 0 || !c.swiglu() ? null : backend.allocate(arena, dtype, s, b, shared),
                gate ? backend.allocate(arena, dtype, n, 1) : null,
                gate ? backend.allocate(arena, dtype, shardLength, b, h) : null,
                gate ? backend.allocate(arena, DType.F32, n) : null,
                fp32Router ? backend.allocate(arena, DType.F32, n, h) : null,
                fp32Router ? backend.allocate(arena, DType.F32, c.moe().numExperts(), h) : null,
                fp32Router ? backend.allocate(arena, DType.F32, n, h) : null);
    }
}
