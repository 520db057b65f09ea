package org.megatronj.cli;

import java.io.PrintStream;
import java.util.List;
import java.util.Optional;

import org.megatronj.bindings.cublaslt.cublasLt_h;
import org.megatronj.bindings.cuda.cuda_h;
import org.megatronj.bindings.nccl.nccl_h;
import org.megatronj.memory.cuda.CudaDevice;
import org.megatronj.memory.cuda.KernelImage;

/**
 * The GPU part of {@code megatron info}: driver and devices (through libcuda), cuBLASLt and NCCL
 * versions, and the kernels' fatbin. Every probe catches its own failure and prints what is
 * missing, so {@code info} never crashes on a machine without a GPU.
 */
final class GpuReport {
    private GpuReport() {
    }

    static void print(PrintStream out) {
        out.println("GPU");
        printDevices(out);
        out.printf("  %-16s %s%n", "cuBLASLt:", probe(() -> {
            long v = cublasLt_h.cublasLtGetVersion();
            return "version " + v / 10000 + "." + v / 100 % 100 + "." + v % 100 + " (bindings from " + cublasLtHeader() + ")";
        }));
        out.printf("  %-16s %s%n", "NCCL:", probe(() -> {
            try (var arena = java.lang.foreign.Arena.ofConfined()) {
                var v = arena.allocate(java.lang.foreign.ValueLayout.JAVA_INT);
                int r = nccl_h.ncclGetVersion(v);
                if (r != 0) {
                    return "ncclGetVersion failed (" + r + ")";
                }
                int code = v.get(java.lang.foreign.ValueLayout.JAVA_INT, 0);
                return "version " + code / 10000 + "." + code / 100 % 100 + "." + code % 100;
            }
        }));
        printKernels(out);
    }

    private static String cublasLtHeader() {
        return "cuBLAS " + cublasLt_h.CUBLAS_VER_MAJOR() + "." + cublasLt_h.CUBLAS_VER_MINOR() + " headers";
    }

    private static void printDevices(PrintStream out) {
        if (!cuda_h.isAvailable()) {
            out.printf("  %-16s %s%n", "driver:", "not available (no libcuda.so.1: no NVIDIA driver on this machine); "
                    + "the CUDA backend cannot run, use --device cpu");
            return;
        }
        int count;
        try {
            int v = CudaDevice.driverVersion();
            out.printf("  %-16s CUDA %d.%d (bindings from cuda.h %d.%d)%n", "driver:", v / 1000, v % 1000 / 10,
                    cuda_h.CUDA_VERSION() / 1000, cuda_h.CUDA_VERSION() % 1000 / 10);
            count = CudaDevice.deviceCount();
        } catch (RuntimeException | LinkageError e) {
            out.printf("  %-16s libcuda loads but cuInit failed: %s%n", "driver:", e.getMessage());
            return;
        }
        out.printf("  %-16s %d%n", "devices:", count);
        for (int i = 0; i < count; i++) {
            int ordinal = i;
            out.printf("  %-16s %s%n", "device " + i + ":", probe(() -> CudaDevice.query(ordinal).describe()));
        }
    }

    private static void printKernels(PrintStream out) {
        Optional<byte[]> image;
        try {
            image = KernelImage.load();
        } catch (RuntimeException e) {
            out.printf("  %-16s unreadable: %s%n", "kernels:", e.getMessage());
            return;
        }
        if (image.isEmpty()) {
            out.printf("  %-16s not built (no %s in the jar: the build had no nvcc)%n", "kernels:", KernelImage.RESOURCE);
            return;
        }
        String archs;
        try {
            List<KernelImage.Entry> entries = KernelImage.architectures(image.get());
            archs = String.join(", ", entries.stream().map(KernelImage.Entry::toString).toList());
        } catch (RuntimeException e) {
            archs = "unreadable: " + e.getMessage();
        }
        out.printf("  %-16s %s (%,d bytes): %s%n", "kernels:", KernelImage.RESOURCE, image.get().length, archs);
    }

    private interface Probe {
        String run();
    }

    /** Runs a probe that needs an optional library; a missing library or failed call becomes its message. */
    private static String probe(Probe p) {
        try {
            return p.run();
        } catch (UnsatisfiedLinkError e) {
            String m = e.getMessage();
            int cut = m.indexOf(" (searched");
            return "not available: " + (cut > 0 ? m.substring(0, cut) : m);
        } catch (RuntimeException | LinkageError e) {
            return "failed: " + e.getMessage();
        }
    }
}
