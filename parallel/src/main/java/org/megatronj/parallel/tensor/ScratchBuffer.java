package org.megatronj.parallel.tensor;

import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

/**
 * One reusable temporary for the mappings (the stacked all-gather of a last-dimension gather):
 * grown to the largest request, then reused, so steady-state iterations allocate nothing.
 * Contents do not survive the next {@link #get}.
 */
final class ScratchBuffer implements AutoCloseable {
    private final String name;
    private TensorArena arena;
    private Tensor storage;

    ScratchBuffer(String name) {
        this.name = name;
    }

    Tensor get(Backend backend, DType dtype, long... shape) {
        long numel = Tensor.numel(shape);
        if (storage == null || storage.dtype() != dtype || storage.numel() < numel || storage.device() != backend.device()) {
            close();
            arena = new TensorArena(name);
            storage = backend.allocate(arena, dtype, numel);
        }
        return storage.view(0, numel).reshape(shape);
    }

    @Override
    public void close() {
        if (arena != null) {
            arena.close();
            arena = null;
            storage = null;
        }
    }
}
