package org.megatronj.memory.cuda;

import static org.megatronj.bindings.cuda.cuda_h.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** A non-blocking CUDA stream: the queue every op of a {@link CudaBackend} is ordered on. */
public final class CudaStream implements AutoCloseable {
    private final MemorySegment handle;
    private boolean closed;

    public CudaStream() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment p = arena.allocate(ValueLayout.ADDRESS);
            CudaCheck.driver("cuStreamCreate", cuStreamCreate(p, CU_STREAM_NON_BLOCKING()));
            handle = p.get(ValueLayout.ADDRESS, 0);
        }
    }

    /** The {@code CUstream}. */
    public MemorySegment handle() {
        return handle;
    }

    public void synchronize() {
        CudaCheck.driver("cuStreamSynchronize", cuStreamSynchronize(handle));
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            CudaCheck.driver("cuStreamDestroy_v2", cuStreamDestroy_v2(handle));
        }
    }
}
