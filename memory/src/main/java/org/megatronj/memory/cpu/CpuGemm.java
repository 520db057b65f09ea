package org.megatronj.memory.cpu;

import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorException;

/**
 * Matrix products for the CPU backend (see {@code Backend#gemm} for the contract).
 * Straightforward row-major loops; the blocked Vector API kernel replaces this.
 */
public final class CpuGemm {
    private CpuGemm() {
    }

    public static void gemm(CpuThreads threads, boolean transA, boolean transB, float alpha,
                            Tensor a, Tensor b, float beta, Tensor c) {
        check("gemm", 2, a, b, c);
        int m = (int) (transA ? a.dim(1) : a.dim(0));
        int k = (int) (transA ? a.dim(0) : a.dim(1));
        int kb = (int) (transB ? b.dim(1) : b.dim(0));
        int n = (int) (transB ? b.dim(0) : b.dim(1));
        if (k != kb || c.dim(0) != m || c.dim(1) != n) {
            throw new TensorException("gemm: op(a) " + m + "x" + k + ", op(b) " + kb + "x" + n + " and c "
                    + Tensor.shapeString(c.shape()) + " do not fit (transA=" + transA + ", transB=" + transB + ")");
        }
        multiply(threads, transA, transB, m, n, k, alpha, a, 0, b, 0, beta, c, 0);
    }

    public static void gemmBatched(CpuThreads threads, boolean transA, boolean transB, float alpha,
                                   Tensor a, Tensor b, float beta, Tensor c) {
        check("gemmBatched", 3, a, b, c);
        long batch = a.dim(0);
        if (b.dim(0) != batch || c.dim(0) != batch) {
            throw new TensorException("gemmBatched: batch sizes differ: a " + Tensor.shapeString(a.shape())
                    + ", b " + Tensor.shapeString(b.shape()) + ", c " + Tensor.shapeString(c.shape()));
        }
        int m = (int) (transA ? a.dim(2) : a.dim(1));
        int k = (int) (transA ? a.dim(1) : a.dim(2));
        int kb = (int) (transB ? b.dim(2) : b.dim(1));
        int n = (int) (transB ? b.dim(1) : b.dim(2));
        if (k != kb || c.dim(1) != m || c.dim(2) != n) {
            throw new TensorException("gemmBatched: op(a) " + m + "x" + k + ", op(b) " + kb + "x" + n + " and c "
                    + Tensor.shapeString(c.shape()) + " do not fit (transA=" + transA + ", transB=" + transB + ")");
        }
        for (long i = 0; i < batch; i++) {
            multiply(threads, transA, transB, m, n, k, alpha, a, i * m * (long) k, b, i * k * (long) n, beta, c, i * m * (long) n);
        }
    }

    private static void check(String op, int rank, Tensor a, Tensor b, Tensor c) {
        for (Tensor t : new Tensor[] {a, b, c}) {
            if (!t.isAlive()) {
                throw new TensorException(op + ": " + t + " belongs to a closed arena");
            }
            if (t.rank() != rank) {
                throw new TensorException(op + ": expected " + rank + "-D tensors, got a " + Tensor.shapeString(a.shape())
                        + ", b " + Tensor.shapeString(b.shape()) + ", c " + Tensor.shapeString(c.shape()));
            }
        }
        if (a.dtype() != b.dtype() || !a.dtype().isFloatingPoint()) {
            throw new TensorException(op + ": a is " + a.dtype() + " and b is " + b.dtype() + "; expected the same float dtype");
        }
        if (c.dtype() != DType.F32 && c.dtype() != a.dtype()) {
            throw new TensorException(op + ": c is " + c.dtype() + "; expected F32 or " + a.dtype());
        }
    }

    private static void multiply(CpuThreads threads, boolean transA, boolean transB, int m, int n, int k, float alpha,
                                 Tensor a, long aOff, Tensor b, long bOff, float beta, Tensor c, long cOff) {
        threads.parallelFor(m, 8, (from, to) -> {
            for (long i = from; i < to; i++) {
                for (int j = 0; j < n; j++) {
                    float acc = 0f;
                    for (int p = 0; p < k; p++) {
                        float av = a.getFloat(aOff + (transA ? (long) p * m + i : i * k + p));
                        float bv = b.getFloat(bOff + (transB ? (long) j * k + p : (long) p * n + j));
                        acc += av * bv;
                    }
                    long ci = cOff + i * n + j;
                    c.setFloat(ci, beta == 0f ? alpha * acc : alpha * acc + beta * c.getFloat(ci));
                }
            }
        });
    }
}
