package org.megatronj.memory.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

/** The packed micro-panel layout, its zero padding and the 16-bit conversions, element by element. */
class GemmPackerTest {

    @Test
    void packsBothOrientationsIntoTheSamePanelLayoutWithZeroPadding() {
        int rows = 7, cols = 9; // stored X[rows, cols] with X[i, j] = 100 i + j, exact in F32 and F16
        for (DType dtype : new DType[] {DType.F32, DType.F16}) {
            try (TensorArena arena = TensorArena.named("test")) {
                Tensor x = arena.allocate(dtype, rows, cols);
                for (int i = 0; i < rows; i++) {
                    for (int j = 0; j < cols; j++) {
                        x.setFloat((long) i * cols + j, 100 * i + j);
                    }
                }
                GemmBuffers buf = new GemmBuffers();
                int w = 4, q0 = 1, qLen = 5, p0 = 2, kc = 3;
                // q runs along rows (p contiguous): element (q, p) = X[q, p]
                float[] alongRows = new float[2 * w * kc];
                java.util.Arrays.fill(alongRows, Float.NaN);
                GemmPacker.pack(new GemmPacker.Source(x.segment(), dtype, 0, cols, false), q0, qLen, p0, kc, w, alongRows, 0, buf);
                // q runs along columns (q contiguous): element (q, p) = X[p, q]
                float[] alongCols = new float[2 * w * kc];
                java.util.Arrays.fill(alongCols, Float.NaN);
                GemmPacker.pack(new GemmPacker.Source(x.segment(), dtype, 0, cols, true), q0, qLen, p0, kc, w, alongCols, 0, buf);
                for (int q = 0; q < 2 * w; q++) {
                    for (int p = 0; p < kc; p++) {
                        int at = (q / w) * w * kc + p * w + q % w;
                        float rowsExpected = q < qLen ? 100 * (q0 + q) + (p0 + p) : 0f;
                        float colsExpected = q < qLen ? 100 * (p0 + p) + (q0 + q) : 0f;
                        assertEquals(rowsExpected, alongRows[at], dtype + " rows q=" + q + " p=" + p);
                        assertEquals(colsExpected, alongCols[at], dtype + " cols q=" + q + " p=" + p);
                    }
                }
            }
        }
    }

    @Test
    void convertsBf16ExactlyOnRead() {
        try (TensorArena arena = TensorArena.named("test")) {
            float[] values = {1f, -2.5f, 3.140625f, 65280f, -0.0078125f};
            Tensor x = arena.allocate(DType.BF16, values.length);
            x.copyFrom(values);
            float[] out = new float[values.length];
            GemmPacker.read(new GemmPacker.Source(x.segment(), DType.BF16, 0, values.length, true), 0, values.length, out, new GemmBuffers());
            for (int i = 0; i < values.length; i++) {
                assertEquals(values[i], out[i]);
            }
        }
    }

    /**
     * Every packing path (the register transposes for w = 6 and multiples of 16, the scalar one,
     * the contiguous copy) against element-by-element expectations, bit for bit: odd block sizes,
     * offsets, padding, NaN payloads, -0 and subnormals, F32/BF16/F16, and nothing written
     * outside the block.
     */
    @Test
    void everyPathCopiesBitsExactlyAtOddSizes() {
        int rows = 131, cols = 301;
        java.util.SplittableRandom random = new java.util.SplittableRandom(7);
        for (DType dtype : new DType[] {DType.F32, DType.BF16, DType.F16}) {
            try (TensorArena arena = TensorArena.named("test")) {
                Tensor x = arena.allocate(dtype, rows, cols);
                long n = (long) rows * cols;
                for (long i = 0; i < n; i++) {
                    int bits = random.nextInt();
                    if (i % 17 == 0) {
                        bits = 0x80000000; // -0
                    } else if (i % 19 == 0) {
                        bits = 0x7fc00001 + (int) (i & 0xff); // NaN payloads
                    } else if (i % 23 == 0) {
                        bits = 1 + (int) (i & 0xffff); // subnormal
                    }
                    if (dtype == DType.F32) {
                        x.segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED, i, bits);
                    } else {
                        x.segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, i, (short) (bits >>> 16));
                    }
                }
                GemmBuffers buf = new GemmBuffers();
                int[] widths = {6, 48, 16, 32, 4, 24};
                int[] kcs = {1, 15, 16, 17, 33, 64, 100};
                int[] qLens = {1, 5, 6, 7, 16, 17, 47, 48, 49, 100};
                for (int w : widths) {
                    for (int kc : kcs) {
                        for (int qLen : qLens) {
                            for (boolean panelContiguous : new boolean[] {false, true}) {
                                int qMax = panelContiguous ? cols : rows;
                                int pMax = panelContiguous ? rows : cols;
                                int q0 = random.nextInt(qMax - qLen + 1);
                                int p0 = random.nextInt(pMax - kc + 1);
                                int panels = (qLen + w - 1) / w;
                                int dstOff = 3 + random.nextInt(5);
                                float[] dst = new float[dstOff + panels * w * kc + 40];
                                java.util.Arrays.fill(dst, Float.intBitsToFloat(0x7f801234));
                                GemmPacker.pack(new GemmPacker.Source(x.segment(), dtype, 0, cols, panelContiguous),
                                        q0, qLen, p0, kc, w, dst, dstOff, buf);
                                for (int i = 0; i < dst.length; i++) {
                                    int rel = i - dstOff;
                                    int expected;
                                    if (rel < 0 || rel >= panels * w * kc) {
                                        expected = 0x7f801234;
                                    } else {
                                        int q = rel / (w * kc) * w + rel % w;
                                        int p = rel % (w * kc) / w;
                                        long at = panelContiguous ? (long) (p0 + p) * cols + q0 + q : (long) (q0 + q) * cols + p0 + p;
                                        expected = q >= qLen ? 0 : bitsAt(x, dtype, at);
                                    }
                                    int actual = Float.floatToRawIntBits(dst[i]);
                                    if (actual != expected) {
                                        org.junit.jupiter.api.Assertions.fail(dtype + " w=" + w + " kc=" + kc + " qLen=" + qLen
                                                + " contiguous=" + panelContiguous + " at " + rel + ": expected 0x"
                                                + Integer.toHexString(expected) + ", got 0x" + Integer.toHexString(actual));
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    private static int bitsAt(Tensor x, DType dtype, long i) {
        return switch (dtype) {
            case F32 -> x.segment().getAtIndex(java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED, i);
            case BF16 -> (x.segment().getAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, i) & 0xffff) << 16;
            case F16 -> Float.floatToRawIntBits(Float.float16ToFloat(
                    x.segment().getAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, i)));
            default -> throw new IllegalArgumentException(dtype.toString());
        };
    }
}
