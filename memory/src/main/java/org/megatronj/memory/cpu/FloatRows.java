package org.megatronj.memory.cpu;

import org.megatronj.memory.DType;
import org.megatronj.memory.FloatFormats;
import org.megatronj.memory.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Moves runs of elements between a tensor (F32, BF16 or F16) and a {@code float[]}: kernels
 * load a row, compute in fp32 on the array (where the Vector API is at its best) and store
 * it back, rounding to nearest even for 16-bit outputs. F32 runs are bulk copies.
 */
final class FloatRows {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED;

    private FloatRows() {
    }

    /** {@code dst[dstOff .. dstOff+len) = t[from .. from+len)} as floats. */
    static void load(Tensor t, long from, float[] dst, int dstOff, int len) {
        MemorySegment s = t.segment();
        switch (t.dtype()) {
            case F32 -> MemorySegment.copy(s, F32, from * 4, dst, dstOff, len);
            case BF16 -> {
                for (int i = 0; i < len; i++) {
                    dst[dstOff + i] = Float.intBitsToFloat((s.getAtIndex(I16, from + i) & 0xffff) << 16);
                }
            }
            case F16 -> {
                for (int i = 0; i < len; i++) {
                    dst[dstOff + i] = Float.float16ToFloat(s.getAtIndex(I16, from + i));
                }
            }
            default -> throw new IllegalStateException("FloatRows.load: " + t.dtype() + " is not a float dtype");
        }
    }

    /** {@code t[from .. from+len) = src[srcOff .. srcOff+len)}, rounded to t's dtype. */
    static void store(float[] src, int srcOff, Tensor t, long from, int len) {
        MemorySegment s = t.segment();
        switch (t.dtype()) {
            case F32 -> MemorySegment.copy(src, srcOff, s, F32, from * 4, len);
            case BF16 -> {
                for (int i = 0; i < len; i++) {
                    s.setAtIndex(I16, from + i, FloatFormats.floatToBf16(src[srcOff + i]));
                }
            }
            case F16 -> {
                for (int i = 0; i < len; i++) {
                    s.setAtIndex(I16, from + i, Float.floatToFloat16(src[srcOff + i]));
                }
            }
            default -> throw new IllegalStateException("FloatRows.store: " + t.dtype() + " is not a float dtype");
        }
    }

    static float get(Tensor t, long i) {
        MemorySegment s = t.segment();
        return switch (t.dtype()) {
            case F32 -> s.getAtIndex(F32, i);
            case BF16 -> Float.intBitsToFloat((s.getAtIndex(I16, i) & 0xffff) << 16);
            case F16 -> Float.float16ToFloat(s.getAtIndex(I16, i));
            default -> throw new IllegalStateException("FloatRows.get: " + t.dtype() + " is not a float dtype");
        };
    }

    static void set(Tensor t, long i, float v) {
        MemorySegment s = t.segment();
        switch (t.dtype()) {
            case F32 -> s.setAtIndex(F32, i, v);
            case BF16 -> s.setAtIndex(I16, i, FloatFormats.floatToBf16(v));
            case F16 -> s.setAtIndex(I16, i, Float.floatToFloat16(v));
            default -> throw new IllegalStateException("FloatRows.set: " + t.dtype() + " is not a float dtype");
        }
    }

    /** Element i of an I32 tensor. */
    static int getInt(Tensor t, long i) {
        return t.segment().getAtIndex(I32, i);
    }

    static void setInt(Tensor t, long i, int v) {
        t.segment().setAtIndex(I32, i, v);
    }

    static boolean isF32(Tensor t) {
        return t.dtype() == DType.F32;
    }
}
