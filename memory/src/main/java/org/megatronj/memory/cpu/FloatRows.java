package org.megatronj.memory.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;
import org.megatronj.memory.DType;
import org.megatronj.memory.FloatFormats;
import org.megatronj.memory.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Moves runs of elements between a tensor (F32, BF16 or F16) and a {@code float[]}: kernels
 * load a row, compute in fp32 on the array (where the Vector API is at its best) and store
 * it back, rounding to nearest even for 16-bit outputs. F32 runs are bulk copies; BF16 runs
 * are converted a vector at a time (bit-exact with {@link FloatFormats}) unless the scalar path
 * is forced with {@code -Dmegatron.vector.bits=0}.
 */
final class FloatRows {
    private static final VectorSpecies<Float> FS = VectorMath.SPECIES;
    private static final VectorSpecies<Integer> IS = VectorSpecies.of(int.class, FS.vectorShape());
    /** Shorts as many as the float lanes: half the width (null below 128-bit floats). */
    private static final VectorSpecies<Short> SS = FS.vectorBitSize() >= 128
            ? VectorSpecies.of(short.class, VectorShape.forBitSize(FS.vectorBitSize() / 2)) : null;
    private static final boolean VECTOR_BF16 = !VectorWidth.scalar() && SS != null;
    private static final int L = FS.length();

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
            case BF16 -> loadBf16(s, from, dst, dstOff, len);
            case F16 -> {
                for (int i = 0; i < len; i++) {
                    dst[dstOff + i] = Float.float16ToFloat(s.getAtIndex(I16, from + i));
                }
            }
            default -> throw new IllegalStateException("FloatRows.load: " + t.dtype() + " is not a float dtype");
        }
    }

    /** {@code len} bf16 elements of {@code s} from element {@code from} on, as floats into {@code dst[dstOff..]}. */
    static void loadBf16(MemorySegment s, long from, float[] dst, int dstOff, int len) {
        int i = VECTOR_BF16 ? loadBf16Vectors(s, from, dst, dstOff, len) : 0;
        for (; i < len; i++) {
            dst[dstOff + i] = Float.intBitsToFloat((s.getAtIndex(I16, from + i) & 0xffff) << 16);
        }
    }

    /** {@code v[0 .. len)} rounded to {@code dtype} (BF16 or F16) and widened back, as a store and a load would. */
    static void roundTo(DType dtype, float[] v, int len) {
        for (int i = 0; i < len; i++) {
            v[i] = switch (dtype) {
                case BF16 -> FloatFormats.bf16ToFloat(FloatFormats.floatToBf16(v[i]));
                case F16 -> Float.float16ToFloat(Float.floatToFloat16(v[i]));
                default -> throw new IllegalStateException("FloatRows.roundTo: " + dtype + " is not a 16-bit float dtype");
            };
        }
    }

    /** {@code t[from .. from+len) = src[srcOff .. srcOff+len)}, rounded to t's dtype. */
    static void store(float[] src, int srcOff, Tensor t, long from, int len) {
        MemorySegment s = t.segment();
        switch (t.dtype()) {
            case F32 -> MemorySegment.copy(src, srcOff, s, F32, from * 4, len);
            case BF16 -> {
                int i = VECTOR_BF16 ? storeBf16Vectors(src, srcOff, s, from, len) : 0;
                for (; i < len; i++) {
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

    /** bf16 is the upper half of an fp32: widen each short and shift it up. Returns the elements done. */
    private static int loadBf16Vectors(MemorySegment s, long from, float[] dst, int dstOff, int len) {
        int i = 0;
        for (; i + L <= len; i += L) {
            ShortVector h = ShortVector.fromMemorySegment(SS, s, (from + i) * 2, ByteOrder.LITTLE_ENDIAN);
            IntVector w = (IntVector) h.convertShape(VectorOperators.S2I, IS, 0);
            w.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().intoArray(dst, dstOff + i);
        }
        return i;
    }

    /** {@link FloatFormats#floatToBf16} a vector at a time: round to nearest even, NaN kept quiet. */
    private static int storeBf16Vectors(float[] src, int srcOff, MemorySegment s, long from, int len) {
        int i = 0;
        for (; i + L <= len; i += L) {
            FloatVector f = FloatVector.fromArray(FS, src, srcOff + i);
            IntVector bits = f.reinterpretAsInts();
            IntVector upper = bits.lanewise(VectorOperators.LSHR, 16);
            IntVector rounded = bits.add(upper.and(1)).add(0x7fff).lanewise(VectorOperators.LSHR, 16);
            VectorMask<Integer> nan = f.test(VectorOperators.IS_NAN).cast(IS);
            IntVector result = rounded.blend(upper.or(0x40), nan);
            ((ShortVector) result.convertShape(VectorOperators.I2S, SS, 0))
                    .intoMemorySegment(s, (from + i) * 2, ByteOrder.LITTLE_ENDIAN);
        }
        return i;
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
}
