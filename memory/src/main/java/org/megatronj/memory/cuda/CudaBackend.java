package org.megatronj.memory.cuda;

import static org.megatronj.bindings.cuda.cuda_h.*;
import static org.megatronj.memory.TensorChecks.*;
import static org.megatronj.memory.cuda.DeviceChecks.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.Locale;

import org.megatronj.memory.Backend;
import org.megatronj.memory.MemoryStats;
import org.megatronj.memory.DType;
import org.megatronj.memory.Device;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.memory.TensorChecks;
import org.megatronj.memory.TensorException;
import org.megatronj.memory.cuda.CublasLtGemm.Epilogue;

/**
 * The op set on one NVIDIA GPU: cuBLASLt for matrix products, our nvcc-built kernels
 * ({@code native/src/main/cuda}) launched through the driver API for everything else, all on
 * one stream. Memory comes from a stream-ordered caching pool ({@link DeviceAllocator}); host
 * tensors travel through a pinned staging buffer; {@link #timer()} measures GPU time with events.
 *
 * <p>Must agree with {@code CpuBackend} to rounding: same formulas, fp32 accumulation, the same
 * Philox dropout mask. Calls may come from any thread; each makes the device's context current.
 */
public final class CudaBackend implements Backend {
    static final int THREADS = 256;

    private final CudaDevice device;
    private final CudaStream stream;
    private final DeviceAllocator allocator;
    private final PinnedStaging staging;
    private final KernelModule kernels;
    private final CudaAttention attention;
    private final CudaNormOps layers;
    private final CudaLossOps losses;
    private final CudaMultiTensorAdam multiTensorAdam;
    private final long scratch; // 16 bytes of device memory for reductions and error flags
    // Embedding lookups check their ids on the GPU without stalling the stream: each call since the
    // last synchronisation owns one 64-bit slot (position << 32 | id of its first bad id, or all
    // ones), read at the next download, synchronize() or reduction (see checkIds).
    private static final int ID_CHECK_SLOTS = 256;
    private final long idChecks;
    private final String[] idCheckCalls = new String[ID_CHECK_SLOTS];
    private int idChecksUsed;
    private final KernelProfiler profiler = KernelProfiler.fromEnvironment(); // null unless MEGATRON_CUDA_PROFILE is set
    private CublasLtGemm gemm;  // created on first use, so kernels work without libcublasLt
    private boolean closed;

    /** Opens GPU {@code deviceOrdinal}; throws {@link CudaException} or {@link UnsatisfiedLinkError} saying what is missing. */
    public CudaBackend(int deviceOrdinal) {
        CudaDevice dev = CudaDevice.open(deviceOrdinal);
        CudaStream s = null;
        DeviceAllocator alloc = null;
        PinnedStaging stage = null;
        try {
            s = new CudaStream();
            alloc = new DeviceAllocator(dev, s);
            stage = new PinnedStaging(s, PinnedStaging.DEFAULT_BYTES);
            this.kernels = new KernelModule();
        } catch (RuntimeException | Error e) {
            closeQuietly(stage, alloc, s, dev);
            throw e;
        }
        this.device = dev;
        this.stream = s;
        this.allocator = alloc;
        this.staging = stage;
        this.scratch = allocator.allocate(16);
        this.idChecks = allocator.allocate(8L * ID_CHECK_SLOTS);
        CudaCheck.driver("cuMemsetD32Async", cuMemsetD32Async(idChecks, -1, 2L * ID_CHECK_SLOTS, stream.handle()));
        this.attention = new CudaAttention(this);
        this.layers = new CudaNormOps(this);
        this.losses = new CudaLossOps(this);
        this.multiTensorAdam = new CudaMultiTensorAdam(this);
    }

    /**
     * Opens the GPU of this process: {@code MEGATRON_CUDA_DEVICE} if set, else {@code LOCAL_RANK}
     * (one process per GPU under {@code megatron launch}, torchrun or Slurm), else device 0. This is
     * the constructor {@code Backends.create("cuda")} calls.
     */
    public CudaBackend() {
        this(defaultOrdinal());
    }

    static int defaultOrdinal() {
        for (String var : new String[] {"MEGATRON_CUDA_DEVICE", "LOCAL_RANK"}) {
            String v = System.getenv(var);
            if (v != null && !v.isBlank()) {
                try {
                    return Integer.parseInt(v.trim());
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException(var + "='" + v + "' is not a device number", e);
                }
            }
        }
        return 0;
    }

    /** The same as {@code new CudaBackend(deviceOrdinal)}. */
    public static CudaBackend create(int deviceOrdinal) {
        return new CudaBackend(deviceOrdinal);
    }

    private static void closeQuietly(AutoCloseable... resources) {
        for (AutoCloseable r : resources) {
            if (r != null) {
                try {
                    r.close();
                } catch (Exception ignored) {
                    // already failing; the first error is the one reported
                }
            }
        }
    }

    @Override
    public String name() {
        return "cuda";
    }

    @Override
    public Device device() {
        return Device.CUDA;
    }

    public CudaDevice cudaDevice() {
        return device;
    }

    /** Bytes handed out by the caching allocator now, and at most so far. */
    public long bytesInUse() {
        return allocator.bytesInUse();
    }

    public long peakBytes() {
        return allocator.peakBytes();
    }

    @Override
    public MemoryStats memoryStats() {
        enter();
        return allocator.stats();
    }

    /** A GPU timer on this backend's stream (close it when done). */
    public CudaTimer timer() {
        enter();
        return new CudaTimer(stream);
    }

    void enter() {
        if (closed) {
            throw new IllegalStateException("the CUDA backend of device " + device.ordinal() + " is closed");
        }
        device.makeCurrent();
    }

    KernelModule kernels() {
        return kernels;
    }

    /** The stream every op of this backend is queued on (for NCCL collectives and timers). */
    public CudaStream stream() {
        return stream;
    }

    DeviceAllocator allocator() {
        return allocator;
    }

    int multiprocessors() {
        return device.properties().multiprocessors();
    }

    /** Grid size of a grid-stride loop over n elements: enough blocks to fill the GPU, no more. */
    long grid(long n) {
        return Math.max(1, Math.min((n + THREADS - 1) / THREADS, (long) multiprocessors() * 16));
    }

    void launch(String kernel, long gridX, long gridY, int block, int shared, Object... args) {
        if (profiler != null) {
            profiler.begin(kernel, stream);
            kernels.launch(stream, kernel, gridX, gridY, block, shared, args);
            profiler.end(stream);
        } else {
            kernels.launch(stream, kernel, gridX, gridY, block, shared, args);
        }
    }

    // ------------------------------------------------------------------ memory

    @Override
    @SuppressWarnings("restricted") // a device address sized as the tensor; host code never dereferences it
    public Tensor allocate(TensorArena arena, DType dtype, long... shape) {
        enter();
        long bytes = Tensor.byteSize(dtype, shape);
        long address = allocator.allocate(bytes);
        CudaCheck.driver("cuMemsetD8Async", cuMemsetD8Async(address, (byte) 0, Math.max(bytes, 1), stream.handle()));
        MemorySegment storage = MemorySegment.ofAddress(address).reinterpret(bytes);
        return arena.adopt(dtype, shape, storage, Device.CUDA, () -> allocator.free(address, bytes));
    }

    /** Temporary device memory for one op, freed in stream order by the caller. */
    long temporary(long bytes) {
        return allocator.allocate(bytes);
    }

    void release(long address, long bytes) {
        allocator.free(address, bytes);
    }

    /** Host to device through the pinned staging buffer; the data is on the device on return. */
    void upload(MemorySegment host, long address) {
        staging.upload(host, address);
    }

    @Override
    public void copy(Tensor src, Tensor dst) {
        String op = "copy";
        alive(op, "src", src);
        alive(op, "dst", dst);
        if (src.dtype() != dst.dtype()) {
            throw fail(op, "src is " + src.dtype() + " but dst is " + dst.dtype() + "; expected equal dtypes (use cast)");
        }
        sameNumel(op, "src", src, "dst", dst);
        enter();
        long bytes = src.byteSize();
        boolean fromHost = src.device().isHost();
        boolean toHost = dst.device().isHost();
        if (fromHost && toHost) {
            MemorySegment.copy(src.segment(), 0, dst.segment(), 0, bytes);
        } else if (fromHost) {
            staging.upload(src.segment(), dst.address());
        } else if (toHost) {
            staging.download(src.address(), dst.segment());
            checkIds();
        } else if (bytes > 0) {
            CudaCheck.driver("cuMemcpyDtoDAsync_v2", cuMemcpyDtoDAsync_v2(dst.address(), src.address(), bytes,
                    stream.handle()));
        }
    }

    @Override
    public void fill(Tensor x, float value) {
        DeviceChecks.device("fill", "x", x);
        enter();
        if (Float.floatToRawIntBits(value) == 0) { // +0.0 is all-zero bytes in every dtype
            CudaCheck.driver("cuMemsetD8Async", cuMemsetD8Async(x.address(), (byte) 0, x.byteSize(), stream.handle()));
            return;
        }
        launch("megatron_fill", grid(x.numel()), 1, THREADS, 0, x.address(), code("fill", x), x.numel(), value);
    }

    @Override
    public void synchronize() {
        enter();
        stream.synchronize();
        checkIds();
    }

    /** Reads {@code bytes} (at most 16) of the scratch buffer after the queued work is done. */
    private MemorySegment readScratch(Arena arena, long bytes) {
        MemorySegment host = arena.allocate(bytes, 8);
        staging.download(scratch, host);
        checkIds();
        return host;
    }

    // ------------------------------------------------------------------ matrix products

    CublasLtGemm gemm() { // package-private: tests read its plan cache
        if (gemm == null) {
            gemm = new CublasLtGemm(stream, allocator);
        }
        return gemm;
    }

    @Override
    public void gemm(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        String op = "gemm";
        floating(op, "a", a);
        floating(op, "b", b);
        floating(op, "c", c);
        rank(op, "a", a, 2, "[m, k] or [k, m]");
        rank(op, "b", b, 2, "[k, n] or [n, k]");
        rank(op, "c", c, 2, "[m, n]");
        gemmChecked(op, transA, transB, alpha, a, b, beta, c, 1);
    }

    @Override
    public void gemmBatched(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        String op = "gemmBatched";
        floating(op, "a", a);
        floating(op, "b", b);
        floating(op, "c", c);
        rank(op, "a", a, 3, "[batch, m, k]");
        rank(op, "b", b, 3, "[batch, k, n]");
        rank(op, "c", c, 3, "[batch, m, n]");
        if (a.dim(0) != b.dim(0) || a.dim(0) != c.dim(0)) {
            throw fail(op, "batch sizes differ: a " + Tensor.shapeString(a.shape()) + ", b " + Tensor.shapeString(b.shape())
                    + ", c " + Tensor.shapeString(c.shape()));
        }
        gemmChecked(op, transA, transB, alpha, a, b, beta, c, Math.toIntExact(a.dim(0)));
    }

    private void gemmChecked(String op, boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta,
                             Tensor c, int batch) {
        if (a.dtype() != b.dtype()) {
            throw fail(op, "a is " + a.dtype() + " but b is " + b.dtype() + "; expected the same input dtype");
        }
        if (c.dtype() != DType.F32 && c.dtype() != a.dtype()) {
            throw fail(op, "c is " + c.dtype() + "; expected F32 or the input dtype " + a.dtype());
        }
        long m = transA ? a.dim(-1) : a.dim(-2);
        long k = transA ? a.dim(-2) : a.dim(-1);
        long kb = transB ? b.dim(-1) : b.dim(-2);
        long n = transB ? b.dim(-2) : b.dim(-1);
        if (k != kb || c.dim(-2) != m || c.dim(-1) != n) {
            throw fail(op, "op(a) is [" + m + ", " + k + "], op(b) is [" + kb + ", " + n + "] and c is "
                    + Tensor.shapeString(c.shape()) + "; expected op(a) [m, k] x op(b) [k, n] = c [m, n]");
        }
        if (m == 0 || n == 0) {
            return;
        }
        enter();
        if (k == 0) { // an empty sum: c = beta * c
            scale(c, beta);
            return;
        }
        CublasLtGemm.Problem p = new CublasLtGemm.Problem(transA, transB, m, n, k, a.dtype(), c.dtype(), a.address(),
                b.address(), c.address(), batch, m * k, k * n, m * n, Epilogue.NONE, 0, null, 0, null, 0, 0);
        if (profiler != null) {
            profiler.begin(gemmLabel(p, beta), stream);
        }
        gemm().matmul(p, alpha, beta);
        if (profiler != null) {
            profiler.end(stream);
        }
    }

    /** The kernel profile's name of a product: transposes, shape, batch, dtypes, accumulate, epilogue. */
    private static String gemmLabel(CublasLtGemm.Problem p, float beta) {
        return String.format(Locale.ROOT, "cublasLt %s%s %d x %d x %d%s %s->%s%s%s", p.transA() ? "T" : "N",
                p.transB() ? "T" : "N", p.m(), p.n(), p.k(), p.batch() > 1 ? " x" + p.batch() : "", p.inType(),
                p.outType(), beta != 0 ? " +=" : "",
                p.epilogue() == Epilogue.NONE ? "" : " " + p.epilogue().name().toLowerCase(Locale.ROOT));
    }

    // ------------------------------------------------------------------ fused linear layers
    // One cuBLASLt matmul with an epilogue each, when cuBLASLt has an algorithm for the dtypes and
    // alignments (CublasLtGemm.matmulIfSupported, cached); otherwise exactly the CPU backend's
    // composition of gemm, biasAdd, gelu and biasBackward.

    @Override
    public void linearForward(Tensor x, Tensor weight, Tensor bias, Activation activation, Tensor y, Tensor preActivation) {
        String op = "linearForward";
        TensorChecks.linearForward(x, weight, bias, activation, y, preActivation);
        onDevice(op, "x", x, "weight", weight, "bias", bias, "y", y, "preActivation", preActivation);
        Tensor pre = activation == Activation.NONE ? y : preActivation;   // [n, out]
        if (activation == Activation.GELU_TANH                             // y = gelu(x W^T + b), pre saved as aux
                && fused(linearProblem(false, true, x, weight, y,
                        bias == null ? Epilogue.GELU_AUX : Epilogue.GELU_AUX_BIAS, bias, pre), 1f, 0f)) {
            return;
        }
        if (bias != null && fused(linearProblem(false, true, x, weight, pre, Epilogue.BIAS, bias, null), 1f, 0f)) {
            activation.apply(this, pre, y);   // no epilogue computes erf GeLU or squared ReLU: their kernel after the matmul
            return;
        }
        Backend.super.linearForward(x, weight, bias, activation, y, preActivation);  // no epilogue fits: the ops one by one
    }

    /** y = residual + x W^T + bias as one matmul: the residual is cuBLASLt's C (beta 1), y its D. */
    @Override
    public void linearForwardAdd(Tensor x, Tensor weight, Tensor bias, Tensor residual, Tensor y) {
        TensorChecks.linearForwardAdd(x, weight, bias, residual, y);
        onDevice("linearForwardAdd", "x", x, "weight", weight, "bias", bias, "residual", residual, "y", y);
        CublasLtGemm.Problem p = linearProblem(false, true, x, weight, residual, bias == null ? Epilogue.NONE
                : Epilogue.BIAS, bias, null);
        if (p != null && fused(new CublasLtGemm.Problem(p.transA(), p.transB(), p.m(), p.n(), p.k(), p.inType(),
                p.outType(), p.a(), p.b(), p.c(), p.batch(), p.strideA(), p.strideB(), p.strideC(), p.epilogue(),
                p.bias(), p.biasType(), p.aux(), p.auxType(), p.auxLd(), y.address()), 1f, 1f)) {
            return;
        }
        Backend.super.linearForwardAdd(x, weight, bias, residual, y);
    }

    @Override
    public void linearDgrad(Tensor dy, Tensor weight, Activation activation, Tensor preActivation, Tensor dx) {
        String op = "linearDgrad";
        TensorChecks.linearDgrad(dy, weight, activation, preActivation, dx);
        onDevice(op, "dy", dy, "weight", weight, "preActivation", preActivation, "dx", dx);
        if (activation == Activation.GELU_TANH
                && fused(linearProblem(false, false, dy, weight, dx, Epilogue.DGELU, null, preActivation), 1f, 0f)) {
            return;                                                        // dx = (dy W) * gelu'(pre)
        }
        Backend.super.linearDgrad(dy, weight, activation, preActivation, dx);
    }

    @Override
    public void linearWgrad(Tensor dy, Tensor x, Tensor dWeight, Tensor dBias) {
        String op = "linearWgrad";
        TensorChecks.linearWgrad(dy, x, dWeight, dBias);
        onDevice(op, "dy", dy, "x", x, "dWeight", dWeight, "dBias", dBias);
        if (dBias != null && dy.dim(0) > 0) {
            // BGRADB writes sum_rows dy: into scratch, then added to the accumulating dBias.
            long out = dy.dim(1);
            long scratchBias = temporary(out * Float.BYTES);
            try {
                if (fused(linearProblem(true, false, dy, x, dWeight, Epilogue.BGRADB, scratchBias, DType.F32, null),
                        1f, 1f)) {
                    launch("megatron_axpy", grid(out), 1, THREADS, 0, 1f, scratchBias, 0, dBias.address(), 0, out);
                    return;
                }
            } finally {
                release(scratchBias, out * Float.BYTES);  // stream-ordered: after the queued work
            }
        }
        Backend.super.linearWgrad(dy, x, dWeight, dBias);
    }

    /** The tensors, given as name, tensor, name, tensor, ... (null tensors skipped), are in device memory. */
    private static void onDevice(String op, Object... namesAndTensors) {
        for (int i = 0; i < namesAndTensors.length; i += 2) {
            if (namesAndTensors[i + 1] instanceof Tensor t) {
                DeviceChecks.device(op, (String) namesAndTensors[i], t);
            }
        }
    }

    /**
     * {@code c = op(a) op(b)} with an epilogue, its bias (the layer's bias, of its own dtype) and
     * aux matrix (shaped as c), or null when cuBLASLt cannot take it: an empty product, or an aux
     * leading dimension (c's columns) that is not a multiple of 8.
     */
    private static CublasLtGemm.Problem linearProblem(boolean transA, boolean transB, Tensor a, Tensor b, Tensor c,
                                                      Epilogue e, Tensor bias, Tensor aux) {
        return linearProblem(transA, transB, a, b, c, e, bias == null ? 0 : bias.address(),
                bias == null ? null : bias.dtype(), aux);
    }

    private static CublasLtGemm.Problem linearProblem(boolean transA, boolean transB, Tensor a, Tensor b, Tensor c,
                                                      Epilogue e, long bias, DType biasType, Tensor aux) {
        long m = transA ? a.dim(1) : a.dim(0);
        long k = transA ? a.dim(0) : a.dim(1);
        long n = transB ? b.dim(0) : b.dim(1);
        if (m == 0 || n == 0 || k == 0 || (aux != null && n % 8 != 0)) {
            return null;
        }
        return new CublasLtGemm.Problem(transA, transB, m, n, k, a.dtype(), c.dtype(), a.address(), b.address(),
                c.address(), 1, m * k, k * n, m * n, e, bias, biasType, aux == null ? 0 : aux.address(),
                aux == null ? null : aux.dtype(), aux == null ? 0 : n, 0);
    }

    /** Runs {@code p} (profiled) and true, or false when p is null or cuBLASLt has no algorithm for it. */
    private boolean fused(CublasLtGemm.Problem p, float alpha, float beta) {
        if (p == null || gemm().knownUnsupported(p)) {
            return false;
        }
        enter();
        if (profiler != null) {
            profiler.begin(gemmLabel(p, beta), stream);
        }
        boolean ran = gemm().matmulIfSupported(p, alpha, beta);
        if (profiler != null) {
            profiler.end(stream);
        }
        return ran;
    }

    // ------------------------------------------------------------------ elementwise

    @Override
    public void add(Tensor a, Tensor b, Tensor out) {
        floating("add", "a", a);
        floating("add", "b", b);
        floating("add", "out", out);
        sameShape("add", "a", a, "b", b);
        sameShape("add", "a", a, "out", out);
        enter();
        launch("megatron_add", grid(a.numel()), 1, THREADS, 0, a.address(), code("add", a), b.address(), code("add", b),
                out.address(), code("add", out), a.numel());
    }

    @Override
    public void axpy(float alpha, Tensor x, Tensor y) {
        floating("axpy", "x", x);
        floating("axpy", "y", y);
        sameShape("axpy", "x", x, "y", y);
        enter();
        launch("megatron_axpy", grid(x.numel()), 1, THREADS, 0, alpha, x.address(), code("axpy", x), y.address(),
                code("axpy", y), x.numel());
    }

    @Override
    public void scale(Tensor x, float alpha) {
        floating("scale", "x", x);
        enter();
        launch("megatron_scale", grid(x.numel()), 1, THREADS, 0, x.address(), code("scale", x), alpha, x.numel());
    }

    @Override
    public void scaleRows(Tensor x, Tensor scales, Tensor y) {
        floating("scaleRows", "x", x);
        floating("scaleRows", "y", y);
        dtype("scaleRows", "scales", scales, DType.F32);
        sameShape("scaleRows", "x", x, "y", y);
        int cols = cols("scaleRows", "x", x);
        long rows = x.numel() / Math.max(cols, 1);
        numel("scaleRows", "scales", scales, rows, "one F32 per row of x " + Tensor.shapeString(x.shape()));
        enter();
        launch("megatron_scale_rows", grid(x.numel()), 1, THREADS, 0, x.address(), code("scaleRows", x), scales.address(),
                y.address(), code("scaleRows", y), rows, (long) cols);
    }

    @Override
    public void rowDot(Tensor a, Tensor b, Tensor out) {
        floating("rowDot", "a", a);
        floating("rowDot", "b", b);
        dtype("rowDot", "out", out, DType.F32);
        sameShape("rowDot", "a", a, "b", b);
        int cols = cols("rowDot", "a", a);
        long rows = a.numel() / Math.max(cols, 1);
        numel("rowDot", "out", out, rows, "one F32 per row of a " + Tensor.shapeString(a.shape()));
        enter();
        // A warp per row, grid-stride over the rows (any grid covers them all); THREADS is a multiple of 32, so a
        // warp's lanes share their rows and reach the kernel's full-mask shuffles together.
        launch("megatron_row_dot", grid(rows * 32), 1, THREADS, 0, a.address(), code("rowDot", a), b.address(),
                code("rowDot", b), out.address(), rows, (long) cols);
    }

    @Override
    public void biasAdd(Tensor x, Tensor bias) {
        floating("biasAdd", "x", x);
        floating("biasAdd", "bias", bias);
        int cols = cols("biasAdd", "x", x);
        shape("biasAdd", "bias", bias, cols);
        enter();
        launch("megatron_bias_add", grid(x.numel()), 1, THREADS, 0, x.address(), code("biasAdd", x), bias.address(),
                code("biasAdd", bias), x.numel() / Math.max(cols, 1), cols);
    }

    @Override
    public void biasBackward(Tensor dy, Tensor dBias) {
        floating("biasBackward", "dy", dy);
        dtype("biasBackward", "dBias", dBias, DType.F32);
        int cols = cols("biasBackward", "dy", dy);
        shape("biasBackward", "dBias", dBias, cols);
        enter();
        columnSums("megatron_column_sum", dy.numel() / Math.max(cols, 1), cols, dy.address(), code("biasBackward", dy),
                dBias.address());
    }

    /** Launches a column-reduction kernel: one thread per column, rows split into slices that fill the GPU. */
    void columnSums(String kernel, long rows, int cols, Object... args) {
        long colBlocks = (cols + THREADS - 1) / THREADS;
        long slices = Math.max(1, Math.min(Math.min(rows, 65535), multiprocessors() * 8L / Math.max(colBlocks, 1)));
        Object[] all = new Object[args.length + 2];
        System.arraycopy(args, 0, all, 0, args.length);
        all[args.length] = rows;
        all[args.length + 1] = cols;
        launch(kernel, colBlocks, slices, THREADS, 0, all);
    }

    @Override
    public void cast(Tensor src, Tensor dst) {
        floating("cast", "src", src);
        floating("cast", "dst", dst);
        sameNumel("cast", "src", src, "dst", dst);
        enter();
        launch("megatron_cast", grid(src.numel()), 1, THREADS, 0, src.address(), code("cast", src), dst.address(),
                code("cast", dst), src.numel());
    }

    // ------------------------------------------------------------------ activations

    @Override
    public void geluForward(Tensor x, Tensor y, boolean tanhApproximation) {
        String op = "geluForward";
        activationForward(op, x, y);
        launch("megatron_gelu_forward", grid(x.numel()), 1, THREADS, 0, x.address(), code(op, x), y.address(), code(op, y),
                x.numel(), tanhApproximation ? 1 : 0);
    }

    @Override
    public void geluBackward(Tensor x, Tensor dy, Tensor dx, boolean tanhApproximation) {
        String op = "geluBackward";
        activationBackward(op, x, dy, dx);
        launch("megatron_gelu_backward", grid(x.numel()), 1, THREADS, 0, x.address(), code(op, x), dy.address(),
                code(op, dy), dx.address(), code(op, dx), x.numel(), tanhApproximation ? 1 : 0);
    }

    @Override
    public void squaredReluForward(Tensor x, Tensor y) {
        String op = "squaredReluForward";
        activationForward(op, x, y);
        launch("megatron_squared_relu_forward", grid(x.numel()), 1, THREADS, 0, x.address(), code(op, x), y.address(),
                code(op, y), x.numel());
    }

    @Override
    public void squaredReluBackward(Tensor x, Tensor dy, Tensor dx) {
        String op = "squaredReluBackward";
        activationBackward(op, x, dy, dx);
        launch("megatron_squared_relu_backward", grid(x.numel()), 1, THREADS, 0, x.address(), code(op, x), dy.address(),
                code(op, dy), dx.address(), code(op, dx), x.numel());
    }

    /** An elementwise activation's operands, before its launch. */
    private void activationForward(String op, Tensor x, Tensor y) {
        floating(op, "x", x);
        floating(op, "y", y);
        sameShape(op, "x", x, "y", y);
        enter();
    }

    /** Its gradient's operands, before the launch. */
    private void activationBackward(String op, Tensor x, Tensor dy, Tensor dx) {
        floating(op, "x", x);
        floating(op, "dy", dy);
        floating(op, "dx", dx);
        sameShape(op, "x", x, "dy", dy);
        sameShape(op, "x", x, "dx", dx);
        enter();
    }

    @Override
    public void swigluForward(Tensor x, Tensor y) {
        floating("swigluForward", "x", x);
        floating("swigluForward", "y", y);
        int f = swigluWidth("swigluForward", x, y);
        enter();
        launch("megatron_swiglu_forward", grid(y.numel()), 1, THREADS, 0, x.address(), code("swiglu", x), y.address(),
                code("swiglu", y), y.numel() / Math.max(f, 1), f);
    }

    @Override
    public void swigluBackward(Tensor x, Tensor dy, Tensor dx) {
        floating("swigluBackward", "x", x);
        floating("swigluBackward", "dy", dy);
        floating("swigluBackward", "dx", dx);
        int f = swigluWidth("swigluBackward", x, dy);
        sameShape("swigluBackward", "x", x, "dx", dx);
        enter();
        launch("megatron_swiglu_backward", grid(dy.numel()), 1, THREADS, 0, x.address(), code("swiglu", x),
                dy.address(),
                code("swiglu", dy), dx.address(), code("swiglu", dx), dy.numel() / Math.max(f, 1), f);
    }

    private static int swigluWidth(String op, Tensor x, Tensor y) {
        int twoF = cols(op, "x", x);
        if (twoF % 2 != 0) {
            throw fail(op, "x has shape " + Tensor.shapeString(x.shape()) + "; expected an even last dimension [rows, 2f]");
        }
        int f = twoF / 2;
        if (y.numel() * 2 != x.numel() || cols(op, "y", y) != f) {
            throw fail(op, "x " + Tensor.shapeString(x.shape()) + " and y " + Tensor.shapeString(y.shape())
                    + "; expected x [rows, 2f] and y [rows, f]");
        }
        return f;
    }

    @Override
    public void dropoutForward(Tensor x, Tensor y, float p, long seed, long offset) {
        dropout("dropoutForward", x, y, p, seed, offset);
    }

    @Override
    public void dropoutBackward(Tensor dy, Tensor dx, float p, long seed, long offset) {
        dropout("dropoutBackward", dy, dx, p, seed, offset);
    }

    private void dropout(String op, Tensor x, Tensor y, float p, long seed, long offset) {
        floating(op, "input", x);
        floating(op, "output", y);
        sameShape(op, "input", x, "output", y);
        if (!(p >= 0.0f && p < 1.0f)) {
            throw fail(op, "drop probability p = " + p + "; expected 0 <= p < 1");
        }
        enter();
        if (p == 0.0f) {
            cast(x, y);
            return;
        }
        float scale = 1.0f / (1.0f - p);
        launch("megatron_dropout", grid(x.numel()), 1, THREADS, 0, x.address(), code(op, x), y.address(), code(op, y),
                x.numel(), p, scale, seed, offset);
    }

    // ------------------------------------------------------------------ embeddings and norms

    @Override
    public void embeddingForward(Tensor ids, Tensor table, Tensor out) {
        String op = "embeddingForward";
        dtype(op, "ids", ids, DType.I32);
        floating(op, "table", table);
        floating(op, "out", out);
        rank(op, "table", table, 2, "[vocab, h]");
        int h = cols(op, "table", table);
        numel(op, "out", out, ids.numel() * h, "ids.numel() x h");
        enter();
        int vocab = Math.toIntExact(table.dim(0));
        embedding("megatron_embedding_forward", op, ids, vocab, h, ids.address(), table.address(), code(op, table),
                out.address(), code(op, out), ids.numel(), h, vocab);
    }

    @Override
    public void embeddingBackward(Tensor ids, Tensor dOut, Tensor dTable) {
        String op = "embeddingBackward";
        dtype(op, "ids", ids, DType.I32);
        floating(op, "dOut", dOut);
        dtype(op, "dTable", dTable, DType.F32);
        rank(op, "dTable", dTable, 2, "[vocab, h]");
        int h = cols(op, "dTable", dTable);
        numel(op, "dOut", dOut, ids.numel() * h, "ids.numel() x h");
        enter();
        int vocab = Math.toIntExact(dTable.dim(0));
        embedding("megatron_embedding_backward", op, ids, vocab, h, ids.address(), dOut.address(), code(op, dOut),
                dTable.address(), ids.numel(), h, vocab);
    }

    /** Runs an embedding kernel with the error slot armed, then turns a recorded bad id into an exception. */
    private void embedding(String kernel, String op, Tensor ids, int vocab, int h, Object... args) {
        if (idChecksUsed == ID_CHECK_SLOTS) {
            checkIds();
        }
        int slot = idChecksUsed++;
        idCheckCalls[slot] = op + ": ids " + Tensor.shapeString(ids.shape()) + ", a table of " + vocab + " rows";
        Object[] all = new Object[args.length + 1];
        System.arraycopy(args, 0, all, 0, args.length);
        all[args.length] = idChecks + 8L * slot;
        long n = ids.numel();
        // The kernels give each row a power-of-two group of threads covering its 16-byte chunks.
        int chunks = h % 8 == 0 ? h / 8 : h;
        int threadsPerRow = 1;
        while (threadsPerRow < chunks && threadsPerRow < THREADS) {
            threadsPerRow <<= 1;
        }
        long rowsPerBlock = THREADS / threadsPerRow;
        launch(kernel, Math.max(1, Math.min((n + rowsPerBlock - 1) / rowsPerBlock, 65535L * 16)), 1, THREADS, 0, all);
    }

    /**
     * Reads the id checks of the embedding lookups queued since the last synchronisation (the
     * queue has just drained) and throws for the first lookup that met an id outside its table.
     */
    private void checkIds() {
        if (idChecksUsed == 0) {
            return;
        }
        int used = idChecksUsed;
        idChecksUsed = 0;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(8L * used, 8);
            staging.download(idChecks, host);
            CudaCheck.driver("cuMemsetD32Async", cuMemsetD32Async(idChecks, -1, 2L * used, stream.handle()));
            for (int i = 0; i < used; i++) {
                long v = host.getAtIndex(ValueLayout.JAVA_LONG, i);
                if (v != -1L) {
                    throw new TensorException(idCheckCalls[i] + ": token id " + (int) v + " at position " + (v >>> 32)
                            + " is outside the table (found when the queued work completed)");
                }
            }
        }
    }

    @Override
    public void layerNormForward(Tensor x, Tensor gamma, Tensor beta, float eps, Tensor y, Tensor mean, Tensor rstd) {
        layers.layerNormForward(x, gamma, beta, eps, y, mean, rstd);
    }

    @Override
    public void layerNormBackward(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd, Tensor dx,
            Tensor dGamma, Tensor dBeta) {
        layers.layerNormBackward(dy, x, gamma, mean, rstd, dx, dGamma, dBeta);
    }

    @Override
    public void rmsNormForward(Tensor x, Tensor gamma, float eps, Tensor y, Tensor rstd) {
        layers.rmsNormForward(x, gamma, eps, y, rstd);
    }

    @Override
    public void rmsNormBackward(Tensor dy, Tensor x, Tensor gamma, Tensor rstd, Tensor dx, Tensor dGamma) {
        layers.rmsNormBackward(dy, x, gamma, rstd, dx, dGamma);
    }

    @Override
    public void layerNormBackwardAccumulate(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd, Tensor dx,
                                            Tensor dGamma, Tensor dBeta) {
        layers.layerNormBackwardAccumulate(dy, x, gamma, mean, rstd, dx, dGamma, dBeta);
    }

    @Override
    public void rmsNormBackwardAccumulate(Tensor dy, Tensor x, Tensor gamma, Tensor rstd, Tensor dx, Tensor dGamma) {
        layers.rmsNormBackwardAccumulate(dy, x, gamma, rstd, dx, dGamma);
    }

    @Override
    public void rotaryForward(Tensor x, Tensor freqs, Tensor out, boolean interleaved) {
        layers.rotaryForward(x, freqs, out, interleaved);
    }

    @Override
    public void rotaryBackward(Tensor dOut, Tensor freqs, Tensor dx, boolean interleaved) {
        layers.rotaryBackward(dOut, freqs, dx, interleaved);
    }

    // ------------------------------------------------------------------ attention

    @Override
    public void attentionForward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, float softmaxScale,
                                 boolean causal, Tensor keyLengths, Tensor keyStarts, float dropoutP, long seed,
                                 long offset) {
        attention.forward(q, k, v, out, lse, softmaxScale, causal, keyLengths, keyStarts, dropoutP, seed, offset);
    }

    @Override
    public void attentionBackward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Tensor dq,
                                  Tensor dk, Tensor dv, float softmaxScale, boolean causal, Tensor keyLengths,
                                  Tensor keyStarts, float dropoutP, long seed, long offset) {
        attention.backward(dOut, q, k, v, out, lse, dq, dk, dv, softmaxScale, causal, keyLengths, keyStarts, dropoutP,
                seed, offset);
    }

    /** The tensor-core FlashAttention kernels (BF16/F16, d 64 or 128) read q, k, v in the fused layout. */
    @Override
    public boolean readsFusedQkv(DType dtype, int headDim) {
        return CudaAttention.tensorCores(dtype, headDim, 1f);
    }

    @Override
    public void attentionForwardFusedQkv(Tensor qkv, int np, int ng, Tensor out, Tensor lse, float softmaxScale,
                                         boolean causal, Tensor keyStarts) {
        if (!attention.forwardFusedQkv(qkv, np, ng, out, lse, softmaxScale, causal, keyStarts)) {
            Backend.super.attentionForwardFusedQkv(qkv, np, ng, out, lse, softmaxScale, causal, keyStarts);
        }
    }

    @Override
    public void attentionBackwardFusedQkv(Tensor dOut, Tensor qkv, int np, int ng, Tensor out, Tensor lse, Tensor dqkv,
                                          float softmaxScale, boolean causal, Tensor keyStarts) {
        if (!attention.backwardFusedQkv(dOut, qkv, np, ng, out, lse, dqkv, softmaxScale, causal, keyStarts)) {
            Backend.super.attentionBackwardFusedQkv(dOut, qkv, np, ng, out, lse, dqkv, softmaxScale, causal, keyStarts);
        }
    }

    // ------------------------------------------------------------------ cross-entropy
    @Override
    public void crossEntropyRowMax(Tensor logits, Tensor rowMax) {
        losses.crossEntropyRowMax(logits, rowMax);
    }

    @Override
    public void crossEntropyTargetLogit(Tensor logits, Tensor targets, long vocabStart, Tensor targetLogit) {
        losses.crossEntropyTargetLogit(logits, targets, vocabStart, targetLogit);
    }

    @Override
    public void crossEntropySumExp(Tensor logits, Tensor rowMax, Tensor sumExp) {
        losses.crossEntropySumExp(logits, rowMax, sumExp);
    }

    @Override
    public void crossEntropyRowMaxSumExp(Tensor logits, Tensor rowMax, Tensor sumExp) {
        losses.crossEntropyRowMaxSumExp(logits, rowMax, sumExp);
    }

    @Override
    public void crossEntropyLoss(Tensor rowMax, Tensor sumExp, Tensor targetLogit, Tensor loss) {
        losses.crossEntropyLoss(rowMax, sumExp, targetLogit, loss);
    }

    @Override
    public void crossEntropyBackward(Tensor logits, Tensor targets, long vocabStart, Tensor rowMax, Tensor sumExp,
            Tensor dLoss, Tensor dLogits) {
        losses.crossEntropyBackward(logits, targets, vocabStart, rowMax, sumExp, dLoss, dLogits);
    }

    // ------------------------------------------------------------------ optimizer and reductions

    @Override
    public void adamW(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq, float lr, float beta1, float beta2,
            float eps, float weightDecay, long step) {
        losses.adamW(param, grad, expAvg, expAvgSq, lr, beta1, beta2, eps, weightDecay, step);
    }

    @Override
    public void multiTensorAdamW(List<Tensor> params, List<Tensor> grads, List<Tensor> expAvgs, List<Tensor> expAvgSqs,
                                 float[] weightDecays, float lr, float beta1, float beta2, float eps, long step,
                                 float gradScale, List<Tensor> computeCopies) {
        multiTensorAdam.step(params, grads, expAvgs, expAvgSqs, weightDecays, lr, beta1, beta2, eps, step, gradScale,
                computeCopies);
    }

    CudaMultiTensorAdam multiTensorAdam() { // package-private: tests read its table cache
        return multiTensorAdam;
    }

    @Override
    public double sumOfSquares(Tensor x) {
        return reduce("sumOfSquares", "megatron_sum_squares", x, 8, out -> out.get(ValueLayout.JAVA_DOUBLE, 0));
    }

    @Override
    public boolean hasInfOrNan(Tensor x) {
        return reduce("hasInfOrNan", "megatron_has_inf_nan", x, 4, out -> out.get(ValueLayout.JAVA_INT, 0) != 0);
    }

    @Override
    public long countZeros(Tensor x) {
        return reduce("countZeros", "megatron_count_zeros", x, 8, out -> out.get(ValueLayout.JAVA_LONG, 0));
    }

    /**
     * Runs a reduction kernel {@code (x, dtype code, n, out)} over the whole of {@code x} into the zeroed scratch and
     * reads the result from its first {@code bytes}, copied back to the host.
     */
    private <T> T reduce(String op, String kernel, Tensor x, int bytes, java.util.function.Function<MemorySegment, T> read) {
        floating(op, "x", x);
        enter();
        CudaCheck.driver("cuMemsetD8Async", cuMemsetD8Async(scratch, (byte) 0, bytes, stream.handle()));
        launch(kernel, grid(x.numel()), 1, THREADS, 0, x.address(), code(op, x), x.numel(), scratch);
        try (Arena arena = Arena.ofConfined()) {
            return read.apply(readScratch(arena, bytes));
        }
    }

    @Override
    public void argmax(Tensor logits, Tensor out) {
        losses.argmax(logits, out);
    }

    @Override
    public void logSoftmax(Tensor logits, float temperature, Tensor out) {
        losses.logSoftmax(logits, temperature, out);
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        device.makeCurrent();
        stream.synchronize();
        closed = true;
        try {
            if (profiler != null) {
                profiler.close();
            }
            if (gemm != null) {
                gemm.close();
            }
            multiTensorAdam.close();
            allocator.free(scratch, 16);
            allocator.free(idChecks, 8L * ID_CHECK_SLOTS);
            kernels.close();
            staging.close();
            allocator.close();
            stream.close();
        } finally {
            device.close();
        }
    }

    @Override
    public String toString() {
        return "CudaBackend[" + device.properties().describe() + "]";
    }
}
