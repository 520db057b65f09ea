package org.megatronj.memory;

import java.util.Arrays;

/**
 * Argument checks every backend shares. Each failure names the op, what it was given (shapes,
 * dtypes) and what it expected, so a bad call is fixed from the message alone. Backends add
 * their own device checks (host memory for the CPU, device memory for CUDA) on top.
 */
public final class TensorChecks {
    private TensorChecks() {
    }

    public static TensorException fail(String op, String message) {
        return new TensorException(op + ": " + message);
    }

    /** Non-null and not freed. */
    public static Tensor alive(String op, String name, Tensor t) {
        if (t == null) {
            throw fail(op, name + " is null");
        }
        if (!t.isAlive()) {
            String arena = t.arena() == null ? "its memory" : "arena '" + t.arena().name() + "'";
            throw fail(op, name + " " + t + " was freed (" + arena + " is closed)");
        }
        return t;
    }

    public static void sameShape(String op, String nameA, Tensor a, String nameB, Tensor b) {
        if (!Arrays.equals(a.shape(), b.shape())) {
            throw fail(op, nameA + " has shape " + Tensor.shapeString(a.shape()) + " but " + nameB + " has shape "
                    + Tensor.shapeString(b.shape()) + "; expected equal shapes");
        }
    }

    public static void sameNumel(String op, String nameA, Tensor a, String nameB, Tensor b) {
        if (a.numel() != b.numel()) {
            throw fail(op, nameA + " " + Tensor.shapeString(a.shape()) + " has " + a.numel() + " elements but "
                    + nameB + " " + Tensor.shapeString(b.shape()) + " has " + b.numel() + "; expected equal counts");
        }
    }

    public static void shape(String op, String name, Tensor t, long... expected) {
        if (!Arrays.equals(t.shape(), expected)) {
            throw fail(op, name + " has shape " + Tensor.shapeString(t.shape()) + "; expected " + Tensor.shapeString(expected));
        }
    }

    public static void numel(String op, String name, Tensor t, long expected, String what) {
        if (t.numel() != expected) {
            throw fail(op, name + " has shape " + Tensor.shapeString(t.shape()) + " (" + t.numel()
                    + " elements); expected " + expected + " elements (" + what + ")");
        }
    }

    public static void rank(String op, String name, Tensor t, int expected, String layout) {
        if (t.rank() != expected) {
            throw fail(op, name + " has shape " + Tensor.shapeString(t.shape()) + "; expected " + expected + "-D " + layout);
        }
    }

    /** {@code t} has a floating point dtype (F32, BF16 or F16). */
    public static Tensor floatingDtype(String op, String name, Tensor t) {
        if (!t.dtype().isFloatingPoint()) {
            throw fail(op, name + " is " + t.dtype() + Tensor.shapeString(t.shape()) + "; expected F32, BF16 or F16");
        }
        return t;
    }

    public static Tensor dtypeIs(String op, String name, Tensor t, DType expected) {
        if (t.dtype() != expected) {
            throw fail(op, name + " is " + t.dtype() + Tensor.shapeString(t.shape()) + "; expected " + expected);
        }
        return t;
    }
}
