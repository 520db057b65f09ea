package org.megatronj.parallel.tensor;

import java.lang.foreign.MemorySegment;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorException;

/**
 * Copies a block of columns between two tensors seen as 2-D {@code [rows, lastDim]}: the
 * strided copy that splitting and gathering along the last dimension need, and that
 * {@code Backend.copy} (contiguous only) does not do.
 *
 * <p>Host tensors only. A device backend needs a 2-D copy (cuMemcpy2D) in its op set before
 * last-dimension splits can run on a GPU; until then this refuses device tensors by name.
 */
final class ColumnBlocks {
    private ColumnBlocks() {
    }

    /**
     * {@code dst[r, dstCol + j] = src[r, srcCol + j]} for every row r and {@code j < width};
     * src and dst have the same number of rows and the same dtype.
     */
    static void copy(String op, Tensor src, long srcCol, Tensor dst, long dstCol, long width) {
        if (!src.device().isHost() || !dst.device().isHost()) {
            throw new TensorException(op + ": splitting or gathering along the last dimension of device tensors needs a "
                    + "2-D device copy, which the backend does not offer; got " + src + " and " + dst);
        }
        long srcCols = src.dim(-1);
        long dstCols = dst.dim(-1);
        long rows = src.numel() / Math.max(srcCols, 1);
        if (src.dtype() != dst.dtype() || dst.numel() / Math.max(dstCols, 1) != rows
                || srcCol + width > srcCols || dstCol + width > dstCols) {
            throw new TensorException(op + ": cannot copy columns [" + srcCol + ", " + (srcCol + width) + ") of " + src
                    + " to columns [" + dstCol + ", " + (dstCol + width) + ") of " + dst);
        }
        long size = src.dtype().byteSize();
        MemorySegment s = src.segment();
        MemorySegment d = dst.segment();
        for (long r = 0; r < rows; r++) {
            MemorySegment.copy(s, (r * srcCols + srcCol) * size, d, (r * dstCols + dstCol) * size, width * size);
        }
    }
}
