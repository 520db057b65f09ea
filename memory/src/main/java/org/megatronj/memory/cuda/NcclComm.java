package org.megatronj.memory.cuda;

import static org.megatronj.bindings.nccl.nccl_h.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import org.megatronj.bindings.nccl.ncclUniqueId;
import org.megatronj.memory.DType;

/**
 * One NCCL communicator (one rank of a group, one GPU per process), the checked layer over
 * {@code nccl_h}: every call's {@code ncclResult_t} goes through {@link CudaCheck#nccl}. Buffers
 * are device addresses, counts are elements, and every collective is queued on a CUDA stream.
 * Bootstrap: rank 0 calls {@link #uniqueId()}, hands the 128 bytes to the others (the TCP store),
 * and every rank calls {@link #initRank} with the device's context current.
 */
public final class NcclComm implements AutoCloseable {
    /** ncclRedOp_t. */
    public enum ReduceOp {
        SUM, PROD, MAX, MIN, AVG;

        int code() {
            return switch (this) {
                case SUM -> ncclSum();
                case PROD -> ncclProd();
                case MAX -> ncclMax();
                case MIN -> ncclMin();
                case AVG -> ncclAvg();
            };
        }
    }

    private final MemorySegment comm;
    private final int rank;
    private final int size;
    private boolean closed;

    private NcclComm(MemorySegment comm, int rank, int size) {
        this.comm = comm;
        this.rank = rank;
        this.size = size;
    }

    /** NCCL's version as major * 10000 + minor * 100 + patch. */
    public static int version() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment v = arena.allocate(ValueLayout.JAVA_INT);
            CudaCheck.nccl("ncclGetVersion", ncclGetVersion(v), null, null);
            return v.get(ValueLayout.JAVA_INT, 0);
        }
    }

    /** A fresh unique id (on rank 0), the {@code NCCL_UNIQUE_ID_BYTES} bytes every rank must pass to {@link #initRank}. */
    public static byte[] uniqueId() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment id = ncclUniqueId.allocate(arena);
            CudaCheck.nccl("ncclGetUniqueId", ncclGetUniqueId(id), null, null);
            return id.toArray(ValueLayout.JAVA_BYTE);
        }
    }

    /** Joins the group of {@code size} ranks identified by {@code uniqueId} as {@code rank}; blocks until all ranks join. */
    public static NcclComm initRank(int size, byte[] uniqueId, int rank) {
        if (uniqueId.length != NCCL_UNIQUE_ID_BYTES()) {
            throw new IllegalArgumentException("NCCL unique id has " + uniqueId.length + " bytes; expected "
                    + NCCL_UNIQUE_ID_BYTES());
        }
        if (rank < 0 || rank >= size) {
            throw new IllegalArgumentException("NCCL rank " + rank + " outside a group of " + size);
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment id = ncclUniqueId.allocate(arena);
            MemorySegment.copy(uniqueId, 0, id, ValueLayout.JAVA_BYTE, 0, uniqueId.length);
            MemorySegment p = arena.allocate(ValueLayout.ADDRESS);
            CudaCheck.nccl("ncclCommInitRank", ncclCommInitRank(p, size, id, rank), null,
                    "rank " + rank + " of " + size);
            return new NcclComm(p.get(ValueLayout.ADDRESS, 0), rank, size);
        }
    }

    public int rank() {
        return rank;
    }

    public int size() {
        return size;
    }

    static int dataType(DType t) {
        return switch (t) {
            case F32 -> ncclFloat32();
            case BF16 -> ncclBfloat16();
            case F16 -> ncclFloat16();
            case I32 -> ncclInt32();
            case I64 -> ncclInt64();
            case U8 -> ncclUint8();
            default -> throw new IllegalArgumentException("NCCL has no " + t + " type here");
        };
    }

    private void check(String function, int result, String what) {
        if (closed) {
            throw new IllegalStateException("NCCL communicator (rank " + rank + " of " + size + ") is closed");
        }
        CudaCheck.nccl(function, result, comm, what + " on rank " + rank + " of " + size);
    }

    /** {@code recv = op over ranks of send} ({@code count} elements; recv may equal send: in place). */
    public void allReduce(long send, long recv, long count, DType type, ReduceOp op, CudaStream stream) {
        check("ncclAllReduce", ncclAllReduce(MemorySegment.ofAddress(send), MemorySegment.ofAddress(recv), count,
                dataType(type), op.code(), comm, stream.handle()), count + " x " + type);
    }

    /** Each rank receives its {@code recvCount}-element block of the reduction of the ranks' {@code size * recvCount} elements. */
    public void reduceScatter(long send, long recv, long recvCount, DType type, ReduceOp op, CudaStream stream) {
        check("ncclReduceScatter", ncclReduceScatter(MemorySegment.ofAddress(send), MemorySegment.ofAddress(recv),
                recvCount, dataType(type), op.code(), comm, stream.handle()), recvCount + " x " + type);
    }

    /** recv ({@code size * sendCount} elements) = the ranks' send blocks in rank order. */
    public void allGather(long send, long recv, long sendCount, DType type, CudaStream stream) {
        check("ncclAllGather", ncclAllGather(MemorySegment.ofAddress(send), MemorySegment.ofAddress(recv), sendCount,
                dataType(type), comm, stream.handle()), sendCount + " x " + type);
    }

    /** recv = root's send on every rank. */
    public void broadcast(long send, long recv, long count, DType type, int root, CudaStream stream) {
        check("ncclBroadcast", ncclBroadcast(MemorySegment.ofAddress(send), MemorySegment.ofAddress(recv), count,
                dataType(type), root, comm, stream.handle()), count + " x " + type + " from " + root);
    }

    public void send(long buffer, long count, DType type, int peer, CudaStream stream) {
        check("ncclSend", ncclSend(MemorySegment.ofAddress(buffer), count, dataType(type), peer, comm, stream.handle()),
                count + " x " + type + " to " + peer);
    }

    public void recv(long buffer, long count, DType type, int peer, CudaStream stream) {
        check("ncclRecv", ncclRecv(MemorySegment.ofAddress(buffer), count, dataType(type), peer, comm, stream.handle()),
                count + " x " + type + " from " + peer);
    }

    /** Calls between {@code groupStart} and {@code groupEnd} are fused (e.g. a send and a recv that would otherwise deadlock). */
    public static void groupStart() {
        CudaCheck.nccl("ncclGroupStart", ncclGroupStart(), null, null);
    }

    public static void groupEnd() {
        CudaCheck.nccl("ncclGroupEnd", ncclGroupEnd(), null, null);
    }

    /** Finalizes (flushes outstanding work) and destroys the communicator. */
    @Override
    public void close() {
        if (!closed) {
            int fin = ncclCommFinalize(comm);
            closed = true;
            CudaCheck.nccl("ncclCommFinalize", fin, comm, "rank " + rank);
            CudaCheck.nccl("ncclCommDestroy", ncclCommDestroy(comm), null, "rank " + rank);
        }
    }
}
