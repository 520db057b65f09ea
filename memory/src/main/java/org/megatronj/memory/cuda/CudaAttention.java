package org.megatronj.memory.cuda;

import static org.megatronj.bindings.cuda.cuda_h.*;
import static org.megatronj.memory.TensorChecks.*;
import static org.megatronj.memory.cuda.DeviceChecks.*;

import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;

/**
 * FlashAttention forward and backward on the GPU ({@code native/src/main/cuda/flash_attention.cu}):
 * argument checks, launch shapes and the backward's fp32 workspaces (delta = rowsum(dO * O), and
 * dq accumulated in fp32 across key blocks, then cast).
 */
final class CudaAttention {
    /** Head dims with a compiled kernel (FA_INSTANTIATE in flash_attention.cu). */
    static final int[] HEAD_DIMS = {32, 64, 96, 128};
    private static final int WARPS = 4;
    private static final int ROWS_PER_BLOCK = WARPS * 4; // FA_BQ
    private static final int KEYS_PER_BLOCK = 32;        // FA_BK
    private static final int DEFAULT_SHARED_LIMIT = 48 * 1024;

    private final CudaBackend backend;

    CudaAttention(CudaBackend backend) {
        this.backend = backend;
    }

    private record Shape(long s, long sk, int b, int np, int ng, int d) {
    }

    private static Shape check(String op, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Tensor keyLengths) {
        floating(op, "q", q);
        floating(op, "k", k);
        floating(op, "v", v);
        floating(op, "out", out);
        rank(op, "q", q, 4, "[s, b, np, d]");
        rank(op, "k", k, 4, "[sk, b, ng, d]");
        sameShape(op, "k", k, "v", v);
        sameShape(op, "q", q, "out", out);
        if (k.dtype() != q.dtype() || v.dtype() != q.dtype() || out.dtype() != q.dtype()) {
            throw fail(op, "q, k, v and out are " + q.dtype() + ", " + k.dtype() + ", " + v.dtype() + ", " + out.dtype()
                    + "; expected one dtype");
        }
        long s = q.dim(0), sk = k.dim(0);
        int b = Math.toIntExact(q.dim(1)), np = Math.toIntExact(q.dim(2)), ng = Math.toIntExact(k.dim(2));
        int d = Math.toIntExact(q.dim(3));
        if (k.dim(1) != b || k.dim(3) != d || ng == 0 || np % ng != 0) {
            throw fail(op, "q " + Tensor.shapeString(q.shape()) + " and k " + Tensor.shapeString(k.shape())
                    + "; expected k [sk, b, ng, d] with the same b and d and np % ng == 0");
        }
        boolean supported = false;
        for (int hd : HEAD_DIMS) {
            supported |= hd == d;
        }
        if (!supported) {
            throw fail(op, "head dim d = " + d + " has no CUDA FlashAttention kernel; supported: 32, 64, 96, 128");
        }
        dtype(op, "lse", lse, DType.F32);
        shape(op, "lse", lse, b, np, s);
        if (keyLengths != null) {
            dtype(op, "keyLengths", keyLengths, DType.I32);
            shape(op, "keyLengths", keyLengths, b);
        }
        return new Shape(s, sk, b, np, ng, d);
    }

    void forward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, float scale, boolean causal, Tensor keyLengths) {
        Shape sh = check("attentionForward", q, k, v, out, lse, keyLengths);
        backend.enter();
        int dt = code("attentionForward", q);
        backend.launch("megatron_flash_attention_forward_d" + sh.d(), (sh.s() + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK,
                (long) sh.b() * sh.np(), WARPS * 32, 0, q.address(), k.address(), v.address(), dt, out.address(),
                lse.address(), sh.s(), sh.sk(), sh.b(), sh.np(), sh.ng(), scale, causal ? 1 : 0,
                keyLengths == null ? 0L : keyLengths.address());
    }

    /** Dynamic shared memory of the backward kernel: K, V, dK, dV tiles [32][d + 1] and two rows per warp (fp32). */
    static int backwardSharedBytes(int d) {
        return (4 * KEYS_PER_BLOCK * (d + 1) + 2 * WARPS * d) * Float.BYTES;
    }

    void backward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Tensor dq, Tensor dk, Tensor dv,
                  float scale, boolean causal, Tensor keyLengths) {
        String op = "attentionBackward";
        Shape sh = check(op, q, k, v, out, lse, keyLengths);
        floating(op, "dOut", dOut);
        floating(op, "dq", dq);
        floating(op, "dk", dk);
        floating(op, "dv", dv);
        sameShape(op, "q", q, "dOut", dOut);
        sameShape(op, "q", q, "dq", dq);
        sameShape(op, "k", k, "dk", dk);
        sameShape(op, "v", v, "dv", dv);
        if (dOut.dtype() != q.dtype() || dk.dtype() != q.dtype() || dv.dtype() != q.dtype()) {
            throw fail(op, "dOut, dk and dv must have q's dtype " + q.dtype() + "; got " + dOut.dtype() + ", "
                    + dk.dtype() + ", " + dv.dtype());
        }
        backend.enter();
        int dt = code(op, q);
        long rows = sh.s() * sh.b() * sh.np();
        long deltaBytes = rows * Float.BYTES;
        long delta = backend.temporary(deltaBytes);
        boolean dqIsF32 = dq.dtype() == DType.F32;
        long dqBytes = rows * sh.d() * Float.BYTES;
        long dqAcc = dqIsF32 ? dq.address() : backend.temporary(dqBytes);
        try {
            CudaCheck.driver("cuMemsetD32Async", cuMemsetD32Async(dqAcc, 0, rows * sh.d(), backend.stream().handle()));
            backend.launch("megatron_flash_attention_delta", (rows + WARPS - 1) / WARPS, 1, WARPS * 32, 0,
                    dOut.address(),
                    out.address(), dt, delta, sh.s(), sh.b(), sh.np(), sh.d());
            String kernel = "megatron_flash_attention_backward_d" + sh.d();
            int shared = backwardSharedBytes(sh.d());
            if (shared > DEFAULT_SHARED_LIMIT) {
                backend.kernels().requireSharedMemory(kernel, shared);
            }
            backend.launch(kernel, (sh.sk() + KEYS_PER_BLOCK - 1) / KEYS_PER_BLOCK, (long) sh.b() * sh.ng(), WARPS * 32,
                    shared, q.address(), k.address(), v.address(), dt, dOut.address(), lse.address(), delta, dqAcc,
                    dk.address(), dv.address(), sh.s(), sh.sk(), sh.b(), sh.np(), sh.ng(), scale, causal ? 1 : 0,
                    keyLengths == null ? 0L : keyLengths.address());
            if (!dqIsF32) {
                backend.launch("megatron_cast", backend.grid(rows * sh.d()), 1, CudaBackend.THREADS, 0, dqAcc, 0,
                        dq.address(), dt, rows * sh.d());
            }
        } finally {
            backend.release(delta, deltaBytes); // stream-ordered: freed after the kernels that use it
            if (!dqIsF32) {
                backend.release(dqAcc, dqBytes);
            }
        }
    }
}
