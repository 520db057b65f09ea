package org.megatronj.memory.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The two small matrix products inside tiled attention, register-blocked: four rows at a time
 * against two vectors of columns, so each loaded vector feeds four FMAs and each broadcast two.
 * Leftover rows and columns take narrower loops; the scalar path is plain loops in the same order.
 */
final class AttentionTiles {
    private static final VectorSpecies<Float> S = VectorMath.SPECIES;
    private static final int L = S.length();

    private AttentionTiles() {
    }

    /**
     * {@code out[r * outStride + j] = sum_{c < d} x[xOff + r * xStride + c] * yt[ytOff + c * ytStride + j]}
     * for {@code r < rows}, {@code j < cols}: rows of x against columns of a transposed block
     * (scores {@code Q K^T} from {@code K^T}).
     */
    static void rowsTimesColumns(boolean vector, float[] x, int xOff, int xStride, int rows,
                                 float[] yt, int ytOff, int ytStride, int cols, int d, float[] out, int outStride) {
        int r = 0;
        int colsVec = vector ? cols - cols % L : 0;
        if (vector) {
            for (; r + 4 <= rows; r += 4) {
                int x0 = xOff + r * xStride;
                int j = 0;
                for (; j + 2 * L <= colsVec; j += 2 * L) {
                    FloatVector a00 = FloatVector.zero(S), a01 = FloatVector.zero(S);
                    FloatVector a10 = FloatVector.zero(S), a11 = FloatVector.zero(S);
                    FloatVector a20 = FloatVector.zero(S), a21 = FloatVector.zero(S);
                    FloatVector a30 = FloatVector.zero(S), a31 = FloatVector.zero(S);
                    // y walks the rows of yt as an induction variable: with c * ytStride in the index C2
                    // multiplied anew every step
                    for (int c = 0, y = ytOff + j; c < d; c++, y += ytStride) {
                        FloatVector y0 = FloatVector.fromArray(S, yt, y);
                        FloatVector y1 = FloatVector.fromArray(S, yt, y + L);
                        FloatVector b0 = FloatVector.broadcast(S, x[x0 + c]);
                        FloatVector b1 = FloatVector.broadcast(S, x[x0 + xStride + c]);
                        FloatVector b2 = FloatVector.broadcast(S, x[x0 + 2 * xStride + c]);
                        FloatVector b3 = FloatVector.broadcast(S, x[x0 + 3 * xStride + c]);
                        a00 = y0.fma(b0, a00);
                        a01 = y1.fma(b0, a01);
                        a10 = y0.fma(b1, a10);
                        a11 = y1.fma(b1, a11);
                        a20 = y0.fma(b2, a20);
                        a21 = y1.fma(b2, a21);
                        a30 = y0.fma(b3, a30);
                        a31 = y1.fma(b3, a31);
                    }
                    int o = r * outStride + j;
                    a00.intoArray(out, o);
                    a01.intoArray(out, o + L);
                    a10.intoArray(out, o + outStride);
                    a11.intoArray(out, o + outStride + L);
                    a20.intoArray(out, o + 2 * outStride);
                    a21.intoArray(out, o + 2 * outStride + L);
                    a30.intoArray(out, o + 3 * outStride);
                    a31.intoArray(out, o + 3 * outStride + L);
                }
                for (int rr = r; rr < r + 4; rr++) {
                    rowTimesColumns(true, x, xOff + rr * xStride, yt, ytOff, ytStride, j, cols, d, out, rr * outStride);
                }
            }
        }
        for (; r < rows; r++) {
            rowTimesColumns(vector, x, xOff + r * xStride, yt, ytOff, ytStride, 0, cols, d, out, r * outStride);
        }
    }

    /** One row of {@link #rowsTimesColumns}, columns {@code [from, cols)}. */
    private static void rowTimesColumns(boolean vector, float[] x, int x0, float[] yt, int ytOff, int ytStride,
                                        int from, int cols, int d, float[] out, int o) {
        int j = from;
        if (vector) {
            for (; j + L <= cols; j += L) {
                FloatVector acc = FloatVector.zero(S);
                for (int c = 0, y = ytOff + j; c < d; c++, y += ytStride) {
                    acc = FloatVector.fromArray(S, yt, y).fma(FloatVector.broadcast(S, x[x0 + c]), acc);
                }
                acc.intoArray(out, o + j);
            }
        }
        for (; j < cols; j++) {
            float acc = 0f;
            for (int c = 0; c < d; c++) {
                acc += x[x0 + c] * yt[ytOff + c * ytStride + j];
            }
            out[o + j] = acc;
        }
    }

    /**
     * {@code out[outOff + r * outStride + c] += sum_{j < inner} p[pOff + r * pStride + j] * y[yOff + j * yStride + c]}
     * for {@code r < rows}, {@code c < d}: weights times rows of a block (the output {@code P V},
     * and {@code dS K}, {@code P^T dO}, {@code dS^T Q} in backward).
     */
    static void accumulateProduct(boolean vector, float[] p, int pOff, int pStride, int rows, int inner,
                                  float[] y, int yOff, int yStride, int d, float[] out, int outOff, int outStride) {
        int r = 0;
        int dVec = vector ? d - d % L : 0;
        if (vector) {
            for (; r + 4 <= rows; r += 4) {
                int p0 = pOff + r * pStride;
                int o = outOff + r * outStride;
                int c = 0;
                for (; c + 2 * L <= dVec; c += 2 * L) {
                    FloatVector a00 = FloatVector.fromArray(S, out, o + c);
                    FloatVector a01 = FloatVector.fromArray(S, out, o + c + L);
                    FloatVector a10 = FloatVector.fromArray(S, out, o + outStride + c);
                    FloatVector a11 = FloatVector.fromArray(S, out, o + outStride + c + L);
                    FloatVector a20 = FloatVector.fromArray(S, out, o + 2 * outStride + c);
                    FloatVector a21 = FloatVector.fromArray(S, out, o + 2 * outStride + c + L);
                    FloatVector a30 = FloatVector.fromArray(S, out, o + 3 * outStride + c);
                    FloatVector a31 = FloatVector.fromArray(S, out, o + 3 * outStride + c + L);
                    for (int j = 0, yy = yOff + c; j < inner; j++, yy += yStride) {
                        FloatVector y0 = FloatVector.fromArray(S, y, yy);
                        FloatVector y1 = FloatVector.fromArray(S, y, yy + L);
                        FloatVector b0 = FloatVector.broadcast(S, p[p0 + j]);
                        FloatVector b1 = FloatVector.broadcast(S, p[p0 + pStride + j]);
                        FloatVector b2 = FloatVector.broadcast(S, p[p0 + 2 * pStride + j]);
                        FloatVector b3 = FloatVector.broadcast(S, p[p0 + 3 * pStride + j]);
                        a00 = y0.fma(b0, a00);
                        a01 = y1.fma(b0, a01);
                        a10 = y0.fma(b1, a10);
                        a11 = y1.fma(b1, a11);
                        a20 = y0.fma(b2, a20);
                        a21 = y1.fma(b2, a21);
                        a30 = y0.fma(b3, a30);
                        a31 = y1.fma(b3, a31);
                    }
                    a00.intoArray(out, o + c);
                    a01.intoArray(out, o + c + L);
                    a10.intoArray(out, o + outStride + c);
                    a11.intoArray(out, o + outStride + c + L);
                    a20.intoArray(out, o + 2 * outStride + c);
                    a21.intoArray(out, o + 2 * outStride + c + L);
                    a30.intoArray(out, o + 3 * outStride + c);
                    a31.intoArray(out, o + 3 * outStride + c + L);
                }
                for (int rr = r; rr < r + 4; rr++) {
                    accumulateRow(true, p, pOff + rr * pStride, inner, y, yOff, yStride, c, d, out, outOff + rr * outStride);
                }
            }
        }
        for (; r < rows; r++) {
            accumulateRow(vector, p, pOff + r * pStride, inner, y, yOff, yStride, 0, d, out, outOff + r * outStride);
        }
    }

    /** One row of {@link #accumulateProduct}, channels {@code [from, d)}. */
    private static void accumulateRow(boolean vector, float[] p, int p0, int inner, float[] y, int yOff, int yStride,
                                      int from, int d, float[] out, int o) {
        int c = from;
        if (vector) {
            for (; c + L <= d; c += L) {
                FloatVector acc = FloatVector.fromArray(S, out, o + c);
                for (int j = 0, yy = yOff + c; j < inner; j++, yy += yStride) {
                    acc = FloatVector.fromArray(S, y, yy).fma(FloatVector.broadcast(S, p[p0 + j]), acc);
                }
                acc.intoArray(out, o + c);
            }
        }
        for (; c < d; c++) {
            float acc = out[o + c];
            for (int j = 0; j < inner; j++) {
                acc += p[p0 + j] * y[yOff + j * yStride + c];
            }
            out[o + c] = acc;
        }
    }

    /** {@code dst[j * rows + r] = src[r * srcStride + j]}: a {@code rows x cols} tile transposed. */
    static void transpose(float[] src, int srcStride, int rows, int cols, float[] dst) {
        transpose(src, srcStride, rows, cols, dst, rows);
    }

    /**
     * {@code dst[j * dstStride + r] = src[r * srcStride + j]} for {@code r < rows, j < cols}: 16 x 16
     * register transposes where 512-bit vectors are in use ({@link GemmPacker#transpose16}), 8 x 8
     * where 256-bit ones are ({@link Avx2Transposes#transpose8}), the rest one float at a time.
     */
    static void transpose(float[] src, int srcStride, int rows, int cols, float[] dst, int dstStride) {
        int block = GemmPacker.VECTOR ? 16 : Avx2Transposes.ENABLED ? 8 : 0;
        int r = 0;
        int colsInBlocks = block == 0 ? 0 : cols - cols % block;
        if (colsInBlocks > 0) {
            for (; r + block <= rows; r += block) {
                if (block == 16) {
                    GemmPacker.transpose16(src, r * srcStride, colsInBlocks, srcStride, dst, r, dstStride);
                } else {
                    Avx2Transposes.transpose8(src, r * srcStride, colsInBlocks, srcStride, dst, r, dstStride);
                }
                for (int rr = r; rr < r + block; rr++) {
                    for (int j = colsInBlocks; j < cols; j++) {
                        dst[j * dstStride + rr] = src[rr * srcStride + j];
                    }
                }
            }
        }
        for (; r < rows; r++) {
            for (int j = 0; j < cols; j++) {
                dst[j * dstStride + r] = src[r * srcStride + j];
            }
        }
    }
}
