package org.megatronj.memory.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;
import org.megatronj.memory.DType;

/**
 * Copies a block of op(A) or op(B) into the contiguous micro-panel layout the kernels read,
 * converting BF16/F16 to fp32 on the way; transposes are resolved here, so the kernels only ever
 * see one layout.
 *
 * <p>A block has a <em>panel</em> dimension q (rows of op(A), columns of op(B)) cut into panels
 * of {@code w} and the reduction dimension p (k). Element (q, p) lands at
 * {@code (q / w) * w * kc + p * w + q % w}: each panel is {@code kc} steps of {@code w}
 * consecutive floats. The last panel is zero-padded to {@code w}, so kernels never see edges.
 *
 * <p>When consecutive p are adjacent in memory (op(B) = W^T of a linear layer's forward, op(A) =
 * the activations of a forward or input-grad product) packing is a transpose. With 512-bit vectors
 * it is done in registers: 16 rows x 16 steps at a time with two-source lane permutes
 * ({@code selectFrom}, one {@code vpermt2ps} each) when {@code w} is a multiple of 16 (B panels),
 * 6 rows x 16 steps into 8 overlapping stores when {@code w == 6} (A panels); with 256-bit vectors
 * by {@link Avx2Transposes} (8 x 8 for B panels, 4 x 8 for the 4-row A panels); other widths, the
 * remainders and the scalar path ({@code -Dmegatron.vector.bits=0} or narrower vectors) copy one
 * float at a time. When q is adjacent, rows are copied panel by panel (F32 panels of whole vectors
 * straight from the segment; A panels of 6 by 8-lane vectors whose extra lanes the next step
 * overwrites). Every path is a copy, so all give the same bits.
 */
final class GemmPacker {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    /** Whether the register transposes run: only with 512-bit vectors (16 floats) in use. */
    static final boolean VECTOR = VectorWidth.bits() == 512;
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_512;
    private static final int L = 16;

    // Stage j of the 16 x 16 transpose swaps bit j of the row with bit j of the lane: for rows
    // (r, r | 2^j) with bit j of r clear, row r becomes LOj.selectFrom(row r, row r | 2^j) and
    // row r | 2^j becomes HIj.selectFrom(the same two).
    private static final FloatVector LO0 = swap(0, false), HI0 = swap(0, true), LO1 = swap(1, false),
            HI1 = swap(1, true), LO2 = swap(2, false), HI2 = swap(2, true), LO3 = swap(3, false), HI3 = swap(3, true);
    // The 6-wide transpose: stages 0-2 swap row bit j with lane bit j + 1; the last one also moves
    // lanes so that vector v holds (p = 2v, rows 0-5) then (p = 2v + 1, rows 0-5) in lanes 0-11.
    private static final FloatVector SLO0, SHI0, SLO1, SHI1, SLO2, SHI2;
    private static final VectorMask<Float> FIRST12 = VectorMask.fromLong(S, 0xfffL);
    private static final VectorSpecies<Float> S8 = FloatVector.SPECIES_256;
    private static final VectorSpecies<Float> S4 = FloatVector.SPECIES_128;

    static {
        SLO0 = swap(1, false);
        SHI0 = swap(1, true);
        SLO1 = swap(2, false);
        SHI1 = swap(2, true);
        // After the third swap, lane (r << 1 | (p & 1)) holds row r (r < 8) of step p; gather lanes
        // 0-5 from p even, 6-11 from p odd (12-15: don't care).
        float[] lo = swapIndex(3, false);
        float[] hi = swapIndex(3, true);
        float[] lo2 = new float[L];
        float[] hi2 = new float[L];
        for (int l = 0; l < L; l++) {
            int from = l < 6 ? l << 1 : l < 12 ? (l - 6) << 1 | 1 : 0;
            lo2[l] = lo[from];
            hi2[l] = hi[from];
        }
        SLO2 = FloatVector.fromArray(S, lo2, 0);
        SHI2 = FloatVector.fromArray(S, hi2, 0);
    }

    private static FloatVector swap(int laneBit, boolean high) {
        return FloatVector.fromArray(S, swapIndex(laneBit, high), 0);
    }

    /**
     * The two-source index (0-15 first source, 16-31 second) that swaps the bit that tells the two
     * source rows apart with lane bit {@code laneBit}: in the output row whose bit is
     * {@code high}, lane l takes lane (l with that lane bit set to {@code high}) of the source
     * named by l's lane bit.
     */
    private static float[] swapIndex(int laneBit, boolean high) {
        int bit = 1 << laneBit;
        float[] index = new float[L];
        for (int l = 0; l < L; l++) {
            int lane = high ? l | bit : l & ~bit;
            index[l] = lane + ((l & bit) != 0 ? L : 0);
        }
        return index;
    }

    private GemmPacker() {
    }

    /**
     * A row-major matrix in host memory seen as op(X). {@code panelContiguous} says whether
     * consecutive q are adjacent in memory (element (q, p) at {@code offset + p * ld + q}) or
     * consecutive p are (element at {@code offset + q * ld + p}).
     */
    record Source(MemorySegment segment, DType dtype, long offset, long ld, boolean panelContiguous) {
        Source atOffset(long newOffset) {
            return new Source(segment, dtype, newOffset, ld, panelContiguous);
        }
    }

    /**
     * Packs q in {@code [q0, q0 + qLen)} and p in {@code [p0, p0 + kc)} into {@code dst} from
     * {@code dstOff} on ({@code ceil(qLen / w) * w * kc} floats); {@code buf} supplies row scratch.
     */
    static void pack(Source src, int q0, int qLen, int p0, int kc, int w, float[] dst, int dstOff, GemmBuffers buf) {
        if (src.panelContiguous()) {
            packContiguous(src, q0, qLen, p0, kc, w, dst, dstOff, buf);
        } else if (VECTOR && w % L == 0) {
            packTransposed16(src, q0, qLen, p0, kc, w, dst, dstOff, buf);
        } else if (VECTOR && w == 6) {
            packTransposed6(src, q0, qLen, p0, kc, dst, dstOff, buf);
        } else if (Avx2Transposes.ENABLED && w % 8 == 0) {
            packTransposed8(src, q0, qLen, p0, kc, w, dst, dstOff, buf);
        } else if (Avx2Transposes.ENABLED && w == 4) {
            packTransposed4(src, q0, qLen, p0, kc, dst, dstOff, buf);
        } else {
            packTransposedScalar(src, q0, qLen, p0, kc, w, dst, dstOff, buf);
        }
    }

    /** q adjacent in memory: each step p is a row, copied panel by panel. */
    private static void packContiguous(Source src, int q0, int qLen, int p0, int kc, int w, float[] dst, int dstOff,
                                       GemmBuffers buf) {
        if (VECTOR && w == 6 && src.dtype() == DType.F32) {
            packContiguous6(src, q0, qLen, p0, kc, dst, dstOff, buf);
            return;
        }
        if (Avx2Transposes.ENABLED && w == 4 && src.dtype() == DType.F32) {
            packContiguous4(src, q0, qLen, p0, kc, dst, dstOff, buf);
            return;
        }
        int panels = (qLen + w - 1) / w;
        // F32 whole panels of whole vectors (the B panels of input and weight gradients): straight from
        // the segment, vector by vector, instead of through a row copy and a copy call per panel.
        boolean wideVectors = VECTOR && w % L == 0;
        boolean avx2Vectors = Avx2Transposes.ENABLED && w % 8 == 0;
        int direct = (wideVectors || avx2Vectors) && src.dtype() == DType.F32 ? qLen / w : 0;
        float[] row = buf.row(qLen);
        for (int p = 0; p < kc; p++) {
            long rowAt = src.offset() + (long) (p0 + p) * src.ld() + q0;
            if (direct > 0) {
                long from = rowAt * Float.BYTES;
                int at = dstOff + p * w;
                if (wideVectors) {
                    copyPanelsWide(src.segment(), from, direct, w, dst, at, w * kc);
                } else {
                    copyPanels8(src.segment(), from, direct, w, dst, at, w * kc);
                }
            }
            if (direct == panels) {
                continue;
            }
            int rest = direct * w; // the row from here on goes through the row copy
            read(src, rowAt + rest, qLen - rest, row, 0, buf);
            for (int t = direct; t < panels; t++) {
                int q = t * w;
                int at = dstOff + t * w * kc + p * w;
                int len = Math.min(w, qLen - q);
                System.arraycopy(row, q - rest, dst, at, len);
                if (len < w) {
                    java.util.Arrays.fill(dst, at + len, at + w, 0f);
                }
            }
        }
    }

    // One small method per species, so that each compiles to plain vector moves on its own; inside
    // packContiguous the JIT left some of these loads to the Vector API's Java fallback, which allocates.

    /** {@code panels} panels of {@code w} floats (a multiple of 16) of one step, from byte {@code from} on. */
    private static void copyPanelsWide(MemorySegment seg, long from, int panels, int w, float[] dst, int at, int stride) {
        for (int t = 0; t < panels; t++, from += (long) w * Float.BYTES, at += stride) {
            for (int l = 0; l < w; l += L) {
                FloatVector.fromMemorySegment(S, seg, from + (long) l * Float.BYTES, LE).intoArray(dst, at + l);
            }
        }
    }

    /** {@code panels} panels of {@code w} floats (a multiple of 8) of one step. */
    private static void copyPanels8(MemorySegment seg, long from, int panels, int w, float[] dst, int at, int stride) {
        for (int t = 0; t < panels; t++, from += (long) w * Float.BYTES, at += stride) {
            for (int l = 0; l < w; l += 8) {
                FloatVector.fromMemorySegment(S8, seg, from + (long) l * Float.BYTES, LE).intoArray(dst, at + l);
            }
        }
    }

    /**
     * q adjacent in memory, {@code w == 6} (A panels of a weight gradient {@code dY^T X}), F32:
     * 16 steps at a time, each of their rows copied out of the segment in one bulk copy (zero
     * padded), then panel by panel six floats per step by an 8-lane load and store, so each
     * panel's 16 steps are written as one run. A store's two extra lanes land on the next step's
     * slots, which that step then overwrites; the panel's last step stores its six alone. (Masked
     * loads from the segment, tried first, ran in the Vector API's Java fallback, and the general
     * path's copy call per six floats cost as much as the copying.)
     */
    private static void packContiguous6(Source src, int q0, int qLen, int p0, int kc, float[] dst, int dstOff,
                                        GemmBuffers buf) {
        int panels = (qLen + 5) / 6;
        int stride = panels * 6 + 2; // a row, its zero padding to whole panels, and 2 floats the last load reads
        float[] rows = buf.row(L * stride);
        for (int pb = 0; pb < kc; pb += L) {
            int steps = Math.min(L, kc - pb);
            for (int r = 0; r < steps; r++) {
                long from = src.offset() + (long) (p0 + pb + r) * src.ld() + q0;
                MemorySegment.copy(src.segment(), F32, from * Float.BYTES, rows, r * stride, qLen);
                java.util.Arrays.fill(rows, r * stride + qLen, (r + 1) * stride, 0f);
            }
            for (int t = 0; t < panels; t++) {
                int at = dstOff + t * 6 * kc + pb * 6;
                int last = pb + steps == kc ? steps - 1 : steps; // the panel's last step: no spill past it
                for (int p = 0; p < last; p++, at += 6) {
                    FloatVector.fromArray(S8, rows, p * stride + t * 6).intoArray(dst, at);
                }
                if (last < steps) {
                    System.arraycopy(rows, last * stride + t * 6, dst, at, 6);
                }
            }
        }
    }

    /**
     * q adjacent in memory, {@code w == 4} (AVX2's A panels of a weight gradient {@code dY^T X}), F32: as
     * {@link #packContiguous6}, 8 steps at a time, each of their rows copied out of the segment in one
     * bulk copy (zero padded), then panel by panel by 4-float moves, so each panel's 8 steps are written
     * as one 128-byte run (step by step, every step would write 16 bytes into each of the block's
     * panels, {@code 16 kc} bytes apart).
     */
    private static void packContiguous4(Source src, int q0, int qLen, int p0, int kc, float[] dst, int dstOff,
                                        GemmBuffers buf) {
        int panels = (qLen + 3) / 4;
        int stride = panels * 4; // a row and its zero padding to whole panels
        float[] rows = buf.row(8 * stride);
        for (int pb = 0; pb < kc; pb += 8) {
            int steps = Math.min(8, kc - pb);
            for (int r = 0; r < steps; r++) {
                long from = src.offset() + (long) (p0 + pb + r) * src.ld() + q0;
                MemorySegment.copy(src.segment(), F32, from * Float.BYTES, rows, r * stride, qLen);
                java.util.Arrays.fill(rows, r * stride + qLen, (r + 1) * stride, 0f);
            }
            copyStepsToPanels4(rows, stride, steps, panels, dst, dstOff + pb * 4, 4 * kc);
        }
    }

    /** {@code steps} rows of {@code 4 * panels} floats into the panels, each panel's steps as one run. */
    private static void copyStepsToPanels4(float[] rows, int stride, int steps, int panels, float[] dst, int at,
                                           int panelStride) {
        for (int t = 0; t < panels; t++, at += panelStride) {
            for (int p = 0; p < steps; p++) {
                FloatVector.fromArray(S4, rows, p * stride + t * 4).intoArray(dst, at + p * 4);
            }
        }
    }

    /** p adjacent in memory, one float at a time (any width; the reference for the others). */
    static void packTransposedScalar(Source src, int q0, int qLen, int p0, int kc, int w, float[] dst, int dstOff,
                                     GemmBuffers buf) {
        int panels = (qLen + w - 1) / w;
        float[] row = buf.row(kc);
        for (int q = 0; q < qLen; q++) {
            read(src, src.offset() + (long) (q0 + q) * src.ld() + p0, kc, row, 0, buf);
            int at = dstOff + (q / w) * w * kc + q % w;
            for (int p = 0; p < kc; p++) {
                dst[at + p * w] = row[p];
            }
        }
        for (int q = qLen; q < panels * w; q++) {
            int at = dstOff + (q / w) * w * kc + q % w;
            for (int p = 0; p < kc; p++) {
                dst[at + p * w] = 0f;
            }
        }
    }

    /**
     * Reads {@code rows} rows of the block from q {@code q} on into {@code scratch} ({@code kc}
     * floats apart), zeros for rows at or past {@code qLen}.
     */
    private static void readRows(Source src, int q0, int q, int rows, int qLen, int p0, int kc, float[] scratch,
                                 GemmBuffers buf) {
        for (int r = 0; r < rows; r++) {
            if (q + r < qLen) {
                read(src, src.offset() + (long) (q0 + q + r) * src.ld() + p0, kc, scratch, r * kc, buf);
            } else {
                java.util.Arrays.fill(scratch, r * kc, (r + 1) * kc, 0f);
            }
        }
    }

    /** p adjacent in memory, {@code w} a multiple of 16: 16 x 16 register transposes. */
    private static void packTransposed16(Source src, int q0, int qLen, int p0, int kc, int w, float[] dst, int dstOff,
                                         GemmBuffers buf) {
        int padded = (qLen + w - 1) / w * w;
        float[] rows = buf.row(L * kc);
        int kc16 = kc & ~(L - 1);
        for (int q = 0; q < padded; q += L) {
            readRows(src, q0, q, L, qLen, p0, kc, rows, buf);
            int at = dstOff + (q / w) * w * kc + q % w;
            transpose16(rows, 0, kc16, kc, dst, at, w);
            copyTailSteps(rows, L, kc16, kc, dst, at, w);
        }
    }

    /**
     * {@code dst[dst0 + i * w + r] = src[src0 + r * ld + i]} for r < 16, i < {@code steps} (a
     * multiple of 16): blocks of 16 rows x 16 steps, one 16-float store per step out. The loop is
     * in here so that the vectors never cross a call the JIT might not inline. Only with
     * {@link #VECTOR}; attention's tiles use it too.
     */
    static void transpose16(float[] src, int src0, int steps, int ld, float[] dst, int dst0, int w) {
        for (int sOff = src0, dOff = dst0; sOff < src0 + steps; sOff += L, dOff += L * w) {
        FloatVector r0 = FloatVector.fromArray(S, src, sOff);
        FloatVector r1 = FloatVector.fromArray(S, src, sOff + ld);
        FloatVector r2 = FloatVector.fromArray(S, src, sOff + 2 * ld);
        FloatVector r3 = FloatVector.fromArray(S, src, sOff + 3 * ld);
        FloatVector r4 = FloatVector.fromArray(S, src, sOff + 4 * ld);
        FloatVector r5 = FloatVector.fromArray(S, src, sOff + 5 * ld);
        FloatVector r6 = FloatVector.fromArray(S, src, sOff + 6 * ld);
        FloatVector r7 = FloatVector.fromArray(S, src, sOff + 7 * ld);
        FloatVector r8 = FloatVector.fromArray(S, src, sOff + 8 * ld);
        FloatVector r9 = FloatVector.fromArray(S, src, sOff + 9 * ld);
        FloatVector r10 = FloatVector.fromArray(S, src, sOff + 10 * ld);
        FloatVector r11 = FloatVector.fromArray(S, src, sOff + 11 * ld);
        FloatVector r12 = FloatVector.fromArray(S, src, sOff + 12 * ld);
        FloatVector r13 = FloatVector.fromArray(S, src, sOff + 13 * ld);
        FloatVector r14 = FloatVector.fromArray(S, src, sOff + 14 * ld);
        FloatVector r15 = FloatVector.fromArray(S, src, sOff + 15 * ld);
        // stage 0: rows (2i, 2i + 1)
        FloatVector t0 = LO0.selectFrom(r0, r1), t1 = HI0.selectFrom(r0, r1);
        FloatVector t2 = LO0.selectFrom(r2, r3), t3 = HI0.selectFrom(r2, r3);
        FloatVector t4 = LO0.selectFrom(r4, r5), t5 = HI0.selectFrom(r4, r5);
        FloatVector t6 = LO0.selectFrom(r6, r7), t7 = HI0.selectFrom(r6, r7);
        FloatVector t8 = LO0.selectFrom(r8, r9), t9 = HI0.selectFrom(r8, r9);
        FloatVector t10 = LO0.selectFrom(r10, r11), t11 = HI0.selectFrom(r10, r11);
        FloatVector t12 = LO0.selectFrom(r12, r13), t13 = HI0.selectFrom(r12, r13);
        FloatVector t14 = LO0.selectFrom(r14, r15), t15 = HI0.selectFrom(r14, r15);
        // stage 1: rows (r, r + 2)
        r0 = LO1.selectFrom(t0, t2); r2 = HI1.selectFrom(t0, t2);
        r1 = LO1.selectFrom(t1, t3); r3 = HI1.selectFrom(t1, t3);
        r4 = LO1.selectFrom(t4, t6); r6 = HI1.selectFrom(t4, t6);
        r5 = LO1.selectFrom(t5, t7); r7 = HI1.selectFrom(t5, t7);
        r8 = LO1.selectFrom(t8, t10); r10 = HI1.selectFrom(t8, t10);
        r9 = LO1.selectFrom(t9, t11); r11 = HI1.selectFrom(t9, t11);
        r12 = LO1.selectFrom(t12, t14); r14 = HI1.selectFrom(t12, t14);
        r13 = LO1.selectFrom(t13, t15); r15 = HI1.selectFrom(t13, t15);
        // stage 2: rows (r, r + 4)
        t0 = LO2.selectFrom(r0, r4); t4 = HI2.selectFrom(r0, r4);
        t1 = LO2.selectFrom(r1, r5); t5 = HI2.selectFrom(r1, r5);
        t2 = LO2.selectFrom(r2, r6); t6 = HI2.selectFrom(r2, r6);
        t3 = LO2.selectFrom(r3, r7); t7 = HI2.selectFrom(r3, r7);
        t8 = LO2.selectFrom(r8, r12); t12 = HI2.selectFrom(r8, r12);
        t9 = LO2.selectFrom(r9, r13); t13 = HI2.selectFrom(r9, r13);
        t10 = LO2.selectFrom(r10, r14); t14 = HI2.selectFrom(r10, r14);
        t11 = LO2.selectFrom(r11, r15); t15 = HI2.selectFrom(r11, r15);
        // stage 3: rows (r, r + 8), stored as they come
        LO3.selectFrom(t0, t8).intoArray(dst, dOff);
        HI3.selectFrom(t0, t8).intoArray(dst, dOff + 8 * w);
        LO3.selectFrom(t1, t9).intoArray(dst, dOff + w);
        HI3.selectFrom(t1, t9).intoArray(dst, dOff + 9 * w);
        LO3.selectFrom(t2, t10).intoArray(dst, dOff + 2 * w);
        HI3.selectFrom(t2, t10).intoArray(dst, dOff + 10 * w);
        LO3.selectFrom(t3, t11).intoArray(dst, dOff + 3 * w);
        HI3.selectFrom(t3, t11).intoArray(dst, dOff + 11 * w);
        LO3.selectFrom(t4, t12).intoArray(dst, dOff + 4 * w);
        HI3.selectFrom(t4, t12).intoArray(dst, dOff + 12 * w);
        LO3.selectFrom(t5, t13).intoArray(dst, dOff + 5 * w);
        HI3.selectFrom(t5, t13).intoArray(dst, dOff + 13 * w);
        LO3.selectFrom(t6, t14).intoArray(dst, dOff + 6 * w);
        HI3.selectFrom(t6, t14).intoArray(dst, dOff + 14 * w);
        LO3.selectFrom(t7, t15).intoArray(dst, dOff + 7 * w);
        HI3.selectFrom(t7, t15).intoArray(dst, dOff + 15 * w);
        }
    }

    /** p adjacent in memory, {@code w} a multiple of 8, 256-bit vectors: 8 x 8 register transposes. */
    private static void packTransposed8(Source src, int q0, int qLen, int p0, int kc, int w, float[] dst, int dstOff,
                                        GemmBuffers buf) {
        int padded = (qLen + w - 1) / w * w;
        float[] rows = buf.row(8 * kc);
        int kc8 = kc & ~7;
        for (int q = 0; q < padded; q += 8) {
            readRows(src, q0, q, 8, qLen, p0, kc, rows, buf);
            int at = dstOff + (q / w) * w * kc + q % w;
            Avx2Transposes.transpose8(rows, 0, kc8, kc, dst, at, w);
            copyTailSteps(rows, 8, kc8, kc, dst, at, w);
        }
    }

    /** p adjacent in memory, {@code w == 4} (AVX2's A panels): 4 rows x 8 steps per register transpose. */
    private static void packTransposed4(Source src, int q0, int qLen, int p0, int kc, float[] dst, int dstOff,
                                        GemmBuffers buf) {
        int panels = (qLen + 3) / 4;
        float[] rows = buf.row(4 * kc);
        int kc8 = kc & ~7;
        for (int t = 0; t < panels; t++) {
            readRows(src, q0, t * 4, 4, qLen, p0, kc, rows, buf);
            int at = dstOff + t * 4 * kc;
            Avx2Transposes.transpose4(rows, kc8, kc, dst, at);
            copyTailSteps(rows, 4, kc8, kc, dst, at, 4);
        }
    }

    /** The steps past the last whole block of a register transpose, one float at a time. */
    private static void copyTailSteps(float[] rows, int rowCount, int from, int kc, float[] dst, int at, int w) {
        for (int p = from; p < kc; p++) {
            for (int r = 0; r < rowCount; r++) {
                dst[at + p * w + r] = rows[r * kc + p];
            }
        }
    }

    /** p adjacent in memory, {@code w == 6} (A panels): 6 rows x 16 steps per register transpose. */
    private static void packTransposed6(Source src, int q0, int qLen, int p0, int kc, float[] dst, int dstOff,
                                        GemmBuffers buf) {
        int panels = (qLen + 5) / 6;
        float[] rows = buf.row(6 * kc);
        int kc16 = kc & ~(L - 1);
        for (int t = 0; t < panels; t++) {
            readRows(src, q0, t * 6, 6, qLen, p0, kc, rows, buf);
            int at = dstOff + t * 6 * kc;
            transpose6(rows, kc16, kc, dst, at);
            copyTailSteps(rows, 6, kc16, kc, dst, at, 6);
        }
    }

    /**
     * {@code dst[dst0 + i * 6 + r] = src[r * ld + i]} for r < 6, i < {@code steps} (a multiple of
     * 16): per 16 steps 96 floats in 8 stores that
     * overlap by 4 (the very last one masked to 12 lanes).
     */
    private static void transpose6(float[] src, int steps, int ld, float[] dst, int dst0) {
        for (int sOff = 0, dOff = dst0; sOff < steps; sOff += L, dOff += L * 6) {
        FloatVector r0 = FloatVector.fromArray(S, src, sOff);
        FloatVector r1 = FloatVector.fromArray(S, src, sOff + ld);
        FloatVector r2 = FloatVector.fromArray(S, src, sOff + 2 * ld);
        FloatVector r3 = FloatVector.fromArray(S, src, sOff + 3 * ld);
        FloatVector r4 = FloatVector.fromArray(S, src, sOff + 4 * ld);
        FloatVector r5 = FloatVector.fromArray(S, src, sOff + 5 * ld);
        // rows 6 and 7 only fill the lanes the last stage drops; any vector will do
        FloatVector t0 = SLO0.selectFrom(r0, r1), t1 = SHI0.selectFrom(r0, r1);
        FloatVector t2 = SLO0.selectFrom(r2, r3), t3 = SHI0.selectFrom(r2, r3);
        FloatVector t4 = SLO0.selectFrom(r4, r5), t5 = SHI0.selectFrom(r4, r5);
        FloatVector u0 = SLO1.selectFrom(t0, t2), u2 = SHI1.selectFrom(t0, t2);
        FloatVector u1 = SLO1.selectFrom(t1, t3), u3 = SHI1.selectFrom(t1, t3);
        FloatVector u4 = SLO1.selectFrom(t4, t4), u6 = SHI1.selectFrom(t4, t4);
        FloatVector u5 = SLO1.selectFrom(t5, t5), u7 = SHI1.selectFrom(t5, t5);
        // vector v now holds steps 2v, 2v + 1 in lanes 0-11 (p = 2 v' + (lane & 1) before the last move)
        // in ascending order: lanes 12-15 of each store are overwritten by the next one; the last
        // is masked so nothing past this block is touched
        SLO2.selectFrom(u0, u4).intoArray(dst, dOff);
        SLO2.selectFrom(u1, u5).intoArray(dst, dOff + 12);
        SLO2.selectFrom(u2, u6).intoArray(dst, dOff + 24);
        SLO2.selectFrom(u3, u7).intoArray(dst, dOff + 36);
        SHI2.selectFrom(u0, u4).intoArray(dst, dOff + 48);
        SHI2.selectFrom(u1, u5).intoArray(dst, dOff + 60);
        SHI2.selectFrom(u2, u6).intoArray(dst, dOff + 72);
        if (sOff + L < steps) { // lanes 12-15 fall on the next block's first slots, stored next
            SHI2.selectFrom(u3, u7).intoArray(dst, dOff + 84);
        } else { // masked only where nothing follows: profiles caught this masked store in the Vector API Java fallback
            SHI2.selectFrom(u3, u7).intoArray(dst, dOff + 84, FIRST12);
        }
        }
    }

    /** {@code len} consecutive elements starting at element {@code index}, as floats. */
    static void read(Source src, long index, int len, float[] out, GemmBuffers buf) {
        read(src, index, len, out, 0, buf);
    }

    /** {@code len} consecutive elements starting at element {@code index}, as floats, into {@code out} from {@code outOff}. */
    static void read(Source src, long index, int len, float[] out, int outOff, GemmBuffers buf) {
        MemorySegment seg = src.segment();
        switch (src.dtype()) {
            case F32 -> MemorySegment.copy(seg, F32, index * Float.BYTES, out, outOff, len);
            case BF16 -> FloatRows.loadBf16(seg, index, out, outOff, len);
            case F16 -> {
                short[] raw = buf.raw(len);
                MemorySegment.copy(seg, I16, index * Short.BYTES, raw, 0, len);
                for (int i = 0; i < len; i++) {
                    out[outOff + i] = Float.float16ToFloat(raw[i]);
                }
            }
            default -> throw new IllegalStateException("gemm: cannot pack " + src.dtype());
        }
    }
}
