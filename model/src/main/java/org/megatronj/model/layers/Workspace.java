package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.TransformerConfig;

/**
 * Scratch buffers shared by all layers of one {@code [s, b]} shape: nothing here survives from a
 * layer's forward to its backward. Also the gather indices of the fused QKV layout for this
 * shape ({@link QkvLayout}).
 *
 * @param qkv        {@code [s, b, (np + 2ng) d]} fused QKV output; its gradient in backward
 * @param hiddenA    {@code [s, b, h]} a branch output before dropout; a gradient in backward
 * @param hiddenB    {@code [s, b, h]} a second hidden-sized scratch
 * @param dAttn      {@code [s, b, np, d]} gradient of the core attention output
 * @param dqkvStack  {@code [s b (np + 2ng) d]} flat: dq, dk, dv back to back (the views below)
 * @param dq         {@code [s, b, np, d]}
 * @param dk         {@code [s, b, ng, d]}
 * @param dv         {@code [s, b, ng, d]}
 * @param dFc1       {@code [s, b, fc1Width]} gradient of fc1's output
 * @param dAct       {@code [s, b, ffn]} gradient of SwiGLU's output (null without: fc2's input gradient
 *                   goes through the activation's derivative into dFc1 in the same op)
 * @param queryRows  I32 {@code [s b np]}: fused-table row of each query head vector
 * @param keyRows    I32 {@code [s b ng]}
 * @param valueRows  I32 {@code [s b ng]}
 * @param mergeRows  I32 {@code [s b (np + 2ng)]}: stacked-gradient row of each fused row (backward only)
 * @param shardA     {@code [s/t, b, h]} a sequence-parallel shard of a hidden state or its gradient;
 *                   without sequence parallelism the same buffer as hiddenA
 * @param shardB     {@code [s/t, b, h]} a second one (hiddenB without sequence parallelism)
 * @param moe        the mixture-of-experts layers' scratch, or null for a dense model
 * @param mla        the multi-latent attention's scratch and gather indices, or null for standard attention (dAttn, dq,
 *                   dk, dv then have MLA's head dim and np key/value heads)
 */
public record Workspace(Tensor qkv, Tensor hiddenA, Tensor hiddenB, Tensor dAttn, Tensor dqkvStack,
                        Tensor dq, Tensor dk, Tensor dv, Tensor dFc1, Tensor dAct,
                        Tensor queryRows, Tensor keyRows, Tensor valueRows, Tensor mergeRows,
                        Tensor shardA, Tensor shardB, MoeWorkspace moe, MlaWorkspace mla) {

    /** Scratch for forward and backward. */
    public static Workspace allocate(Backend backend, TensorArena arena, TransformerConfig c, int s, int b) {
        return allocate(backend, arena, c, s, b, true, s, DType.F32);
    }

    /** Scratch for forward and backward with sequence-parallel shards of {@code shardLength} positions. */
    public static Workspace allocate(Backend backend, TensorArena arena, TransformerConfig c, int s, int b, int shardLength) {
        return allocate(backend, arena, c, s, b, true, shardLength, DType.F32);
    }

    /** As {@link #allocate(Backend, TensorArena, TransformerConfig, int, int, int)} in {@code dtype} (the compute dtype). */
    public static Workspace allocate(Backend backend, TensorArena arena, TransformerConfig c, int s, int b, int shardLength,
                                     DType dtype) {
        return allocate(backend, arena, c, s, b, true, shardLength, dtype);
    }

    /** Scratch for forward only (inference): the gradient buffers are left out (null). */
    public static Workspace allocateForward(Backend backend, TensorArena arena, TransformerConfig c, int s, int b) {
        return allocateForward(backend, arena, c, s, b, DType.F32);
    }

    /** {@link #allocateForward(Backend, TensorArena, TransformerConfig, int, int)} in {@code dtype} (the compute dtype). */
    public static Workspace allocateForward(Backend backend, TensorArena arena, TransformerConfig c, int s, int b, DType dtype) {
        return allocate(backend, arena, c, s, b, false, s, dtype);
    }

    private static Workspace allocate(Backend backend, TensorArena arena, TransformerConfig c, int s, int b, boolean grads,
                                      int shardLength, DType dtype) {
        int h = c.hiddenSize();
        int d = c.attentionHeadDim();
        int np = c.numAttentionHeads();
        int ng = c.attentionKeyValueHeads();
        int n = Math.multiplyExact(s, b);
        DType f = dtype;
        Tensor stack = grads ? backend.allocate(arena, f, (long) n * (np + 2L * ng) * d) : null;
        long qEnd = (long) n * np * d;
        long kEnd = qEnd + (long) n * ng * d;
        Tensor hiddenA = backend.allocate(arena, f, s, b, h);
        Tensor hiddenB = backend.allocate(arena, f, s, b, h);
        boolean split = shardLength != s;
        boolean dense = c.moe() == null || LayerActivations.hasDenseLayer(c);
        return new Workspace(
                backend.allocate(arena, f, s, b, c.qkvWidth()),
                hiddenA,
                hiddenB,
                grads ? backend.allocate(arena, f, s, b, np, d) : null,
                stack,
                grads ? stack.view(0, qEnd).reshape(s, b, np, d) : null,
                grads ? stack.view(qEnd, kEnd).reshape(s, b, ng, d) : null,
                grads ? stack.view(kEnd, stack.numel()).reshape(s, b, ng, d) : null,
                grads && dense ? backend.allocate(arena, f, s, b, c.fc1Width()) : null,
                grads && c.swiglu() && dense ? backend.allocate(arena, f, s, b, c.ffnHiddenSize()) : null,
                indices(backend, arena, QkvLayout.queryRows(n, np, ng)),
                indices(backend, arena, QkvLayout.keyValueRows(n, np, ng, false)),
                indices(backend, arena, QkvLayout.keyValueRows(n, np, ng, true)),
                grads ? indices(backend, arena, QkvLayout.fusedRowsFromStacked(n, np, ng)) : null,
                split ? backend.allocate(arena, f, shardLength, b, h) : hiddenA,
                split ? backend.allocate(arena, f, shardLength, b, h) : hiddenB,
                c.moe() == null ? null : MoeWorkspace.allocate(backend, arena, c, s, b, shardLength, f),
                c.mla() == null ? null : MlaWorkspace.allocate(backend, arena, c, s, b, grads, shardLength, f));
    }

    /** This scratch with the shared experts' MLP gradients in place of the dense MLP's. */
    Workspace forSharedExperts() {
        return new Workspace(qkv, hiddenA, hiddenB, dAttn, dqkvStack, dq, dk, dv, moe.sharedDFc1(), moe.sharedDAct(),
                queryRows, keyRows, valueRows, mergeRows, shardA, shardB, moe, mla);
    }

    private static Tensor indices(Backend backend, TensorArena arena, int[] rows) {
        Tensor t = backend.allocate(arena, DType.I32, rows.length);
        HostTransfer.uploadInts(backend, rows, t);
        return t;
    }

    /** The forward buffers restricted to the first {@code s} positions (inference; the gradient buffers are dropped). */
    public Workspace firstPositions(int s) {
        long full = qkv.dim(0);
        long b = qkv.dim(1);
        return new Workspace(qkv.view(0, s), hiddenA.view(0, s), hiddenB.view(0, s), null, null, null, null, null, null, null,
                queryRows.view(0, queryRows.numel() / full * s), keyRows.view(0, keyRows.numel() / full * s),
                valueRows.view(0, valueRows.numel() / full * s), null, hiddenA.view(0, s), hiddenB.view(0, s), moe,
                mla == null ? null : mla.firstPositions(s));
    }
}
