package org.megatronj.memory.cpu;

import org.megatronj.memory.TensorChecks;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorException;

/**
 * The sizes of one attention call in Megatron's layout: q {@code [s, b, np, d]}, k and v
 * {@code [sk, b, ng, d]}, lse {@code [b, np, s]}; and the index arithmetic on them.
 */
record AttentionShape(int s, int sk, int batch, int np, int ng, int d) {

    static AttentionShape of(String op, Tensor q, Tensor k, Tensor v) {
        TensorChecks.rank(op, "q", q, 4, "[s, b, np, d]");
        TensorChecks.rank(op, "k", k, 4, "[sk, b, ng, d]");
        TensorChecks.sameShape(op, "k", k, "v", v);
        if (k.dim(1) != q.dim(1) || k.dim(3) != q.dim(3)) {
            throw new TensorException(op + ": q " + Tensor.shapeString(q.shape()) + " and k "
                    + Tensor.shapeString(k.shape()) + " differ in batch or head dim; expected q [s, b, np, d], k [sk, b, ng, d]");
        }
        if (k.dim(2) == 0 || q.dim(2) % k.dim(2) != 0) {
            throw new TensorException(op + ": " + q.dim(2) + " query heads (q " + Tensor.shapeString(q.shape())
                    + ") are not a multiple of " + k.dim(2) + " key/value groups (k " + Tensor.shapeString(k.shape()) + ")");
        }
        return new AttentionShape(Checks.toInt(op, "s", q.dim(0)), Checks.toInt(op, "sk", k.dim(0)),
                Checks.toInt(op, "b", q.dim(1)), Checks.toInt(op, "np", q.dim(2)), Checks.toInt(op, "ng", k.dim(2)),
                Checks.toInt(op, "d", q.dim(3)));
    }

    /** Query heads per key/value group. */
    int headsPerGroup() {
        return np / ng;
    }

    /** Offset of q/out row {@code (i, b, h)}. */
    long qOffset(int i, int b, int h) {
        return (((long) i * batch + b) * np + h) * d;
    }

    /** Offset of k/v row {@code (j, b, g)}. */
    long kOffset(int j, int b, int g) {
        return (((long) j * batch + b) * ng + g) * d;
    }

    /** Offset of lse entry {@code (b, h, i)}. */
    long lseOffset(int b, int h, int i) {
        return ((long) b * np + h) * s + i;
    }
}
