package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.TransformerConfig;

/**
 * Scratch buffers shared by all layers of one {@code [s, b]} shape: nothing here survives from a
 * layer's forward to its backward.
 *
 * @param qkv     {@code [s, b, (np + 2ng) d]} fused QKV output; its gradient in backward
 * @param hiddenA {@code [s, b, h]} a branch output before dropout; a gradient in backward
 * @param hiddenB {@code [s, b, h]} a second hidden-sized scratch
 * @param dAttn   {@code [s, b, np, d]} gradient of the core attention output
 * @param dq      {@code [s, b, np, d]}
 * @param dk      {@code [s, b, ng, d]}
 * @param dv      {@code [s, b, ng, d]}
 * @param dFc1    {@code [s, b, fc1Width]} gradient of fc1's output
 * @param dAct    {@code [s, b, ffn]} gradient of the activation's output
 */
public record Workspace(Tensor qkv, Tensor hiddenA, Tensor hiddenB, Tensor dAttn, Tensor dq, Tensor dk, Tensor dv,
                        Tensor dFc1, Tensor dAct) {

    /** Scratch for forward and backward. */
    public static Workspace allocate(Backend backend, TensorArena arena, TransformerConfig c, int s, int b) {
        return allocate(backend, arena, c, s, b, true);
    }

    /** Scratch for forward only (inference): the gradient buffers are left out (null). */
    public static Workspace allocateForward(Backend backend, TensorArena arena, TransformerConfig c, int s, int b) {
        return allocate(backend, arena, c, s, b, false);
    }

    private static Workspace allocate(Backend backend, TensorArena arena, TransformerConfig c, int s, int b, boolean grads) {
        int h = c.hiddenSize();
        int d = c.kvChannels();
        DType f = DType.F32;
        return new Workspace(
                backend.allocate(arena, f, s, b, c.qkvWidth()),
                backend.allocate(arena, f, s, b, h),
                backend.allocate(arena, f, s, b, h),
                grads ? backend.allocate(arena, f, s, b, c.numAttentionHeads(), d) : null,
                grads ? backend.allocate(arena, f, s, b, c.numAttentionHeads(), d) : null,
                grads ? backend.allocate(arena, f, s, b, c.numQueryGroups(), d) : null,
                grads ? backend.allocate(arena, f, s, b, c.numQueryGroups(), d) : null,
                grads ? backend.allocate(arena, f, s, b, c.fc1Width()) : null,
                grads ? backend.allocate(arena, f, s, b, c.ffnHiddenSize()) : null);
    }

    /** The forward buffers restricted to the first {@code s} positions. */
    public Workspace firstPositions(int s) {
        return new Workspace(qkv.view(0, s), hiddenA.view(0, s), hiddenB.view(0, s),
                dAttn == null ? null : dAttn.view(0, s), dq == null ? null : dq.view(0, s),
                dk == null ? null : dk.view(0, s), dv == null ? null : dv.view(0, s),
                dFc1 == null ? null : dFc1.view(0, s), dAct == null ? null : dAct.view(0, s));
    }
}
