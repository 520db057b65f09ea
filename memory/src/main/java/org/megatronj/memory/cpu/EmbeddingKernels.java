package org.megatronj.memory.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorException;

/** Token embedding lookup and its gradient, and rotary position embeddings. */
final class EmbeddingKernels {
    private static final VectorSpecies<Float> S = VectorMath.SPECIES;

    private final CpuThreads threads;
    private final boolean vector;

    EmbeddingKernels(CpuThreads threads, boolean vectorized) {
        this.threads = threads;
        this.vector = vectorized;
    }

    /** Throws naming the first id outside {@code [0, vocab)} and its position. */
    static void checkIds(String op, Tensor ids, long vocab) {
        long n = ids.numel();
        for (long i = 0; i < n; i++) {
            int id = FloatRows.getInt(ids, i);
            if (id < 0 || id >= vocab) {
                throw new TensorException(op + ": id " + id + " at position " + i + " of ids "
                        + Tensor.shapeString(ids.shape()) + " is outside the table's " + vocab + " rows");
            }
        }
    }

    void forward(Tensor ids, Tensor table, Tensor out, int h) {
        long n = ids.numel();
        threads.parallelFor(n, Math.max(1, Blocks.SIZE / Math.max(h, 1)), (i0, i1) -> {
            float[] row = new float[h];
            for (long i = i0; i < i1; i++) {
                int id = FloatRows.getInt(ids, i);
                if (table.dtype() == out.dtype()) {
                    long bytes = (long) h * table.dtype().byteSize();
                    java.lang.foreign.MemorySegment.copy(table.segment(), id * bytes, out.segment(), i * bytes, bytes);
                } else {
                    FloatRows.load(table, (long) id * h, row, 0, h);
                    FloatRows.store(row, 0, out, i * h, h);
                }
            }
        });
    }

    /**
     * {@code dTable[ids[i], :] += dOut[i, :]}. Columns are split among threads, each walking all
     * ids in order: no two threads touch the same element and repeated ids add in order.
     */
    void backward(Tensor ids, Tensor dOut, Tensor dTable, int h) {
        long n = ids.numel();
        int chunk = 64;
        int chunks = (h + chunk - 1) / chunk;
        threads.parallelFor(chunks, 1, (c0, c1) -> {
            float[] g = new float[chunk];
            float[] acc = new float[chunk];
            for (long c = c0; c < c1; c++) {
                int from = (int) c * chunk;
                int len = Math.min(chunk, h - from);
                for (long i = 0; i < n; i++) {
                    long id = FloatRows.getInt(ids, i);
                    FloatRows.load(dOut, i * h + from, g, 0, len);
                    FloatRows.load(dTable, id * h + from, acc, 0, len);
                    VectorMath.axpy(vector, 1f, g, 0, acc, 0, len);
                    FloatRows.store(acc, 0, dTable, id * h + from, len);
                }
            }
        });
    }

    // ------------------------------------------------------------------ rotary

    /**
     * Rotates channels {@code [0, r)} of each {@code d}-wide row of x {@code [s, rowsPerPos, d]}
     * by the angles {@code freqs [s, r]} ("rotate half", or pairs of neighbours when
     * {@code interleaved}); the inverse rotation when {@code inverse}. Channels {@code [r, d)} are
     * copied. out may alias x.
     *
     * <p>Interleaved pairs {@code (2i, 2i+1)} are rotate half's pairs {@code (i, i + r/2)} once the
     * rotary channels are ordered evens first, odds next: rows and angles are put in that order,
     * rotated by the same code and put back.
     */
    void rotary(Tensor x, Tensor freqs, Tensor out, long s, int r, int d, boolean inverse, boolean interleaved) {
        int half = r / 2;
        float[] cos = new float[(int) (s * r)];
        float[] sin = new float[cos.length];
        for (int i = 0; i < cos.length; i++) {
            int c = i % r;
            double f = FloatRows.get(freqs, i - c + (interleaved ? interleavedChannel(c, half) : c));
            cos[i] = (float) Math.cos(f);
            sin[i] = (float) Math.sin(f);
        }
        long rows = x.numel() / d;
        long rowsPerPos = rows / s;
        threads.parallelFor(rows, Math.max(1, Blocks.SIZE / d), (r0, r1) -> {
            float[] in = new float[d];
            float[] o = new float[d];
            float[] scratch = interleaved ? new float[r] : null;
            for (long row = r0; row < r1; row++) {
                int base = (int) (row / rowsPerPos) * r;
                FloatRows.load(x, row * d, in, 0, d);
                if (interleaved) {
                    toHalves(in, scratch, half);
                }
                rotateHalf(in, o, cos, sin, base, half, inverse);
                if (interleaved) {
                    fromHalves(o, scratch, half);
                }
                System.arraycopy(in, r, o, r, d - r);
                FloatRows.store(o, 0, out, row * d, d);
            }
        });
    }

    /** The interleaved channel at position {@code c} of the evens-then-odds order. */
    private static int interleavedChannel(int c, int half) {
        return c < half ? 2 * c : 2 * (c - half) + 1;
    }

    /** {@code v[0, 2 half)}: interleaved pairs to evens then odds. */
    private static void toHalves(float[] v, float[] scratch, int half) {
        for (int i = 0; i < half; i++) {
            scratch[i] = v[2 * i];
            scratch[half + i] = v[2 * i + 1];
        }
        System.arraycopy(scratch, 0, v, 0, 2 * half);
    }

    /** The inverse of {@link #toHalves}. */
    private static void fromHalves(float[] v, float[] scratch, int half) {
        for (int i = 0; i < half; i++) {
            scratch[2 * i] = v[i];
            scratch[2 * i + 1] = v[half + i];
        }
        System.arraycopy(scratch, 0, v, 0, 2 * half);
    }

    /**
     * Forward: {@code o1 = x1 cos1 - x2 sin1}, {@code o2 = x2 cos2 + x1 sin2}; inverse (the
     * transpose): {@code o1 = x1 cos1 + x2 sin2}, {@code o2 = x2 cos2 - x1 sin1}, where 1 and 2 are
     * the channel halves {@code [0, half)} and {@code [half, 2 half)} and the angles start at base.
     */
    private void rotateHalf(float[] in, float[] o, float[] cos, float[] sin, int base, int half, boolean inverse) {
        int c = 0;
        if (vector) {
            for (int bound = S.loopBound(half); c < bound; c += S.length()) {
                FloatVector x1 = FloatVector.fromArray(S, in, c);
                FloatVector x2 = FloatVector.fromArray(S, in, c + half);
                FloatVector cos1 = FloatVector.fromArray(S, cos, base + c);
                FloatVector cos2 = FloatVector.fromArray(S, cos, base + c + half);
                FloatVector sin1 = FloatVector.fromArray(S, sin, base + c);
                FloatVector sin2 = FloatVector.fromArray(S, sin, base + c + half);
                if (!inverse) {
                    x1.mul(cos1).sub(x2.mul(sin1)).intoArray(o, c);
                    x2.mul(cos2).add(x1.mul(sin2)).intoArray(o, c + half);
                } else {
                    x1.mul(cos1).add(x2.mul(sin2)).intoArray(o, c);
                    x2.mul(cos2).sub(x1.mul(sin1)).intoArray(o, c + half);
                }
            }
        }
        for (; c < half; c++) {
            float x1 = in[c];
            float x2 = in[c + half];
            if (!inverse) {
                o[c] = x1 * cos[base + c] - x2 * sin[base + c];
                o[c + half] = x2 * cos[base + c + half] + x1 * sin[base + c + half];
            } else {
                o[c] = x1 * cos[base + c] + x2 * sin[base + c + half];
                o[c + half] = x2 * cos[base + c + half] - x1 * sin[base + c];
            }
        }
    }
}
