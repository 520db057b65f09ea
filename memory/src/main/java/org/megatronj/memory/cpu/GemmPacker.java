package org.megatronj.memory.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
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
 */
final class GemmPacker {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED;

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
        int panels = (qLen + w - 1) / w;
        if (src.panelContiguous()) {
            float[] row = buf.row(qLen);
            for (int p = 0; p < kc; p++) {
                read(src, src.offset() + (long) (p0 + p) * src.ld() + q0, qLen, row, buf);
                for (int t = 0; t < panels; t++) {
                    int q = t * w;
                    int at = dstOff + t * w * kc + p * w;
                    int len = Math.min(w, qLen - q);
                    System.arraycopy(row, q, dst, at, len);
                    if (len < w) {
                        java.util.Arrays.fill(dst, at + len, at + w, 0f);
                    }
                }
            }
        } else {
            float[] row = buf.row(kc);
            for (int q = 0; q < qLen; q++) {
                read(src, src.offset() + (long) (q0 + q) * src.ld() + p0, kc, row, buf);
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
    }

    /** {@code len} consecutive elements starting at element {@code index}, as floats. */
    static void read(Source src, long index, int len, float[] out, GemmBuffers buf) {
        MemorySegment seg = src.segment();
        switch (src.dtype()) {
            case F32 -> MemorySegment.copy(seg, F32, index * Float.BYTES, out, 0, len);
            case BF16 -> {
                short[] raw = buf.raw(len);
                MemorySegment.copy(seg, I16, index * Short.BYTES, raw, 0, len);
                for (int i = 0; i < len; i++) {
                    out[i] = Float.intBitsToFloat((raw[i] & 0xffff) << 16);
                }
            }
            case F16 -> {
                short[] raw = buf.raw(len);
                MemorySegment.copy(seg, I16, index * Short.BYTES, raw, 0, len);
                for (int i = 0; i < len; i++) {
                    out[i] = Float.float16ToFloat(raw[i]);
                }
            }
            default -> throw new IllegalStateException("gemm: cannot pack " + src.dtype());
        }
    }
}
