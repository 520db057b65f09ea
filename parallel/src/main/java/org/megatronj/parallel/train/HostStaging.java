package org.megatronj.parallel.train;

import org.megatronj.io.safetensors.SafetensorsFile;
import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

import java.lang.foreign.MemorySegment;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Checkpoint files hold host memory; a GPU run's weights and optimizer state live on the device.
 * These helpers copy through host tensors with the run's backend (tensors already on the host
 * pass through untouched, so the CPU path copies nothing).
 */
final class HostStaging {
    private HostStaging() {
    }

    /** The tensors, each on the host: device tensors are downloaded into {@code arena}. */
    static Map<String, Tensor> toHost(Backend backend, Map<String, Tensor> tensors, TensorArena arena) {
        Map<String, Tensor> host = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
            host.put(e.getKey(), onHost(backend, e.getValue(), arena));
        }
        return host;
    }

    /** Host copies of the tensors in {@code arena}, host tensors copied too: a snapshot training may not change. */
    static Map<String, Tensor> snapshot(Backend backend, Map<String, Tensor> tensors, TensorArena arena) {
        Map<String, Tensor> copies = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
            Tensor t = e.getValue();
            Tensor copy = arena.allocate(t.dtype(), t.shape());
            if (t.device().isHost()) {
                MemorySegment.copy(t.segment(), 0, copy.segment(), 0, copy.segment().byteSize());
            } else {
                requireBackend(backend, t).copy(t, copy);
            }
            copies.put(e.getKey(), copy);
        }
        return copies;
    }

    private static Tensor onHost(Backend backend, Tensor t, TensorArena arena) {
        if (t.device().isHost()) {
            return t;
        }
        Tensor copy = arena.allocate(t.dtype(), t.shape());
        requireBackend(backend, t).copy(t, copy);
        return copy;
    }

    /** Copies tensor {@code name} of {@code file} into {@code dst}, through a host tensor when dst is on a device. */
    static void copyInto(Backend backend, SafetensorsFile file, String name, Tensor dst) {
        fill(backend, dst, host -> file.copyTo(name, host));
    }

    /** Lets {@code writer} fill a host tensor shaped as {@code dst}, then uploads it when dst is on a device. */
    static void fill(Backend backend, Tensor dst, Consumer<Tensor> writer) {
        if (dst.device().isHost()) {
            writer.accept(dst);
            return;
        }
        try (TensorArena arena = TensorArena.named("checkpoint-staging")) {
            Tensor host = arena.allocate(dst.dtype(), dst.shape());
            writer.accept(host);
            requireBackend(backend, dst).copy(host, dst);
        }
    }

    private static Backend requireBackend(Backend backend, Tensor t) {
        if (backend == null) {
            throw new IllegalStateException("a checkpoint tensor is on " + t.device()
                    + " but the checkpointer was given no backend to copy it with");
        }
        return backend;
    }
}
