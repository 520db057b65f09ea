package org.megatronj.memory.cpu;

import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorException;

import java.util.Arrays;

/**
 * Argument checks shared by the CPU kernels. Every failure names the op, what it was given
 * (shapes, dtypes) and what it expected, so a bad call is fixed from the message alone.
 */
final class Checks {
    private Checks() {
    }

    static TensorException fail(String op, String message) {
        return new TensorException(op + ": " + message);
    }

    /** The tensor is non-null, alive and in host memory. */
    static Tensor host(String op, String name, Tensor t) {
        if (t == null) {
            throw fail(op, name + " is null");
        }
        if (!t.isAlive()) {
            String arena = t.arena() == null ? "its memory" : "arena '" + t.arena().name() + "'";
            throw fail(op, name + " " + t + " was freed (" + arena + " is closed)");
        }
        if (!t.device().isHost()) {
            throw fail(op, name + " " + t + " is on " + t.device() + "; the CPU backend needs host tensors");
        }
        return t;
    }

    /** Host tensor whose dtype is F32, BF16 or F16. */
    static Tensor floating(String op, String name, Tensor t) {
        host(op, name, t);
        if (!t.dtype().isFloatingPoint()) {
            throw fail(op, name + " is " + t.dtype() + Tensor.shapeString(t.shape()) + "; expected F32, BF16 or F16");
        }
        return t;
    }

    static Tensor dtype(String op, String name, Tensor t, DType expected) {
        host(op, name, t);
        if (t.dtype() != expected) {
            throw fail(op, name + " is " + t.dtype() + Tensor.shapeString(t.shape()) + "; expected " + expected);
        }
        return t;
    }

    static void sameShape(String op, String nameA, Tensor a, String nameB, Tensor b) {
        if (!Arrays.equals(a.shape(), b.shape())) {
            throw fail(op, nameA + " has shape " + Tensor.shapeString(a.shape()) + " but " + nameB + " has shape "
                    + Tensor.shapeString(b.shape()) + "; expected equal shapes");
        }
    }

    static void sameNumel(String op, String nameA, Tensor a, String nameB, Tensor b) {
        if (a.numel() != b.numel()) {
            throw fail(op, nameA + " " + Tensor.shapeString(a.shape()) + " has " + a.numel() + " elements but "
                    + nameB + " " + Tensor.shapeString(b.shape()) + " has " + b.numel() + "; expected equal counts");
        }
    }

    static void shape(String op, String name, Tensor t, long... expected) {
        if (!Arrays.equals(t.shape(), expected)) {
            throw fail(op, name + " has shape " + Tensor.shapeString(t.shape()) + "; expected " + Tensor.shapeString(expected));
        }
    }

    static void numel(String op, String name, Tensor t, long expected, String what) {
        if (t.numel() != expected) {
            throw fail(op, name + " has shape " + Tensor.shapeString(t.shape()) + " (" + t.numel()
                    + " elements); expected " + expected + " elements (" + what + ")");
        }
    }

    static void rank(String op, String name, Tensor t, int expected, String layout) {
        if (t.rank() != expected) {
            throw fail(op, name + " has shape " + Tensor.shapeString(t.shape()) + "; expected " + expected + "-D " + layout);
        }
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
}
