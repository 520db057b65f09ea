package org.megatronj.memory.cuda;

/**
 * A failed call into the CUDA driver, cuBLASLt or NCCL: the function, its numeric result, the
 * library's name and description of that result, and what Megatron-J was doing.
 */
public final class CudaException extends RuntimeException {
    private final String function;
    private final int code;

    public CudaException(String function, int code, String codeName, String description, String context) {
        super(function + " failed with " + codeName + " (" + code + "): " + description
                + (context == null || context.isEmpty() ? "" : " [" + context + "]"));
        this.function = function;
        this.code = code;
    }

    public CudaException(String message, Throwable cause) {
        super(message, cause);
        this.function = "";
        this.code = -1;
    }

    /** The C function that failed, e.g. {@code cuMemAllocAsync}. */
    public String function() {
        return function;
    }

    /** Its numeric result ({@code CUresult}, {@code cublasStatus_t} or {@code ncclResult_t}). */
    public int code() {
        return code;
    }
}
