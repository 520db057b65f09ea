package org.megatronj.memory.cuda;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.megatronj.bindings.cuda.cuda_h;

/**
 * Skips a gpu-tagged test class on a machine without the NVIDIA driver (when someone includes the
 * tag there by hand), unless {@code MEGATRON_REQUIRE_GPU=1}: the device bundle's
 * {@code run-gpu-tests.sh} sets it, so on the GPU machine a missing library fails loudly instead
 * of skipping into a green report.
 */
final class GpuTests {
    private GpuTests() {
    }

    static void requireGpu() {
        boolean required = "1".equals(System.getenv("MEGATRON_REQUIRE_GPU"));
        assumeTrue(required || cuda_h.isAvailable(), "no libcuda.so.1 on this machine (set MEGATRON_REQUIRE_GPU=1 to fail instead)");
    }
}
