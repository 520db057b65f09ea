package org.megatronj.io.npy;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * An n-dimensional C-order array as stored in a {@code .npy} file: a dtype, a shape and the raw
 * little-endian bytes in a {@link MemorySegment} (a mapped file, native memory or a heap array).
 * The segment's lifetime is its owner's: a mapped array is valid while the arena that mapped it is open.
 */
public record NpyArray(NpyDtype dtype, long[] shape, MemorySegment data) {
    private static final ValueLayout.OfByte I8 = ValueLayout.JAVA_BYTE;
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble F64 = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    public NpyArray {
        shape = shape.clone();
        long count = elementCount(shape);
        if (data.byteSize() != count * dtype.byteSize()) {
            throw new IllegalArgumentException("data holds " + data.byteSize() + " bytes but shape " + Arrays.toString(shape)
                    + " of " + dtype.descr() + " needs " + count * dtype.byteSize());
        }
    }

    /** A 1-D int32 array over a Java array (no copy; native order, which is little-endian on every supported CPU). */
    public static NpyArray ofInt32(int[] values) {
        return wrapHeap(NpyDtype.INT32, MemorySegment.ofArray(values), values.length);
    }

    /** A 1-D uint32 array whose unsigned values are held in the bits of a Java int array. */
    public static NpyArray ofUint32(int[] bits) {
        return wrapHeap(NpyDtype.UINT32, MemorySegment.ofArray(bits), bits.length);
    }

    public static NpyArray ofInt64(long[] values) {
        return wrapHeap(NpyDtype.INT64, MemorySegment.ofArray(values), values.length);
    }

    public static NpyArray ofInt16(short[] values) {
        return wrapHeap(NpyDtype.INT16, MemorySegment.ofArray(values), values.length);
    }

    private static NpyArray wrapHeap(NpyDtype dtype, MemorySegment segment, long length) {
        if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
            throw new UnsupportedOperationException("heap-backed .npy arrays need a little-endian CPU");
        }
        return new NpyArray(dtype, new long[] {length}, segment);
    }

    /** The same bytes seen with another shape of the same element count (e.g. [2n] as [n, 2]). */
    public NpyArray reshape(long... newShape) {
        return new NpyArray(dtype, newShape, data);
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    public long dim(int axis) {
        return shape[axis];
    }

    public long elementCount() {
        return elementCount(shape);
    }

    /** Element {@code i} (flat C-order index) as a long; integer types only (uint64 above 2^63 is rejected). */
    public long getLong(long i) {
        return switch (dtype) {
            case INT8 -> data.get(I8, i);
            case UINT8 -> data.get(I8, i) & 0xffL;
            case INT16 -> data.getAtIndex(I16, i);
            case UINT16 -> data.getAtIndex(I16, i) & 0xffffL;
            case INT32 -> data.getAtIndex(I32, i);
            case UINT32 -> data.getAtIndex(I32, i) & 0xffffffffL;
            case INT64 -> data.getAtIndex(I64, i);
            case UINT64 -> {
                long v = data.getAtIndex(I64, i);
                if (v < 0) {
                    throw new ArithmeticException("uint64 element " + i + " exceeds 2^63-1");
                }
                yield v;
            }
            case FLOAT32, FLOAT64 -> throw new IllegalStateException("getLong on a " + dtype.descr() + " array");
        };
    }

    /** Element {@code i} as a double (any dtype). */
    public double getDouble(long i) {
        return switch (dtype) {
            case FLOAT32 -> data.getAtIndex(F32, i);
            case FLOAT64 -> data.getAtIndex(F64, i);
            default -> getLong(i);
        };
    }

    /** The elements as a new Java long array (integer dtypes; at most 2^31-1 elements). */
    public long[] toLongArray() {
        long n = elementCount();
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalStateException("array of " + n + " elements is too large for a Java array");
        }
        long[] out = new long[(int) n];
        for (int i = 0; i < out.length; i++) {
            out[i] = getLong(i);
        }
        return out;
    }

    static long elementCount(long[] shape) {
        long count = 1;
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
            }
            count = Math.multiplyExact(count, d);
        }
        return count;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof NpyArray other && dtype == other.dtype && Arrays.equals(shape, other.shape)
                && data.byteSize() == other.data.byteSize() && data.mismatch(other.data) == -1;
    }

    @Override
    public int hashCode() {
        return dtype.hashCode() * 31 + Arrays.hashCode(shape);
    }

    @Override
    public String toString() {
        return "NpyArray[" + dtype.descr() + " " + Arrays.toString(shape) + "]";
    }
}
