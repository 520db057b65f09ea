package org.megatronj.memory.cuda;

import static org.megatronj.memory.TensorChecks.*;
import static org.megatronj.memory.cuda.DeviceChecks.*;

import org.megatronj.memory.Backends;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;

/**
 * FlashAttention forward and backward on the GPU ({@code native/src/main/cuda/flash_attention.cu}):
 * argument checks, launch shapes and the backward's fp32 workspaces (delta = rowsum(dO * O), and
 * dq accumulated in fp32 across key blocks, then cast).
 *
 * <p>Two kernel families with the same argument lists: the tensor-core FlashAttention-2 kernels
 * ({@code megatron_fa2_*}: BF16/F16, head dim 64 or 128, every tensor 16-byte aligned) and the
 * CUDA-core kernels ({@code megatron_flash_attention_*}) for everything else. The launch plans
 * below mirror {@code mj_fa_forward_launch} / {@code mj_fa_backward_launch} and the FA2_* numbers
 * in flash_attention.cu (which the native check harness launches through): change both together.
 * The d 128 forward has two FA2 kernels, {@code _d128} (64-row blocks) and {@code _d128_m2} (128-row
 * blocks, sm_90 and newer, large grids: {@link #fa2ForwardM2}); the backward starts with
 * {@code megatron_flash_attention_bwd_prep} (delta and the zeroed fp32 dq accumulator in one pass).
 *
 * <p>Documents ({@code keyStarts}, {@code --reset-attention-mask}) take the FA2 kernels' {@code _docs} twins,
 * which alone read keyStarts (the plain kernels keep their registers); the CUDA-core kernels read it when
 * it is not null.
 *
 * <p>The FA2 kernels find q, k and v through {@link Strides}: dense tensors, or Megatron's fused
 * {@code linear_qkv} output read in place ({@link #forwardFusedQkv}, {@link #backwardFusedQkv}, which
 * also write dK, dV and, through {@code megatron_flash_attention_dq_store}, dQ into the fused gradient).
 */
final class CudaAttention {
    /** Head dims with a compiled kernel (FA_INSTANTIATE in flash_attention.cu). */
    static final int[] HEAD_DIMS = {32, 64, 96, 128};
    private static final int WARPS = 4;
    private static final int ROWS_PER_BLOCK = WARPS * 4; // FA_BQ
    private static final int KEYS_PER_BLOCK = 32;        // FA_BK
    private static final int DEFAULT_SHARED_LIMIT = 48 * 1024;
    /** Sequence lengths the kernels index with int (the FA2 kernels keep positions in 32 bits). */
    private static final long MAX_SEQUENCE = Integer.MAX_VALUE - 65536L;

    /** One kernel launch: name, grid (x, y), threads per block, dynamic shared memory bytes. */
    record Launch(String kernel, long gridX, long gridY, int block, int shared) {
    }

    /** FA2_FWD_WARPS / FA2_FWD_MT / FA2_FWD_BN / FA2_BWD_WARPS / FA2_BWD_BM of flash_attention.cu. */
    private static int fa2ForwardWarps(int d) {
        return 4;
    }

    /** 16-row m-tiles per forward warp (FA2_FWD_MT; FA2_FWD_M2_MT for the d 128 _m2 kernel). */
    private static int fa2ForwardTiles(int d, boolean m2) {
        return m2 || d == 64 ? 2 : 1;
    }

    private static int fa2ForwardKeys(int d) {
        return 64;
    }

    /** FA2_FWD_M2_MIN_BLOCKS: 128-row forward blocks from which d 128 takes the _m2 kernel (sm_90 and newer). */
    static final long FA2_FORWARD_M2_MIN_BLOCKS = 2048;

    /**
     * mj_fa2_forward_m2: d 128 on sm_90 or newer ({@code sm} = 10 * major + minor) with a grid of at least
     * FA2_FORWARD_M2_MIN_BLOCKS blocks of 128 query rows takes the 128-row-block forward kernel
     * ({@code megatron_fa2_forward_*_d128_m2}, compiled for sm_90 and newer only).
     */
    static boolean fa2ForwardM2(int d, long s, int b, int np, int sm) {
        int bm = fa2ForwardRows(128, true);
        return d == 128 && sm >= 90 && (s + bm - 1) / bm * b * np >= FA2_FORWARD_M2_MIN_BLOCKS;
    }

    /** FA2_FWD_BM / FA2_FWD_M2_BM: query rows per forward block. */
    private static int fa2ForwardRows(int d, boolean m2) {
        return 16 * fa2ForwardWarps(d) * fa2ForwardTiles(d, m2);
    }

    private static int fa2BackwardWarps(int d) {
        return d == 128 ? 8 : 4;
    }

    private static int fa2BackwardRows(int d) {
        return d == 128 ? 32 : 64;
    }

    /** mj_fa2_forward_smem: the Q tile and two stages of K and V (2-byte elements). */
    static int fa2ForwardSharedBytes(int d, boolean m2) {
        return fa2ForwardRows(d, m2) * d * 2 + 4 * fa2ForwardKeys(d) * d * 2;
    }

    /** mj_fa2_backward_smem: K, V, two stages of Q and dO, dS^T, two stages of lse, delta (fp32) and key starts (int). */
    static int fa2BackwardSharedBytes(int d) {
        int bn = 16 * fa2BackwardWarps(d), bm = fa2BackwardRows(d);
        return 2 * bn * d * 2 + 4 * bm * d * 2 + bn * bm * 2 + 6 * bm * 4;
    }

    /**
     * mj_fa2_eligible: BF16/F16, d 64 or 128, scale > 0 (the FA2 forward takes the row max of the raw
     * scores and folds the scale into the exponent), and the tensors 16-byte aligned (cp.async, vector stores).
     */
    static boolean tensorCores(DType dt, int d, float scale, Tensor... tensors) {
        if ((dt != DType.BF16 && dt != DType.F16) || (d != 64 && d != 128) || !(scale > 0)) {
            return false;
        }
        for (Tensor t : tensors) {
            if (t.address() % 16 != 0) {
                return false;
            }
        }
        return true;
    }

    private static String fa2Name(String pass, DType dt, int d) {
        return "megatron_fa2_" + pass + "_" + (dt == DType.BF16 ? "bf16" : "f16") + "_d" + d;
    }

    /** mj_fa_forward_launch ({@code sm}: the device's compute capability, 10 * major + minor). */
    static Launch forwardLaunch(DType dt, int d, long s, int b, int np, boolean tensorCores, int sm) {
        return forwardLaunch(dt, d, s, b, np, tensorCores, sm, false, false);
    }

    /**
     * As {@link #forwardLaunch(DType, int, long, int, int, boolean, int)}; with {@code dropout} the FA2
     * kernel's {@code _dropout} twin, with {@code documents} its {@code _docs} twin (same tiling; neither has
     * an _m2 twin, so never the _m2 kernel).
     */
    static Launch forwardLaunch(DType dt, int d, long s, int b, int np, boolean tensorCores, int sm, boolean dropout,
                                boolean documents) {
        if (tensorCores) {
            boolean m2 = !dropout && !documents && fa2ForwardM2(d, s, b, np, sm);
            int bm = fa2ForwardRows(d, m2);
            return new Launch(fa2Name("forward", dt, d) + (m2 ? "_m2" : "") + twin(dropout, documents),
                    (s + bm - 1) / bm, (long) b * np, fa2ForwardWarps(d) * 32, fa2ForwardSharedBytes(d, m2));
        }
        return new Launch("megatron_flash_attention_forward_d" + d, (s + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK,
                (long) b * np, WARPS * 32, 0);
    }

    /** mj_fa_backward_launch. */
    static Launch backwardLaunch(DType dt, int d, long sk, int b, int ng, boolean tensorCores) {
        return backwardLaunch(dt, d, sk, b, ng, tensorCores, false, false);
    }

    /**
     * As {@link #backwardLaunch(DType, int, long, int, int, boolean)}; with {@code dropout} the FA2 kernel's
     * {@code _dropout} twin, with {@code documents} its {@code _docs} twin.
     */
    static Launch backwardLaunch(DType dt, int d, long sk, int b, int ng, boolean tensorCores, boolean dropout,
                                 boolean documents) {
        if (tensorCores) {
            int bn = 16 * fa2BackwardWarps(d);
            return new Launch(fa2Name("backward", dt, d) + twin(dropout, documents), (sk + bn - 1) / bn,
                    (long) b * ng, fa2BackwardWarps(d) * 32, fa2BackwardSharedBytes(d));
        }
        return new Launch("megatron_flash_attention_backward_d" + d, (sk + KEYS_PER_BLOCK - 1) / KEYS_PER_BLOCK,
                (long) b * ng, WARPS * 32, backwardSharedBytes(d));
    }

    /** The FA2 kernel name's suffix (FA2_TWINS in flash_attention.cu): {@code [_dropout][_docs]}. */
    private static String twin(boolean dropout, boolean documents) {
        return (dropout ? "_dropout" : "") + (documents ? "_docs" : "");
    }

    private void launch(Launch l, Object... args) {
        if (l.shared() > DEFAULT_SHARED_LIMIT) {
            backend.kernels().requireSharedMemory(l.kernel(), l.shared());
        }
        backend.launch(l.kernel(), l.gridX(), l.gridY(), l.block(), l.shared(), args);
    }

    private final CudaBackend backend;

    CudaAttention(CudaBackend backend) {
        this.backend = backend;
    }

    /** 10 * major + minor of the backend's device (the launch plans' {@code sm}). */
    private int computeCapability() {
        CudaDevice.Properties p = backend.cudaDevice().properties();
        return 10 * p.major() + p.minor();
    }

    private record Shape(long s, long sk, int b, int np, int ng, int d) {
    }

    private static Shape check(String op, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Tensor keyLengths,
                               Tensor keyStarts) {
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
        if (s > MAX_SEQUENCE || sk > MAX_SEQUENCE) {
            throw fail(op, "sequence lengths s = " + s + ", sk = " + sk + " exceed " + MAX_SEQUENCE);
        }
        dtype(op, "lse", lse, DType.F32);
        shape(op, "lse", lse, b, np, s);
        if (keyLengths != null) {
            dtype(op, "keyLengths", keyLengths, DType.I32);
            shape(op, "keyLengths", keyLengths, b);
        }
        checkKeyStarts(op, keyStarts, b, s);
        return new Shape(s, sk, b, np, ng, d);
    }

    /**
     * Where the FA2 kernels find q, k, v (fa2::QkvStrides in flash_attention.cu, in elements): query head h
     * of token (i, b) at {@code q + (i B + b) qTok + (h / rep) qGrp + (h % rep) d}, key head g at
     * {@code k + (i B + b) kTok + g kGrp}; dK and dV are written the same way.
     */
    private record Strides(int qTok, int qGrp, int kTok, int kGrp) {
        static Strides dense(int np, int ng, int d) {
            return new Strides(np * d, np / ng * d, ng * d, d);
        }

        /** Megatron's fused linear_qkv output, per token and group: rep query heads, the key head, the value head. */
        static Strides fused(int np, int ng, int d) {
            int token = (np + 2 * ng) * d;
            int group = (np / ng + 2) * d;
            return new Strides(token, group, token, group);
        }
    }

    /**
     * Dropout on the probabilities in the FA2 kernels' {@code _dropout} twins (fa2::Dropout): p, the keep
     * scale 1 / (1 - p) in float (as the CPU's AttentionDropout), the Philox key and counter start.
     */
    private record Dropout(float p, long seed, long offset) {
        static final Dropout NONE = new Dropout(0f, 0L, 0L);

        boolean on() {
            return p != 0f;
        }

        float scale() {
            return on() ? 1f / (1f - p) : 1f;
        }
    }

    /** Attention dropout needs the tensor-core kernels: a clear refusal for the others. */
    private static Dropout dropout(String op, float p, long seed, long offset, boolean tensorCores, DType dt, int d) {
        if (!(p >= 0f && p < 1f)) {
            throw fail(op, "dropoutP = " + p + "; expected a probability in [0, 1)");
        }
        if (p != 0f && !tensorCores) {
            throw fail(op, "attention dropout (p = " + p + ") runs in the tensor-core FlashAttention kernels only: "
                    + "BF16/F16, head dim 64 or 128, 16-byte aligned tensors; got " + dt + " with head dim " + d
                    + " (" + Backends.CUDA_ATTENTION_DROPOUT_UNSUPPORTED + ")");
        }
        return p == 0f ? Dropout.NONE : new Dropout(p, seed, offset);
    }

    /** keyStarts I32 {@code [b, s]} (documents), when given. */
    private static void checkKeyStarts(String op, Tensor keyStarts, long b, long s) {
        if (keyStarts != null) {
            dtype(op, "keyStarts", keyStarts, DType.I32);
            shape(op, "keyStarts", keyStarts, b, s);
        }
    }

    void forward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, float scale, boolean causal, Tensor keyLengths,
                 Tensor keyStarts, float dropoutP, long seed, long offset) {
        Shape sh = check("attentionForward", q, k, v, out, lse, keyLengths, keyStarts);
        boolean tc = tensorCores(q.dtype(), sh.d(), scale, q, k, v, out);
        Dropout drop = dropout("attentionForward", dropoutP, seed, offset, tc, q.dtype(), sh.d());
        backend.enter();
        int dt = code("attentionForward", q);
        Launch l = forwardLaunch(q.dtype(), sh.d(), sh.s(), sh.b(), sh.np(), tc, computeCapability(), drop.on(),
                keyStarts != null);
        long keyLens = address(keyLengths), starts = address(keyStarts);
        if (tc) {
            Strides st = Strides.dense(sh.np(), sh.ng(), sh.d());
            launch(l, q.address(), k.address(), v.address(), dt, out.address(), lse.address(), sh.s(), sh.sk(), sh.b(),
                    sh.np(), sh.ng(), scale, causal ? 1 : 0, keyLens, starts, st.qTok(), st.qGrp(), st.kTok(),
                    st.kGrp(), drop.p(), drop.scale(), drop.seed(), drop.offset());
        } else {
            launch(l, q.address(), k.address(), v.address(), dt, out.address(), lse.address(), sh.s(), sh.sk(), sh.b(),
                    sh.np(), sh.ng(), scale, causal ? 1 : 0, keyLens, starts);
        }
    }

    /** Checks the fused-layout ops' qkv {@code [s, b, (np + 2 ng) d]}, out {@code [s, b, np, d]} and lse; returns d. */
    private static int checkFused(String op, Tensor qkv, int np, int ng, Tensor out, Tensor lse) {
        floating(op, "qkv", qkv);
        rank(op, "qkv", qkv, 3, "[s, b, (np + 2 ng) d]");
        if (ng <= 0 || np <= 0 || np % ng != 0 || qkv.dim(2) % (np + 2L * ng) != 0) {
            throw fail(op, "qkv " + Tensor.shapeString(qkv.shape()) + " with np = " + np + ", ng = " + ng
                    + "; expected [s, b, (np + 2 ng) d] with np % ng == 0");
        }
        int d = Math.toIntExact(qkv.dim(2) / (np + 2L * ng));
        if (out.dtype() != qkv.dtype()) {
            throw fail(op, "out is " + out.dtype() + ", qkv " + qkv.dtype() + "; expected one dtype");
        }
        shape(op, "out", out, qkv.dim(0), qkv.dim(1), np, d);
        dtype(op, "lse", lse, DType.F32);
        shape(op, "lse", lse, qkv.dim(1), np, qkv.dim(0));
        if (qkv.dim(0) > MAX_SEQUENCE) {
            throw fail(op, "sequence length s = " + qkv.dim(0) + " exceeds " + MAX_SEQUENCE);
        }
        return d;
    }

    /**
     * {@link CudaBackend#attentionForwardFusedQkv} on the FA2 kernels, q, k and v read in place; false
     * (nothing launched) when those kernels do not apply (dtype, head dim, alignment).
     */
    boolean forwardFusedQkv(Tensor qkv, int np, int ng, Tensor out, Tensor lse, float scale, boolean causal,
                            Tensor keyStarts) {
        String op = "attentionForwardFusedQkv";
        int d = checkFused(op, qkv, np, ng, out, lse);
        checkKeyStarts(op, keyStarts, qkv.dim(1), qkv.dim(0));
        if (!tensorCores(qkv.dtype(), d, scale, qkv, out)) {
            return false;
        }
        backend.enter();
        long s = qkv.dim(0);
        int b = Math.toIntExact(qkv.dim(1));
        long headBytes = (long) d * qkv.dtype().byteSize();
        Strides st = Strides.fused(np, ng, d);
        Launch l = forwardLaunch(qkv.dtype(), d, s, b, np, true, computeCapability(), false, keyStarts != null);
        launch(l, qkv.address(), qkv.address() + np / ng * headBytes, qkv.address() + (np / ng + 1) * headBytes,
                code(op, qkv), out.address(), lse.address(), s, s, b, np, ng, scale, causal ? 1 : 0, 0L,
                address(keyStarts), st.qTok(), st.qGrp(), st.kTok(), st.kGrp(), 0f, 1f, 0L, 0L);
        return true;
    }

    /**
     * {@link CudaBackend#attentionBackwardFusedQkv} on the FA2 kernels: dK and dV written in place into
     * dqkv, dQ accumulated in fp32 and stored into its fused place; false when those kernels do not apply.
     */
    boolean backwardFusedQkv(Tensor dOut, Tensor qkv, int np, int ng, Tensor out, Tensor lse, Tensor dqkv, float scale,
                             boolean causal, Tensor keyStarts) {
        String op = "attentionBackwardFusedQkv";
        int d = checkFused(op, qkv, np, ng, out, lse);
        checkKeyStarts(op, keyStarts, qkv.dim(1), qkv.dim(0));
        sameShape(op, "out", out, "dOut", dOut);
        sameShape(op, "qkv", qkv, "dqkv", dqkv);
        if (dOut.dtype() != qkv.dtype() || dqkv.dtype() != qkv.dtype()) {
            throw fail(op, "dOut and dqkv must have qkv's dtype " + qkv.dtype() + "; got " + dOut.dtype() + ", "
                    + dqkv.dtype());
        }
        if (!tensorCores(qkv.dtype(), d, scale, qkv, out, dOut, dqkv)) {
            return false;
        }
        backend.enter();
        long s = qkv.dim(0);
        int b = Math.toIntExact(qkv.dim(1));
        int dt = code(op, qkv);
        int rep = np / ng;
        long headBytes = (long) d * qkv.dtype().byteSize();
        Strides st = Strides.fused(np, ng, d);
        long rows = s * b * np;
        long deltaBytes = rows * Float.BYTES;
        long dqBytes = rows * d * Float.BYTES;
        long delta = backend.temporary(deltaBytes);
        long dqAcc = backend.temporary(dqBytes);
        try {
            prepareBackward(dOut, out, dt, delta, dqAcc, s, b, np, d);
            launch(backwardLaunch(qkv.dtype(), d, s, b, ng, true, false, keyStarts != null), qkv.address(),
                    qkv.address() + rep * headBytes, qkv.address() + (rep + 1) * headBytes, dt, dOut.address(),
                    lse.address(), delta, dqAcc, dqkv.address() + rep * headBytes, dqkv.address() + (rep + 1) * headBytes,
                    s, s, b, np, ng, scale, causal ? 1 : 0, 0L, address(keyStarts), st.qTok(), st.qGrp(), st.kTok(),
                    st.kGrp(), 0f, 1f, 0L, 0L);
            backend.launch("megatron_flash_attention_dq_store", backend.grid(rows * d / 8), 1, CudaBackend.THREADS, 0,
                    dqAcc, dqkv.address(), dt, s * b, np, rep, d, st.qTok(), st.qGrp());
        } finally {
            backend.release(delta, deltaBytes); // stream-ordered: freed after the kernels that use it
            backend.release(dqAcc, dqBytes);
        }
        return true;
    }

    /** delta = rowsum(dO * O) and the zeroed fp32 dq accumulator, one pass (megatron_flash_attention_bwd_prep). */
    private void prepareBackward(Tensor dOut, Tensor out, int dt, long delta, long dqAcc, long s, int b, int np, int d) {
        backend.launch("megatron_flash_attention_bwd_prep", backend.grid(s * b * np * d / 8), 1, CudaBackend.THREADS,
                0, dOut.address(), out.address(), dt, delta, dqAcc, s, b, np, d);
    }

    /** Dynamic shared memory of the backward kernel: K, V, dK, dV tiles [32][d + 1] and two rows per warp (fp32). */
    static int backwardSharedBytes(int d) {
        return (4 * KEYS_PER_BLOCK * (d + 1) + 2 * WARPS * d) * Float.BYTES;
    }

    void backward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Tensor dq, Tensor dk, Tensor dv,
                  float scale, boolean causal, Tensor keyLengths, Tensor keyStarts, float dropoutP, long seed, long offset) {
        String op = "attentionBackward";
        Shape sh = check(op, q, k, v, out, lse, keyLengths, keyStarts);
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
        boolean tc = tensorCores(q.dtype(), sh.d(), scale, q, k, v, out, dOut, dk, dv);
        Dropout drop = dropout(op, dropoutP, seed, offset, tc, q.dtype(), sh.d());
        backend.enter();
        int dt = code(op, q);
        long rows = sh.s() * sh.b() * sh.np();
        long deltaBytes = rows * Float.BYTES;
        long delta = backend.temporary(deltaBytes);
        boolean dqIsF32 = dq.dtype() == DType.F32;
        long dqBytes = rows * sh.d() * Float.BYTES;
        long dqAcc = dqIsF32 ? dq.address() : backend.temporary(dqBytes);
        try {
            prepareBackward(dOut, out, dt, delta, dqAcc, sh.s(), sh.b(), sh.np(), sh.d());
            Launch l = backwardLaunch(q.dtype(), sh.d(), sh.sk(), sh.b(), sh.ng(), tc, drop.on(), keyStarts != null);
            long keyLens = address(keyLengths), starts = address(keyStarts);
            if (tc) {
                Strides st = Strides.dense(sh.np(), sh.ng(), sh.d());
                launch(l, q.address(), k.address(), v.address(), dt, dOut.address(), lse.address(), delta, dqAcc,
                        dk.address(), dv.address(), sh.s(), sh.sk(), sh.b(), sh.np(), sh.ng(), scale, causal ? 1 : 0,
                        keyLens, starts, st.qTok(), st.qGrp(), st.kTok(), st.kGrp(), drop.p(), drop.scale(), drop.seed(),
                        drop.offset());
            } else {
                launch(l, q.address(), k.address(), v.address(), dt, dOut.address(), lse.address(), delta, dqAcc,
                        dk.address(), dv.address(), sh.s(), sh.sk(), sh.b(), sh.np(), sh.ng(), scale, causal ? 1 : 0,
                        keyLens, starts);
            }
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

    /** A device pointer argument: the tensor's address, or 0 (NULL) for none. */
    private static long address(Tensor t) {
        return t == null ? 0L : t.address();
    }
}
