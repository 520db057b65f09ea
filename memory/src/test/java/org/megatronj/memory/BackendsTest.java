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
}
