package org.megatronj.memory.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import org.megatronj.bindings.cublaslt.cublasLt_h;
import org.megatronj.bindings.cuda.cuda_h;
import org.megatronj.bindings.nccl.nccl_h;

/**
 * Return-code translation for the three NVIDIA libraries: every call's result goes through one
 * of these, which throws {@link CudaException} with the function name and the library's own
 * name and description of the error (cuGetErrorName/String, cublasLtGetStatusName/String,
 * ncclGetErrorString).
 */
public final class CudaCheck {
    private CudaCheck() {
    }

    /** Throws unless {@code result == CUDA_SUCCESS}. */
    public static void driver(String function, int result) {
        driver(function, result, null);
    }

    public static void driver(String function, int result, String context) {
        if (result == cuda_h.CUDA_SUCCESS()) {
            return;
        }
        String name = "CUresult " + result;
        String text = "(no description)";
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment p = arena.allocate(ValueLayout.ADDRESS);
            if (cuda_h.cuGetErrorName(result, p) == 0) {
                name = cString(p.get(ValueLayout.ADDRESS, 0));
            }
            if (cuda_h.cuGetErrorString(result, p) == 0) {
                text = cString(p.get(ValueLayout.ADDRESS, 0));
            }
        }
        throw new CudaException(function, result, name, text, context);
    }

    /** Throws unless {@code status == CUBLAS_STATUS_SUCCESS}. */
    public static void cublas(String function, int status, String context) {
        if (status == cublasLt_h.CUBLAS_STATUS_SUCCESS()) {
            return;
        }
        throw new CudaException(function, status, cString(cublasLt_h.cublasLtGetStatusName(status)),
                cString(cublasLt_h.cublasLtGetStatusString(status)), context);
    }

    /** Throws unless {@code result == ncclSuccess}; the description includes ncclGetLastError's detail. */
    public static void nccl(String function, int result, MemorySegment comm, String context) {
        if (result == nccl_h.ncclSuccess()) {
            return;
        }
        String text = cString(nccl_h.ncclGetErrorString(result));
        String last = cString(nccl_h.ncclGetLastError(comm == null ? MemorySegment.NULL : comm));
        throw new CudaException(function, result, "ncclResult_t", text + (last.isEmpty() ? "" : "; " + last), context);
    }

    /** A NUL-terminated C string at {@code address} (empty for NULL). */
    @SuppressWarnings("restricted") // the libraries return NUL-terminated strings of unknown length
    public static String cString(MemorySegment address) {
        if (address == null || address.equals(MemorySegment.NULL)) {
            return "";
        }
        return address.reinterpret(Long.MAX_VALUE).getString(0);
    }
}
