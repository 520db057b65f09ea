package org.megatronj.memory.cpu;

import org.megatronj.memory.Tensor;

import java.util.Arrays;

/**
 * Memory-efficient scaled dot-product attention (FlashAttention's algorithm on the CPU): the
 * scores of a tile of {@link #QUERY_TILE} query rows against a block of {@link #KEY_BLOCK} keys
 * are the only ones that exist at a time, and the softmax runs online (running max and sum per
 * row, rescaling the output accumulator when the max grows). Tiles are small enough that the
 * block of keys and values serves every row of a tile from L1, and the two products in a tile
 * are register-blocked ({@link AttentionTiles}).
 *
 * <p>For one (batch, group) the keys and values are gathered once into fp32 arrays, row-major
 * and transposed ({@code K^T} lets scores be computed a vector of keys at a time).
 *
 * <p>Backward recomputes the probabilities from the saved log-sum-exp:
 * {@code P = exp(scale * q k^T - lse)}, {@code dV = P^T dO}, {@code dP = dO V^T},
 * {@code dS = P * (dP - rowsum(dO * O)) * scale}, {@code dQ = dS K}, {@code dK = dS^T Q}.
 * One task owns one (batch, group), so the dK and dV of a group (summed over its query heads
 * under GQA/MQA) are accumulated by one thread in a fixed order: results do not depend on the
 * thread count.
 */
final class AttentionKernels {
    /** Keys per block: a block of K^T and of V is 16 KiB each at d = 64. */
    static final int KEY_BLOCK = 64;
    /** Query rows per tile. */
    static final int QUERY_TILE = 32;

    private final CpuThreads threads;
    private final boolean vector;

    AttentionKernels(CpuThreads threads, boolean vectorized) {
        this.threads = threads;
        this.vector = vectorized;
    }

    /** Keys and values of one (batch, group), fp32, row-major {@code [sk, d]} and transposed {@code [d, sk]}. */
    private static final class KeyValues {
        final float[] k;
        final float[] kt;
        final float[] v;
        final float[] vt;

        KeyValues(int sk, int d, boolean backward) {
            k = backward ? new float[sk * d] : null;
            kt = new float[sk * d];
            v = new float[sk * d];
            vt = backward ? new float[sk * d] : null;
        }

        void load(AttentionShape a, Tensor kT, Tensor vT, int b, int g, int keys) {
            int d = a.d();
            float[] rows = k != null ? k : new float[keys * d];
            for (int j = 0; j < keys; j++) {
                FloatRows.load(kT, a.kOffset(j, b, g), rows, j * d, d);
                FloatRows.load(vT, a.kOffset(j, b, g), v, j * d, d);
            }
            transpose(rows, kt, keys, d, a.sk());
            if (vt != null) {
                transpose(v, vt, keys, d, a.sk());
            }
        }

        private static void transpose(float[] src, float[] dst, int rows, int cols, int stride) {
            for (int j = 0; j < rows; j++) {
                for (int c = 0; c < cols; c++) {
                    dst[c * stride + j] = src[j * cols + c];
                }
            }
        }
    }

    void forward(AttentionShape a, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse,
                 float scale, boolean causal, int[] keyLengths) {
        int d = a.d();
        int sk = a.sk();
        threads.parallelFor((long) a.batch() * a.np(), 1, (t0, t1) -> {
            KeyValues kv = new KeyValues(sk, d, false);
            float[] qTile = new float[QUERY_TILE * d];
            float[] acc = new float[QUERY_TILE * d];
            float[] scores = new float[QUERY_TILE * KEY_BLOCK];
            float[] max = new float[QUERY_TILE];
            float[] sum = new float[QUERY_TILE];
            int[] ends = new int[QUERY_TILE];
            int loaded = -1;
            for (long t = t0; t < t1; t++) {
                int b = (int) (t / a.np());
                int h = (int) (t % a.np());
                int g = h / a.headsPerGroup();
                int keyLength = keyLengths == null ? sk : keyLengths[b];
                if (loaded != b * a.ng() + g) {
                    kv.load(a, k, v, b, g, keyLength);
                    loaded = b * a.ng() + g;
                }
                for (int i0 = 0; i0 < a.s(); i0 += QUERY_TILE) {
                    int rows = Math.min(QUERY_TILE, a.s() - i0);
                    int maxEnd = 0;
                    for (int r = 0; r < rows; r++) {
                        ends[r] = a.visibleKeys(i0 + r, causal, keyLength);
                        maxEnd = Math.max(maxEnd, ends[r]);
                        FloatRows.load(q, a.qOffset(i0 + r, b, h), qTile, r * d, d);
                    }
                    VectorMath.scale(vector, qTile, 0, rows * d, scale);
                    Arrays.fill(acc, 0f);
                    Arrays.fill(max, Float.NEGATIVE_INFINITY);
                    Arrays.fill(sum, 0f);
                    for (int from = 0; from < maxEnd; from += KEY_BLOCK) {
                        int n = Math.min(maxEnd, from + KEY_BLOCK) - from;
                        AttentionTiles.rowsTimesColumns(vector, qTile, 0, d, rows, kv.kt, from, sk, n, d, scores, KEY_BLOCK);
                        for (int r = 0; r < rows; r++) {
                            int o = r * KEY_BLOCK;
                            int visible = Math.clamp(ends[r] - from, 0, n);
                            if (visible > 0) {
                                float blockMax = VectorMath.max(vector, scores, o, visible);
                                if (blockMax > max[r]) {
                                    float rescale = (float) Math.exp(max[r] - blockMax);
                                    sum[r] *= rescale;
                                    VectorMath.scale(vector, acc, r * d, d, rescale);
                                    max[r] = blockMax;
                                }
                                sum[r] += VectorMath.expInPlace(vector, scores, o, visible, 1f, max[r]);
                            }
                            Arrays.fill(scores, o + visible, o + n, 0f); // masked keys weigh nothing
                        }
                        AttentionTiles.accumulateProduct(vector, scores, 0, KEY_BLOCK, rows, n, kv.v, from * d, d, d, acc, 0, d);
                    }
                    for (int r = 0; r < rows; r++) {
                        long lo = a.lseOffset(b, h, i0 + r);
                        if (ends[r] == 0) { // fully masked row: zeros (acc is 0) and lse = -inf
                            FloatRows.set(lse, lo, Float.NEGATIVE_INFINITY);
                        } else {
                            VectorMath.scale(vector, acc, r * d, d, 1f / sum[r]);
                            FloatRows.set(lse, lo, max[r] + (float) Math.log(sum[r]));
                        }
                        FloatRows.store(acc, r * d, out, a.qOffset(i0 + r, b, h), d);
                    }
                }
            }
        });
    }

    void backward(AttentionShape a, Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse,
                  Tensor dq, Tensor dk, Tensor dv, float scale, boolean causal, int[] keyLengths) {
        int d = a.d();
        int sk = a.sk();
        int s = a.s();
        threads.parallelFor((long) a.batch() * a.ng(), 1, (t0, t1) -> {
            KeyValues kv = new KeyValues(sk, d, true);
            float[] dK = new float[sk * d];
            float[] dV = new float[sk * d];
            float[] qh = new float[s * d];
            float[] doh = new float[s * d];
            float[] dqh = new float[s * d];
            float[] oRow = new float[d];
            float[] delta = new float[s];
            float[] rowLse = new float[s];
            int[] ends = new int[s];
            float[] dKb = new float[KEY_BLOCK * d];
            float[] dVb = new float[KEY_BLOCK * d];
            float[] p = new float[QUERY_TILE * KEY_BLOCK];
            float[] ds = new float[QUERY_TILE * KEY_BLOCK];
            float[] transposed = new float[KEY_BLOCK * QUERY_TILE];
            for (long t = t0; t < t1; t++) {
                int b = (int) (t / a.ng());
                int g = (int) (t % a.ng());
                int keyLength = keyLengths == null ? sk : keyLengths[b];
                kv.load(a, k, v, b, g, keyLength);
                Arrays.fill(dK, 0f);
                Arrays.fill(dV, 0f);
                for (int h = g * a.headsPerGroup(); h < (g + 1) * a.headsPerGroup(); h++) {
                    int maxEnd = 0;
                    for (int i = 0; i < s; i++) {
                        long qo = a.qOffset(i, b, h);
                        ends[i] = a.visibleKeys(i, causal, keyLength);
                        maxEnd = Math.max(maxEnd, ends[i]);
                        FloatRows.load(q, qo, qh, i * d, d);
                        FloatRows.load(dOut, qo, doh, i * d, d);
                        FloatRows.load(out, qo, oRow, 0, d);
                        delta[i] = VectorMath.dot(vector, doh, i * d, oRow, 0, d); // rowsum(dO * O)
                        rowLse[i] = FloatRows.get(lse, a.lseOffset(b, h, i));
                    }
                    Arrays.fill(dqh, 0f);
                    for (int from = 0; from < maxEnd; from += KEY_BLOCK) {
                        int n = Math.min(maxEnd, from + KEY_BLOCK) - from;
                        Arrays.fill(dKb, 0f);
                        Arrays.fill(dVb, 0f);
                        for (int i0 = 0; i0 < s; i0 += QUERY_TILE) {
                            int rows = Math.min(QUERY_TILE, s - i0);
                            if (!anyVisible(ends, i0, rows, from)) {
                                continue;
                            }
                            AttentionTiles.rowsTimesColumns(vector, qh, i0 * d, d, rows, kv.kt, from, sk, n, d, p, KEY_BLOCK);
                            AttentionTiles.rowsTimesColumns(vector, doh, i0 * d, d, rows, kv.vt, from, sk, n, d, ds, KEY_BLOCK);
                            for (int r = 0; r < rows; r++) {
                                int o = r * KEY_BLOCK;
                                int visible = Math.clamp(ends[i0 + r] - from, 0, n);
                                VectorMath.expInPlace(vector, p, o, visible, scale, rowLse[i0 + r]); // P
                                Arrays.fill(p, o + visible, o + n, 0f);
                                softmaxGradient(p, ds, o, n, delta[i0 + r], scale); // dS, in place of dP
                            }
                            // dQ += dS K ; dV += P^T dO ; dK += dS^T Q
                            AttentionTiles.accumulateProduct(vector, ds, 0, KEY_BLOCK, rows, n, kv.k, from * d, d, d, dqh, i0 * d, d);
                            AttentionTiles.transpose(p, KEY_BLOCK, rows, n, transposed);
                            AttentionTiles.accumulateProduct(vector, transposed, 0, rows, n, rows, doh, i0 * d, d, d, dVb, 0, d);
                            AttentionTiles.transpose(ds, KEY_BLOCK, rows, n, transposed);
                            AttentionTiles.accumulateProduct(vector, transposed, 0, rows, n, rows, qh, i0 * d, d, d, dKb, 0, d);
                        }
                        VectorMath.axpy(vector, 1f, dKb, 0, dK, from * d, n * d);
                        VectorMath.axpy(vector, 1f, dVb, 0, dV, from * d, n * d);
                    }
                    for (int i = 0; i < s; i++) {
                        FloatRows.store(dqh, i * d, dq, a.qOffset(i, b, h), d);
                    }
                }
                for (int j = 0; j < sk; j++) {
                    FloatRows.store(dK, j * d, dk, a.kOffset(j, b, g), d);
                    FloatRows.store(dV, j * d, dv, a.kOffset(j, b, g), d);
                }
            }
        });
    }

    /** Whether any of rows {@code [i0, i0 + rows)} sees a key at or after {@code from}. */
    private static boolean anyVisible(int[] ends, int i0, int rows, int from) {
        for (int r = i0; r < i0 + rows; r++) {
            if (ends[r] > from) {
                return true;
            }
        }
        return false;
    }

    /** {@code dp[o + j] = p[o + j] * (dp[o + j] - delta) * scale} for {@code j < n}. */
    private static void softmaxGradient(float[] p, float[] dp, int o, int n, float delta, float scale) {
        for (int j = o; j < o + n; j++) {
            dp[j] = p[j] * (dp[j] - delta) * scale;
        }
    }
}
