package org.megatronj.memory;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.megatronj.memory.cpu.CpuBackend;

/** Host tensor memory is charged to the account of the thread that made the arena: a rank's. */
class MemoryAccountTest {

    @Test
    void arenasChargeTheirRanksAccountUntilTheyClose() throws InterruptedException {
        AtomicReference<MemoryStats> during = new AtomicReference<>(), after = new AtomicReference<>();
        AtomicReference<MemoryStats> otherRank = new AtomicReference<>();
        Thread rank = Thread.ofPlatform().start(() -> {
            MemoryAccount.enter();
            try (CpuBackend backend = new CpuBackend(1, false)) {
                TensorArena weights = new TensorArena("weights");
                try (TensorArena activations = new TensorArena("activations")) {
                    backend.allocate(weights, DType.F32, 256);             // 1 KiB
                    backend.allocate(activations, DType.BF16, 1024);       // 2 KiB
                    backend.allocate(activations, DType.F32, 4);
                    during.set(backend.memoryStats());
                    Thread other = Thread.ofPlatform().start(() -> {     // another rank sees none of it
                        MemoryAccount.enter();
                        otherRank.set(MemoryAccount.current().stats());
                    });
                    join(other);
                }
                after.set(backend.memoryStats());
                weights.close();
            }
        });
        rank.join();
        assertEquals(new MemoryStats(1024 + 2048 + 16, 1024 + 2048 + 16, 1024 + 2048 + 16, 1024 + 2048 + 16, 3), during.get());
        assertEquals(new MemoryStats(1024, 3088, 1024, 3088, 1), after.get());
        assertEquals(new MemoryStats(0, 0, 0, 0, 0), otherRank.get());
    }

    private static void join(Thread t) {
        try {
            t.join();
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        }
    }
}
