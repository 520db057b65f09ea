package org.megatronj.memory.cuda;

import java.util.Arrays;

import org.megatronj.memory.DType;
import org.megatronj.memory.Device;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorException;

/** Argument checks of the CUDA backend; every failure names the op, what it got and what it expected. */
final class DeviceChecks {
    private DeviceChecks() {
    }

    static TensorException fail(String op, String message) {
        return new TensorException(op + ": " + message);
    }

    static Tensor alive(String op, String name, Tensor t) {
        if (t == null) {
            throw fail(op, name + " is null");
        }
        if (!t.isAlive()) {
            String arena = t.arena() == null ? "its memory" : "arena '" + t.arena().name() + "'";
            throw fail(op, name + " " + t + " was freed (" + arena + " is closed)");
        }
        return t;
    }

    /** Alive and in device memory. */
    static Tensor device(String op, String name, Tensor t) {
        alive(op, name, t);
        if (t.device() != Device.CUDA) {
            throw fail(op, name + " " + t + " is in host memory; the CUDA backend needs device tensors (copy it with "
                    + "backend.copy first)");
        }
        return t;
    }

    /** Device tensor of F32, BF16 or F16. */
    static Tensor floating(String op, String name, Tensor t) {
        device(op, name, t);
        if (!t.dtype().isFloatingPoint()) {
            throw fail(op, name + " is " + t.dtype() + Tensor.shapeString(t.shape()) + "; expected F32, BF16 or F16");
        }
        return t;
    }

    static Tensor dtype(String op, String name, Tensor t, DType expected) {
        device(op, name, t);
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
            throw fail(op, nameA + " " + Tensor.shapeString(a.shape()) + " has " + a.numel() + " elements but " + nameB
                    + " " + Tensor.shapeString(b.shape()) + " has " + b.numel() + "; expected equal counts");
        }
    }

    static void shape(String op, String name, Tensor t, long... expected) {
        if (!Arrays.equals(t.shape(), expected)) {
            throw fail(op, name + " has shape " + Tensor.shapeString(t.shape()) + "; expected " + Tensor.shapeString(expected));
        }
    }

    static void rank(String op, String name, Tensor t, int expected, String layout) {
        if (t.rank() != expected) {
            throw fail(op, name + " has shape " + Tensor.shapeString(t.shape()) + "; expected " + expected + "-D " + layout);
        }
    }

    static void numel(String op, String name, Tensor t, long expected, String what) {
        if (t.numel() != expected) {
            throw fail(op, name + " has shape " + Tensor.shapeString(t.shape()) + " (" + t.numel() + " elements); expected "
                    + expected + " elements (" + what + ")");
        }
    }

    /** The last dimension as an int (rows kernels index columns with int). */
    static int cols(String op, String name, Tensor t) {
        if (t.rank() == 0) {
            throw fail(op, name + " is a scalar; expected at least 1 dimension");
        }
        long c = t.dim(-1);
        if (c > Integer.MAX_VALUE) {
            throw fail(op, name + " has " + c + " columns; at most " + Integer.MAX_VALUE + " supported");
        }
        return (int) c;
    }

    /** Kernel dtype code (common.cuh): 0 F32, 1 BF16, 2 F16, 3 I32. */
    static int code(String op, Tensor t) {
        return switch (t.dtype()) {
            case F32 -> 0;
            case BF16 -> 1;
            case F16 -> 2;
            case I32 -> 3;
            default -> throw fail(op,
                    t + " has dtype " + t.dtype() + "; the CUDA kernels take F32, BF16, F16 (and I32 for fill)");
        };
    }
}
