package org.megatronj.memory.cuda;

import static org.megatronj.bindings.cuda.cuda_h.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * One GPU as the driver API sees it: cuInit, the device handle, its primary context (retained
 * for our lifetime, as the runtime API does) and the properties kernels are sized by.
 * Driver calls are only valid with the context current on the calling thread: {@link #makeCurrent}
 * is cheap and every entry point of {@link CudaBackend} calls it.
 */
public final class CudaDevice implements AutoCloseable {
    /** What {@code megatron info} and logs print about a device. */
    public record Properties(int ordinal, String name, int major, int minor, long totalMemory, int multiprocessors,
                             int maxSharedPerBlockOptin, int driverVersion) {
        public String computeCapability() {
            return major + "." + minor;
        }

        public String describe() {
            return String.format("%s (compute capability %d.%d, %d SMs, %.1f GiB)", name, major, minor, multiprocessors,
                    totalMemory / (double) (1L << 30));
        }
    }

    private final int ordinal;
    private final int handle;
    private final MemorySegment context;
    private final Properties properties;
    private boolean closed;

    private CudaDevice(int ordinal, int handle, MemorySegment context, Properties properties) {
        this.ordinal = ordinal;
        this.handle = handle;
        this.context = context;
        this.properties = properties;
    }

    /** Initialises the driver (idempotent) and returns the number of devices it sees. */
    public static int deviceCount() {
        library(); // a missing libcuda.so.1 throws UnsatisfiedLinkError naming the folders searched
        CudaCheck.driver("cuInit", cuInit(0));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment count = arena.allocate(ValueLayout.JAVA_INT);
            CudaCheck.driver("cuDeviceGetCount", cuDeviceGetCount(count));
            return count.get(ValueLayout.JAVA_INT, 0);
        }
    }

    /** The driver's version as {@code major * 1000 + minor * 10} (e.g. 13000). */
    public static int driverVersion() {
        library();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment v = arena.allocate(ValueLayout.JAVA_INT);
            CudaCheck.driver("cuDriverGetVersion", cuDriverGetVersion(v));
            return v.get(ValueLayout.JAVA_INT, 0);
        }
    }

    /** Reads a device's properties without retaining its context (for {@code megatron info}). */
    public static Properties query(int ordinal) {
        int count = deviceCount();
        if (ordinal < 0 || ordinal >= count) {
            throw new IllegalArgumentException("CUDA device " + ordinal + " does not exist: the driver sees " + count
                    + " device(s), numbered 0.." + (count - 1));
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment dev = arena.allocate(ValueLayout.JAVA_INT);
            CudaCheck.driver("cuDeviceGet", cuDeviceGet(dev, ordinal));
            return properties(ordinal, dev.get(ValueLayout.JAVA_INT, 0), arena);
        }
    }

    /** Opens device {@code ordinal}: retains its primary context and makes it current on this thread. */
    public static CudaDevice open(int ordinal) {
        Properties props = query(ordinal);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment dev = arena.allocate(ValueLayout.JAVA_INT);
            CudaCheck.driver("cuDeviceGet", cuDeviceGet(dev, ordinal));
            int handle = dev.get(ValueLayout.JAVA_INT, 0);
            MemorySegment pctx = arena.allocate(ValueLayout.ADDRESS);
            CudaCheck.driver("cuDevicePrimaryCtxRetain", cuDevicePrimaryCtxRetain(pctx, handle), "device " + ordinal);
            MemorySegment ctx = pctx.get(ValueLayout.ADDRESS, 0);
            CudaCheck.driver("cuCtxSetCurrent", cuCtxSetCurrent(ctx));
            return new CudaDevice(ordinal, handle, ctx, props);
        }
    }

    private static Properties properties(int ordinal, int dev, Arena arena) {
        MemorySegment name = arena.allocate(256);
        CudaCheck.driver("cuDeviceGetName", cuDeviceGetName(name, 256, dev));
        MemorySegment mem = arena.allocate(ValueLayout.JAVA_LONG);
        CudaCheck.driver("cuDeviceTotalMem_v2", cuDeviceTotalMem_v2(mem, dev));
        return new Properties(ordinal, name.getString(0),
                attribute(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR(), arena),
                attribute(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR(), arena),
                mem.get(ValueLayout.JAVA_LONG, 0),
                attribute(dev, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT(), arena),
                attribute(dev, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN(), arena),
                driverVersion());
    }

    private static int attribute(int dev, int attribute, Arena arena) {
        MemorySegment v = arena.allocate(ValueLayout.JAVA_INT);
        CudaCheck.driver("cuDeviceGetAttribute", cuDeviceGetAttribute(v, attribute, dev), "attribute " + attribute);
        return v.get(ValueLayout.JAVA_INT, 0);
    }

    /** Makes this device's primary context current on the calling thread. */
    public void makeCurrent() {
        if (closed) {
            throw new IllegalStateException("CUDA device " + ordinal + " was closed");
        }
        CudaCheck.driver("cuCtxSetCurrent", cuCtxSetCurrent(context));
    }

    public int ordinal() {
        return ordinal;
    }

    /** The {@code CUdevice} handle. */
    public int handle() {
        return handle;
    }

    public Properties properties() {
        return properties;
    }

    /** Free and total device memory in bytes, as the driver reports them now. */
    public long[] memoryInfo() {
        makeCurrent();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment free = arena.allocate(ValueLayout.JAVA_LONG);
            MemorySegment total = arena.allocate(ValueLayout.JAVA_LONG);
            CudaCheck.driver("cuMemGetInfo_v2", cuMemGetInfo_v2(free, total));
            return new long[] {free.get(ValueLayout.JAVA_LONG, 0), total.get(ValueLayout.JAVA_LONG, 0)};
        }
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            CudaCheck.driver("cuDevicePrimaryCtxRelease_v2", cuDevicePrimaryCtxRelease_v2(handle));
        }
    }
}
