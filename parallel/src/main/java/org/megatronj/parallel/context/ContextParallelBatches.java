package org.megatronj.parallel.context;

import org.megatronj.model.MicroBatch;
import org.megatronj.model.parallel.ContextParallelism;

/**
 * A context-parallel rank's part of a micro-batch, as Megatron's {@code get_batch_on_this_cp_rank}: every sample's
 * sequence of S positions is cut into {@code 2 C} equal chunks and CP rank r keeps chunks {@code r} and
 * {@code 2C - 1 - r} (in that order) of its tokens, labels, loss mask and position ids. The position ids are the
 * global ones (0..S-1 when the micro-batch has none), so learned position embeddings and rope see where each chunk
 * sits in the sequence. Pure host-side arithmetic.
 */
public final class ContextParallelBatches {
    private ContextParallelBatches() {
    }

    /** CP rank {@code rank}'s part of {@code batch} ({@code batch} itself when {@code size} is 1). */
    public static MicroBatch slice(MicroBatch batch, int size, int rank) {
        if (size == 1) {
            return batch;
        }
        if (rank < 0 || rank >= size) {
            throw new IllegalArgumentException("context-parallel rank " + rank + " is outside [0, " + size + ")");
        }
        if (batch.keyStarts() != null) {
            throw new IllegalArgumentException("context parallelism does not support document masks "
                    + "(--reset-attention-mask, --dataloader-inter-document-masking)");
        }
        int s = batch.seqLength();
        if (s % (2 * size) != 0) {
            throw new IllegalArgumentException("context parallelism: sequence length " + s
                    + " is not divisible by 2 x context-parallel size = " + 2 * size);
        }
        int b = batch.batchSize();
        int[] positions = batch.positionIds();
        if (positions == null) {
            positions = new int[b * s];
            for (int i = 0; i < positions.length; i++) {
                positions[i] = i % s;
            }
        }
        return new MicroBatch(b, s / size, slice(batch.tokens(), b, s, size, rank), slice(batch.labels(), b, s, size, rank),
                slice(batch.lossMask(), b, s, size, rank), slice(positions, b, s, size, rank));
    }

    /** Rank {@code rank}'s chunks of each of the {@code b} batch-major rows of length {@code s}. */
    static int[] slice(int[] values, int b, int s, int size, int rank) {
        int chunk = s / (2 * size);
        int[] out = new int[b * s / size];
        forEachChunk(b, s, size, rank, (from, to) -> System.arraycopy(values, from, out, to, chunk));
        return out;
    }

    static float[] slice(float[] values, int b, int s, int size, int rank) {
        int chunk = s / (2 * size);
        float[] out = new float[b * s / size];
        forEachChunk(b, s, size, rank, (from, to) -> System.arraycopy(values, from, out, to, chunk));
        return out;
    }

    @FunctionalInterface
    private interface ChunkCopy {
        void copy(int from, int to);
    }

    private static void forEachChunk(int b, int s, int size, int rank, ChunkCopy copy) {
        int chunk = s / (2 * size);
        int local = s / size;
        for (int r = 0; r < b; r++) {
            for (int j = 0; j < ContextParallelism.LOCAL_CHUNKS; j++) {
                copy.copy(r * s + ContextParallelism.globalChunk(rank, size, j) * chunk, r * local + j * chunk);
            }
        }
    }

    /** The loss-mask sum of {@code batch}: the tokens its loss is the mean over. */
    public static double maskSum(MicroBatch batch) {
        double sum = 0;
        for (float m : batch.lossMask()) {
            sum += m;
        }
        return sum;
    }
}
