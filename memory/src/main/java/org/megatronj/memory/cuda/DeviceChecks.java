package org.megatronj.memory.cuda;

import org.megatronj.memory.DType;
import org.megatronj.memory.Device;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorChecks;

import static org.megatronj.memory.TensorChecks.alive;
import static org.megatronj.memory.TensorChecks.dtypeIs;
import static org.megatronj.memory.TensorChecks.fail;
import static org.megatronj.memory.TensorChecks.floatingDtype;

/**
 * Argument checks of the CUDA backend: device memory and kernel dtype codes, on top of the checks
 * every backend shares ({@link TensorChecks}).
 */
final class DeviceChecks {
    private DeviceChecks() {
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
        return floatingDtype(op, name, device(op, name, t));
    }

    static Tensor dtype(String op, String name, Tensor t, DType expected) {
        return dtypeIs(op, name, device(op, name, t), expected);
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
