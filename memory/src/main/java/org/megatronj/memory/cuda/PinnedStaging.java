package org.megatronj.memory.cuda;

import static org.megatronj.bindings.cuda.cuda_h.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A page-locked host buffer through which host tensors travel to and from the device: DMA
 * needs pinned memory, and copying a Java-owned segment through it in chunks keeps transfers
 * asynchronous to the host without pinning arbitrary user memory.
 */
final class PinnedStaging implements AutoCloseable {
    static final long DEFAULT_BYTES = 32L << 20;

    private final CudaStream stream;
    private final MemorySegment buffer;
    private boolean closed;

    @SuppressWarnings("restricted") // cuMemHostAlloc returns a bare pointer; we size it to the allocation
    PinnedStaging(CudaStream stream, long bytes) {
        this.stream = stream;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment p = arena.allocate(ValueLayout.ADDRESS);
            CudaCheck.driver("cuMemHostAlloc", cuMemHostAlloc(p, bytes, CU_MEMHOSTALLOC_PORTABLE()),
                    "pinned staging buffer of " + bytes + " bytes");
            buffer = p.get(ValueLayout.ADDRESS, 0).reinterpret(bytes);
        }
    }

    /** Host to device, chunk by chunk; returns when the last chunk has left the buffer. */
    synchronized void upload(MemorySegment host, long deviceAddress) {
        long n = host.byteSize();
        for (long off = 0; off < n; off += buffer.byteSize()) {
            long len = Math.min(buffer.byteSize(), n - off);
            MemorySegment.copy(host, off, buffer, 0, len);
            CudaCheck.driver("cuMemcpyHtoDAsync_v2", cuMemcpyHtoDAsync_v2(deviceAddress + off, buffer, len,
                    stream.handle()));
            stream.synchronize(); // the buffer is reused by the next chunk
        }
    }

    /** Device to host, chunk by chunk; the data is in {@code host} on return. */
    synchronized void download(long deviceAddress, MemorySegment host) {
        long n = host.byteSize();
        for (long off = 0; off < n; off += buffer.byteSize()) {
            long len = Math.min(buffer.byteSize(), n - off);
            CudaCheck.driver("cuMemcpyDtoHAsync_v2", cuMemcpyDtoHAsync_v2(buffer, deviceAddress + off, len,
                    stream.handle()));
            stream.synchronize();
            MemorySegment.copy(buffer, 0, host, off, len);
        }
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            CudaCheck.driver("cuMemFreeHost", cuMemFreeHost(buffer));
        }
    }
}
