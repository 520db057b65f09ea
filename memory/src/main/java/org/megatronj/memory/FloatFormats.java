package org.megatronj.memory;

/**
 * Bit-exact conversions between float32 and the 16-bit floating point formats.
 * bf16 and fp16 conversions round to nearest, ties to even, as CUDA's
 * {@code __float2bfloat16_rn} and {@code __float2half_rn} do; NaN stays NaN (quiet).
 */
public final class FloatFormats {
    private FloatFormats() {
    }

    public static short floatToBf16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if ((bits & 0x7fffffff) > 0x7f800000) {
            return (short) ((bits >>> 16) | 0x0040); // quiet NaN, sign kept
        }
        int lsb = (bits >>> 16) & 1;
        int rounded = bits + 0x7fff + lsb;
        return (short) (rounded >>> 16);
    }

    public static float bf16ToFloat(short bf16) {
        return Float.intBitsToFloat((bf16 & 0xffff) << 16);
    }

    /** IEEE 754 binary16, round to nearest even, overflow to infinity, gradual underflow. */
    public static short floatToF16(float value) {
        return Float.floatToFloat16(value);
    }

    public static float f16ToFloat(short f16) {
        return Float.float16ToFloat(f16);
    }
}
