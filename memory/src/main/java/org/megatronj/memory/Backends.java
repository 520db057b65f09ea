package org.megatronj.memory;

import org.megatronj.memory.cpu.CpuBackend;

import java.lang.reflect.InvocationTargetException;
import java.util.Locale;

/**
 * Picks a {@link Backend} by the name {@code --device} gives: {@code cpu} (always there) or
 * {@code cuda}, whose class {@value #CUDA_CLASS} is loaded reflectively so that this module
 * compiles and runs without it. A backend that cannot start says why.
 */
public final class Backends {
    public static final String CUDA_CLASS = "org.megatronj.memory.cuda.CudaBackend";

    /** Why the CUDA backend refuses attention dropout (its FlashAttention kernels have none yet). */
    public static final String CUDA_ATTENTION_DROPOUT_UNSUPPORTED = "--attention-dropout > 0 on --device cuda runs in the"
            + " tensor-core FlashAttention kernels only: --bf16 or --fp16 with a head dim (--kv-channels, default hidden"
            + " size / heads) of 64 or 128; otherwise pass --attention-dropout 0";

    private Backends() {
    }

    /** Whether {@code name} selects the CUDA backend in {@link #create}. */
    public static boolean isCuda(String name) {
        String n = name == null ? "" : name.trim().toLowerCase(Locale.ROOT);
        return n.equals("cuda") || n.equals("gpu");
    }

    /**
     * Refuses, before any backend starts, a training run that the backend of {@code device} cannot
     * do: attention dropout on CUDA outside the tensor-core kernels (16-bit activations, head dim 64
     * or 128). Throws {@link IllegalArgumentException} naming the flags.
     */
    public static void checkAttentionDropout(String device, float attentionDropout, boolean sixteenBit, int headDim) {
        if (attentionDropout > 0f && isCuda(device) && !(sixteenBit && (headDim == 64 || headDim == 128))) {
            throw new IllegalArgumentException(CUDA_ATTENTION_DROPOUT_UNSUPPORTED + " (got --attention-dropout "
                    + attentionDropout + ")");
        }
    }

    /** "cpu" or "cuda" (case-insensitive). */
    public static Backend create(String name) {
        String n = name == null ? "" : name.trim().toLowerCase(Locale.ROOT);
        return switch (n) {
            case "cpu" -> new CpuBackend();
            case "cuda", "gpu" -> cuda();
            default -> throw new IllegalArgumentException("unknown device '" + name + "': expected cpu or cuda");
        };
    }

    private static Backend cuda() {
        Class<?> type;
        try {
            type = Class.forName(CUDA_CLASS);
        } catch (ClassNotFoundException e) {
            throw new IllegalStateException("the cuda backend is not part of this build (class " + CUDA_CLASS
                    + " not found); use --device cpu", e);
        }
        if (!Backend.class.isAssignableFrom(type)) {
            throw new IllegalStateException(CUDA_CLASS + " does not implement " + Backend.class.getName());
        }
        try {
            return (Backend) type.getConstructor().newInstance();
        } catch (InvocationTargetException e) {
            Throwable cause = e.getCause();
            String why = String.valueOf(cause.getMessage());
            throw new IllegalStateException("the cuda backend cannot start: " + (why.endsWith(".") ? why + " Or" : why + ";")
                    + " use --device cpu", cause);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException(CUDA_CLASS + " has no public no-argument constructor", e);
        }
    }
}
