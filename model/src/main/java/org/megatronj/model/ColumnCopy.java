package org.megatronj.model;

import java.lang.foreign.MemorySegment;

import org.megatronj.memory.Tensor;

/**
 * Copies a block of columns between two tensors seen as 2-D {@code [rows, lastDim]}: the concatenation and split along
 * the last dimension that MTP's {@code eh_proj} needs ({@code [e; h]}, and the gather of its column-parallel output).
 * {@code Backend.copy} copies contiguous tensors only, so this works on host tensors; {@link MultiTokenPrediction}
 * refuses a device backend by name before it gets here.
 */
final class ColumnCopy {
    private ColumnCopy() {
    }

    /** {@code dst[r, dstCol + j] = src[r, srcCol + j]} for every row r and {@code j < width}. */
    static void copy(Tensor src, long srcCol, Tensor dst, long dstCol, long width) {
        long srcCols = src.dim(-1);
        long dstCols = dst.dim(-1);
        long rows = src.numel() / srcCols;
        if (!src.device().isHost() || !dst.device().isHost() || src.dtype() != dst.dtype()
                || dst.numel() / dstCols != rows || srcCol + width > srcCols || dstCol + width > dstCols) {
            throw new IllegalArgumentException("cannot copy columns [" + srcCol + ", " + (srcCol + width) + ") of " + src
                    + " to columns [" + dstCol + ", " + (dstCol + width) + ") of " + dst + " (host tensors of one dtype"
                    + " and as many rows expected)");
        }
        long size = src.dtype().byteSize();
        MemorySegment s = src.segment();
        MemorySegment d = dst.segment();
        for (long r = 0; r < rows; r++) {
            MemorySegment.copy(s, (r * srcCols + srcCol) * size, d, (r * dstCols + dstCol) * size, width * size);
        }
    }
}
