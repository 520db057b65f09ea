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
}
