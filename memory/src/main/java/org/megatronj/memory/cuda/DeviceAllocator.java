package org.megatronj.memory.cuda;

import static org.megatronj.bindings.cuda.cuda_h.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import org.megatronj.bindings.cuda.CUmemLocation_st;
import org.megatronj.bindings.cuda.CUmemPoolProps_st;
import org.megatronj.memory.MemoryStats;

/**
 * Stream-ordered caching allocator: a CUDA memory pool of our own whose release threshold is
 * "never", so freed blocks stay cached in the pool and are handed out again, in stream order,
 * without a device-wide synchronisation (what PyTorch's caching allocator achieves by hand).
 * {@link #trim} gives cached memory back to the driver; an allocation that fails for lack of
 * memory trims once and retries before it throws with the sizes involved.
 */
public final class DeviceAllocator implements AutoCloseable {
    private final CudaDevice device;
    private final CudaStream stream;
    private final MemorySegment pool;
    private final MemorySegment out = Arena.ofAuto().allocate(ValueLayout.JAVA_LONG); // reused: no host allocation per tensor
    private long bytesInUse;
    private long peakBytes;
    private long allocations;
    private boolean closed;

    public DeviceAllocator(CudaDevice device, CudaStream stream) {
        this.device = device;
        this.stream = stream;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment props = CUmemPoolProps_st.allocate(arena);
            CUmemPoolProps_st.allocType(props, CU_MEM_ALLOCATION_TYPE_PINNED());
            CUmemPoolProps_st.handleTypes(props, CU_MEM_HANDLE_TYPE_NONE());
            MemorySegment location = CUmemPoolProps_st.location(props);
            CUmemLocation_st.type(location, CU_MEM_LOCATION_TYPE_DEVICE());
            CUmemLocation_st.id(location, device.handle());
            MemorySegment p = arena.allocate(ValueLayout.ADDRESS);
            CudaCheck.driver("cuMemPoolCreate", cuMemPoolCreate(p, props), "device " + device.ordinal());
            pool = p.get(ValueLayout.ADDRESS, 0);
            MemorySegment threshold = arena.allocate(ValueLayout.JAVA_LONG);
            threshold.set(ValueLayout.JAVA_LONG, 0, -1L); // UINT64_MAX: keep everything cached
            CudaCheck.driver("cuMemPoolSetAttribute",
                    cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD(), threshold), "release threshold");
        }
    }

    /** A device allocation of {@code bytes} (at least 1), ordered on the backend's stream; returns the device address. */
    public synchronized long allocate(long bytes) {
        if (closed) {
            throw new IllegalStateException("device allocator of CUDA device " + device.ordinal() + " is closed");
        }
        long size = Math.max(bytes, 1);
        int r = cuMemAllocFromPoolAsync(out, size, pool, stream.handle());
        if (r == CUDA_ERROR_OUT_OF_MEMORY()) {
            stream.synchronize();
            trim();
            r = cuMemAllocFromPoolAsync(out, size, pool, stream.handle());
        }
        if (r != CUDA_SUCCESS()) {
            long[] info = device.memoryInfo();
            CudaCheck.driver("cuMemAllocFromPoolAsync", r, String.format(
                    "allocating %,d bytes on device %d with %,d bytes in use by Megatron-J, %,d free of %,d",
                    size, device.ordinal(), bytesInUse, info[0], info[1]));
        }
        bytesInUse += size;
        peakBytes = Math.max(peakBytes, bytesInUse);
        allocations++;
        return out.get(ValueLayout.JAVA_LONG, 0);
    }

    /** Returns {@code address} (of {@code bytes}) to the pool, in stream order. */
    public synchronized void free(long address, long bytes) {
        if (closed) {
            return; // the pool and everything in it is already gone
        }
        device.makeCurrent();
        CudaCheck.driver("cuMemFreeAsync", cuMemFreeAsync(address, stream.handle()));
        bytesInUse -= Math.max(bytes, 1);
        allocations--;
    }

    /** Releases cached, unused memory back to the driver. */
    public synchronized void trim() {
        CudaCheck.driver("cuMemPoolTrimTo", cuMemPoolTrimTo(pool, 0));
    }

    public synchronized long bytesInUse() {
        return bytesInUse;
    }

    public synchronized long peakBytes() {
        return peakBytes;
    }

    /** What the pool hands out and what it holds from the driver (cached blocks included), now and at most. */
    public synchronized MemoryStats stats() {
        return new MemoryStats(bytesInUse, peakBytes, poolAttribute(CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT()),
                poolAttribute(CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH()), allocations);
    }

    private long poolAttribute(int attribute) {
        CudaCheck.driver("cuMemPoolGetAttribute", cuMemPoolGetAttribute(pool, attribute, out), "device " + device.ordinal());
        return out.get(ValueLayout.JAVA_LONG, 0);
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            stream.synchronize();
            closed = true;
            CudaCheck.driver("cuMemPoolDestroy", cuMemPoolDestroy(pool));
        }
    }
}
