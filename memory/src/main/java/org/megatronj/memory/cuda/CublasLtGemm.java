package org.megatronj.memory.cuda;

import static org.megatronj.bindings.cublaslt.cublasLt_h.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.megatronj.bindings.cublaslt.cublasLtMatmulHeuristicResult_t;
import org.megatronj.memory.DType;

/**
 * All matrix products go through here (as in llm.c): cuBLASLt with fp32 accumulation, bf16/fp16/
 * fp32 inputs, optional strided batches and epilogues (bias, GELU, their backward forms).
 *
 * <p>Row-major to column-major: cuBLASLt is column-major, and a row-major {@code [r, c]} matrix is
 * the column-major {@code [c, r]} one. So row-major {@code C = op(A) op(B)} is computed as
 * column-major {@code C^T = op(B)^T op(A)^T}: the operands swap places and keep their transposes.
 *
 * <p>Cost per call: the descriptors, layouts and candidate algorithms of a problem are built once
 * and cached as a {@link Plan} under the problem's {@link #key} (shape, transposes, dtypes, batch,
 * strides, epilogue, operand alignments); a later call of the same key only writes alpha/beta (and
 * bias/aux pointers) into segments allocated once and enqueues {@code cublasLtMatmul}: no native
 * allocation, no descriptor creation, no heuristic query. The 32 MiB workspace is allocated once.
 *
 * <p>F32 inputs use {@code CUBLAS_COMPUTE_32F}, true fp32 (never TF32): the F32 path is the
 * reference the other dtypes are checked against.
 */
final class CublasLtGemm implements AutoCloseable {
    static final long WORKSPACE_BYTES = 32L << 20; // cuBLASLt's recommendation for Hopper
    static final int CANDIDATES = 8;               // heuristic results asked for; the first that runs is kept

    /**
     * Epilogues of {@link #matmul}: what cuBLASLt fuses after the product (its GELU is the tanh
     * approximation). In cuBLASLt's column-major terms, which are our row-major ones transposed:
     * a bias has one entry per row of D (per column of our c); the GELU aux matrix (the
     * pre-activation, written by the *_AUX forms, read by the D forms) is shaped as D; BGRADB
     * writes (never accumulates) the column sums of our a's rows, e.g. {@code sum_rows dy} in a
     * weight-gradient product {@code dy^T x}.
     */
    enum Epilogue {
        NONE, BIAS, GELU, GELU_BIAS, GELU_AUX, GELU_AUX_BIAS, DGELU, DGELU_BGRAD, BGRADA, BGRADB;

        int code() {
            return switch (this) {
                case NONE -> CUBLASLT_EPILOGUE_DEFAULT();
                case BIAS -> CUBLASLT_EPILOGUE_BIAS();
                case GELU -> CUBLASLT_EPILOGUE_GELU();
                case GELU_BIAS -> CUBLASLT_EPILOGUE_GELU_BIAS();
                case GELU_AUX -> CUBLASLT_EPILOGUE_GELU_AUX();
                case GELU_AUX_BIAS -> CUBLASLT_EPILOGUE_GELU_AUX_BIAS();
                case DGELU -> CUBLASLT_EPILOGUE_DGELU();
                case DGELU_BGRAD -> CUBLASLT_EPILOGUE_DGELU_BGRAD();
                case BGRADA -> CUBLASLT_EPILOGUE_BGRADA();
                case BGRADB -> CUBLASLT_EPILOGUE_BGRADB();
            };
        }
    }

    /**
     * One product: row-major shapes as Backend#gemm documents them, device addresses, optional batch.
     * {@code bias} (0 for none) is the bias or bias-gradient vector of {@code biasType};
     * {@code aux} (0 for none) the GELU pre-activation matrix of {@code auxType} with leading
     * dimension {@code auxLd} elements (our c's column count, a multiple of 8). {@code d} (0: c itself)
     * is where the result goes when c is only read, {@code d = alpha op(a) op(b) + beta c}: same shape
     * and dtype as c, not overlapping it.
     */
    record Problem(boolean transA, boolean transB, long m, long n, long k, DType inType, DType outType,
                   long a, long b, long c, int batch, long strideA, long strideB, long strideC,
                   Epilogue epilogue, long bias, DType biasType, long aux, DType auxType, long auxLd, long d) {

        /** The output address: d, or c when the product is in place. */
        long output() {
            return d == 0 ? c : d;
        }
    }

    /**
     * What cuBLASLt needs besides addresses and scalars, built once per key. Layouts are cuBLASLt's:
     * {@code first} describes our b (its A), {@code second} our a (its B), {@code out} C and D.
     */
    private record Plan(MemorySegment desc, MemorySegment first, MemorySegment second, MemorySegment out,
                        MemorySegment[] algorithms, int[] chosen) {
        /** The cached answer for an epilogue problem cuBLASLt has no algorithm for. */
        static final Plan UNSUPPORTED = new Plan(null, null, null, null, new MemorySegment[0], new int[] {-1});
    }

    private final CudaStream stream;
    private final MemorySegment handle;
    private final MemorySegment workspace;
    private final long workspaceAddress;
    private final DeviceAllocator allocator;
    private final Arena arena = Arena.ofAuto(); // lives as long as this object: plans' algorithms, the scalars below
    private final MemorySegment alpha = arena.allocate(ValueLayout.JAVA_FLOAT);
    private final MemorySegment beta = arena.allocate(ValueLayout.JAVA_FLOAT);
    private final MemorySegment value = arena.allocate(ValueLayout.JAVA_LONG); // attribute values and out-pointers
    private final Map<Problem, Plan> plans = new HashMap<>();
    private final List<String> unsupported = new ArrayList<>();
    private boolean closed;

    CublasLtGemm(CudaStream stream, DeviceAllocator allocator) {
        library(); // a missing libcublasLt throws here, naming the folders searched
        this.stream = stream;
        this.allocator = allocator;
        handle = create("cublasLtCreate", cublasLtCreate(value));
        workspaceAddress = allocator.allocate(WORKSPACE_BYTES);
        workspace = MemorySegment.ofAddress(workspaceAddress);
    }

    static int dataType(DType t) {
        return switch (t) {
            case F32 -> CUDA_R_32F();
            case BF16 -> CUDA_R_16BF();
            case F16 -> CUDA_R_16F();
            default -> throw new IllegalArgumentException("cuBLASLt has no " + t + " matrix product here; expected F32, BF16 or F16");
        };
    }

    /** Plans cached so far (for tests). */
    synchronized int planCount() {
        return plans.size();
    }

    /** The epilogue problems cuBLASLt had no algorithm for, described (for tests and reports). */
    synchronized List<String> unsupported() {
        return List.copyOf(unsupported);
    }

    /** True when {@code p}'s key was tried and cuBLASLt had no algorithm (no new question asked). */
    synchronized boolean knownUnsupported(Problem p) {
        return plans.get(key(p)) == Plan.UNSUPPORTED;
    }

    /** {@code C = alpha * op(A) op(B) + beta * C} (row-major), with an optional epilogue. */
    synchronized void matmul(Problem p, float alphaValue, float betaValue) {
        run(p, plan(p, false), alphaValue, betaValue, false);
    }

    /**
     * {@link #matmul} when cuBLASLt can run {@code p}'s epilogue with its dtypes and alignments, and
     * true; else nothing is queued and false, and the caller runs the unfused ops (cuBLASLt supports
     * each epilogue for some dtype combinations only). Either answer is cached per key.
     */
    synchronized boolean matmulIfSupported(Problem p, float alphaValue, float betaValue) {
        Plan plan = plan(p, true);
        if (plan == Plan.UNSUPPORTED) {
            return false;
        }
        if (run(p, plan, alphaValue, betaValue, p.epilogue() != Epilogue.NONE)) {
            return true;
        }
        // No candidate ran (first call): forget the plan, answer no from now on.
        destroy(List.of(plan.desc(), plan.first(), plan.second(), plan.out()));
        plans.put(key(p), unsupported(p));
        return false;
    }

    /**
     * Enqueues the product; false only when {@code lenient}, this is the plan's first call and no
     * candidate algorithm runs (otherwise such a failure throws).
     */
    private boolean run(Problem p, Plan plan, float alphaValue, float betaValue, boolean lenient) {
        if (p.bias() != 0) { // pointers live in the descriptor; it is read when the call is enqueued
            setLong(plan.desc(), CUBLASLT_MATMUL_DESC_BIAS_POINTER(), p.bias());
        }
        if (p.aux() != 0) {
            setLong(plan.desc(), CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER(), p.aux());
        }
        alpha.set(ValueLayout.JAVA_FLOAT, 0, alphaValue);
        beta.set(ValueLayout.JAVA_FLOAT, 0, betaValue);
        MemorySegment c = MemorySegment.ofAddress(p.c());
        MemorySegment d = MemorySegment.ofAddress(p.output());
        // The first call tries the candidates in heuristic order and keeps the first that runs.
        for (int i = Math.max(plan.chosen()[0], 0); ; i++) {
            int status = cublasLtMatmul(handle, plan.desc(), alpha, MemorySegment.ofAddress(p.b()), plan.first(),
                    MemorySegment.ofAddress(p.a()), plan.second(), beta, c, plan.out(), d, plan.out(),
                    plan.algorithms()[i], workspace, WORKSPACE_BYTES, stream.handle());
            if (status == CUBLAS_STATUS_SUCCESS()) {
                plan.chosen()[0] = i;
                return true;
            }
            if (plan.chosen()[0] >= 0 || i + 1 == plan.algorithms().length) {
                if (lenient && plan.chosen()[0] < 0) {
                    return false;
                }
                CudaCheck.cublas("cublasLtMatmul", status, describe(p) + ", algorithm " + (i + 1) + " of "
                        + plan.algorithms().length);
            }
        }
    }

    /**
     * What the plan depends on: shape, dtypes, batch, strides, epilogue and the operands' alignments
     * (the heuristic is told them); not the addresses or scalars.
     */
    private static Problem key(Problem p) {
        return new Problem(p.transA(), p.transB(), p.m(), p.n(), p.k(), p.inType(), p.outType(), alignment(p.a()),
                alignment(p.b()), alignment(p.c()), p.batch(), p.strideA(), p.strideB(), p.strideC(), p.epilogue(),
                p.bias() == 0 ? 0 : alignment(p.bias()), p.biasType(), p.aux() == 0 ? 0 : alignment(p.aux()),
                p.auxType(), p.auxLd(), p.d() == 0 ? 0 : alignment(p.d()));
    }

    /** The cached plan of {@code p}'s key, made on first use; UNSUPPORTED only when {@code lenient}. */
    private Plan plan(Problem p, boolean lenient) {
        if (closed) {
            throw new IllegalStateException("cuBLASLt handle is closed");
        }
        Problem key = key(p);
        Plan plan = plans.get(key);
        if (plan == null) {
            plan = makePlan(p, lenient && p.epilogue() != Epilogue.NONE);
            plans.put(key, plan);
        }
        if (plan == Plan.UNSUPPORTED && !lenient) {
            throw new CudaException("cublasLtMatmulAlgoGetHeuristic found no algorithm for " + describe(p), null);
        }
        return plan;
    }

    /**
     * Descriptors, layouts and up to {@link #CANDIDATES} algorithms for {@code p}, best first; or,
     * when {@code lenient} and cuBLASLt has none, UNSUPPORTED (after saying so once on stderr).
     */
    private Plan makePlan(Problem p, boolean lenient) {
        int computeType = CUBLAS_COMPUTE_32F(); // fp32 accumulation for every dtype; F32 is not TF32
        MemorySegment desc = create("cublasLtMatmulDescCreate", cublasLtMatmulDescCreate(value, computeType, CUDA_R_32F()));
        List<MemorySegment> made = new ArrayList<>(List.of(desc));
        MemorySegment pref = MemorySegment.NULL;
        try {
            setInt(desc, CUBLASLT_MATMUL_DESC_TRANSA(), p.transB() ? CUBLAS_OP_T() : CUBLAS_OP_N());
            setInt(desc, CUBLASLT_MATMUL_DESC_TRANSB(), p.transA() ? CUBLAS_OP_T() : CUBLAS_OP_N());
            if (p.epilogue() != Epilogue.NONE) {
                setInt(desc, CUBLASLT_MATMUL_DESC_EPILOGUE(), p.epilogue().code());
                if (p.bias() != 0) {
                    setLong(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER(), p.bias());
                    setInt(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE(), dataType(p.biasType()));
                }
                if (p.aux() != 0) {
                    setLong(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER(), p.aux());
                    setLong(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD(), p.auxLd());
                    setInt(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE(), dataType(p.auxType()));
                }
            }
            int in = dataType(p.inType());
            // our b stored [k, n] (or [n, k] when transB): column-major [n, k] (or [k, n]); likewise our a
            MemorySegment first = layout(in, p.transB() ? p.k() : p.n(), p.transB() ? p.n() : p.k(), p.batch(), p.strideB());
            made.add(first);
            MemorySegment second = layout(in, p.transA() ? p.m() : p.k(), p.transA() ? p.k() : p.m(), p.batch(), p.strideA());
            made.add(second);
            MemorySegment out = layout(dataType(p.outType()), p.n(), p.m(), p.batch(), p.strideC());
            made.add(out);

            pref = create("cublasLtMatmulPreferenceCreate", cublasLtMatmulPreferenceCreate(value));
            value.set(ValueLayout.JAVA_LONG, 0, WORKSPACE_BYTES);
            CudaCheck.cublas("cublasLtMatmulPreferenceSetAttribute", cublasLtMatmulPreferenceSetAttribute(pref,
                    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES(), value, 8L), "max workspace");
            // Heuristics assume 256-byte aligned operands unless told; views along dim 0 can be less aligned.
            setPref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES(), alignment(p.b()));
            setPref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES(), alignment(p.a()));
            setPref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES(), alignment(p.c()));
            setPref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES(), alignment(p.output()));
            // kept for the plan's lifetime: its algorithms are slices of it
            MemorySegment results = arena.allocate(cublasLtMatmulHeuristicResult_t.layout(), CANDIDATES);
            int status = cublasLtMatmulAlgoGetHeuristic(handle, desc, first, second, out, out, pref, CANDIDATES, results,
                    value);
            if (lenient && (status == CUBLAS_STATUS_NOT_SUPPORTED() || status == CUBLAS_STATUS_INVALID_VALUE())) {
                return unsupported(p);
            }
            CudaCheck.cublas("cublasLtMatmulAlgoGetHeuristic", status, describe(p));
            int count = value.get(ValueLayout.JAVA_INT, 0);
            List<MemorySegment> algorithms = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                MemorySegment r = results.asSlice(i * cublasLtMatmulHeuristicResult_t.sizeof(),
                        cublasLtMatmulHeuristicResult_t.layout());
                if (cublasLtMatmulHeuristicResult_t.state(r) == CUBLAS_STATUS_SUCCESS()
                        && cublasLtMatmulHeuristicResult_t.workspaceSize(r) <= WORKSPACE_BYTES) {
                    algorithms.add(cublasLtMatmulHeuristicResult_t.algo(r));
                }
            }
            if (algorithms.isEmpty() && lenient) {
                return unsupported(p);
            }
            if (algorithms.isEmpty()) {
                throw new CudaException("cublasLtMatmulAlgoGetHeuristic found no algorithm for " + describe(p)
                        + " (leading dimensions and addresses must be multiples of the element size, 16 bytes for tensor cores)",
                        null);
            }
            made.clear(); // the plan owns them now
            return new Plan(desc, first, second, out, algorithms.toArray(MemorySegment[]::new), new int[] {-1});
        } finally {
            if (!pref.equals(MemorySegment.NULL)) {
                cublasLtMatmulPreferenceDestroy(pref);
            }
            destroy(made);
        }
    }

    private static String describe(Problem p) {
        return String.format("%s%s m=%d n=%d k=%d batch=%d %s->%s epilogue %s%s%s", p.transA() ? "T" : "N",
                p.transB() ? "T" : "N", p.m(), p.n(), p.k(), p.batch(), p.inType(), p.outType(), p.epilogue(),
                p.bias() == 0 ? "" : " bias " + p.biasType() + " (" + alignment(p.bias()) + "-byte aligned)",
                p.aux() == 0 ? "" : " aux " + p.auxType() + " ld " + p.auxLd() + " (" + alignment(p.aux())
                        + "-byte aligned)");
    }

    private Plan unsupported(Problem p) {
        unsupported.add(describe(p));
        System.err.println("cuBLASLt has no algorithm for " + describe(p) + "; running the product and its epilogue "
                + "as separate kernels");
        return Plan.UNSUPPORTED;
    }

    /** The handle a {@code cublasLt*Create(value, ...)} call wrote into {@link #value}. */
    private MemorySegment create(String function, int status) {
        CudaCheck.cublas(function, status, null);
        return value.get(ValueLayout.ADDRESS, 0);
    }

    private MemorySegment layout(int type, long rows, long cols, int batch, long stride) {
        MemorySegment l = create("cublasLtMatrixLayoutCreate", cublasLtMatrixLayoutCreate(value, type, rows, cols, rows));
        if (batch > 1) {
            value.set(ValueLayout.JAVA_INT, 0, batch);
            CudaCheck.cublas("cublasLtMatrixLayoutSetAttribute", cublasLtMatrixLayoutSetAttribute(l,
                    CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT(), value, 4L), "batch count");
            value.set(ValueLayout.JAVA_LONG, 0, stride);
            CudaCheck.cublas("cublasLtMatrixLayoutSetAttribute", cublasLtMatrixLayoutSetAttribute(l,
                    CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET(), value, 8L), "batch stride");
        }
        return l;
    }

    /** The largest power of two (at most 256) dividing {@code address}. */
    static int alignment(long address) {
        return address == 0 ? 256 : (int) Math.min(256, Long.lowestOneBit(address));
    }

    private void setPref(MemorySegment pref, int attribute, int v) {
        value.set(ValueLayout.JAVA_INT, 0, v);
        CudaCheck.cublas("cublasLtMatmulPreferenceSetAttribute", cublasLtMatmulPreferenceSetAttribute(pref, attribute,
                value, 4L), "preference " + attribute);
    }

    private void setInt(MemorySegment desc, int attribute, int v) {
        value.set(ValueLayout.JAVA_INT, 0, v);
        CudaCheck.cublas("cublasLtMatmulDescSetAttribute", cublasLtMatmulDescSetAttribute(desc, attribute, value, 4L),
                "attribute " + attribute);
    }

    private void setLong(MemorySegment desc, int attribute, long v) {
        value.set(ValueLayout.JAVA_LONG, 0, v);
        int status = cublasLtMatmulDescSetAttribute(desc, attribute, value, 8L);
        if (status != CUBLAS_STATUS_SUCCESS()) {
            CudaCheck.cublas("cublasLtMatmulDescSetAttribute", status, "attribute " + attribute);
        }
    }

    /** Destroys a descriptor (the first) and layouts (the rest) in {@code made}. */
    private static void destroy(List<MemorySegment> made) {
        for (int i = made.size() - 1; i >= 0; i--) {
            if (i == 0) {
                cublasLtMatmulDescDestroy(made.get(0));
            } else {
                cublasLtMatrixLayoutDestroy(made.get(i));
            }
        }
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            for (Plan plan : plans.values()) {
                if (plan != Plan.UNSUPPORTED) {
                    destroy(List.of(plan.desc(), plan.first(), plan.second(), plan.out()));
                }
            }
            plans.clear();
            allocator.free(workspaceAddress, WORKSPACE_BYTES);
            CudaCheck.cublas("cublasLtDestroy", cublasLtDestroy(handle), null);
        }
    }
}
