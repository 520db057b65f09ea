package org.megatronj.model.layers;

import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorException;

import java.lang.foreign.MemorySegment;
import java.util.stream.LongStream;

/**
 * Megatron-core's fused QKV layout. Each token's {@code linear_qkv} output of width
 * {@code (np + 2 ng) d} holds, for every query group g in turn, the group's
 * {@code np/ng} query heads, then its key head, then its value head:
 * <pre>
 *   [ q(g0,h0) .. q(g0,h_{p-1}) k(g0) v(g0) | q(g1,h0) .. | ... ]     (each block d wide)
 * </pre>
 * so that a tensor-parallel split along the output dim keeps whole groups together.
 * {@link #split} separates that into q {@code [s, b, np, d]}, k and v {@code [s, b, ng, d]}
 * (the attention op's layout), {@link #merge} is its gradient.
 *
 * <p>These are strided copies on host memory; a device backend will need a kernel for them.
 */
public final class QkvLayout {
    private static final long TOKENS_PER_TASK = 256;

    private final int groups;
    private final int headsPerGroup;
    private final int headDim;

    public QkvLayout(int numHeads, int numGroups, int headDim) {
        this.groups = numGroups;
        this.headsPerGroup = numHeads / numGroups;
        this.headDim = headDim;
    }

    /** qkv {@code [s, b, (np + 2ng) d]} -> q {@code [s, b, np, d]}, k, v {@code [s, b, ng, d]} (written). */
    public void split(Tensor qkv, Tensor q, Tensor k, Tensor v) {
        copy(qkv, q, k, v, true);
    }

    /** dq, dk, dv -> dqkv (written): the inverse of {@link #split}. */
    public void merge(Tensor dq, Tensor dk, Tensor dv, Tensor dqkv) {
        copy(dqkv, dq, dk, dv, false);
    }

    private void copy(Tensor fused, Tensor q, Tensor k, Tensor v, boolean toSeparate) {
        String op = toSeparate ? "qkv split" : "qkv merge";
        for (Tensor t : new Tensor[] {fused, q, k, v}) {
            if (!t.device().isHost()) {
                throw new TensorException(op + ": " + t + " is on " + t.device()
                        + "; the fused QKV layout is converted on the host only (no device kernel yet)");
            }
            if (t.dtype() != fused.dtype()) {
                throw new TensorException(op + ": dtypes differ: fused " + fused + ", q " + q + ", k " + k + ", v " + v);
            }
        }
        long qWidth = (long) headsPerGroup * headDim;
        long fusedWidth = (long) groups * (headsPerGroup + 2) * headDim;
        long tokens = fused.numel() / fusedWidth;
        if (fused.numel() != tokens * fusedWidth || q.numel() != tokens * groups * qWidth
                || k.numel() != tokens * groups * headDim || v.numel() != tokens * groups * headDim) {
            throw new TensorException(op + ": shapes do not fit " + groups + " groups of " + headsPerGroup
                    + " query heads of dim " + headDim + ": fused " + fused + ", q " + q + ", k " + k + ", v " + v);
        }
        long e = fused.dtype().byteSize();
        MemorySegment f = fused.segment();
        MemorySegment qs = q.segment();
        MemorySegment ks = k.segment();
        MemorySegment vs = v.segment();
        long blocks = (tokens + TOKENS_PER_TASK - 1) / TOKENS_PER_TASK;
        LongStream range = LongStream.range(0, blocks);
        // Memory-bound copies; spread big ones over the common pool (the backend's kernels are not running meanwhile).
        (blocks > 1 ? range.parallel() : range).forEach(block -> {
            long end = Math.min(tokens, (block + 1) * TOKENS_PER_TASK);
            for (long t = block * TOKENS_PER_TASK; t < end; t++) {
                for (int g = 0; g < groups; g++) {
                    long src = (t * fusedWidth + g * (qWidth + 2L * headDim)) * e;
                    long qOff = (t * groups + g) * qWidth * e;
                    long kvOff = (t * groups + g) * (long) headDim * e;
                    if (toSeparate) {
                        MemorySegment.copy(f, src, qs, qOff, qWidth * e);
                        MemorySegment.copy(f, src + qWidth * e, ks, kvOff, headDim * e);
                        MemorySegment.copy(f, src + (qWidth + headDim) * e, vs, kvOff, headDim * e);
                    } else {
                        MemorySegment.copy(qs, qOff, f, src, qWidth * e);
                        MemorySegment.copy(ks, kvOff, f, src + qWidth * e, headDim * e);
                        MemorySegment.copy(vs, kvOff, f, src + (qWidth + headDim) * e, headDim * e);
                    }
                }
            }
        });
    }
}
