package org.megatronj.memory.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** The plain-Java micro-kernel: the same packed layout and tile as the vector kernel, no Vector API. */
final class GemmScalarKernel implements GemmKernel {
    static final GemmScalarKernel INSTANCE = new GemmScalarKernel();

    private static final int MR = 4;
    private static final int NR = 8;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private GemmScalarKernel() {
    }

    @Override
    public int mr() {
        return MR;
    }

    @Override
    public int nr() {
        return NR;
    }

    @Override
    public void multiply(int kc, int cols, float[] a, int aOff, float[] b, int bOff, float[] tile) {
        java.util.Arrays.fill(tile, 0, MR * NR, 0f);
        for (int p = 0; p < kc; p++) {
            int ap = aOff + p * MR;
            int bp = bOff + p * NR;
            for (int r = 0; r < MR; r++) {
                float av = a[ap + r];
                int t = r * NR;
                for (int j = 0; j < NR; j++) {
                    tile[t + j] = Math.fma(av, b[bp + j], tile[t + j]);
                }
            }
        }
    }

    @Override
    public void updateF32(float[] tile, int rows, int cols, MemorySegment c, long cOff, long ldc, float alpha,
                          float beta) {
        for (int r = 0; r < rows; r++) {
            long row = cOff + r * ldc;
            for (int j = 0; j < cols; j++) {
                float v = alpha * tile[r * NR + j];
                if (beta != 0f) {
                    v = Math.fma(beta, c.getAtIndex(F32, row + j), v);
                }
                c.setAtIndex(F32, row + j, v);
            }
        }
    }
}
