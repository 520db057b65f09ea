package org.megatronj.memory.cuda;

import static org.megatronj.bindings.cuda.cuda_h.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * GPU time of a region of a stream, measured with a pair of CUDA events (the host clock would
 * measure only the launches). {@link #start} and {@link #stop} record; {@link #elapsedMillis}
 * waits for the stop event.
 */
public final class CudaTimer implements AutoCloseable {
    private final CudaStream stream;
    private final MemorySegment begin;
    private final MemorySegment end;
    private boolean closed;

    public CudaTimer(CudaStream stream) {
        this.stream = stream;
        this.begin = createEvent();
        this.end = createEvent();
    }

    private static MemorySegment createEvent() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment p = arena.allocate(ValueLayout.ADDRESS);
            CudaCheck.driver("cuEventCreate", cuEventCreate(p, CU_EVENT_DEFAULT()));
            return p.get(ValueLayout.ADDRESS, 0);
        }
    }

    public void start() {
        CudaCheck.driver("cuEventRecord", cuEventRecord(begin, stream.handle()));
    }

    public void stop() {
        CudaCheck.driver("cuEventRecord", cuEventRecord(end, stream.handle()));
    }

    /** Milliseconds of GPU time between start and stop (waits for stop to complete). */
    public float elapsedMillis() {
        CudaCheck.driver("cuEventSynchronize", cuEventSynchronize(end));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ms = arena.allocate(ValueLayout.JAVA_FLOAT);
            CudaCheck.driver("cuEventElapsedTime_v2", cuEventElapsedTime_v2(ms, begin, end));
            return ms.get(ValueLayout.JAVA_FLOAT, 0);
        }
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            CudaCheck.driver("cuEventDestroy_v2", cuEventDestroy_v2(begin));
            CudaCheck.driver("cuEventDestroy_v2", cuEventDestroy_v2(end));
        }
    }
}
