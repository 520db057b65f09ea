package org.megatronj.memory.cpu;

import java.lang.foreign.MemorySegment;

/**
 * The register-blocked inner product of the blocked gemm: an {@code mr x nr} tile of C from an
 * A micro-panel and a B micro-panel, both packed by {@link GemmPacker} (A: {@code kc} steps of
 * {@code mr} floats, B: {@code kc} steps of {@code nr} floats, zero-padded at the edges).
 *
 * <p>Two implementations: {@link GemmVectorKernel} (Vector API, the fast path) and
 * {@link GemmScalarKernel} (plain Java, used when {@code -Dmegatron.vector.bits=0}); tests run
 * both in one JVM because the driver takes the kernel as an argument.
 */
sealed interface GemmKernel permits GemmVectorKernel, GemmScalarKernel {

    /** Rows of the C tile (and of an A micro-panel). */
    int mr();

    /** Columns of the C tile (and of a B micro-panel). */
    int nr();

    /**
     * {@code tile[r * nr + j] = sum over p < kc of a[aOff + p * mr + r] * b[bOff + p * nr + j]}
     * for {@code j < cols} at least (the tile is overwritten, not accumulated). {@code cols < nr}
     * is the right edge of C, where a kernel may skip the padding columns of the B panel.
     */
    void multiply(int kc, int cols, float[] a, int aOff, float[] b, int bOff, float[] tile);

    /**
     * Adds the first {@code rows x cols} of a tile (all of it inside C, a partial tile at its
     * edges) into F32 row-major C starting at element {@code cOff} with row stride {@code ldc}:
     * {@code c = alpha * tile + beta * c}, where {@code beta == 0} overwrites c without reading
     * it (so NaN in old C is ignored).
     */
    void updateF32(float[] tile, int rows, int cols, MemorySegment c, long cOff, long ldc, float alpha, float beta);

    /** The kernel the CPU backend uses: vectors unless {@code -Dmegatron.vector.bits=0}. */
    static GemmKernel preferred() {
        return VectorWidth.scalar() ? GemmScalarKernel.INSTANCE : GemmVectorKernel.INSTANCE;
    }
}
