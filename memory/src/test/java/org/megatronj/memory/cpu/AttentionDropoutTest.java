package org.megatronj.memory.cpu;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.memory.TensorException;

import java.util.Arrays;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.megatronj.memory.cpu.OpTesting.assertClose;
import static org.megatronj.memory.cpu.OpTesting.finiteDifferences;
import static org.megatronj.memory.cpu.OpTesting.gaussian;
import static org.megatronj.memory.cpu.OpTesting.tensor;
import static org.megatronj.memory.cpu.OpTesting.toDouble;

/**
 * Dropout on the attention probabilities ({@code Backend#attentionForward} with {@code dropoutP > 0}):
 * the mask is Philox's at the documented element index {@code ((h * b + bi) * s + i) * sk + j},
 * the same in forward and backward, whatever the tiling and the thread count; about p of the
 * probabilities are dropped; the expectation over seeds is the attention without dropout; the
 * gradients are the finite differences of a float64 forward with the same mask; p = 0 is exactly
 * the attention without dropout.
 */
class AttentionDropoutTest {
    private static final CpuBackend ONE = new CpuBackend(1, false);
    private static final CpuBackend THREE = new CpuBackend(3, false);
    private static final CpuBackend ONE_VECTOR = new CpuBackend(1, true);
    private static final CpuBackend THREE_VECTOR = new CpuBackend(3, true);

    @AfterAll
    static void close() {
        ONE.close();
        THREE.close();
        ONE_VECTOR.close();
        THREE_VECTOR.close();
    }

    record Case(CpuBackend backend, int s, int sk, int batch, int np, int ng, int d, boolean causal, int[] keyLengths) {
        @Override
        public String toString() {
            return backend + " s=" + s + " sk=" + sk + " b=" + batch + " np=" + np + " ng=" + ng + " d=" + d
                    + " causal=" + causal + (keyLengths == null ? "" : " keyLengths=" + Arrays.toString(keyLengths));
        }
    }

    static Stream<Case> cases() {
        return OpTesting.backends().flatMap(be -> Stream.of(
                new Case(be, 7, 7, 2, 4, 4, 19, true, null),               // MHA, causal
                new Case(be, 6, 9, 2, 4, 2, 8, true, null),                // GQA, causal with a KV prefix (sk > s)
                new Case(be, 9, 5, 1, 3, 1, 13, true, null),               // MQA, sk < s: the first rows see nothing
                new Case(be, 5, 8, 3, 2, 1, 5, false, new int[] {8, 3, 0}), // padding, one empty sequence
                new Case(be, 70, 70, 1, 2, 1, 4, true, null)               // several query tiles and key blocks
        ));
    }

    private static final float P = 0.3f;
    private static final long SEED = 0x5EEDL;
    private static final long OFFSET = 12345L;

    /**
     * Documents ({@code --reset-attention-mask}) with dropout: each row draws the multipliers of its
     * visible keys at their own counters, whatever key of a block its document starts at.
     */
    @ParameterizedTest
    @MethodSource("org.megatronj.memory.cpu.OpTesting#backends")
    void documentsWithDropoutMatchTheReference(CpuBackend be) {
        int s = 150, b = 2, np = 2, ng = 1, d = 8;
        Random rnd = OpTesting.random(91);
        try (TensorArena arena = new TensorArena("test")) {
            Tensor q = tensor(arena, DType.F32, gaussian(rnd, s * b * np * d, 1f), s, b, np, d);
            Tensor k = tensor(arena, DType.F32, gaussian(rnd, s * b * ng * d, 1f), s, b, ng, d);
            Tensor v = tensor(arena, DType.F32, gaussian(rnd, s * b * ng * d, 1f), s, b, ng, d);
            Tensor dOut = tensor(arena, DType.F32, gaussian(rnd, s * b * np * d, 1f), q.shape());
            Tensor starts = arena.fromInts(AttentionOpsTest.documents(s, new int[] {0, 40, 70, 131}, new int[] {0, 100}), b, s);
            Tensor out = arena.allocate(DType.F32, q.shape());
            Tensor lse = arena.allocate(DType.F32, b, np, s);
            be.attentionForward(q, k, v, out, lse, 0.35f, true, null, starts, P, SEED, OFFSET);
            ReferenceAttention.Forward ref = ReferenceAttention.forward(q, k, v, 0.35f, true, null, starts, P, SEED, OFFSET);
            assertClose("out", ref.out(), out, 2e-5, 1e-4);
            assertClose("lse", ref.lse(), lse, 2e-5, 1e-5);
            Tensor dq = arena.allocate(DType.F32, q.shape());
            Tensor dk = arena.allocate(DType.F32, k.shape());
            Tensor dv = arena.allocate(DType.F32, v.shape());
            be.attentionBackward(dOut, q, k, v, out, lse, dq, dk, dv, 0.35f, true, null, starts, P, SEED, OFFSET);
            ReferenceAttention.Gradients g = ReferenceAttention.backward(dOut, q, k, v, 0.35f, true, null, starts,
                    P, SEED, OFFSET);
            assertClose("dq", g.dq(), dq, 5e-5, 5e-4);
            assertClose("dk", g.dk(), dk, 5e-5, 5e-4);
            assertClose("dv", g.dv(), dv, 5e-5, 5e-4);
        }
    }

    /** Kernel forward and backward against the reference with the same mask, and against finite differences. */
    @ParameterizedTest
    @MethodSource("cases")
    void gradientsAreTheFiniteDifferencesOfTheDroppedForward(Case c) {
        Random rnd = OpTesting.random(90);
        try (TensorArena arena = new TensorArena("test")) {
            float[] qs = gaussian(rnd, c.s * c.batch * c.np * c.d, 1f);
            float[] ks = gaussian(rnd, c.sk * c.batch * c.ng * c.d, 1f);
            float[] vs = gaussian(rnd, c.sk * c.batch * c.ng * c.d, 1f);
            float[] ws = gaussian(rnd, qs.length, 1f);
            Tensor q = tensor(arena, DType.F32, qs, c.s, c.batch, c.np, c.d);
            Tensor k = tensor(arena, DType.F32, ks, c.sk, c.batch, c.ng, c.d);
            Tensor v = tensor(arena, DType.F32, vs, c.sk, c.batch, c.ng, c.d);
            Tensor dOut = tensor(arena, DType.F32, ws, q.shape());
            Tensor lengths = c.keyLengths == null ? null : arena.fromInts(c.keyLengths, c.batch);
            float scale = (float) (1 / Math.sqrt(c.d));
            Tensor out = arena.allocate(DType.F32, q.shape());
            Tensor lse = arena.allocate(DType.F32, c.batch, c.np, c.s);
            c.backend.attentionForward(q, k, v, out, lse, scale, c.causal, lengths, null, P, SEED, OFFSET);
            ReferenceAttention.Forward ref = ReferenceAttention.forward(q, k, v, scale, c.causal, lengths, null, P, SEED, OFFSET);
            ReferenceAttention.Forward plain = ReferenceAttention.forward(q, k, v, scale, c.causal, lengths);
            assertClose("out", ref.out(), out, 2e-5, 1e-4);
            assertClose("lse (undropped)", plain.lse(), lse, 2e-5, 1e-5);
            AttentionShape a = new AttentionShape(c.s, c.sk, c.batch, c.np, c.ng, c.d);
            assertClose("out against the float64 array forward",
                    forward(a, toDouble(qs), toDouble(ks), toDouble(vs), scale, c.causal, c.keyLengths), out, 2e-5, 1e-4);

            Tensor dq = arena.allocate(DType.F32, q.shape());
            Tensor dk = arena.allocate(DType.F32, k.shape());
            Tensor dv = arena.allocate(DType.F32, v.shape());
            c.backend.fill(dq, Float.NaN); // written, not accumulated
            c.backend.attentionBackward(dOut, q, k, v, out, lse, dq, dk, dv, scale, c.causal, lengths, null, P, SEED, OFFSET);
            ReferenceAttention.Gradients g = ReferenceAttention.backward(dOut, q, k, v, scale, c.causal, lengths,
                    null, P, SEED, OFFSET);
            assertClose("dq", g.dq(), dq, 5e-5, 5e-4);
            assertClose("dk", g.dk(), dk, 5e-5, 5e-4);
            assertClose("dv", g.dv(), dv, 5e-5, 5e-4);

            double[] w = toDouble(ws);
            double[] q64 = toDouble(qs);
            double[] k64 = toDouble(ks);
            double[] v64 = toDouble(vs);
            assertClose("dq (finite differences)", finiteDifferences(q64, w,
                    x -> forward(a, x, k64, v64, scale, c.causal, c.keyLengths)), dq, 5e-5, 5e-4);
            assertClose("dk (finite differences)", finiteDifferences(k64, w,
                    x -> forward(a, q64, x, v64, scale, c.causal, c.keyLengths)), dk, 5e-5, 5e-4);
            assertClose("dv (finite differences)", finiteDifferences(v64, w,
                    x -> forward(a, q64, k64, x, scale, c.causal, c.keyLengths)), dv, 5e-5, 5e-4);
        }
    }

    /**
     * Attention with dropout in float64 arrays, written from the definition alone: probability
     * (b, h, i, j) is kept when Philox's uniform of element {@code OFFSET + ((h * batch + b) * s + i) * sk + j}
     * is at least P, and then weighs 1 / (1 - P).
     */
    private static double[] forward(AttentionShape a, double[] q, double[] k, double[] v, double scale, boolean causal,
                                    int[] keyLengths) {
        double[] out = new double[a.s() * a.batch() * a.np() * a.d()];
        double keep = 1f / (1f - P);
        for (int b = 0; b < a.batch(); b++) {
            int keyLength = keyLengths == null ? a.sk() : keyLengths[b];
            for (int h = 0; h < a.np(); h++) {
                int g = h / a.headsPerGroup();
                for (int i = 0; i < a.s(); i++) {
                    int end = Math.max(0, Math.min(keyLength, causal ? i + (a.sk() - a.s()) + 1 : a.sk()));
                    double[] p = new double[end];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < end; j++) {
                        for (int c = 0; c < a.d(); c++) {
                            p[j] += q[(int) a.qOffset(i, b, h) + c] * k[(int) a.kOffset(j, b, g) + c] * scale;
                        }
                        max = Math.max(max, p[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < end; j++) {
                        p[j] = Math.exp(p[j] - max);
                        sum += p[j];
                    }
                    for (int j = 0; j < end; j++) {
                        long e = OFFSET + (((long) h * a.batch() + b) * a.s() + i) * a.sk() + j;
                        double z = Philox.uniform(SEED, e) >= P ? keep : 0;
                        for (int c = 0; c < a.d(); c++) {
                            out[(int) a.qOffset(i, b, h) + c] += p[j] / sum * z * v[(int) a.kOffset(j, b, g) + c];
                        }
                    }
                }
            }
        }
        return out;
    }

    /**
     * With one-hot values ({@code d = sk}, {@code v[j] = e_j}) out holds each probability times its
     * multiplier: zero exactly where the documented Philox element drops, {@code P / (1 - p)} elsewhere;
     * about p of them are dropped.
     */
    @Test
    void dropsAboutPOfTheProbabilitiesAtTheDocumentedElements() {
        int s = 64;
        int sk = 64;
        int batch = 2;
        int np = 4;
        float p = 0.1f;
        long seed = 77;
        long offset = 1L << 36; // a later dropout site
        Random rnd = OpTesting.random(91);
        CpuBackend be = OpTesting.vector();
        try (TensorArena arena = new TensorArena("test")) {
            Tensor q = tensor(arena, DType.F32, gaussian(rnd, s * batch * np * sk, 0.5f), s, batch, np, sk);
            Tensor k = tensor(arena, DType.F32, gaussian(rnd, sk * batch * sk, 0.5f), sk, batch, 1, sk);
            float[] oneHot = new float[sk * batch * sk];
            for (int j = 0; j < sk; j++) {
                for (int b = 0; b < batch; b++) {
                    oneHot[(j * batch + b) * sk + j] = 1f;
                }
            }
            Tensor v = tensor(arena, DType.F32, oneHot, sk, batch, 1, sk);
            Tensor out = arena.allocate(DType.F32, q.shape());
            Tensor plain = arena.allocate(DType.F32, q.shape());
            Tensor lse = arena.allocate(DType.F32, batch, np, s);
            be.attentionForward(q, k, v, plain, lse, 0.125f, false, null);
            float[] lsePlain = lse.toFloatArray();
            be.attentionForward(q, k, v, out, lse, 0.125f, false, null, null, p, seed, offset);
            assertArrayEquals(lsePlain, lse.toFloatArray(), "lse is the undropped softmax's");
            AttentionShape a = new AttentionShape(s, sk, batch, np, 1, sk);
            float keep = 1f / (1f - p);
            long dropped = 0;
            for (int b = 0; b < batch; b++) {
                for (int h = 0; h < np; h++) {
                    for (int i = 0; i < s; i++) {
                        for (int j = 0; j < sk; j++) {
                            long at = a.qOffset(i, b, h) + j;
                            boolean drop = Philox.uniform(seed, offset + ((h * batch + b) * (long) s + i) * sk + j) < p;
                            float prob = plain.getFloat(at);
                            assertTrue(prob > 0, "every probability is positive");
                            assertEquals(drop ? 0f : prob * keep, out.getFloat(at), drop ? 0 : 1e-6f * prob,
                                    "(b, h, i, j) = (" + b + ", " + h + ", " + i + ", " + j + ")");
                            dropped += drop ? 1 : 0;
                        }
                    }
                }
            }
            double n = (double) s * sk * batch * np;
            double fraction = dropped / n;
            double sigma = Math.sqrt(p * (1 - p) / n);
            assertEquals(p, fraction, 5 * sigma, "fraction dropped of " + (long) n);
        }
    }

    /** The mean of the output over many seeds is the output without dropout (inverted dropout is unbiased). */
    @Test
    void expectationOverSeedsIsTheUndroppedAttention() {
        int s = 16;
        int batch = 1;
        int np = 2;
        int d = 8;
        int seeds = 600;
        float p = 0.25f;
        Random rnd = OpTesting.random(92);
        CpuBackend be = OpTesting.vector();
        try (TensorArena arena = new TensorArena("test")) {
            Tensor q = tensor(arena, DType.F32, gaussian(rnd, s * batch * np * d, 1f), s, batch, np, d);
            Tensor k = tensor(arena, DType.F32, gaussian(rnd, s * batch * d, 1f), s, batch, 1, d);
            Tensor v = tensor(arena, DType.F32, gaussian(rnd, s * batch * d, 1f), s, batch, 1, d);
            Tensor out = arena.allocate(DType.F32, q.shape());
            Tensor lse = arena.allocate(DType.F32, batch, np, s);
            be.attentionForward(q, k, v, out, lse, 0.35f, true, null);
            float[] expected = out.toFloatArray();
            double[] sum = new double[expected.length];
            double[] sumSquares = new double[expected.length];
            for (int seed = 0; seed < seeds; seed++) {
                be.attentionForward(q, k, v, out, lse, 0.35f, true, null, null, p, 1000 + seed, 0);
                float[] o = out.toFloatArray();
                for (int i = 0; i < o.length; i++) {
                    sum[i] += o[i];
                    sumSquares[i] += (double) o[i] * o[i];
                }
            }
            for (int i = 0; i < expected.length; i++) {
                double mean = sum[i] / seeds;
                double sd = Math.sqrt(Math.max(0, sumSquares[i] / seeds - mean * mean));
                double tolerance = 6 * sd / Math.sqrt(seeds) + 1e-5;
                assertEquals(expected[i], mean, tolerance, "element " + i + " (mean of " + seeds + " seeds)");
            }
        }
    }

    /** Bit-identical across thread counts and repeated runs, with the backward splitting keys into parts. */
    @Test
    void sameBitsForEveryThreadCountAndRun() {
        Random rnd = OpTesting.random(93);
        int s = 130; // three key blocks, one (batch, group) pair: the backward splits the keys into parts
        int b = 1;
        int np = 4;
        int ng = 1;
        int d = 16;
        float[] q = gaussian(rnd, s * b * np * d, 1f);
        float[] kv = gaussian(rnd, s * b * ng * d, 1f);
        float[] dOut = gaussian(rnd, q.length, 1f);
        CpuBackend[][] pairs = {{ONE, THREE}, {ONE_VECTOR, THREE_VECTOR}, {THREE_VECTOR, THREE_VECTOR}};
        for (CpuBackend[] pair : pairs) {
            try (TensorArena arena = new TensorArena("test")) {
                float[][] first = run(pair[0], arena, q, kv, dOut, s, b, np, ng, d);
                float[][] second = run(pair[1], arena, q, kv, dOut, s, b, np, ng, d);
                for (int i = 0; i < first.length; i++) {
                    assertArrayEquals(first[i], second[i], pair[0] + " vs " + pair[1] + ": output " + i);
                }
            }
        }
    }

    private static float[][] run(CpuBackend be, TensorArena arena, float[] q, float[] kv, float[] dOut,
                                 int s, int b, int np, int ng, int d) {
        Tensor qt = tensor(arena, DType.F32, q, s, b, np, d);
        Tensor kt = tensor(arena, DType.F32, kv, s, b, ng, d);
        Tensor dOutT = tensor(arena, DType.F32, dOut, s, b, np, d);
        Tensor out = arena.allocate(DType.F32, s, b, np, d);
        Tensor lse = arena.allocate(DType.F32, b, np, s);
        be.attentionForward(qt, kt, kt, out, lse, 0.25f, true, null, null, 0.2f, 9, 3);
        Tensor dq = arena.allocate(DType.F32, s, b, np, d);
        Tensor dk = arena.allocate(DType.F32, s, b, ng, d);
        Tensor dv = arena.allocate(DType.F32, s, b, ng, d);
        be.attentionBackward(dOutT, qt, kt, kt, out, lse, dq, dk, dv, 0.25f, true, null, null, 0.2f, 9, 3);
        return new float[][] {out.toFloatArray(), lse.toFloatArray(), dq.toFloatArray(), dk.toFloatArray(),
                dv.toFloatArray()};
    }

    /** p = 0 is the attention without dropout, bit for bit, whatever the seed and offset. */
    @ParameterizedTest
    @MethodSource("org.megatronj.memory.cpu.OpTesting#backends")
    void zeroProbabilityIsExactlyNoDropout(CpuBackend be) {
        Random rnd = OpTesting.random(94);
        int s = 40;
        int b = 2;
        int np = 2;
        int d = 8;
        float[] q = gaussian(rnd, s * b * np * d, 1f);
        float[] kv = gaussian(rnd, s * b * d, 1f);
        float[] dOut = gaussian(rnd, q.length, 1f);
        try (TensorArena arena = new TensorArena("test")) {
            Tensor qt = tensor(arena, DType.F32, q, s, b, np, d);
            Tensor kt = tensor(arena, DType.F32, kv, s, b, 1, d);
            Tensor dOutT = tensor(arena, DType.F32, dOut, s, b, np, d);
            float[][] results = new float[2][];
            for (int run = 0; run < 2; run++) {
                Tensor out = arena.allocate(DType.F32, s, b, np, d);
                Tensor lse = arena.allocate(DType.F32, b, np, s);
                Tensor dq = arena.allocate(DType.F32, s, b, np, d);
                Tensor dk = arena.allocate(DType.F32, s, b, 1, d);
                Tensor dv = arena.allocate(DType.F32, s, b, 1, d);
                if (run == 0) {
                    be.attentionForward(qt, kt, kt, out, lse, 0.3f, true, null);
                    be.attentionBackward(dOutT, qt, kt, kt, out, lse, dq, dk, dv, 0.3f, true, null);
                } else {
                    be.attentionForward(qt, kt, kt, out, lse, 0.3f, true, null, null, 0f, 123, 456);
                    be.attentionBackward(dOutT, qt, kt, kt, out, lse, dq, dk, dv, 0.3f, true, null, null, 0f, 123, 456);
                }
                results[run] = concat(out, lse, dq, dk, dv);
            }
            assertArrayEquals(results[0], results[1]);
        }
    }

    private static float[] concat(Tensor... ts) {
        float[][] parts = Arrays.stream(ts).map(Tensor::toFloatArray).toArray(float[][]::new);
        float[] all = new float[Arrays.stream(parts).mapToInt(x -> x.length).sum()];
        int at = 0;
        for (float[] part : parts) {
            System.arraycopy(part, 0, all, at, part.length);
            at += part.length;
        }
        return all;
    }

    @Test
    void probabilitiesOutsideZeroToOneAreRefused() {
        CpuBackend be = OpTesting.vector();
        try (TensorArena arena = new TensorArena("test")) {
            Tensor q = arena.allocate(DType.F32, 2, 1, 1, 4);
            Tensor lse = arena.allocate(DType.F32, 1, 1, 2);
            for (float p : new float[] {1f, -0.1f, Float.NaN}) {
                TensorException e = assertThrows(TensorException.class,
                        () -> be.attentionForward(q, q, q, q, lse, 1f, true, null, null, p, 0, 0));
                assertTrue(e.getMessage().startsWith("attentionForward: attention dropout probability dropoutP = " + p),
                        e.getMessage());
                e = assertThrows(TensorException.class,
                        () -> be.attentionBackward(q, q, q, q, q, lse, q, q, q, 1f, true, null, null, p, 0, 0));
                assertTrue(e.getMessage().contains("expected 0 <= dropoutP < 1"), e.getMessage());
            }
        }
    }
}
