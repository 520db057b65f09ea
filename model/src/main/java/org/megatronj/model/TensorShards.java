package org.megatronj.model;

import org.megatronj.model.ParameterSpec.TensorSplit;

/**
 * Cuts a whole parameter (host array, row-major) into one tensor-parallel rank's shard, and puts
 * shards back together: the layout rules of {@link TensorSplit}, in one place for the model's
 * initialisation, checkpoint conversion and tests.
 */
public final class TensorShards {
    private TensorShards() {
    }

    /** Rank {@code rank}'s shard of {@code full} (shape {@code fullShape}) among {@code t} ranks. */
    public static float[] shard(float[] full, long[] fullShape, TensorSplit split, int t, int rank) {
        if (t == 1 || split == TensorSplit.REPLICATED) {
            return full;
        }
        int rows = Math.toIntExact(fullShape[0]);
        int cols = fullShape.length > 1 ? Math.toIntExact(full.length / rows) : 1;
        float[] out = new float[full.length / t];
        switch (split) {
            case ROWS -> System.arraycopy(full, rank * (rows / t) * cols, out, 0, out.length);
            case GATED_ROWS -> {
                int half = rows / 2;
                int part = half / t;
                System.arraycopy(full, rank * part * cols, out, 0, part * cols);                    // gate rows
                System.arraycopy(full, (half + rank * part) * cols, out, part * cols, part * cols);  // up rows
            }
            case COLUMNS -> {
                int part = cols / t;
                for (int r = 0; r < rows; r++) {
                    System.arraycopy(full, r * cols + rank * part, out, r * part, part);
                }
            }
            case REPLICATED -> throw new AssertionError();
        }
        return out;
    }

    /** The whole tensor from every rank's shard (index = TP rank): the inverse of {@link #shard}. */
    public static float[] merge(float[][] shards, long[] fullShape, TensorSplit split) {
        int t = shards.length;
        if (t == 1 || split == TensorSplit.REPLICATED) {
            return shards[0];
        }
        int total = shards[0].length * t;
        int rows = Math.toIntExact(fullShape[0]);
        int cols = total / rows;
        float[] full = new float[total];
        for (int rank = 0; rank < t; rank++) {
            float[] s = shards[rank];
            switch (split) {
                case ROWS -> System.arraycopy(s, 0, full, rank * s.length, s.length);
                case GATED_ROWS -> {
                    int part = rows / 2 / t;
                    System.arraycopy(s, 0, full, rank * part * cols, part * cols);
                    System.arraycopy(s, part * cols, full, (rows / 2 + rank * part) * cols, part * cols);
                }
                case COLUMNS -> {
                    int part = cols / t;
                    for (int r = 0; r < rows; r++) {
                        System.arraycopy(s, r * part, full, r * cols + rank * part, part);
                    }
                }
                case REPLICATED -> throw new AssertionError();
            }
        }
        return full;
    }
}
