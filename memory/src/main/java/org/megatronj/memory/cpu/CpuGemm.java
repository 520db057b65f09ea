package org.megatronj.memory.cpu;

import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorException;

/**
 * Matrix products for the CPU backend (see {@code Backend#gemm} for the contract): checks the
 * arguments and hands the product to {@link GemmDriver}, the multi-threaded blocked
 * Vector API kernel (packing in {@link GemmPacker}, the register tile in {@link GemmKernel}).
 *
 * <p>Every element of C sums its k products in the same order whatever the thread count, the
 * split or the kernel (vector or scalar), so results are bit-for-bit reproducible across
 * {@code -Dmegatron.cpu.threads} settings. C must not overlap a or b.
 */
public final class CpuGemm {
    /** Below this many multiply-adds a product runs on one thread: forking costs more than it saves. */
    private static final long MIN_PARALLEL_MACS = 1L << 18;

    private CpuGemm() {
    }

    public static void gemm(CpuThreads threads, boolean transA, boolean transB, float alpha,
                            Tensor a, Tensor b, float beta, Tensor c) {
        gemm(threads, GemmKernel.preferred(), GemmBlocking.DEFAULT, transA, transB, alpha, a, b, beta, c);
    }

    public static void gemmBatched(CpuThreads threads, boolean transA, boolean transB, float alpha,
                                   Tensor a, Tensor b, float beta, Tensor c) {
        gemmBatched(threads, GemmKernel.preferred(), GemmBlocking.DEFAULT, transA, transB, alpha, a, b, beta, c);
    }

    static void gemm(CpuThreads threads, GemmKernel kernel, GemmBlocking blocking, boolean transA, boolean transB,
                     float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        check("gemm", 2, a, b, c);
        Shape s = shape("gemm", transA, transB, a.dim(0), a.dim(1), b.dim(0), b.dim(1), c.dim(0), c.dim(1), c);
        multiply(threads, kernel, blocking, problem(transA, transB, s, alpha, a, b, beta, c, 0));
    }

    static void gemmBatched(CpuThreads threads, GemmKernel kernel, GemmBlocking blocking, boolean transA,
                            boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        check("gemmBatched", 3, a, b, c);
        long batch = a.dim(0);
        if (b.dim(0) != batch || c.dim(0) != batch) {
            throw new TensorException("gemmBatched: batch sizes differ: a " + Tensor.shapeString(a.shape())
                    + ", b " + Tensor.shapeString(b.shape()) + ", c " + Tensor.shapeString(c.shape()));
        }
        Shape s = shape("gemmBatched", transA, transB, a.dim(1), a.dim(2), b.dim(1), b.dim(2), c.dim(1), c.dim(2), c);
        // Many small matrices (attention): one matrix per thread. Few large ones: all threads on each.
        boolean perMatrix = threads.threads() > 1 && batch >= threads.threads()
                && (batch % threads.threads() == 0 || batch >= 4L * threads.threads());
        if (perMatrix) {
            threads.parallelFor(batch, 1, (from, to) -> {
                for (long i = from; i < to; i++) {
                    GemmDriver.run(threads, false, kernel, blocking, problem(transA, transB, s, alpha, a, b, beta, c, i));
                }
            });
        } else {
            for (long i = 0; i < batch; i++) {
                multiply(threads, kernel, blocking, problem(transA, transB, s, alpha, a, b, beta, c, i));
            }
        }
    }

    /** All threads on one product, unless it is too small to be worth the forks. */
    private static void multiply(CpuThreads threads, GemmKernel kernel, GemmBlocking blocking, GemmDriver.Problem p) {
        long macs = (long) p.m() * p.n() * Math.max(1, p.k());
        GemmDriver.run(threads, threads.threads() > 1 && macs >= MIN_PARALLEL_MACS, kernel, blocking, p);
    }

    private record Shape(int m, int n, int k) {
    }

    private static Shape shape(String op, boolean transA, boolean transB, long a0, long a1, long b0, long b1,
                               long c0, long c1, Tensor c) {
        long m = transA ? a1 : a0;
        long k = transA ? a0 : a1;
        long kb = transB ? b1 : b0;
        long n = transB ? b0 : b1;
        if (k != kb || c0 != m || c1 != n) {
            throw new TensorException(op + ": op(a) is " + m + "x" + k + " and op(b) is " + kb + "x" + n
                    + (k != kb ? " (inner dimensions differ)" : "") + "; c is " + Tensor.shapeString(c.shape())
                    + ", expected [" + (c.rank() == 3 ? c.dim(0) + ", " : "") + m + ", " + n + "] (transA=" + transA
                    + ", transB=" + transB + ")");
        }
        if (m > Integer.MAX_VALUE || n > Integer.MAX_VALUE || k > Integer.MAX_VALUE) {
            throw new TensorException(op + ": dimensions m=" + m + ", n=" + n + ", k=" + k + " exceed " + Integer.MAX_VALUE);
        }
        return new Shape((int) m, (int) n, (int) k);
    }

    private static GemmDriver.Problem problem(boolean transA, boolean transB, Shape s, float alpha, Tensor a, Tensor b,
                                              float beta, Tensor c, long batchIndex) {
        long aOff = batchIndex * s.m * (long) s.k;
        long bOff = batchIndex * s.k * (long) s.n;
        long cOff = batchIndex * s.m * (long) s.n;
        // op(A) panels run along m; op(B) panels along n (see GemmPacker.Source).
        var as = new GemmPacker.Source(a.segment(), a.dtype(), aOff, transA ? s.m : s.k, transA);
        var bs = new GemmPacker.Source(b.segment(), b.dtype(), bOff, transB ? s.k : s.n, !transB);
        return new GemmDriver.Problem(s.m, s.n, s.k, alpha, as, bs, beta, c.segment(), c.dtype(), cOff);
    }

    private static void check(String op, int rank, Tensor a, Tensor b, Tensor c) {
        String[] names = {"a", "b", "c"};
        Tensor[] all = {a, b, c};
        for (int i = 0; i < 3; i++) {
            Tensor t = all[i];
            if (t == null) {
                throw new TensorException(op + ": " + names[i] + " is null");
            }
            if (!t.isAlive()) {
                throw new TensorException(op + ": " + names[i] + " " + t + " belongs to a closed arena");
            }
            if (!t.device().isHost()) {
                throw new TensorException(op + ": " + names[i] + " " + t + " is not in host memory; the CPU backend needs host tensors");
            }
            if (t.rank() != rank) {
                throw new TensorException(op + ": expected " + rank + "-D tensors, got a " + Tensor.shapeString(a.shape())
                        + ", b " + Tensor.shapeString(b.shape()) + ", c " + Tensor.shapeString(c.shape()));
            }
        }
        if (a.dtype() != b.dtype() || !isGemmFloat(a.dtype())) {
            throw new TensorException(op + ": a is " + a.dtype() + " and b is " + b.dtype()
                    + "; expected the same dtype, one of F32, BF16, F16");
        }
        if (c.dtype() != DType.F32 && c.dtype() != a.dtype()) {
            throw new TensorException(op + ": c is " + c.dtype() + "; expected F32 or the input dtype " + a.dtype());
        }
        if (overlaps(c, a) || overlaps(c, b)) {
            throw new TensorException(op + ": c " + c + " overlaps " + (overlaps(c, a) ? "a" : "b")
                    + " in memory; the output must not alias an input");
        }
    }

    private static boolean overlaps(Tensor x, Tensor y) {
        return x.numel() > 0 && y.numel() > 0 && x.segment().asOverlappingSlice(y.segment()).isPresent();
    }

    private static boolean isGemmFloat(DType t) {
        return t == DType.F32 || t == DType.BF16 || t == DType.F16;
    }
}
