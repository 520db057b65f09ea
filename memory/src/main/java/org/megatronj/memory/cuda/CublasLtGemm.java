package org.megatronj.memory.cuda;

import static org.megatronj.bindings.cublaslt.cublasLt_h.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import java.util.HashMap;
import java.util.Map;

import org.megatronj.bindings.cublaslt.cublasLtMatmulAlgo_t;
import org.megatronj.bindings.cublaslt.cublasLtMatmulHeuristicResult_t;
import org.megatronj.memory.DType;

/**
 * All matrix products go through here (as in llm.c): cuBLASLt with fp32 accumulation, bf16/fp16/
 * fp32 inputs, optional strided batches and epilogues (bias, GELU, their backward forms).
 *
 * <p>Row-major to column-major: cuBLASLt is column-major, and a row-major {@code [r, c]} matrix is
 * the column-major {@code [c, r]} one. So row-major {@code C = op(A) op(B)} is computed as
 * column-major {@code C^T = op(B)^T op(A)^T}: the operands swap places and keep their transposes.
 */
final class CublasLtGemm implements AutoCloseable {
    static final long WORKSPACE_BYTES = 32L << 20; // cuBLASLt's recommendation for Hopper

    /** Epilogues of {@link #matmul}: what cuBLASLt fuses after the product. */
    enum Epilogue {
        NONE, BIAS, GELU, GELU_BIAS, GELU_AUX_BIAS, DGELU, DGELU_BGRAD, BGRADA, BGRADB;

        int code() {
            return switch (this) {
                case NONE -> CUBLASLT_EPILOGUE_DEFAULT();
                case BIAS -> CUBLASLT_EPILOGUE_BIAS();
                case GELU -> CUBLASLT_EPILOGUE_GELU();
                case GELU_BIAS -> CUBLASLT_EPILOGUE_GELU_BIAS();
                case GELU_AUX_BIAS -> CUBLASLT_EPILOGUE_GELU_AUX_BIAS();
                case DGELU -> CUBLASLT_EPILOGUE_DGELU();
                case DGELU_BGRAD -> CUBLASLT_EPILOGUE_DGELU_BGRAD();
                case BGRADA -> CUBLASLT_EPILOGUE_BGRADA();
                case BGRADB -> CUBLASLT_EPILOGUE_BGRADB();
            };
        }
    }

    /** One product: row-major shapes as Backend#gemm documents them, device addresses, optional batch. */
    record Problem(boolean transA, boolean transB, long m, long n, long k, DType inType, DType outType,
                   long a, long b, long c, int batch, long strideA, long strideB, long strideC,
                   Epilogue epilogue, long bias, long aux, long auxLd) {
    }

    private final CudaStream stream;
    private final MemorySegment handle;
    private final long workspace;
    private final DeviceAllocator allocator;
    private final Arena algoArena = Arena.ofShared();
    private final Map<Problem, MemorySegment> algorithms = new HashMap<>();
    private boolean closed;

    CublasLtGemm(CudaStream stream, DeviceAllocator allocator) {
        library(); // a missing libcublasLt throws here, naming the folders searched
        this.stream = stream;
        this.allocator = allocator;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment p = arena.allocate(ValueLayout.ADDRESS);
            CudaCheck.cublas("cublasLtCreate", cublasLtCreate(p), null);
            handle = p.get(ValueLayout.ADDRESS, 0);
        }
        workspace = allocator.allocate(WORKSPACE_BYTES);
    }

    static int dataType(DType t) {
        return switch (t) {
            case F32 -> CUDA_R_32F();
            case BF16 -> CUDA_R_16BF();
            case F16 -> CUDA_R_16F();
            default -> throw new IllegalArgumentException("cuBLASLt has no " + t + " matrix product here; expected F32, BF16 or F16");
        };
    }

    /** {@code C = alpha * op(A) op(B) + beta * C} (row-major), with an optional epilogue. */
    synchronized void matmul(Problem p, float alpha, float beta) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment desc = create(arena, "cublasLtMatmulDescCreate",
                    ptr -> cublasLtMatmulDescCreate(ptr, CUBLAS_COMPUTE_32F(), CUDA_R_32F()));
            MemorySegment aLayout = null, bLayout = null, cLayout = null, pref = null;
            try {
                // column-major operands: first = our B, second = our A
                setInt(arena, desc, CUBLASLT_MATMUL_DESC_TRANSA(), p.transB() ? CUBLAS_OP_T() : CUBLAS_OP_N());
                setInt(arena, desc, CUBLASLT_MATMUL_DESC_TRANSB(), p.transA() ? CUBLAS_OP_T() : CUBLAS_OP_N());
                if (p.epilogue() != Epilogue.NONE) {
                    setInt(arena, desc, CUBLASLT_MATMUL_DESC_EPILOGUE(), p.epilogue().code());
                    if (p.bias() != 0) {
                        setLong(arena, desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER(), p.bias());
                    }
                    if (p.aux() != 0) {
                        setLong(arena, desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER(), p.aux());
                        setLong(arena, desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD(), p.auxLd());
                    }
                }
                int in = dataType(p.inType());
                // our B stored [k, n] (or [n, k] when transB): column-major [n, k] (or [k, n])
                bLayout = layout(arena, in, p.transB() ? p.k() : p.n(), p.transB() ? p.n() : p.k(), p.batch(),
                        p.strideB());
                aLayout = layout(arena, in, p.transA() ? p.m() : p.k(), p.transA() ? p.k() : p.m(), p.batch(),
                        p.strideA());
                cLayout = layout(arena, dataType(p.outType()), p.n(), p.m(), p.batch(), p.strideC());
                MemorySegment algo = algorithms.get(key(p));
                if (algo == null) {
                    pref = create(arena, "cublasLtMatmulPreferenceCreate", ptr -> cublasLtMatmulPreferenceCreate(ptr));
                    algo = heuristic(arena, p, desc, aLayout, bLayout, cLayout, pref);
                }
                MemorySegment alphaSeg = arena.allocateFrom(ValueLayout.JAVA_FLOAT, alpha);
                MemorySegment betaSeg = arena.allocateFrom(ValueLayout.JAVA_FLOAT, beta);
                MemorySegment c = MemorySegment.ofAddress(p.c());
                CudaCheck.cublas("cublasLtMatmul", cublasLtMatmul(handle, desc, alphaSeg,
                        MemorySegment.ofAddress(p.b()), bLayout, MemorySegment.ofAddress(p.a()), aLayout, betaSeg,
                        c, cLayout, c, cLayout, algo, MemorySegment.ofAddress(workspace), WORKSPACE_BYTES,
                        stream.handle()), describe(p));
            } finally {
                destroy(pref, aLayout, bLayout, cLayout, desc);
            }
        }
    }

    /** The problem's shape and alignments: what the chosen algorithm depends on (addresses and scalars do not). */
    private static Problem key(Problem p) {
        return new Problem(p.transA(), p.transB(), p.m(), p.n(), p.k(), p.inType(), p.outType(), alignment(p.a()),
                alignment(p.b()), alignment(p.c()), p.batch(), p.strideA(), p.strideB(), p.strideC(), p.epilogue(),
                p.bias() == 0 ? 0 : alignment(p.bias()), p.aux() == 0 ? 0 : alignment(p.aux()), p.auxLd());
    }

    /** Asks cuBLASLt for the best algorithm of this problem; cached (64 bytes) for later calls of the same shape. */
    private MemorySegment heuristic(Arena arena, Problem p, MemorySegment desc, MemorySegment aLayout,
                                    MemorySegment bLayout, MemorySegment cLayout, MemorySegment pref) {
        MemorySegment ws = arena.allocateFrom(ValueLayout.JAVA_LONG, WORKSPACE_BYTES);
        CudaCheck.cublas("cublasLtMatmulPreferenceSetAttribute", cublasLtMatmulPreferenceSetAttribute(pref,
                CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES(), ws, 8L), null);
        // Heuristics assume 256-byte aligned operands unless told; views along dim 0 can be less aligned.
        // (cuBLASLt's A is our b and its B our a, see the class comment.)
        setAlignment(arena, pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES(), p.b());
        setAlignment(arena, pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES(), p.a());
        setAlignment(arena, pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES(), p.c());
        setAlignment(arena, pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES(), p.c());
        MemorySegment result = cublasLtMatmulHeuristicResult_t.allocate(arena);
        MemorySegment count = arena.allocate(ValueLayout.JAVA_INT);
        CudaCheck.cublas("cublasLtMatmulAlgoGetHeuristic", cublasLtMatmulAlgoGetHeuristic(handle, desc,
                bLayout, aLayout, cLayout, cLayout, pref, 1, result, count), describe(p));
        if (count.get(ValueLayout.JAVA_INT, 0) == 0) {
            throw new CudaException("cublasLtMatmulAlgoGetHeuristic found no algorithm for " + describe(p)
                    + " (leading dimensions and addresses must be multiples of the element size, 16 bytes for tensor cores)",
                    null);
        }
        MemorySegment algo = algoArena.allocate(cublasLtMatmulAlgo_t.layout());
        algo.copyFrom(cublasLtMatmulHeuristicResult_t.algo(result));
        algorithms.put(key(p), algo);
        return algo;
    }

    private static String describe(Problem p) {
        return String.format("%s%s m=%d n=%d k=%d batch=%d %s->%s epilogue %s", p.transA() ? "T" : "N",
                p.transB() ? "T" : "N", p.m(), p.n(), p.k(), p.batch(), p.inType(), p.outType(), p.epilogue());
    }

    private interface Creator {
        int create(MemorySegment out);
    }

    private static MemorySegment create(Arena arena, String function, Creator creator) {
        MemorySegment p = arena.allocate(ValueLayout.ADDRESS);
        CudaCheck.cublas(function, creator.create(p), null);
        return p.get(ValueLayout.ADDRESS, 0);
    }

    private static MemorySegment layout(Arena arena, int type, long rows, long cols, int batch, long stride) {
        MemorySegment l = create(arena, "cublasLtMatrixLayoutCreate", p -> cublasLtMatrixLayoutCreate(p, type, rows,
                cols, rows));
        if (batch > 1) {
            CudaCheck.cublas("cublasLtMatrixLayoutSetAttribute", cublasLtMatrixLayoutSetAttribute(l,
                    CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT(), arena.allocateFrom(ValueLayout.JAVA_INT, batch), 4L), null);
            CudaCheck.cublas("cublasLtMatrixLayoutSetAttribute", cublasLtMatrixLayoutSetAttribute(l,
                    CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET(), arena.allocateFrom(ValueLayout.JAVA_LONG, stride),
                            8L), null);
        }
        return l;
    }

    /** The largest power of two (at most 256) dividing {@code address}. */
    static int alignment(long address) {
        return address == 0 ? 256 : (int) Math.min(256, Long.lowestOneBit(address));
    }

    private static void setAlignment(Arena arena, MemorySegment pref, int attribute, long address) {
        CudaCheck.cublas("cublasLtMatmulPreferenceSetAttribute", cublasLtMatmulPreferenceSetAttribute(pref, attribute,
                arena.allocateFrom(ValueLayout.JAVA_INT, alignment(address)), 4L), "alignment attribute " + attribute);
    }

    private static void setInt(Arena arena, MemorySegment desc, int attribute, int value) {
        CudaCheck.cublas("cublasLtMatmulDescSetAttribute", cublasLtMatmulDescSetAttribute(desc, attribute,
                arena.allocateFrom(ValueLayout.JAVA_INT, value), 4L), "attribute " + attribute);
    }

    private static void setLong(Arena arena, MemorySegment desc, int attribute, long value) {
        CudaCheck.cublas("cublasLtMatmulDescSetAttribute", cublasLtMatmulDescSetAttribute(desc, attribute,
                arena.allocateFrom(ValueLayout.JAVA_LONG, value), 8L), "attribute " + attribute);
    }

    private static void destroy(MemorySegment pref, MemorySegment a, MemorySegment b, MemorySegment c,
            MemorySegment desc) {
        if (pref != null) {
            cublasLtMatmulPreferenceDestroy(pref);
        }
        for (MemorySegment l : new MemorySegment[] {a, b, c}) {
            if (l != null) {
                cublasLtMatrixLayoutDestroy(l);
            }
        }
        cublasLtMatmulDescDestroy(desc);
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            allocator.free(workspace, WORKSPACE_BYTES);
            algoArena.close();
            CudaCheck.cublas("cublasLtDestroy", cublasLtDestroy(handle), null);
        }
    }
}
