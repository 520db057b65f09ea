package org.megatronj.memory;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BackendsTest {

    @Test
    void cpuByName() {
        try (Backend b = Backends.create(" CPU ")) {
            assertEquals("cpu", b.name());
            assertEquals(Device.CPU, b.device());
        }
    }

    @Test
    void unknownNameSaysWhatIsExpected() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Backends.create("tpu"));
        assertTrue(e.getMessage().contains("expected cpu or cuda"), e.getMessage());
    }

    @Test
    void cudaEitherStartsOrSaysWhy() {
        try (Backend b = Backends.create("cuda")) {
            assertEquals("cuda", b.name());
        } catch (IllegalStateException e) {
            assertTrue(e.getMessage().contains("cuda"), e.getMessage());
            assertTrue(e.getMessage().contains("--device cpu"), e.getMessage());
        }
    }

    /** Attention dropout on CUDA: accepted where the tensor-core kernels run (16-bit, head dim 64/128), refused by name elsewhere. */
    @Test
    void cudaAttentionDropoutNeedsTheTensorCoreKernels() {
        Backends.checkAttentionDropout("cuda", 0.1f, true, 64);
        Backends.checkAttentionDropout("cuda", 0.1f, true, 128);
        Backends.checkAttentionDropout("cuda", 0f, false, 80);
        Backends.checkAttentionDropout("cpu", 0.1f, false, 80);
        for (Runnable refused : new Runnable[] {() -> Backends.checkAttentionDropout("cuda", 0.1f, false, 64),
                () -> Backends.checkAttentionDropout("gpu", 0.1f, true, 80)}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, refused::run);
            assertTrue(e.getMessage().contains("--attention-dropout"), e.getMessage());
        }
    }
}
