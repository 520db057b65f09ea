package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.memory.TensorException;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** Small host <-> backend transfers of token ids, masks and per-token results (no staging on the CPU). */
public final class HostTransfer {
    private HostTransfer() {
    }

    /** dst (I32, any device) = values. */
    public static void uploadInts(Backend backend, int[] values, Tensor dst) {
        check("uploadInts", values.length, dst);
        if (dst.device().isHost()) {
            MemorySegment.copy(values, 0, dst.segment(), ValueLayout.JAVA_INT_UNALIGNED, 0, values.length);
            return;
        }
        try (TensorArena staging = TensorArena.named("upload")) {
            backend.copy(staging.fromInts(values, dst.shape()), dst);
            backend.synchronize();   // the staging memory is freed next
        }
    }

    /** dst (a floating dtype, any device) = values, rounded to dst's dtype on the host as {@link Tensor#copyFrom} rounds. */
    public static void uploadFloats(Backend backend, float[] values, Tensor dst) {
        check("uploadFloats", values.length, dst);
        if (dst.device().isHost()) {
            dst.copyFrom(values);
            return;
        }
        try (TensorArena staging = TensorArena.named("upload")) {
            Tensor host = staging.allocate(dst.dtype(), dst.shape());
            host.copyFrom(values);
            backend.copy(host, dst);
            backend.synchronize();   // the staging memory is freed next
        }
    }

    /** The elements of src (a floating dtype, any device) as a Java array. */
    public static float[] downloadFloats(Backend backend, Tensor src) {
        if (src.device().isHost()) {
            return src.toFloatArray();
        }
        try (TensorArena staging = TensorArena.named("download")) {
            Tensor host = staging.allocate(src.dtype(), src.shape());
            backend.copy(src, host);
            backend.synchronize();
            return host.toFloatArray();
        }
    }

    /** Batch-major {@code [b, s]} (row r = sample r) -> sequence-first {@code [s, b]}. */
    public static int[] toSequenceFirst(int[] batchMajor, int b, int s) {
        int[] out = new int[batchMajor.length];
        for (int r = 0; r < b; r++) {
            for (int t = 0; t < s; t++) {
                out[t * b + r] = batchMajor[r * s + t];
            }
        }
        return out;
    }

    /** Batch-major {@code [b, s]} -> sequence-first {@code [s, b]}. */
    public static float[] toSequenceFirst(float[] batchMajor, int b, int s) {
        float[] out = new float[batchMajor.length];
        for (int r = 0; r < b; r++) {
            for (int t = 0; t < s; t++) {
                out[t * b + r] = batchMajor[r * s + t];
            }
        }
        return out;
    }

    private static void check(String op, int length, Tensor dst) {
        if (dst.numel() != length) {
            throw new TensorException(op + ": " + length + " values for " + dst);
        }
    }
}
