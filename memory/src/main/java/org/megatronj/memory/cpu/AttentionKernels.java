package org.megatronj.memory.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
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
 * <p>Each query row sees the keys {@code [start, end)} of its {@link AttentionMask} (causal, padding,
 * documents); a tile walks the key blocks from its rows' lowest start to their highest end.
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
 *
 * <p>Dropout on the probabilities ({@link AttentionDropout}, null when off): the forward weighs
 * {@code V} by {@code P Z} with {@code Z = mask / (1 - p)} while the softmax sum (and lse) stay
 * those of the undropped P; the backward regenerates Z from the same Philox counters and uses
 * {@code dV = (P Z)^T dO}, {@code dS = P * (dP Z - rowsum(dO * O)) * scale} where {@code dP = dO V^T}
 * and O is the dropped output ({@code rowsum(P * (dP Z)) = rowsum(dO * O)}).
 */
final class AttentionKernels {
    private static final VectorSpecies<Float> S = VectorMath.SPECIES;

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

    /**
     * Keys and values of one (batch, group), fp32, row-major {@code [sk, d]} and transposed {@code [d, sk]}
     * (the forward only reads K^T and V; its row-major K is where K^T is transposed from).
     */
    private static final class KeyValues {
        final float[] k;
        final float[] kt;
        final float[] v;
        final float[] vt;

        KeyValues(int sk, int d, boolean backward) {
            k = new float[sk * d];
            kt = new float[sk * d];
            v = new float[sk * d];
            vt = backward ? new float[sk * d] : null;
        }

        void load(AttentionShape a, Tensor kT, Tensor vT, int b, int g, int keys) {
            int d = a.d();
            for (int j = 0; j < keys; j++) {
                FloatRows.load(kT, a.kOffset(j, b, g), k, j * d, d);
                FloatRows.load(vT, a.kOffset(j, b, g), v, j * d, d);
            }
            AttentionTiles.transpose(k, d, keys, d, kt, a.sk());
            if (vt != null) {
                AttentionTiles.transpose(v, d, keys, d, vt, a.sk());
            }
        }
    }

    /** Per-thread arrays of the forward pass: one query tile and its running softmax state. */
    private static final class ForwardTile {
        final float[] q;
        final float[] acc;
        final float[] scores = new float[QUERY_TILE * KEY_BLOCK];
        final float[] z = new float[KEY_BLOCK];
        final float[] max = new float[QUERY_TILE];
        final float[] sum = new float[QUERY_TILE];
        final int[] starts = new int[QUERY_TILE];
        final int[] ends = new int[QUERY_TILE];

        ForwardTile(int d) {
            q = new float[QUERY_TILE * d];
            acc = new float[QUERY_TILE * d];
        }
    }

    void forward(AttentionShape a, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse,
                 float scale, AttentionMask mask, AttentionDropout drop) {
        int tiles = (a.s() + QUERY_TILE - 1) / QUERY_TILE;
        // tasks are (batch, head, query tile), so even one sequence of few heads keeps every thread busy
        threads.parallelFor((long) a.batch() * a.np() * tiles, 1, (t0, t1) -> {
            KeyValues kv = new KeyValues(a.sk(), a.d(), false);
            ForwardTile tile = new ForwardTile(a.d());
            int loaded = -1;
            for (long t = t0; t < t1; t++) {
                int b = (int) (t / tiles / a.np());
                int h = (int) (t / tiles % a.np());
                int g = h / a.headsPerGroup();
                if (loaded != b * a.ng() + g) { // consecutive tasks share a group: gather its keys once
                    kv.load(a, k, v, b, g, mask.keyLength(a, b));
                    loaded = b * a.ng() + g;
                }
                forwardTile(a, q, out, lse, kv, tile, b, h, (int) (t % tiles) * QUERY_TILE, scale, mask, drop);
            }
        });
    }

    /** Query rows {@code [i0, i0 + QUERY_TILE)} of head h against every visible key, block by block. */
    private void forwardTile(AttentionShape a, Tensor q, Tensor out, Tensor lse, KeyValues kv, ForwardTile tile,
                             int b, int h, int i0, float scale, AttentionMask mask, AttentionDropout drop) {
        int d = a.d();
        int rows = Math.min(QUERY_TILE, a.s() - i0);
        float[] acc = tile.acc;
        float[] scores = tile.scores;
        float[] max = tile.max;
        float[] sum = tile.sum;
        int[] starts = tile.starts;
        int[] ends = tile.ends;
        int minStart = Integer.MAX_VALUE;
        int maxEnd = 0;
        for (int r = 0; r < rows; r++) {
            starts[r] = mask.start(a, b, i0 + r);
            ends[r] = mask.end(a, b, i0 + r);
            minStart = Math.min(minStart, starts[r]);
            maxEnd = Math.max(maxEnd, ends[r]);
            FloatRows.load(q, a.qOffset(i0 + r, b, h), tile.q, r * d, d);
        }
        VectorMath.scale(vector, tile.q, 0, rows * d, scale);
        Arrays.fill(acc, 0f);
        Arrays.fill(max, Float.NEGATIVE_INFINITY);
        Arrays.fill(sum, 0f);
        for (int from = minStart / KEY_BLOCK * KEY_BLOCK; from < maxEnd; from += KEY_BLOCK) {
            int n = Math.min(maxEnd, from + KEY_BLOCK) - from;
            AttentionTiles.rowsTimesColumns(vector, tile.q, 0, d, rows, kv.kt, from, a.sk(), n, d, scores, KEY_BLOCK);
            for (int r = 0; r < rows; r++) {
                int o = r * KEY_BLOCK;
                int lo = Math.clamp(starts[r] - from, 0, n);  // the row's visible keys are [from + lo, from + hi)
                int hi = Math.clamp(ends[r] - from, lo, n);
                if (hi > lo) {
                    float blockMax = VectorMath.max(vector, scores, o + lo, hi - lo);
                    if (blockMax > max[r]) {
                        float rescale = (float) Math.exp(max[r] - blockMax);
                        sum[r] *= rescale;
                        VectorMath.scale(vector, acc, r * d, d, rescale);
                        max[r] = blockMax;
                    }
                    sum[r] += VectorMath.expInPlace(vector, scores, o + lo, hi - lo, 1f, max[r]);
                    if (drop != null) { // the sum stays the undropped softmax's; V is weighed by P Z
                        drop.mask(a, b, h, i0 + r, from + lo, tile.z, 0, hi - lo);
                        multiply(scores, o + lo, tile.z, hi - lo);
                    }
                }
                Arrays.fill(scores, o, o + lo, 0f); // masked keys weigh nothing
                Arrays.fill(scores, o + hi, o + n, 0f);
            }
            AttentionTiles.accumulateProduct(vector, scores, 0, KEY_BLOCK, rows, n, kv.v, from * d, d, d, acc, 0, d);
        }
        for (int r = 0; r < rows; r++) {
            long lo = a.lseOffset(b, h, i0 + r);
            if (ends[r] <= starts[r]) { // fully masked row: zeros (acc is 0) and lse = -inf
                FloatRows.set(lse, lo, Float.NEGATIVE_INFINITY);
            } else {
                VectorMath.scale(vector, acc, r * d, d, 1f / sum[r]);
                FloatRows.set(lse, lo, max[r] + (float) Math.log(sum[r]));
            }
            FloatRows.store(acc, r * d, out, a.qOffset(i0 + r, b, h), d);
        }
    }

    /** Per-thread arrays of the backward pass. */
    private static final class BackwardScratch {
        final KeyValues kv;
        final float[] dK;
        final float[] dV;
        final float[] qh;
        final float[] doh;
        final float[] dqh;
        final float[] oRow;
        final float[] delta;
        final float[] rowLse;
        final int[] starts;
        final int[] ends;
        final float[] dKb;
        final float[] dVb;
        final float[] p = new float[QUERY_TILE * KEY_BLOCK];
        final float[] ds = new float[QUERY_TILE * KEY_BLOCK];
        final float[] transposed = new float[KEY_BLOCK * QUERY_TILE];
        final float[] z = new float[KEY_BLOCK];
        int b;
        int h;

        BackwardScratch(int s, int sk, int d) {
            kv = new KeyValues(sk, d, true);
            dK = new float[sk * d];
            dV = new float[sk * d];
            qh = new float[s * d];
            doh = new float[s * d];
            dqh = new float[s * d];
            oRow = new float[d];
            delta = new float[s];
            rowLse = new float[s];
            starts = new int[s];
            ends = new int[s];
            dKb = new float[KEY_BLOCK * d];
            dVb = new float[KEY_BLOCK * d];
        }
    }

    /**
     * Below this many (batch, group) pairs the keys of each pair are split into parts, so that
     * MQA/GQA with a small batch still spreads over the threads. A rule on shapes, never on the
     * thread count, so results stay independent of the thread count. Splitting has a price (every
     * part reloads its heads' queries and output gradients, and the partial dQ sums are added at
     * the end): GPT-2 124M's 12 heads at batch 1 ran their backward 13% faster unsplit on 2 cores
     * than split in two, so 8 pairs, not more, count as enough to spread.
     */
    static final int MIN_BACKWARD_TASKS = 8;
    /** The most floats the per-part partial sums of dQ may take (128 MiB). */
    static final long PARTIAL_FLOATS = 1L << 25;

    void backward(AttentionShape a, Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse,
                  Tensor dq, Tensor dk, Tensor dv, float scale, AttentionMask mask, AttentionDropout drop) {
        long pairs = (long) a.batch() * a.ng();
        long dqFloats = (long) a.batch() * a.np() * a.s() * a.d();
        int keyBlocks = (a.sk() + KEY_BLOCK - 1) / KEY_BLOCK;
        long wanted = Math.min((MIN_BACKWARD_TASKS + pairs - 1) / pairs, Math.max(keyBlocks, 1));
        int parts = (int) Math.max(1, Math.min(wanted, PARTIAL_FLOATS / Math.max(dqFloats, 1)));
        // each part owns the dK and dV of its keys; its share of dQ goes to its own partial sum
        float[][] partialDq = parts > 1 ? new float[parts][(int) dqFloats] : null;
        threads.parallelFor(pairs * parts, 1, (t0, t1) -> {
            BackwardScratch scratch = new BackwardScratch(a.s(), a.sk(), a.d());
            for (long t = t0; t < t1; t++) {
                int part = (int) (t % parts);
                int b = (int) (t / parts / a.ng());
                int g = (int) (t / parts % a.ng());
                int keyFrom = keyBlocks * part / parts * KEY_BLOCK;
                int keyTo = Math.min(a.sk(), keyBlocks * (part + 1) / parts * KEY_BLOCK);
                backwardKeys(a, dOut, q, k, v, out, lse, dq, dk, dv, scale, mask, drop, scratch,
                        b, g, keyFrom, keyTo, partialDq == null ? null : partialDq[part]);
            }
        });
        if (partialDq != null) {
            sumPartialDq(a, partialDq, dq);
        }
    }

    /**
     * The gradients from keys {@code [keyFrom, keyTo)} of group g in batch entry b: their dK and
     * dV rows, and their share of dQ (written to dq, or to {@code partialDq} when keys are split).
     */
    private void backwardKeys(AttentionShape a, Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse,
                              Tensor dq, Tensor dk, Tensor dv, float scale, AttentionMask mask,
                              AttentionDropout drop, BackwardScratch w, int b, int g, int keyFrom, int keyTo, float[] partialDq) {
        int d = a.d();
        int s = a.s();
        w.kv.load(a, k, v, b, g, mask.keyLength(a, b));
        Arrays.fill(w.dK, 0f);
        Arrays.fill(w.dV, 0f);
        w.b = b;
        for (int h = g * a.headsPerGroup(); h < (g + 1) * a.headsPerGroup(); h++) {
            w.h = h;
            int maxEnd = 0;
            for (int i = 0; i < s; i++) {
                long qo = a.qOffset(i, b, h);
                w.starts[i] = mask.start(a, b, i);
                w.ends[i] = mask.end(a, b, i);
                maxEnd = Math.max(maxEnd, w.ends[i]);
                FloatRows.load(q, qo, w.qh, i * d, d);
                FloatRows.load(dOut, qo, w.doh, i * d, d);
                FloatRows.load(out, qo, w.oRow, 0, d);
                w.delta[i] = VectorMath.dot(vector, w.doh, i * d, w.oRow, 0, d); // rowsum(dO * O)
                w.rowLse[i] = FloatRows.get(lse, a.lseOffset(b, h, i));
            }
            Arrays.fill(w.dqh, 0f);
            int end = Math.min(maxEnd, keyTo);
            for (int from = keyFrom; from < end; from += KEY_BLOCK) {
                int n = Math.min(end, from + KEY_BLOCK) - from;
                keyBlock(a, w, from, n, scale, drop);
            }
            if (partialDq == null) {
                for (int i = 0; i < s; i++) {
                    FloatRows.store(w.dqh, i * d, dq, a.qOffset(i, b, h), d);
                }
            } else {
                System.arraycopy(w.dqh, 0, partialDq, ((b * a.np() + h) * s) * d, s * d);
            }
        }
        for (int j = keyFrom; j < keyTo; j++) {
            FloatRows.store(w.dK, j * d, dk, a.kOffset(j, b, g), d);
            FloatRows.store(w.dV, j * d, dv, a.kOffset(j, b, g), d);
        }
    }

    /** One block of n keys from {@code from} against every query row of the head loaded in w. */
    private void keyBlock(AttentionShape a, BackwardScratch w, int from, int n, float scale, AttentionDropout drop) {
        int d = a.d();
        int s = a.s();
        float[] p = w.p;
        float[] ds = w.ds;
        Arrays.fill(w.dKb, 0f);
        Arrays.fill(w.dVb, 0f);
        for (int i0 = 0; i0 < s; i0 += QUERY_TILE) {
            int rows = Math.min(QUERY_TILE, s - i0);
            if (!anyVisible(w, i0, rows, from, n)) {
                continue;
            }
            AttentionTiles.rowsTimesColumns(vector, w.qh, i0 * d, d, rows, w.kv.kt, from, a.sk(), n, d, p, KEY_BLOCK);
            AttentionTiles.rowsTimesColumns(vector, w.doh, i0 * d, d, rows, w.kv.vt, from, a.sk(), n, d, ds, KEY_BLOCK);
            for (int r = 0; r < rows; r++) {
                int o = r * KEY_BLOCK;
                int lo = Math.clamp(w.starts[i0 + r] - from, 0, n);  // the row's visible keys are [from + lo, from + hi)
                int hi = Math.clamp(w.ends[i0 + r] - from, lo, n);
                VectorMath.expInPlace(vector, p, o + lo, hi - lo, scale, w.rowLse[i0 + r]); // P
                Arrays.fill(p, o, o + lo, 0f);
                Arrays.fill(p, o + hi, o + n, 0f);
                if (drop == null) {
                    softmaxGradient(p, ds, o, n, w.delta[i0 + r], scale); // dS, in place of dP
                } else {
                    Arrays.fill(w.z, 0, lo, 0f);
                    drop.mask(a, w.b, w.h, i0 + r, from + lo, w.z, lo, hi - lo);
                    Arrays.fill(w.z, hi, n, 0f);
                    droppedSoftmaxGradient(p, ds, o, w.z, n, w.delta[i0 + r], scale); // dS in place of dP; P Z in p
                }
            }
            // dQ += dS K ; dV += P^T dO (P Z with dropout) ; dK += dS^T Q
            AttentionTiles.accumulateProduct(vector, ds, 0, KEY_BLOCK, rows, n, w.kv.k, from * d, d, d, w.dqh, i0 * d, d);
            AttentionTiles.transpose(p, KEY_BLOCK, rows, n, w.transposed);
            AttentionTiles.accumulateProduct(vector, w.transposed, 0, rows, n, rows, w.doh, i0 * d, d, d, w.dVb, 0, d);
            AttentionTiles.transpose(ds, KEY_BLOCK, rows, n, w.transposed);
            AttentionTiles.accumulateProduct(vector, w.transposed, 0, rows, n, rows, w.qh, i0 * d, d, d, w.dKb, 0, d);
        }
        VectorMath.axpy(vector, 1f, w.dKb, 0, w.dK, from * d, n * d);
        VectorMath.axpy(vector, 1f, w.dVb, 0, w.dV, from * d, n * d);
    }

    /** {@code dq = sum over parts of partialDq}, parts added in order. */
    private void sumPartialDq(AttentionShape a, float[][] partialDq, Tensor dq) {
        int d = a.d();
        int s = a.s();
        threads.parallelFor((long) a.batch() * a.np() * s, 64, (r0, r1) -> {
            float[] row = new float[d];
            for (long r = r0; r < r1; r++) {
                int i = (int) (r % s);
                int h = (int) (r / s % a.np());
                int b = (int) (r / s / a.np());
                System.arraycopy(partialDq[0], (int) r * d, row, 0, d);
                for (int part = 1; part < partialDq.length; part++) {
                    VectorMath.axpy(vector, 1f, partialDq[part], (int) r * d, row, 0, d);
                }
                FloatRows.store(row, 0, dq, a.qOffset(i, b, h), d);
            }
        });
    }

    /** Whether any of rows {@code [i0, i0 + rows)} sees a key of {@code [from, from + n)}. */
    private static boolean anyVisible(BackwardScratch w, int i0, int rows, int from, int n) {
        for (int r = i0; r < i0 + rows; r++) {
            if (w.ends[r] > from && w.starts[r] < from + n && w.starts[r] < w.ends[r]) {
                return true;
            }
        }
        return false;
    }

    /** {@code x[o + j] *= z[j]} for {@code j < n}. */
    private void multiply(float[] x, int o, float[] z, int n) {
        int j = 0;
        if (vector) {
            for (int bound = S.loopBound(n); j < bound; j += S.length()) {
                FloatVector.fromArray(S, x, o + j).mul(FloatVector.fromArray(S, z, j)).intoArray(x, o + j);
            }
        }
        for (; j < n; j++) {
            x[o + j] *= z[j];
        }
    }

    /**
     * With dropout multipliers z: {@code dp[o + j] = p[o + j] * (dp[o + j] * z[j] - delta) * scale},
     * then {@code p[o + j] *= z[j]}, for {@code j < n}.
     */
    private void droppedSoftmaxGradient(float[] p, float[] dp, int o, float[] z, int n, float delta, float scale) {
        int j = 0;
        if (vector) {
            for (int bound = S.loopBound(n); j < bound; j += S.length()) {
                FloatVector pj = FloatVector.fromArray(S, p, o + j);
                FloatVector zj = FloatVector.fromArray(S, z, j);
                pj.mul(FloatVector.fromArray(S, dp, o + j).mul(zj).sub(delta)).mul(scale).intoArray(dp, o + j);
                pj.mul(zj).intoArray(p, o + j);
            }
        }
        for (; j < n; j++) {
            dp[o + j] = p[o + j] * (dp[o + j] * z[j] - delta) * scale;
            p[o + j] *= z[j];
        }
    }

    /** {@code dp[o + j] = p[o + j] * (dp[o + j] - delta) * scale} for {@code j < n}. */
    private void softmaxGradient(float[] p, float[] dp, int o, int n, float delta, float scale) {
        int j = o;
        if (vector) {
            for (int bound = o + S.loopBound(n); j < bound; j += S.length()) {
                FloatVector.fromArray(S, p, j).mul(FloatVector.fromArray(S, dp, j).sub(delta)).mul(scale).intoArray(dp, j);
            }
        }
        for (; j < o + n; j++) {
            dp[j] = p[j] * (dp[j] - delta) * scale;
        }
    }
}
