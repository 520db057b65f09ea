package org.megatronj.memory.cpu;

import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;

import static org.megatronj.memory.TensorChecks.alive;
import static org.megatronj.memory.TensorChecks.dtypeIs;
import static org.megatronj.memory.TensorChecks.fail;
import static org.megatronj.memory.TensorChecks.floatingDtype;
import static org.megatronj.memory.TensorChecks.numel;
import static org.megatronj.memory.TensorChecks.rank;
import static org.megatronj.memory.TensorChecks.sameShape;
import static org.megatronj.memory.TensorChecks.shape;

/**
 * Argument checks of the CPU kernels: host memory, and the shape rules of each op, on top of
 * the checks every backend shares ({@link org.megatronj.memory.TensorChecks}).
 */
final class Checks {
    private Checks() {
    }

    /** The tensor is non-null, alive and in host memory. */
    static Tensor host(String op, String name, Tensor t) {
        alive(op, name, t);
        if (!t.device().isHost()) {
            throw fail(op, name + " " + t + " is on " + t.device() + "; the CPU backend needs host tensors");
        }
        return t;
    }

    /** Host tensor whose dtype is F32, BF16 or F16. */
    static Tensor floating(String op, String name, Tensor t) {
        return floatingDtype(op, name, host(op, name, t));
    }

    static Tensor dtype(String op, String name, Tensor t, DType expected) {
        return dtypeIs(op, name, host(op, name, t), expected);
    }

    /** Number of columns (last dimension); rank-0 tensors are one column. */
    static long cols(Tensor t) {
        return t.rank() == 0 ? 1 : t.dim(-1);
    }

    static long rows(Tensor t) {
        long c = cols(t);
        return c == 0 ? 0 : t.numel() / c;
    }

    /** A count that indexes Java arrays (row widths, head dims). */
    static int toInt(String op, String what, long v) {
        if (v > Integer.MAX_VALUE - 64) {
            throw fail(op, what + " = " + v + " is too large for the CPU kernels (at most ~2^31)");
        }
        return (int) v;
    }

    // ---------------------------------------------------------------- per-op shape rules

    /** x {@code [..., 2f]} and y {@code [..., f]} with the same leading dims; returns f. */
    static int checkSwiglu(String op, Tensor x, String yName, Tensor y) {
        long twoF = cols(x);
        if (x.rank() == 0 || twoF % 2 != 0 || y.rank() != x.rank() || cols(y) * 2 != twoF || rows(x) != rows(y)) {
            throw fail(op, "x has shape " + Tensor.shapeString(x.shape()) + " and " + yName + " "
                    + Tensor.shapeString(y.shape()) + "; expected x [..., 2f] (even last dim) and " + yName
                    + " [..., f] with the same leading dims");
        }
        return toInt(op, "f", twoF / 2);
    }

    static int checkEmbedding(String op, Tensor ids, Tensor table, String outName, Tensor out) {
        rank(op, "table", table, 2, "[vocab, h]");
        long h = table.dim(1);
        if (cols(out) != h || out.numel() != ids.numel() * h) {
            throw fail(op, outName + " has shape " + Tensor.shapeString(out.shape()) + " for ids "
                    + Tensor.shapeString(ids.shape()) + " and table " + Tensor.shapeString(table.shape())
                    + "; expected [" + ids.numel() + ", " + h + "] or ids' shape + [" + h + "]");
        }
        return toInt(op, "h", h);
    }

    /** x and out the same shape, gamma of length h = x's last dim; returns h. */
    static int checkNorm(String op, Tensor x, Tensor gamma, Tensor out) {
        floating(op, "x", x);
        floating(op, "gamma", gamma);
        floating(op, "out", out);
        sameShape(op, "x", x, "out", out);
        int h = toInt(op, "h", cols(x));
        if (h == 0) {
            throw fail(op, "x has shape " + Tensor.shapeString(x.shape()) + "; expected a non-empty last dimension");
        }
        checkVector(op, "gamma", gamma, h, x);
        return h;
    }

    static void checkStats(String op, String name, Tensor stats, Tensor x) {
        dtype(op, name, stats, DType.F32);
        numel(op, name, stats, rows(x), "one F32 per row of x " + Tensor.shapeString(x.shape()));
    }

    static void checkParamGrad(String op, String name, Tensor grad, int h, Tensor x) {
        if (grad != null) {
            dtype(op, name, grad, DType.F32);
            checkVector(op, name, grad, h, x);
        }
    }

    /** A per-column vector: {@code len} elements, matching the last dim of {@code of}. */
    static void checkVector(String op, String name, Tensor t, long len, Tensor of) {
        if (t.numel() != len || t.rank() > 1 && cols(t) != len) {
            throw fail(op, name + " has shape " + Tensor.shapeString(t.shape()) + "; expected [" + len
                    + "] to match the last dimension of " + Tensor.shapeString(of.shape()));
        }
    }

    static void checkLse(String op, Tensor lse, AttentionShape a) {
        dtype(op, "lse", lse, DType.F32);
        shape(op, "lse", lse, a.batch(), a.np(), a.s());
    }

    static int[] keyLengths(String op, Tensor keyLengths, AttentionShape a) {
        if (keyLengths == null) {
            return null;
        }
        dtype(op, "keyLengths", keyLengths, DType.I32);
        shape(op, "keyLengths", keyLengths, a.batch());
        int[] lengths = new int[a.batch()];
        for (int b = 0; b < lengths.length; b++) {
            lengths[b] = FloatRows.getInt(keyLengths, b);
            if (lengths[b] < 0 || lengths[b] > a.sk()) {
                throw fail(op, "keyLengths[" + b + "] = " + lengths[b] + "; expected 0 <= length <= sk = " + a.sk());
            }
        }
        return lengths;
    }

    /** I32 {@code [b, s]}, each start in {@code [0, sk]}; null stays null. */
    static int[] keyStarts(String op, Tensor keyStarts, AttentionShape a) {
        if (keyStarts == null) {
            return null;
        }
        dtype(op, "keyStarts", keyStarts, DType.I32);
        shape(op, "keyStarts", keyStarts, a.batch(), a.s());
        int[] starts = new int[a.batch() * a.s()];
        for (int e = 0; e < starts.length; e++) {
            starts[e] = FloatRows.getInt(keyStarts, e);
            if (starts[e] < 0 || starts[e] > a.sk()) {
                throw fail(op, "keyStarts[" + e / a.s() + ", " + e % a.s() + "] = " + starts[e]
                        + "; expected 0 <= start <= sk = " + a.sk());
            }
        }
        return starts;
    }

    /** Logits {@code [n, v]} (or any leading dims); returns v. */
    static int checkLogits(String op, Tensor logits) {
        floating(op, "logits", logits);
        if (logits.rank() < 1 || cols(logits) == 0) {
            throw fail(op, "logits has shape " + Tensor.shapeString(logits.shape()) + "; expected [n, vocab] with vocab > 0");
        }
        return toInt(op, "vocab", cols(logits));
    }

    static void checkPerRow(String op, String name, Tensor t, Tensor logits) {
        dtype(op, name, t, DType.F32);
        numel(op, name, t, rows(logits), "one F32 per row of logits " + Tensor.shapeString(logits.shape()));
    }

    static void checkTargets(String op, Tensor targets, Tensor logits) {
        dtype(op, "targets", targets, DType.I32);
        numel(op, "targets", targets, rows(logits), "one I32 id per row of logits " + Tensor.shapeString(logits.shape()));
    }
}
