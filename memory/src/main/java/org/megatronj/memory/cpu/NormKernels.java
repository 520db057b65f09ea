package org.megatronj.memory.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;

/**
 * LayerNorm and RMSNorm over the last dimension, forward and backward, one row at a time.
 * LayerNorm uses the biased variance {@code mean((x - mean)^2)}, computed in two passes over
 * the row (no {@code E[x^2] - E[x]^2} cancellation), as PyTorch and Apex do.
 *
 * <p>Parameter gradients are summed over a fixed number of row groups ({@link #GROUPS}), each
 * summed in row order, and the groups are then added in order: the result does not depend
 * on the thread count.
 */
final class NormKernels {
    /** The vector species, a constant so that the JIT compiles vector ops to SIMD instructions. */
    private static final VectorSpecies<Float> S = VectorMath.SPECIES;

    static final int GROUPS = 64;

    private final CpuThreads threads;
    private final boolean vector;

    NormKernels(CpuThreads threads, boolean vectorized) {
        this.threads = threads;
        this.vector = vectorized;
    }

    void layerNormForward(Tensor x, Tensor gamma, Tensor beta, float eps, Tensor y, Tensor mean, Tensor rstd, int cols) {
        long rows = x.numel() / cols;
        float[] g = new float[cols];
        float[] b = beta == null ? null : new float[cols];
        FloatRows.load(gamma, 0, g, 0, cols);
        if (b != null) {
            FloatRows.load(beta, 0, b, 0, cols);
        }
        threads.parallelFor(rows, grain(cols), (r0, r1) -> {
            float[] row = new float[cols];
            for (long r = r0; r < r1; r++) {
                FloatRows.load(x, r * cols, row, 0, cols);
                float mu = VectorMath.sum(vector, row, 0, cols) / cols;
                float var = centeredSumSq(row, mu, cols) / cols;
                float rs = (float) (1.0 / Math.sqrt(var + eps));
                normalizeAffine(row, mu, rs, g, b, cols);
                FloatRows.store(row, 0, y, r * cols, cols);
                FloatRows.set(mean, r, mu);
                FloatRows.set(rstd, r, rs);
            }
        });
    }

    /**
     * With {@code xhat = (x - mean) * rstd} and {@code g = dy * gamma}:
     * {@code dx = rstd * (g - mean(g) - xhat * mean(g * xhat))} (with {@code accumulate}: {@code dx +=},
     * see {@link #storeInputGradient}); dGamma += dy * xhat; dBeta += dy.
     */
    void layerNormBackward(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd,
                           Tensor dx, Tensor dGamma, Tensor dBeta, int cols, boolean accumulate) {
        long rows = x.numel() / cols;
        float[] gm = new float[cols];
        FloatRows.load(gamma, 0, gm, 0, cols);
        boolean params = dGamma != null || dBeta != null;
        int groups = (int) Math.min(GROUPS, Math.max(rows, 1));
        float[][] pg = params ? new float[groups][cols] : null;
        float[][] pb = params ? new float[groups][cols] : null;
        threads.parallelFor(groups, 1, (g0, g1) -> {
            float[] xr = new float[cols];
            float[] dyr = new float[cols];
            float[] gr = new float[cols];
            for (long grp = g0; grp < g1; grp++) {
                long r0 = rows * grp / groups;
                long r1 = rows * (grp + 1) / groups;
                for (long r = r0; r < r1; r++) {
                    FloatRows.load(x, r * cols, xr, 0, cols);
                    FloatRows.load(dy, r * cols, dyr, 0, cols);
                    float mu = FloatRows.get(mean, r);
                    float rs = FloatRows.get(rstd, r);
                    prepareBackwardRow(xr, dyr, gm, gr, mu, rs, cols); // xr = xhat, gr = dy * gamma
                    float mg = VectorMath.sum(vector, gr, 0, cols) / cols;
                    float mgx = VectorMath.dot(vector, gr, 0, xr, 0, cols) / cols;
                    if (params) {
                        fmaInto(dyr, xr, pg[(int) grp], cols);
                        VectorMath.axpy(vector, 1f, dyr, 0, pb[(int) grp], 0, cols);
                    }
                    inputGradient(gr, xr, rs, mg, mgx, cols);
                    storeInputGradient(gr, dyr, dx, r * cols, cols, accumulate);
                }
            }
        });
        if (dGamma != null) {
            accumulate(pg, dGamma, cols);
        }
        if (dBeta != null) {
            accumulate(pb, dBeta, cols);
        }
    }

    void rmsNormForward(Tensor x, Tensor gamma, float eps, Tensor y, Tensor rstd, int cols) {
        long rows = x.numel() / cols;
        float[] g = new float[cols];
        FloatRows.load(gamma, 0, g, 0, cols);
        threads.parallelFor(rows, grain(cols), (r0, r1) -> {
            float[] row = new float[cols];
            for (long r = r0; r < r1; r++) {
                FloatRows.load(x, r * cols, row, 0, cols);
                float ms = VectorMath.dot(vector, row, 0, row, 0, cols) / cols;
                float rs = (float) (1.0 / Math.sqrt(ms + eps));
                normalizeAffine(row, 0f, rs, g, null, cols);
                FloatRows.store(row, 0, y, r * cols, cols);
                FloatRows.set(rstd, r, rs);
            }
        });
    }

    /**
     * {@code xhat = x * rstd}, {@code g = dy * gamma}: {@code dx = rstd * (g - xhat * mean(g * xhat))} (or
     * {@code dx +=} with {@code accumulate}); dGamma += dy * xhat.
     */
    void rmsNormBackward(Tensor dy, Tensor x, Tensor gamma, Tensor rstd, Tensor dx, Tensor dGamma, int cols,
                         boolean accumulate) {
        long rows = x.numel() / cols;
        float[] gm = new float[cols];
        FloatRows.load(gamma, 0, gm, 0, cols);
        int groups = (int) Math.min(GROUPS, Math.max(rows, 1));
        float[][] pg = dGamma != null ? new float[groups][cols] : null;
        threads.parallelFor(groups, 1, (g0, g1) -> {
            float[] xr = new float[cols];
            float[] dyr = new float[cols];
            float[] gr = new float[cols];
            for (long grp = g0; grp < g1; grp++) {
                long r0 = rows * grp / groups;
                long r1 = rows * (grp + 1) / groups;
                for (long r = r0; r < r1; r++) {
                    FloatRows.load(x, r * cols, xr, 0, cols);
                    FloatRows.load(dy, r * cols, dyr, 0, cols);
                    float rs = FloatRows.get(rstd, r);
                    prepareBackwardRow(xr, dyr, gm, gr, 0f, rs, cols); // xr = xhat, gr = dy * gamma
                    float mgx = VectorMath.dot(vector, gr, 0, xr, 0, cols) / cols;
                    if (pg != null) {
                        fmaInto(dyr, xr, pg[(int) grp], cols);
                    }
                    inputGradient(gr, xr, rs, 0f, mgx, cols);
                    storeInputGradient(gr, dyr, dx, r * cols, cols, accumulate);
                }
            }
        });
        if (dGamma != null) {
            accumulate(pg, dGamma, cols);
        }
    }

    /**
     * Writes row {@code g} to {@code dx} at {@code from}, or with {@code accumulate} adds it: rounded to
     * dx's dtype first, so the bits are those of storing it and adding the stored row to dx
     * ({@code Backend#layerNormBackwardAccumulate}). {@code scratch}: a free row.
     */
    private void storeInputGradient(float[] g, float[] scratch, Tensor dx, long from, int cols, boolean accumulate) {
        if (accumulate) {
            if (dx.dtype() != DType.F32) {
                FloatRows.roundTo(dx.dtype(), g, cols);
            }
            FloatRows.load(dx, from, scratch, 0, cols);
            VectorMath.axpy(vector, 1f, scratch, 0, g, 0, cols);
        }
        FloatRows.store(g, 0, dx, from, cols);
    }

    /** {@code x = (x - mu) * rs} (xhat) and {@code g = dy * gamma}. */
    private void prepareBackwardRow(float[] x, float[] dy, float[] gamma, float[] g, float mu, float rs, int cols) {
        int j = 0;
        if (vector) {
            for (int bound = S.loopBound(cols); j < bound; j += S.length()) {
                FloatVector.fromArray(S, x, j).sub(mu).mul(rs).intoArray(x, j);
                FloatVector.fromArray(S, dy, j).mul(FloatVector.fromArray(S, gamma, j)).intoArray(g, j);
            }
        }
        for (; j < cols; j++) {
            x[j] = (x[j] - mu) * rs;
            g[j] = dy[j] * gamma[j];
        }
    }

    /** {@code acc += a * b}. */
    private void fmaInto(float[] a, float[] b, float[] acc, int cols) {
        int j = 0;
        if (vector) {
            for (int bound = S.loopBound(cols); j < bound; j += S.length()) {
                FloatVector.fromArray(S, a, j).fma(FloatVector.fromArray(S, b, j), FloatVector.fromArray(S, acc, j))
                        .intoArray(acc, j);
            }
        }
        for (; j < cols; j++) {
            acc[j] += a[j] * b[j];
        }
    }

    /** {@code g = rs * (g - mg - xhat * mgx)}: the input gradient, in place in g. */
    private void inputGradient(float[] g, float[] xhat, float rs, float mg, float mgx, int cols) {
        int j = 0;
        if (vector) {
            for (int bound = S.loopBound(cols); j < bound; j += S.length()) {
                FloatVector x = FloatVector.fromArray(S, xhat, j);
                FloatVector.fromArray(S, g, j).sub(mg).sub(x.mul(mgx)).mul(rs).intoArray(g, j);
            }
        }
        for (; j < cols; j++) {
            g[j] = rs * (g[j] - mg - xhat[j] * mgx);
        }
    }

    private static long grain(int cols) {
        return Math.max(1, Blocks.SIZE / Math.max(cols, 1));
    }

    /** {@code sum_j (row[j] - mu)^2}. */
    private float centeredSumSq(float[] row, float mu, int cols) {
        int j = 0;
        float acc = 0f;
        if (vector) {
            FloatVector vm = FloatVector.broadcast(S, mu);
            FloatVector va = FloatVector.zero(S);
            for (int bound = S.loopBound(cols); j < bound; j += S.length()) {
                FloatVector d = FloatVector.fromArray(S, row, j).sub(vm);
                va = d.fma(d, va);
            }
            acc = LaneMath.sum(va);
        }
        for (; j < cols; j++) {
            float d = row[j] - mu;
            acc += d * d;
        }
        return acc;
    }

    /** {@code row = (row - mu) * rs * g + b} in place (b may be null). */
    private void normalizeAffine(float[] row, float mu, float rs, float[] g, float[] b, int cols) {
        int j = 0;
        if (vector) {
            FloatVector vm = FloatVector.broadcast(S, mu);
            for (int bound = S.loopBound(cols); j < bound; j += S.length()) {
                FloatVector v = FloatVector.fromArray(S, row, j).sub(vm).mul(rs).mul(FloatVector.fromArray(S, g, j));
                if (b != null) {
                    v = v.add(FloatVector.fromArray(S, b, j));
                }
                v.intoArray(row, j);
            }
        }
        for (; j < cols; j++) {
            float v = (row[j] - mu) * rs * g[j];
            row[j] = b != null ? v + b[j] : v;
        }
    }

    /** {@code dst += sum over groups of partial}, groups added in order. */
    private void accumulate(float[][] partial, Tensor dst, int cols) {
        float[] acc = new float[cols];
        FloatRows.load(dst, 0, acc, 0, cols);
        for (float[] p : partial) {
            VectorMath.axpy(vector, 1f, p, 0, acc, 0, cols);
        }
        FloatRows.store(acc, 0, dst, 0, cols);
    }
}
