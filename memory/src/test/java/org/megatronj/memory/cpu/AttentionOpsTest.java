package org.megatronj.memory.cpu;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.megatronj.memory.cpu.OpTesting.assertClose;
import static org.megatronj.memory.cpu.OpTesting.finiteDifferences;
import static org.megatronj.memory.cpu.OpTesting.gaussian;
import static org.megatronj.memory.cpu.OpTesting.tensor;
import static org.megatronj.memory.cpu.OpTesting.toDouble;

/**
 * The tiled attention kernel against the materialised float64 reference: MHA, GQA and MQA,
 * causal with {@code sk > s} and {@code sk < s}, padding by key lengths, documents by key starts
 * ({@code --reset-attention-mask}), fully masked rows, more keys than one tile, bf16 inputs. The reference backward is itself checked against
 * central finite differences.
 */
class AttentionOpsTest {

    record Case(CpuBackend backend, int s, int sk, int batch, int np, int ng, int d, boolean causal, int[] keyLengths,
                int[] keyStarts) {
        Case(CpuBackend backend, int s, int sk, int batch, int np, int ng, int d, boolean causal, int[] keyLengths) {
            this(backend, s, sk, batch, np, ng, d, causal, keyLengths, null);
        }

        @Override
        public String toString() {
            return backend + " s=" + s + " sk=" + sk + " b=" + batch + " np=" + np + " ng=" + ng + " d=" + d
                    + " causal=" + causal + (keyLengths == null ? "" : " keyLengths=" + java.util.Arrays.toString(keyLengths))
                    + (keyStarts == null ? "" : " documents");
        }
    }

    /**
     * Key starts {@code [batch * s]} of documents: entry e's documents begin at {@code firsts[e]}
     * (ascending, the first 0), so row i's start is the last first at or below i.
     */
    static int[] documents(int s, int[]... firsts) {
        int[] starts = new int[firsts.length * s];
        for (int e = 0; e < firsts.length; e++) {
            int doc = 0;
            for (int i = 0; i < s; i++) {
                while (doc + 1 < firsts[e].length && firsts[e][doc + 1] <= i) {
                    doc++;
                }
                starts[e * s + i] = firsts[e][doc];
            }
        }
        return starts;
    }

    static Stream<Case> cases() {
        return OpTesting.backends().flatMap(be -> Stream.of(
                new Case(be, 7, 7, 2, 4, 4, 19, true, null),         // MHA, causal
                new Case(be, 6, 9, 2, 4, 2, 19, true, null),         // GQA, causal with a KV prefix (sk > s)
                new Case(be, 9, 5, 1, 3, 1, 13, true, null),         // MQA, sk < s: the first rows see nothing
                new Case(be, 5, 8, 3, 2, 1, 21, false, new int[] {8, 3, 0}), // padding, one empty sequence
                new Case(be, 8, 8, 2, 4, 2, 16, true, new int[] {5, 8}),
                new Case(be, 1, 37, 2, 4, 2, 32, true, null),       // one decode step against a KV cache
                new Case(be, 300, 300, 1, 2, 1, 64, true, null),    // several query tiles and key blocks
                new Case(be, 9, 9, 2, 4, 2, 19, true, null,         // documents; entry 1 is one document
                        documents(9, new int[] {0, 3, 7}, new int[] {0})),
                new Case(be, 300, 300, 2, 2, 1, 64, true, null,     // documents across key blocks, one of one token
                        documents(300, new int[] {0, 70, 150, 151, 290}, new int[] {0, 64, 128})),
                new Case(be, 6, 6, 1, 2, 2, 8, true, null,          // rows whose start is past their causal end:
                        new int[] {0, 0, 5, 2, 6, 3}),                // fully masked
                new Case(be, 8, 8, 2, 4, 2, 16, true, new int[] {5, 8},  // documents and padding
                        documents(8, new int[] {0, 2}, new int[] {0, 6}))
        ));
    }

    @ParameterizedTest
    @MethodSource("cases")
    void forwardAndBackwardMatchReference(Case c) {
        Random rnd = OpTesting.random(40);
        try (TensorArena arena = new TensorArena("test")) {
            Tensor q = tensor(arena, DType.F32, gaussian(rnd, c.s * c.batch * c.np * c.d, 1f), c.s, c.batch, c.np, c.d);
            Tensor k = tensor(arena, DType.F32, gaussian(rnd, c.sk * c.batch * c.ng * c.d, 1f), c.sk, c.batch, c.ng, c.d);
            Tensor v = tensor(arena, DType.F32, gaussian(rnd, c.sk * c.batch * c.ng * c.d, 1f), c.sk, c.batch, c.ng, c.d);
            Tensor lengths = c.keyLengths == null ? null : arena.fromInts(c.keyLengths, c.batch);
            Tensor starts = c.keyStarts == null ? null : arena.fromInts(c.keyStarts, c.batch, c.s);
            float scale = (float) (1 / Math.sqrt(c.d));
            Tensor out = arena.allocate(DType.F32, q.shape());
            Tensor lse = arena.allocate(DType.F32, c.batch, c.np, c.s);
            c.backend.attentionForward(q, k, v, out, lse, scale, c.causal, lengths, starts, 0f, 0L, 0L);
            ReferenceAttention.Forward ref = ReferenceAttention.forward(q, k, v, scale, c.causal, lengths, starts, 0f, 0L, 0L);
            assertClose("out", ref.out(), out, 2e-5, 1e-4);
            assertClose("lse", ref.lse(), lse, 2e-5, 1e-5);

            Tensor dOut = tensor(arena, DType.F32, gaussian(rnd, (int) q.numel(), 1f), q.shape());
            Tensor dq = arena.allocate(DType.F32, q.shape());
            Tensor dk = arena.allocate(DType.F32, k.shape());
            Tensor dv = arena.allocate(DType.F32, v.shape());
            c.backend.fill(dq, Float.NaN); // written, not accumulated
            c.backend.attentionBackward(dOut, q, k, v, out, lse, dq, dk, dv, scale, c.causal, lengths, starts, 0f, 0L, 0L);
            ReferenceAttention.Gradients g = ReferenceAttention.backward(dOut, q, k, v, scale, c.causal, lengths, starts,
                    0f, 0L, 0L);
            assertClose("dq", g.dq(), dq, 5e-5, 5e-4);
            assertClose("dk", g.dk(), dk, 5e-5, 5e-4);
            assertClose("dv", g.dv(), dv, 5e-5, 5e-4);
        }
    }

    /**
     * The Backend defaults for Megatron's fused linear_qkv layout (per token and query group: the
     * group's query heads, its key head, its value head) give exactly the dense op's results, with
     * the gradient landing in the fused places. q, k, v are built by hand from that layout.
     */
    @Test
    void fusedQkvDefaultsMatchTheDenseOp() {
        CpuBackend backend = OpTesting.vector();
        int s = 9, b = 2, np = 6, ng = 2, d = 16, rep = np / ng;
        Random rnd = OpTesting.random(41);
        try (TensorArena arena = new TensorArena("test")) {
            int width = (np + 2 * ng) * d;
            Tensor qkv = tensor(arena, DType.F32, gaussian(rnd, s * b * width, 1f), s, b, width);
            Tensor q = arena.allocate(DType.F32, s, b, np, d);
            Tensor k = arena.allocate(DType.F32, s, b, ng, d);
            Tensor v = arena.allocate(DType.F32, s, b, ng, d);
            for (int token = 0; token < s * b; token++) {
                for (int g = 0; g < ng; g++) {
                    for (int c = 0; c < d; c++) {
                        long group = (long) token * width + (long) g * (rep + 2) * d;
                        for (int j = 0; j < rep; j++) {
                            q.setFloat(((long) token * np + g * rep + j) * d + c, qkv.getFloat(group + (long) j * d + c));
                        }
                        k.setFloat(((long) token * ng + g) * d + c, qkv.getFloat(group + (long) rep * d + c));
                        v.setFloat(((long) token * ng + g) * d + c, qkv.getFloat(group + (long) (rep + 1) * d + c));
                    }
                }
            }
            float scale = 0.25f;
            Tensor out = arena.allocate(DType.F32, s, b, np, d), lse = arena.allocate(DType.F32, b, np, s);
            Tensor fusedOut = arena.allocate(DType.F32, s, b, np, d), fusedLse = arena.allocate(DType.F32, b, np, s);
            backend.attentionForward(q, k, v, out, lse, scale, true, null);
            backend.attentionForwardFusedQkv(qkv, np, ng, fusedOut, fusedLse, scale, true, null);
            assertArrayEquals(out.toFloatArray(), fusedOut.toFloatArray());
            assertArrayEquals(lse.toFloatArray(), fusedLse.toFloatArray());

            Tensor dOut = tensor(arena, DType.F32, gaussian(rnd, (int) out.numel(), 1f), out.shape());
            Tensor dq = arena.allocate(DType.F32, q.shape()), dk = arena.allocate(DType.F32, k.shape());
            Tensor dv = arena.allocate(DType.F32, v.shape()), dqkv = arena.allocate(DType.F32, qkv.shape());
            backend.fill(dqkv, Float.NaN);  // written in full
            backend.attentionBackward(dOut, q, k, v, out, lse, dq, dk, dv, scale, true, null);
            backend.attentionBackwardFusedQkv(dOut, qkv, np, ng, out, lse, dqkv, scale, true, null);
            for (int token = 0; token < s * b; token++) {
                for (int g = 0; g < ng; g++) {
                    for (int c = 0; c < d; c++) {
                        long group = (long) token * width + (long) g * (rep + 2) * d;
                        for (int j = 0; j < rep; j++) {
                            assertEquals(dq.getFloat(((long) token * np + g * rep + j) * d + c),
                                    dqkv.getFloat(group + (long) j * d + c), "dq");
                        }
                        assertEquals(dk.getFloat(((long) token * ng + g) * d + c), dqkv.getFloat(group + (long) rep * d + c), "dk");
                        assertEquals(dv.getFloat(((long) token * ng + g) * d + c),
                                dqkv.getFloat(group + (long) (rep + 1) * d + c), "dv");
                    }
                }
            }
        }
    }

    @Test
    void fullyMaskedRowsGiveZerosAndMinusInfinity() {
        CpuBackend backend = OpTesting.vector();
        try (TensorArena arena = new TensorArena("test")) {
            Random rnd = OpTesting.random(41);
            Tensor q = tensor(arena, DType.F32, gaussian(rnd, 4 * 2 * 8, 1f), 4, 1, 2, 8);
            Tensor k = tensor(arena, DType.F32, gaussian(rnd, 2 * 2 * 8, 1f), 2, 1, 2, 8);
            Tensor out = arena.allocate(DType.F32, 4, 1, 2, 8);
            Tensor lse = arena.allocate(DType.F32, 1, 2, 4);
            backend.attentionForward(q, k, k, out, lse, 0.3f, true, null); // sk - s = -2: rows 0, 1 see nothing
            for (int h = 0; h < 2; h++) {
                assertEquals(Float.NEGATIVE_INFINITY, lse.getFloat(h * 4));
                assertEquals(Float.NEGATIVE_INFINITY, lse.getFloat(h * 4 + 1));
                assertEquals(0f, out.getFloat(h * 8));
            }
        }
    }

    @ParameterizedTest
    @MethodSource("org.megatronj.memory.cpu.OpTesting#backends")
    void bf16InputsMatchReferenceOnTheStoredValues(CpuBackend backend) {
        Random rnd = OpTesting.random(42);
        int s = 11;
        int d = 24;
        try (TensorArena arena = new TensorArena("test")) {
            Tensor q = tensor(arena, DType.BF16, gaussian(rnd, s * 2 * 2 * d, 1f), s, 2, 2, d);
            Tensor k = tensor(arena, DType.BF16, gaussian(rnd, s * 2 * d, 1f), s, 2, 1, d);
            Tensor v = tensor(arena, DType.BF16, gaussian(rnd, s * 2 * d, 1f), s, 2, 1, d);
            Tensor out = arena.allocate(DType.BF16, q.shape());
            Tensor lse = arena.allocate(DType.F32, 2, 2, s);
            backend.attentionForward(q, k, v, out, lse, 0.2f, true, null);
            ReferenceAttention.Forward ref = ReferenceAttention.forward(q, k, v, 0.2f, true, null);
            assertClose("bf16 out", ref.out(), out, 1e-2, 1e-2);
            assertClose("bf16 lse", ref.lse(), lse, 1e-5, 1e-5);

            Tensor dOut = tensor(arena, DType.BF16, gaussian(rnd, (int) q.numel(), 1f), q.shape());
            Tensor dq = arena.allocate(DType.BF16, q.shape());
            Tensor dk = arena.allocate(DType.F32, k.shape()); // gradients may be kept in another dtype
            Tensor dv = arena.allocate(DType.BF16, v.shape());
            backend.attentionBackward(dOut, q, k, v, out, lse, dq, dk, dv, 0.2f, true, null);
            ReferenceAttention.Gradients g = ReferenceAttention.backward(dOut, q, k, v, 0.2f, true, null);
            assertClose("bf16 dq", g.dq(), dq, 3e-2, 2e-2);
            assertClose("bf16 dk", g.dk(), dk, 3e-2, 2e-2);
            assertClose("bf16 dv", g.dv(), dv, 3e-2, 2e-2);
        }
    }

    /** The reference backward is the derivative of the reference forward (finite differences on q, k and v). */
    @Test
    void referenceBackwardMatchesFiniteDifferences() {
        Random rnd = OpTesting.random(43);
        int s = 4;
        int sk = 5;
        int np = 2;
        int d = 3;
        int[] lengths = {4};
        try (TensorArena arena = new TensorArena("test")) {
            float[] qs = gaussian(rnd, s * np * d, 1f);
            float[] ks = gaussian(rnd, sk * d, 1f);
            float[] vs = gaussian(rnd, sk * d, 1f);
            float[] ws = gaussian(rnd, s * np * d, 1f);
            Tensor q = tensor(arena, DType.F32, qs, s, 1, np, d);
            Tensor k = tensor(arena, DType.F32, ks, sk, 1, 1, d);
            Tensor v = tensor(arena, DType.F32, vs, sk, 1, 1, d);
            Tensor dOut = tensor(arena, DType.F32, ws, s, 1, np, d);
            Tensor len = arena.fromInts(lengths, 1);
            ReferenceAttention.Gradients g = ReferenceAttention.backward(dOut, q, k, v, 0.5, true, len);
            double[] w = toDouble(ws);
            // finite differences in float64 through a float64 forward built on tensors of doubles rounded to float
            // would lose precision, so differentiate an exact float64 forward on arrays instead
            assertClose("ref dq", finiteDifferences(toDouble(qs), w, x -> attention(x, toDouble(ks), toDouble(vs), s, sk, np, d, 4)),
                    g.dq(), 1e-6, 1e-6);
            assertClose("ref dk", finiteDifferences(toDouble(ks), w, x -> attention(toDouble(qs), x, toDouble(vs), s, sk, np, d, 4)),
                    g.dk(), 1e-6, 1e-6);
            assertClose("ref dv", finiteDifferences(toDouble(vs), w, x -> attention(toDouble(qs), toDouble(ks), x, s, sk, np, d, 4)),
                    g.dv(), 1e-6, 1e-6);
        }
    }

    /** Causal MQA attention, batch 1, scale 0.5, keys below keyLength visible, all in float64 arrays. */
    private static double[] attention(double[] q, double[] k, double[] v, int s, int sk, int np, int d, int keyLength) {
        double[] out = new double[s * np * d];
        for (int i = 0; i < s; i++) {
            for (int h = 0; h < np; h++) {
                double[] p = new double[sk];
                double max = Double.NEGATIVE_INFINITY;
                int end = Math.min(keyLength, i + (sk - s) + 1);
                for (int j = 0; j < end; j++) {
                    for (int c = 0; c < d; c++) {
                        p[j] += q[(i * np + h) * d + c] * k[j * d + c] * 0.5;
                    }
                    max = Math.max(max, p[j]);
                }
                double sum = 0;
                for (int j = 0; j < end; j++) {
                    p[j] = Math.exp(p[j] - max);
                    sum += p[j];
                }
                for (int j = 0; j < end; j++) {
                    for (int c = 0; c < d; c++) {
                        out[(i * np + h) * d + c] += p[j] / sum * v[j * d + c];
                    }
                }
            }
        }
        return out;
    }
}
