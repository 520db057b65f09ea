package org.megatronj.memory.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.megatronj.memory.Tensor;

/**
 * Softmax cross-entropy in Megatron's vocab-parallel pieces (row max, target logit, sum of
 * exponentials, loss, gradient), plus argmax and log-softmax for sampling. Rows are spread
 * over the threads; each row (up to a full 50k vocabulary) is loaded once into fp32.
 */
final class CrossEntropyKernels {
    /** The vector species, a constant so that the JIT compiles vector ops to SIMD instructions. */
    private static final VectorSpecies<Float> S = VectorMath.SPECIES;

    private final CpuThreads threads;
    private final boolean vector;

    CrossEntropyKernels(CpuThreads threads, boolean vectorized) {
        this.threads = threads;
        this.vector = vectorized;
    }

    @FunctionalInterface
    private interface RowBody {
        void run(long row, float[] values);
    }

    /** Loads each row of {@code logits [n, v]} into a per-thread array and runs body on it. */
    private void forEachRow(Tensor logits, int v, RowBody body) {
        long n = v == 0 ? 0 : logits.numel() / v;
        threads.parallelFor(n, 1, (r0, r1) -> {
            float[] row = new float[v];
            for (long r = r0; r < r1; r++) {
                FloatRows.load(logits, r * v, row, 0, v);
                body.run(r, row);
            }
        });
    }

    void rowMax(Tensor logits, Tensor rowMax, int v) {
        forEachRow(logits, v, (r, row) -> FloatRows.set(rowMax, r, VectorMath.max(vector, row, 0, v)));
    }

    void targetLogit(Tensor logits, Tensor targets, long vocabStart, Tensor targetLogit, int v) {
        long n = targets.numel();
        for (long i = 0; i < n; i++) {
            long t = FloatRows.getInt(targets, i) - vocabStart;
            FloatRows.set(targetLogit, i, t >= 0 && t < v ? FloatRows.get(logits, i * v + t) : 0f);
        }
    }

    void sumExp(Tensor logits, Tensor rowMax, Tensor sumExp, int v) {
        forEachRow(logits, v, (r, row) ->
                FloatRows.set(sumExp, r, VectorMath.sumExp(vector, row, 0, v, FloatRows.get(rowMax, r))));
    }

    /** rowMax then sumExp on each row while it is loaded: one read of the logits instead of two. */
    void rowMaxSumExp(Tensor logits, Tensor rowMax, Tensor sumExp, int v) {
        forEachRow(logits, v, (r, row) -> {
            float max = VectorMath.max(vector, row, 0, v);
            FloatRows.set(rowMax, r, max);
            FloatRows.set(sumExp, r, VectorMath.sumExp(vector, row, 0, v, max));
        });
    }

    static void loss(Tensor rowMax, Tensor sumExp, Tensor targetLogit, Tensor loss) {
        long n = loss.numel();
        for (long i = 0; i < n; i++) {
            float l = (float) Math.log(FloatRows.get(sumExp, i)) + FloatRows.get(rowMax, i) - FloatRows.get(targetLogit, i);
            FloatRows.set(loss, i, l);
        }
    }

    /** {@code dLogits = dLoss * (softmax - onehot(target))}, row by row; dLogits may alias logits. */
    void backward(Tensor logits, Tensor targets, long vocabStart, Tensor rowMax, Tensor sumExp,
                  Tensor dLoss, Tensor dLogits, int v) {
        forEachRow(logits, v, (r, row) -> {
            float g = FloatRows.get(dLoss, r);
            float max = FloatRows.get(rowMax, r);
            float scale = g / FloatRows.get(sumExp, r);
            expScaled(row, v, max, scale);
            long t = FloatRows.getInt(targets, r) - vocabStart;
            if (t >= 0 && t < v) {
                row[(int) t] -= g;
            }
            FloatRows.store(row, 0, dLogits, r * v, v);
        });
    }

    /**
     * Backend#crossEntropyForwardBackward, each row loaded once: the target logit, the maximum, then
     * {@code exp(x - max)} kept in the row while summed (as {@link VectorMath#sumExp} sums), scaled
     * by {@code dLoss / sumExp} as {@link #backward} scales, and stored once.
     */
    void forwardBackward(Tensor logits, Tensor targets, Tensor dLoss, Tensor rowMax, Tensor sumExp,
                         Tensor targetLogit, Tensor loss, Tensor dLogits, int v) {
        forEachRow(logits, v, (r, row) -> {
            long t = FloatRows.getInt(targets, r);
            boolean local = t >= 0 && t < v;
            float target = local ? row[(int) t] : 0f;
            float max = VectorMath.max(vector, row, 0, v);
            float sum = VectorMath.expInPlace(vector, row, 0, v, 1f, max);
            FloatRows.set(targetLogit, r, target);
            FloatRows.set(rowMax, r, max);
            FloatRows.set(sumExp, r, sum);
            FloatRows.set(loss, r, (float) Math.log(sum) + max - target);
            float g = FloatRows.get(dLoss, r);
            VectorMath.scale(vector, row, 0, v, g / sum);
            if (local) {
                row[(int) t] -= g;
            }
            FloatRows.store(row, 0, dLogits, r * v, v);
        });
    }

    /** {@code row[j] = exp(row[j] - max) * scale}. */
    private void expScaled(float[] row, int v, float max, float scale) {
        int j = 0;
        if (vector) {
            FloatVector vm = FloatVector.broadcast(S, max);
            for (int bound = S.loopBound(v); j < bound; j += S.length()) {
                LaneMath.exp(FloatVector.fromArray(S, row, j).sub(vm)).mul(scale).intoArray(row, j);
            }
        }
        for (; j < v; j++) {
            row[j] = (float) Math.exp(row[j] - max) * scale;
        }
    }

    /** First index of the row maximum; NaN counts as the maximum, as in PyTorch. */
    void argmax(Tensor logits, Tensor out, int v) {
        forEachRow(logits, v, (r, row) -> {
            float m = VectorMath.max(vector, row, 0, v);
            int best = 0;
            for (int j = 0; j < v; j++) {
                if (row[j] == m || (Float.isNaN(m) && Float.isNaN(row[j]))) {
                    best = j;
                    break;
                }
            }
            FloatRows.setInt(out, r, best);
        });
    }

    /** {@code out = log_softmax(logits / temperature)} per row (out F32, may alias logits). */
    void logSoftmax(Tensor logits, float temperature, Tensor out, int v) {
        float inv = 1f / temperature;
        forEachRow(logits, v, (r, row) -> {
            VectorMath.scale(vector, row, 0, v, inv);
            float m = VectorMath.max(vector, row, 0, v);
            float lse = m + (float) Math.log(VectorMath.sumExp(vector, row, 0, v, m));
            int j = 0;
            if (vector) {
                for (int bound = S.loopBound(v); j < bound; j += S.length()) {
                    FloatVector.fromArray(S, row, j).sub(lse).intoArray(row, j);
                }
            }
            for (; j < v; j++) {
                row[j] -= lse;
            }
            FloatRows.store(row, 0, out, r * v, v);
        });
    }
}
