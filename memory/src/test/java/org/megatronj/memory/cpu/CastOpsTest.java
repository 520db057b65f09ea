package org.megatronj.memory.cpu;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.megatronj.memory.DType;
import org.megatronj.memory.FloatFormats;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * fp32 to bf16 and fp16 against their definitions: round to the nearest representable value,
 * ties to the even significand, overflow to infinity beyond the halfway point to the next
 * power of two, gradual underflow, NaN stays NaN, infinities and signed zeros kept.
 */
class CastOpsTest {

    /** All finite non-negative values of a 16-bit format in increasing order, as doubles, with their bit patterns. */
    private record Grid(double[] values, int[] bits, double overflowHalfway, int infinityBits) {
    }

    private static Grid grid(boolean bf16) {
        int inf = bf16 ? 0x7f80 : 0x7c00;
        double[] v = new double[inf];
        int[] b = new int[inf];
        for (int i = 0; i < inf; i++) {
            v[i] = bf16 ? FloatFormats.bf16ToFloat((short) i) : FloatFormats.f16ToFloat((short) i);
            b[i] = i;
        }
        double max = v[inf - 1];
        double next = bf16 ? 0x1p128 : 65536.0;
        return new Grid(v, b, (max + next) / 2, inf);
    }

    private static final Grid BF16 = grid(true);
    private static final Grid F16 = grid(false);

    /** The definition: nearest value of the grid, ties to even, overflow at the halfway point. */
    private static int roundByDefinition(Grid g, float f) {
        int sign = Float.floatToRawIntBits(f) < 0 ? 0x8000 : 0;
        double a = Math.abs((double) f);
        if (Double.isInfinite(a) || a >= g.overflowHalfway()) {
            return sign | g.infinityBits();
        }
        int i = Arrays.binarySearch(g.values(), a);
        if (i >= 0) {
            return sign | g.bits()[i];
        }
        int hi = -i - 1; // first grid value above a
        int lo = hi - 1;
        if (hi == g.values().length) {
            return sign | g.bits()[lo]; // between max and the halfway point
        }
        double dLo = a - g.values()[lo];
        double dHi = g.values()[hi] - a;
        int pick = dLo < dHi ? lo : dHi < dLo ? hi : ((g.bits()[lo] & 1) == 0 ? lo : hi);
        return sign | g.bits()[pick];
    }

    private static boolean isNaN16(int bits, boolean bf16) {
        return bf16 ? (bits & 0x7f80) == 0x7f80 && (bits & 0x7f) != 0 : (bits & 0x7c00) == 0x7c00 && (bits & 0x3ff) != 0;
    }

    private static float[] interestingFloats(Random rnd) {
        float[] special = {
                0f, -0f, 1f, -1f, Float.MIN_VALUE, -Float.MIN_VALUE, Float.MIN_NORMAL, Float.MAX_VALUE, -Float.MAX_VALUE,
                Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN, Float.intBitsToFloat(0x7f800001),
                Float.intBitsToFloat(0xffc00001),
                Float.intBitsToFloat(0x3f808000), Float.intBitsToFloat(0x3f818000), // bf16 ties: down to even, up to even
                Float.intBitsToFloat(0x3f808001), Float.intBitsToFloat(0x3f807fff),
                Float.intBitsToFloat(0x00008000), Float.intBitsToFloat(0x00018000), // bf16 subnormal ties
                Float.intBitsToFloat(0x7f7f8000), Float.intBitsToFloat(0x7f7f7fff), // bf16 overflow boundary
                65504f, 65519.99f, 65520f, 65536f, -65520f,                        // fp16 max and overflow
                1f + 0x1p-11f, 1f + 3 * 0x1p-11f, 0x1p-24f, 0x1p-25f, 0x1.8p-25f, 0x1p-26f, 6.1035156e-5f, // fp16 ties, subnormals
        };
        float[] all = Arrays.copyOf(special, special.length + 20000);
        for (int i = special.length; i < all.length; i++) {
            all[i] = i % 2 == 0 ? Float.intBitsToFloat(rnd.nextInt()) : (float) (rnd.nextGaussian() * Math.pow(2, rnd.nextInt(40) - 30));
        }
        return all;
    }

    @Test
    void floatFormatsMatchTheDefinition() {
        for (float f : interestingFloats(OpTesting.random(60))) {
            int bf = FloatFormats.floatToBf16(f) & 0xffff;
            int hf = FloatFormats.floatToF16(f) & 0xffff;
            if (Float.isNaN(f)) {
                assertTrue(isNaN16(bf, true), "bf16 of NaN " + Integer.toHexString(Float.floatToRawIntBits(f)) + " -> " + Integer.toHexString(bf));
                assertTrue(isNaN16(hf, false), "fp16 of NaN -> " + Integer.toHexString(hf));
                continue;
            }
            assertEquals(roundByDefinition(BF16, f), bf, "bf16 of " + f + " (" + Integer.toHexString(Float.floatToRawIntBits(f)) + ")");
            assertEquals(roundByDefinition(F16, f), hf, "fp16 of " + f + " (" + Integer.toHexString(Float.floatToRawIntBits(f)) + ")");
        }
        assertEquals(0x3f80, FloatFormats.floatToBf16(Float.intBitsToFloat(0x3f808000)) & 0xffff, "tie to even (down)");
        assertEquals(0x3f82, FloatFormats.floatToBf16(Float.intBitsToFloat(0x3f818000)) & 0xffff, "tie to even (up)");
    }

    @Test
    void everySixteenBitValueRoundTrips() {
        for (int b = 0; b < 0x10000; b++) {
            if (!isNaN16(b, true)) {
                assertEquals(b, FloatFormats.floatToBf16(FloatFormats.bf16ToFloat((short) b)) & 0xffff);
            }
            if (!isNaN16(b, false)) {
                assertEquals(b, FloatFormats.floatToF16(FloatFormats.f16ToFloat((short) b)) & 0xffff);
            }
        }
    }

    @ParameterizedTest
    @MethodSource("org.megatronj.memory.cpu.OpTesting#backends")
    void backendCastMatchesFloatFormats(CpuBackend backend) {
        float[] values = interestingFloats(OpTesting.random(61));
        try (TensorArena arena = new TensorArena("test")) {
            Tensor f32 = arena.fromFloats(values, values.length);
            Tensor bf = arena.allocate(DType.BF16, values.length);
            Tensor hf = arena.allocate(DType.F16, values.length);
            backend.cast(f32, bf);
            backend.cast(f32, hf);
            Tensor bfRaw = bf.bitcast(DType.U16);
            Tensor hfRaw = hf.bitcast(DType.U16);
            for (int i = 0; i < values.length; i++) {
                assertEquals(FloatFormats.floatToBf16(values[i]) & 0xffff, bfRaw.getLong(i), "bf16 of " + values[i]);
                assertEquals(FloatFormats.floatToF16(values[i]) & 0xffff, hfRaw.getLong(i), "fp16 of " + values[i]);
            }
            Tensor back = arena.allocate(DType.F32, values.length);
            backend.cast(bf, back);
            for (int i = 0; i < values.length; i++) {
                assertEquals(FloatFormats.bf16ToFloat(FloatFormats.floatToBf16(values[i])), back.getFloat(i));
            }
            Tensor hfToBf = arena.allocate(DType.BF16, values.length);
            backend.cast(hf, hfToBf); // via the exact fp32 value: one rounding
            for (int i = 0; i < values.length; i++) {
                float viaF16 = FloatFormats.f16ToFloat(FloatFormats.floatToF16(values[i]));
                assertEquals(FloatFormats.floatToBf16(viaF16) & 0xffff, hfToBf.bitcast(DType.U16).getLong(i));
            }
        }
    }
}
