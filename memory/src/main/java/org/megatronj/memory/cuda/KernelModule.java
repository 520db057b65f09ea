package org.megatronj.memory.cuda;

import static org.megatronj.bindings.cuda.cuda_h.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.HashMap;
import java.util.Map;

/**
 * Our kernels on one device: the fatbin loaded with {@code cuModuleLoadData}, functions looked
 * up by their {@code extern "C"} names and launched with {@code cuLaunchKernel}. Kernel
 * arguments are passed as Java values whose width must match the C parameter: {@code Long}
 * for pointers, {@code long long} and {@code unsigned long long}; {@code Integer} for
 * {@code int}; {@code Float} for {@code float}.
 */
final class KernelModule implements AutoCloseable {
    private final MemorySegment module;
    private final Map<String, MemorySegment> functions = new HashMap<>();
    private final Map<String, Integer> sharedLimits = new HashMap<>();
    private static final int MAX_ARGS = 32;
    private final Arena slots = Arena.ofShared();
    private final MemorySegment argValues = slots.allocate((long) MAX_ARGS * Long.BYTES, Long.BYTES); // one 8-byte slot per argument
    private final MemorySegment argPointers = slots.allocate(ValueLayout.ADDRESS, MAX_ARGS);           // void** kernelParams
    private boolean closed;

    KernelModule() {
        byte[] image = KernelImage.load().orElseThrow(() -> new CudaException("the CUDA kernels are missing: "
                + KernelImage.RESOURCE + " is not on the class path (the native module was built without nvcc; "
                + "rebuild on a machine with the CUDA toolkit, or set NVCC=/path/to/nvcc)", null));
        for (int i = 0; i < MAX_ARGS; i++) {
            argPointers.setAtIndex(ValueLayout.ADDRESS, i, argValues.asSlice((long) i * Long.BYTES));
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment data = arena.allocate(image.length, 16);
            MemorySegment.copy(image, 0, data, ValueLayout.JAVA_BYTE, 0, image.length);
            MemorySegment p = arena.allocate(ValueLayout.ADDRESS);
            CudaCheck.driver("cuModuleLoadData", cuModuleLoadData(p, data),
                    "loading " + KernelImage.RESOURCE + " (" + KernelImage.architectures(image) + ")");
            module = p.get(ValueLayout.ADDRESS, 0);
        }
    }

    synchronized MemorySegment function(String name) {
        MemorySegment f = functions.get(name);
        if (f == null) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment p = arena.allocate(ValueLayout.ADDRESS);
                CudaCheck.driver("cuModuleGetFunction", cuModuleGetFunction(p, module, arena.allocateFrom(name)),
                        "kernel " + name);
                f = p.get(ValueLayout.ADDRESS, 0);
            }
            functions.put(name, f);
        }
        return f;
    }

    /** Raises a kernel's dynamic shared memory limit (needed above 48 KiB), once per size. */
    synchronized void requireSharedMemory(String name, int bytes) {
        Integer done = sharedLimits.get(name);
        if (done != null && done >= bytes) {
            return;
        }
        CudaCheck.driver("cuFuncSetAttribute", cuFuncSetAttribute(function(name),
                CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES(), bytes), "kernel " + name + ", " + bytes + " bytes");
        sharedLimits.put(name, bytes);
    }

    /**
     * Launches {@code name} on {@code stream} with a (gridX, gridY) grid of blockX threads. The
     * argument slots are reused across launches (cuLaunchKernel copies them before it returns), so
     * a launch allocates nothing: the training loop issues hundreds per iteration.
     */
    synchronized void launch(CudaStream stream, String name, long gridX, long gridY, int blockX, int sharedBytes, Object... args) {
        if (gridX <= 0 || gridY <= 0) {
            return; // nothing to do (an empty tensor)
        }
        if (gridX > Integer.MAX_VALUE || gridY > 65535) {
            throw new CudaException("kernel " + name + ": grid " + gridX + " x " + gridY + " exceeds the device limits", null);
        }
        if (args.length > MAX_ARGS) {
            throw new IllegalArgumentException("kernel " + name + ": " + args.length + " arguments; at most " + MAX_ARGS);
        }
        MemorySegment f = function(name);
        for (int i = 0; i < args.length; i++) {
            long at = (long) i * Long.BYTES;
            switch (args[i]) {
                case Long v -> argValues.set(ValueLayout.JAVA_LONG, at, v);
                case Integer v -> argValues.set(ValueLayout.JAVA_INT, at, v);
                case Float v -> argValues.set(ValueLayout.JAVA_FLOAT, at, v);
                case null -> throw new IllegalArgumentException("kernel " + name + ": argument " + i + " is null");
                default -> throw new IllegalArgumentException("kernel " + name + ": argument " + i + " is a "
                        + args[i].getClass().getSimpleName() + "; expected Long, Integer or Float");
            }
        }
        CudaCheck.driver("cuLaunchKernel", cuLaunchKernel(f, (int) gridX, (int) gridY, 1, blockX, 1, 1, sharedBytes,
                stream.handle(), argPointers, MemorySegment.NULL), "kernel " + name);
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            CudaCheck.driver("cuModuleUnload", cuModuleUnload(module));
            slots.close();
        }
    }
}
