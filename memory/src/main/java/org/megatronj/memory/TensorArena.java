package org.megatronj.memory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * An explicit lifetime for tensors: everything allocated in an arena is freed together when it
 * closes (per-iteration activations, long-lived parameters and optimizer state). No finalizers,
 * no GC-managed native memory. Host arenas are shared, so multi-threaded kernels may touch them.
 *
 * <p>A device backend allocates its memory itself and registers a release action here, so one
 * arena type serves both host and device tensors.
 */
public final class TensorArena implements AutoCloseable {
    /** Cache-line aligned storage keeps vector loads on one line and matches CUDA's 256-byte minimum where it matters. */
    public static final long ALIGNMENT = 64;

    private final String name;
    private final Arena arena = Arena.ofShared();
    private final List<Runnable> releases = new ArrayList<>();
    private final MemoryAccount account = MemoryAccount.current();
    private long bytesAllocated;
    private long hostBytes;
    private long hostAllocations;
    private volatile boolean closed;

    public TensorArena(String name) {
        this.name = name;
    }

    public static TensorArena named(String name) {
        return new TensorArena(name);
    }

    public String name() {
        return name;
    }

    public boolean isAlive() {
        return !closed;
    }

    /** Bytes handed out so far, host and device together; the memory budget a run prints. */
    public synchronized long bytesAllocated() {
        return bytesAllocated;
    }

    /** A zero-filled host tensor. */
    public Tensor allocate(DType dtype, long... shape) {
        long bytes = Tensor.byteSize(dtype, shape);
        MemorySegment segment = allocateHostBytes(bytes);
        return new Tensor(dtype, shape, segment, Device.CPU, this);
    }

    /** A host tensor holding a copy of {@code values}. */
    public Tensor fromFloats(float[] values, long... shape) {
        Tensor t = allocate(DType.F32, shape);
        if (t.numel() != values.length) {
            throw new TensorException("fromFloats: " + values.length + " values do not fill shape " + Tensor.shapeString(shape));
        }
        MemorySegment.copy(values, 0, t.segment(), java.lang.foreign.ValueLayout.JAVA_FLOAT, 0, values.length);
        return t;
    }

    /** A host tensor holding a copy of {@code values}. */
    public Tensor fromInts(int[] values, long... shape) {
        Tensor t = allocate(DType.I32, shape);
        if (t.numel() != values.length) {
            throw new TensorException("fromInts: " + values.length + " values do not fill shape " + Tensor.shapeString(shape));
        }
        MemorySegment.copy(values, 0, t.segment(), java.lang.foreign.ValueLayout.JAVA_INT, 0, values.length);
        return t;
    }

    public synchronized MemorySegment allocateHostBytes(long bytes) {
        ensureAlive("allocate");
        MemorySegment segment = arena.allocate(Math.max(bytes, 1), ALIGNMENT);
        bytesAllocated += bytes;
        hostBytes += bytes;
        hostAllocations++;
        account.allocated(bytes);
        return segment;
    }

    /**
     * Wraps memory owned by someone else (a device allocation, an mmap) as a tensor of this arena;
     * {@code release} runs when the arena closes.
     */
    public synchronized Tensor adopt(DType dtype, long[] shape, MemorySegment storage, Device device, Runnable release) {
        ensureAlive("adopt");
        if (release != null) {
            releases.add(release);
        }
        bytesAllocated += storage.byteSize();
        return new Tensor(dtype, shape, storage, device, this);
    }

    /** The FFM arena behind host allocations, for code that maps files or calls native functions. */
    public Arena ffmArena() {
        return arena;
    }

    void ensureAlive(String op) {
        if (closed) {
            throw new TensorException(op + ": arena '" + name + "' is closed; its tensors were freed");
        }
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        RuntimeException failure = null;
        for (int i = releases.size() - 1; i >= 0; i--) {
            try {
                releases.get(i).run();
            } catch (RuntimeException e) {
                if (failure == null) {
                    failure = e;
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        releases.clear();
        arena.close();
        account.freed(hostBytes, hostAllocations);
        if (failure != null) {
            throw failure;
        }
    }

    @Override
    public String toString() {
        return "TensorArena[" + name + (closed ? ", closed" : "") + ", " + bytesAllocated + " bytes]";
    }
}
