package org.megatronj.parallel;

import org.megatronj.memory.Backend;
import org.megatronj.memory.cpu.CpuBackend;

/** The backend the parallel tests use: one CPU thread per rank (ranks are threads already), scalar kernels. */
public final class TestBackends {
    private TestBackends() {
    }

    public static Backend cpu() {
        return new CpuBackend(1, false);
    }
}
