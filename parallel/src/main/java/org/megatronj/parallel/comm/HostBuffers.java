package org.megatronj.parallel.comm;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import java.lang.foreign.ValueLayout;
import org.megatronj.memory.DType;
import org.megatronj.memory.FloatFormats;

/**
 * Element-wise reductions and block copies over host memory for {@link LocalCommunicator}.
 * Floating-point types reduce in fp32 (bf16/fp16 are widened, reduced, rounded once), integers in
 * 64 bits; the reduction visits the inputs in rank order, so a sum is bitwise deterministic.
 */
final class HostBuffers {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED;

    private HostBuffers() {
    }

    /**
     * Heap scratch memory (GC-managed Java memory, not native), backed by a byte[] as the Vector
     * API requires of heap segments. One collective's share must stay under 2 GiB: split larger
     * tensors (smaller gradient buckets) before reducing them here.
     */
    static MemorySegment scratch(long bytes) {
        if (bytes > Integer.MAX_VALUE - 8) {
            throw new CommException("LocalCommunicator: a scratch buffer of " + bytes
                    + " bytes exceeds the largest Java array; reduce smaller tensors (e.g. a smaller --ddp-bucket-size)");
        }
        return MemorySegment.ofArray(new byte[(int) bytes]);
    }

    /**
     * {@code dst[i] = op over k of inputs[k][from + i]} for {@code i < count}, inputs visited in
     * order; dst holds {@code count} elements of the inputs' dtype.
     */
    static void reduce(DType dtype, MemorySegment[] inputs, long from, long count, ReduceOp op, MemorySegment dst) {
        switch (dtype) {
            case F32 -> reduceF32(inputs, from, count, op, dst);
            case BF16, F16 -> {
                boolean bf16 = dtype == DType.BF16;
                for (long i = 0; i < count; i++) {
                    float acc = toFloat(bf16, inputs[0].getAtIndex(I16, from + i));
                    for (int k = 1; k < inputs.length; k++) {
                        acc = op.apply(acc, toFloat(bf16, inputs[k].getAtIndex(I16, from + i)));
                    }
                    dst.setAtIndex(I16, i, bf16 ? FloatFormats.floatToBf16(acc) : FloatFormats.floatToF16(acc));
                }
            }
            case I32 -> {
                for (long i = 0; i < count; i++) {
                    long acc = inputs[0].getAtIndex(I32, from + i);
                    for (int k = 1; k < inputs.length; k++) {
                        acc = op.apply(acc, inputs[k].getAtIndex(I32, from + i));
                    }
                    dst.setAtIndex(I32, i, (int) acc);
                }
            }
            case I64 -> {
                for (long i = 0; i < count; i++) {
                    long acc = inputs[0].getAtIndex(I64, from + i);
                    for (int k = 1; k < inputs.length; k++) {
                        acc = op.apply(acc, inputs[k].getAtIndex(I64, from + i));
                    }
                    dst.setAtIndex(I64, i, acc);
                }
            }
            default -> throw new CommException("reduction of " + dtype + " tensors is not supported: expected F32, BF16, F16, I32 or I64");
        }
    }

    /**
     * The fp32 case, vectorised: dst starts as input 0 and each later input is combined into it in
     * rank order, so every element sees exactly the scalar sequence of operations.
     */
    private static void reduceF32(MemorySegment[] inputs, long from, long count, ReduceOp op, MemorySegment dst) {
        long bytes = count * Float.BYTES;
        MemorySegment.copy(inputs[0], from * Float.BYTES, dst, 0, bytes);
        int lanes = SPECIES.length();
        long vectorEnd = count - count % lanes;
        for (int k = 1; k < inputs.length; k++) {
            MemorySegment in = inputs[k];
            long base = from * Float.BYTES;
            for (long i = 0; i < vectorEnd; i += lanes) {
                long offset = i * Float.BYTES;
                FloatVector a = FloatVector.fromMemorySegment(SPECIES, dst, offset, ByteOrder.nativeOrder());
                FloatVector b = FloatVector.fromMemorySegment(SPECIES, in, base + offset, ByteOrder.nativeOrder());
                FloatVector c = switch (op) {
                    case SUM -> a.add(b);
                    case MAX -> a.max(b);
                    case MIN -> a.min(b);
                };
                c.intoMemorySegment(dst, offset, ByteOrder.nativeOrder());
            }
            for (long i = vectorEnd; i < count; i++) {
                dst.setAtIndex(F32, i, op.apply(dst.getAtIndex(F32, i), in.getAtIndex(F32, from + i)));
            }
        }
    }

    private static float toFloat(boolean bf16, short bits) {
        return bf16 ? FloatFormats.bf16ToFloat(bits) : FloatFormats.f16ToFloat(bits);
    }

    /** Copies {@code count} elements of {@code dtype} between segments, by element offsets. */
    static void copy(DType dtype, MemorySegment src, long srcElement, MemorySegment dst, long dstElement, long count) {
        long size = dtype.byteSize();
        MemorySegment.copy(src, srcElement * size, dst, dstElement * size, count * size);
    }

    /** Start of chunk {@code i} of {@code n} elements split into {@code parts}; the first {@code n % parts} chunks hold one more. */
    static long chunkStart(long n, int parts, int i) {
        return n / parts * i + Math.min(i, n % parts);
    }
}
