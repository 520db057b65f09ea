package org.megatronj.memory;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * A dense, contiguous, row-major array: a dtype, a shape and a storage segment. Host tensors
 * are read and written through {@link #segment()}; device tensors carry the device address in a
 * segment that host code must never dereference.
 *
 * <p>Activations are sequence-first {@code [s, b, h]} as in Megatron, so that slicing along
 * dim 0 ({@link #view}) gives contiguous blocks for sequence-parallel scatter and pipeline P2P.
 */
public final class Tensor {
    private static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfInt I32_LE = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfLong I64_LE = ValueLayout.JAVA_LONG_UNALIGNED;
    private static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED;

    private final DType dtype;
    private final long[] shape;
    private final MemorySegment segment;
    private final Device device;
    private final TensorArena arena;

    Tensor(DType dtype, long[] shape, MemorySegment segment, Device device, TensorArena arena) {
        for (long d : shape) {
            if (d < 0) {
                throw new TensorException("tensor: negative dimension in shape " + shapeString(shape));
            }
        }
        long bytes = byteSize(dtype, shape);
        if (segment.byteSize() < bytes) {
            throw new TensorException("tensor: storage of " + segment.byteSize() + " bytes cannot hold "
                    + dtype + shapeString(shape) + " (" + bytes + " bytes)");
        }
        this.dtype = dtype;
        this.shape = shape.clone();
        this.segment = segment.byteSize() == bytes ? segment : segment.asSlice(0, bytes);
        this.device = device;
        this.arena = arena;
    }

    /** Wraps host memory owned by the caller (an mmap, a slice of a larger buffer) without copying. */
    public static Tensor wrap(MemorySegment segment, DType dtype, long... shape) {
        return new Tensor(dtype, shape, segment, Device.CPU, null);
    }

    public static long byteSize(DType dtype, long... shape) {
        return numel(shape) * dtype.byteSize();
    }

    public static long numel(long... shape) {
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    public static String shapeString(long... shape) {
        return Arrays.toString(shape);
    }

    public DType dtype() {
        return dtype;
    }

    public long[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    /** Size of dimension {@code i}; negative counts from the end. */
    public long dim(int i) {
        return shape[i < 0 ? shape.length + i : i];
    }

    public long numel() {
        return numel(shape);
    }

    public long byteSize() {
        return segment.byteSize();
    }

    public Device device() {
        return device;
    }

    /** The arena that frees this tensor, or null for wrapped memory owned elsewhere. */
    public TensorArena arena() {
        return arena;
    }

    public boolean isAlive() {
        return (arena == null || arena.isAlive()) && segment.scope().isAlive();
    }

    /** The storage. For device tensors only its address and size are meaningful. */
    public MemorySegment segment() {
        return segment;
    }

    /** Address of the first element (device pointer for device tensors). */
    public long address() {
        return segment.address();
    }

    /** Rows {@code [from, to)} along dim 0, sharing storage. */
    public Tensor view(long from, long to) {
        if (shape.length == 0 || from < 0 || to > shape[0] || from > to) {
            throw new TensorException("view: rows [" + from + ", " + to + ") out of range for shape " + shapeString(shape));
        }
        long rowBytes = shape.length == 0 ? 0 : byteSize(dtype, shape) / Math.max(shape[0], 1);
        long[] s = shape.clone();
        s[0] = to - from;
        return new Tensor(dtype, s, segment.asSlice(from * rowBytes, (to - from) * rowBytes), device, arena);
    }

    /** Row {@code i} along dim 0 with that dimension dropped. */
    public Tensor select(long i) {
        Tensor v = view(i, i + 1);
        return v.reshape(Arrays.copyOfRange(shape, 1, shape.length));
    }

    /** The same storage under another shape with the same element count; one dimension may be -1. */
    public Tensor reshape(long... newShape) {
        long[] s = newShape.clone();
        int inferred = -1;
        long known = 1;
        for (int i = 0; i < s.length; i++) {
            if (s[i] == -1) {
                if (inferred >= 0) {
                    throw new TensorException("reshape: more than one -1 in " + shapeString(newShape));
                }
                inferred = i;
            } else {
                known *= s[i];
            }
        }
        if (inferred >= 0) {
            s[inferred] = known == 0 ? 0 : numel() / known;
        }
        if (numel(s) != numel()) {
            throw new TensorException("reshape: cannot view " + shapeString(shape) + " (" + numel()
                    + " elements) as " + shapeString(newShape));
        }
        return new Tensor(dtype, s, segment, device, arena);
    }

    /** The same bytes seen as another dtype of equal width (e.g. BF16 as U16); shape unchanged. */
    public Tensor bitcast(DType other) {
        if (other.byteSize() != dtype.byteSize()) {
            throw new TensorException("bitcast: " + dtype + " and " + other + " differ in width");
        }
        return new Tensor(other, shape, segment, device, arena);
    }

    // ---- element access for host tensors: tests, I/O and small host-side logic ----

    private void requireHost(String op) {
        if (!device.isHost()) {
            throw new TensorException(op + ": tensor is on " + device + "; copy it to the host first");
        }
    }

    /** Element {@code i} of the flattened tensor as a float, whatever the dtype. */
    public float getFloat(long i) {
        requireHost("getFloat");
        return switch (dtype) {
            case F32 -> segment.getAtIndex(F32_LE, i);
            case BF16 -> FloatFormats.bf16ToFloat(segment.getAtIndex(I16_LE, i));
            case F16 -> FloatFormats.f16ToFloat(segment.getAtIndex(I16_LE, i));
            case I32 -> segment.getAtIndex(I32_LE, i);
            case I64 -> segment.getAtIndex(I64_LE, i);
            case U16 -> Short.toUnsignedInt(segment.getAtIndex(I16_LE, i));
            case U8 -> Byte.toUnsignedInt(segment.get(ValueLayout.JAVA_BYTE, i));
        };
    }

    /** Stores {@code v} at flattened index {@code i}, rounding to nearest even for 16-bit floats. */
    public void setFloat(long i, float v) {
        requireHost("setFloat");
        switch (dtype) {
            case F32 -> segment.setAtIndex(F32_LE, i, v);
            case BF16 -> segment.setAtIndex(I16_LE, i, FloatFormats.floatToBf16(v));
            case F16 -> segment.setAtIndex(I16_LE, i, FloatFormats.floatToF16(v));
            case I32 -> segment.setAtIndex(I32_LE, i, (int) v);
            case I64 -> segment.setAtIndex(I64_LE, i, (long) v);
            case U16 -> segment.setAtIndex(I16_LE, i, (short) (int) v);
            case U8 -> segment.set(ValueLayout.JAVA_BYTE, i, (byte) (int) v);
        }
    }

    /** Element {@code i} of an integer tensor. */
    public long getLong(long i) {
        requireHost("getLong");
        return switch (dtype) {
            case I32 -> segment.getAtIndex(I32_LE, i);
            case I64 -> segment.getAtIndex(I64_LE, i);
            case U16 -> Short.toUnsignedInt(segment.getAtIndex(I16_LE, i));
            case U8 -> Byte.toUnsignedInt(segment.get(ValueLayout.JAVA_BYTE, i));
            default -> throw new TensorException("getLong: tensor is " + dtype + ", expected an integer dtype");
        };
    }

    public void setLong(long i, long v) {
        requireHost("setLong");
        switch (dtype) {
            case I32 -> segment.setAtIndex(I32_LE, i, Math.toIntExact(v));
            case I64 -> segment.setAtIndex(I64_LE, i, v);
            case U16 -> segment.setAtIndex(I16_LE, i, (short) v);
            case U8 -> segment.set(ValueLayout.JAVA_BYTE, i, (byte) v);
            default -> throw new TensorException("setLong: tensor is " + dtype + ", expected an integer dtype");
        }
    }

    /** A copy of all elements as floats (host tensors). */
    public float[] toFloatArray() {
        requireHost("toFloatArray");
        long n = numel();
        if (n > Integer.MAX_VALUE) {
            throw new TensorException("toFloatArray: " + n + " elements do not fit a Java array");
        }
        float[] out = new float[(int) n];
        if (dtype == DType.F32) {
            MemorySegment.copy(segment, F32_LE, 0, out, 0, out.length);
        } else {
            for (int i = 0; i < out.length; i++) {
                out[i] = getFloat(i);
            }
        }
        return out;
    }

    /** Overwrites all elements from {@code values} (host tensors), converting to this dtype. */
    public Tensor copyFrom(float[] values) {
        requireHost("copyFrom");
        if (values.length != numel()) {
            throw new TensorException("copyFrom: " + values.length + " values for a tensor of shape " + shapeString(shape));
        }
        if (dtype == DType.F32) {
            MemorySegment.copy(values, 0, segment, F32_LE, 0, values.length);
        } else {
            for (int i = 0; i < values.length; i++) {
                setFloat(i, values[i]);
            }
        }
        return this;
    }

    @Override
    public String toString() {
        return "Tensor[" + dtype + shapeString(shape) + (device.isHost() ? "" : " on " + device) + "]";
    }
}
