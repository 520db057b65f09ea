package org.megatronj.memory;

/**
 * A backend's tensor memory, in the four figures Megatron's {@code report_memory} prints and its
 * {@code --log-memory-to-tensorboard} writes (PyTorch's caching-allocator statistics).
 *
 * @param allocatedBytes    bytes held by live tensors
 * @param maxAllocatedBytes the most {@code allocatedBytes} has been
 * @param reservedBytes     bytes taken from the system for tensors, cached ones included
 * @param maxReservedBytes  the most {@code reservedBytes} has been
 * @param allocations       live allocations
 */
public record MemoryStats(long allocatedBytes, long maxAllocatedBytes, long reservedBytes, long maxReservedBytes,
                          long allocations) {
}
