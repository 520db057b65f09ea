package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

/**
 * Megatron's rotary position embedding (non-interleaved, "rotate half"). The angle table
 * {@code freqs[p, c] = p * base^(-2(c mod r/2)/r)} (Megatron's {@code cat(theta, theta)}) is
 * computed once for every position up to {@code maxPositions}; a run at positions
 * {@code [start, start + s)} uses rows of it.
 */
public final class RotaryEmbedding {
    private final Backend backend;
    private final Tensor freqs;   // F32 [maxPositions, r]

    public RotaryEmbedding(Backend backend, TensorArena arena, int maxPositions, int rotaryDim, float base) {
        if (rotaryDim % 2 != 0) {
            throw new IllegalArgumentException("rotary dimension must be even, got " + rotaryDim);
        }
        this.backend = backend;
        int half = rotaryDim / 2;
        float[] table = new float[maxPositions * rotaryDim];
        for (int c = 0; c < half; c++) {
            // Megatron: inv_freq = 1 / base^(arange(0, r, 2) / r), computed in fp32.
            float invFreq = (float) (1.0 / Math.pow(base, (2.0 * c) / rotaryDim));
            for (int p = 0; p < maxPositions; p++) {
                float angle = p * invFreq;
                table[p * rotaryDim + c] = angle;
                table[p * rotaryDim + c + half] = angle;
            }
        }
        this.freqs = backend.allocate(arena, DType.F32, maxPositions, rotaryDim);
        try (TensorArena staging = TensorArena.named("rope-staging")) {
            backend.copy(staging.fromFloats(table, maxPositions, rotaryDim), freqs);
            backend.synchronize();   // the staging memory is freed next
        }
    }

    /** x {@code [s, b, heads, d]} rotated in place for positions {@code [start, start + s)}. */
    public void forward(Tensor x, int start) {
        backend.rotaryForward(x, freqs.view(start, start + x.dim(0)), x);
    }

    /** The inverse rotation of dx {@code [s, b, heads, d]} in place. */
    public void backward(Tensor dx, int start) {
        backend.rotaryBackward(dx, freqs.view(start, start + dx.dim(0)), dx);
    }
}
