package org.megatronj.memory.cpu;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.memory.TensorException;

import java.util.Random;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.megatronj.memory.cpu.OpTesting.assertClose;
import static org.megatronj.memory.cpu.OpTesting.asStored;
import static org.megatronj.memory.cpu.OpTesting.finiteDifferences;
import static org.megatronj.memory.cpu.OpTesting.gaussian;
import static org.megatronj.memory.cpu.OpTesting.tensor;
import static org.megatronj.memory.cpu.OpTesting.toDouble;
import static org.megatronj.memory.cpu.OpTesting.uniform;

/** Embedding lookup and gradient, rotary embeddings and their gradient. */
class EmbeddingRotaryOpsTest {

    static java.util.stream.Stream<CpuBackend> backends() {
        return OpTesting.backends();
    }

    @ParameterizedTest
    @MethodSource("backends")
    void embeddingForwardAndBackward(CpuBackend backend) {
        Random rnd = OpTesting.random(20);
        int vocab = 11 + rnd.nextInt(20);
        int h = 70 + rnd.nextInt(70); // more than one 64-column chunk
        int s = 5;
        int b = 3;
        try (TensorArena arena = new TensorArena("test")) {
            int[] ids = new int[s * b];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = rnd.nextInt(vocab);
            }
            ids[1] = ids[0]; // a repeated id accumulates twice
            Tensor idt = arena.fromInts(ids, s, b);
            for (DType dtype : new DType[] {DType.F32, DType.BF16}) {
                Tensor table = tensor(arena, dtype, gaussian(rnd, vocab * h, 1f), vocab, h);
                double[] tv = asStored(table);
                Tensor out = arena.allocate(DType.F32, s, b, h);
                backend.embeddingForward(idt, table, out);
                double[] expected = new double[s * b * h];
                for (int i = 0; i < ids.length; i++) {
                    System.arraycopy(tv, ids[i] * h, expected, i * h, h);
                }
                assertClose("embedding " + dtype, expected, out, 0, 0);
            }

            float[] d0 = gaussian(rnd, vocab * h, 1f);
            Tensor dTable = tensor(arena, DType.F32, d0, vocab, h);
            float[] g = gaussian(rnd, s * b * h, 1f);
            Tensor dOut = tensor(arena, DType.F32, g, s * b, h);
            backend.embeddingBackward(idt, dOut, dTable);
            double[] expected = toDouble(d0);
            for (int i = 0; i < ids.length; i++) {
                for (int c = 0; c < h; c++) {
                    expected[ids[i] * h + c] += g[i * h + c];
                }
            }
            assertClose("embedding backward", expected, dTable, 1e-6, 1e-6);

            ids[4] = vocab;
            Tensor bad = arena.fromInts(ids, s, b);
            Tensor out = arena.allocate(DType.F32, s, b, h);
            Tensor table = arena.allocate(DType.F32, vocab, h);
            TensorException e = assertThrows(TensorException.class, () -> backend.embeddingForward(bad, table, out));
            assertTrue(e.getMessage().contains("id " + vocab + " at position 4"), e.getMessage());
        }
    }

    /**
     * Rotary in float64, with arbitrary angles per (position, channel): Megatron's {@code x cos + rotate(x) sin} with
     * rotate half's {@code cat(-x2, x1)} or, interleaved, {@code stack(-x[1::2], x[::2])} (each odd channel negated
     * before its even neighbour).
     */
    static double[] rotary(double[] x, double[] freqs, int s, int rowsPerPos, int d, int r, boolean interleaved) {
        double[] out = x.clone();
        int half = r / 2;
        for (int pos = 0; pos < s; pos++) {
            for (int row = 0; row < rowsPerPos; row++) {
                int o = (pos * rowsPerPos + row) * d;
                for (int c = 0; c < r; c++) {
                    double rotated = interleaved ? (c % 2 == 0 ? -x[o + c + 1] : x[o + c - 1])
                            : c < half ? -x[o + c + half] : x[o + c - half];
                    double f = freqs[pos * r + c];
                    out[o + c] = x[o + c] * Math.cos(f) + rotated * Math.sin(f);
                }
            }
        }
        return out;
    }

    @ParameterizedTest
    @MethodSource("backends")
    void rotaryForwardAndBackward(CpuBackend backend) {
        Random rnd = OpTesting.random(21);
        for (boolean interleaved : new boolean[] {false, true}) {
            // partial rotary (channels r..d-1 pass through), and a whole head of several vector widths
            for (int[] dr : new int[][] {{18, 12}, {70, 50}, {64, 64}}) {
                rotaryCase(backend, rnd, dr[0], dr[1], interleaved);
            }
        }
    }

    private static void rotaryCase(CpuBackend backend, Random rnd, int d, int r, boolean interleaved) {
        int s = 3 + rnd.nextInt(4);
        int b = 2;
        int heads = 3;
        try (TensorArena arena = new TensorArena("test")) {
            float[] xs = gaussian(rnd, s * b * heads * d, 1f);
            float[] fs = uniform(rnd, s * r, -3f, 3f); // general angles, not cat(theta, theta)
            double[] x = toDouble(xs);
            double[] f = toDouble(fs);
            Tensor xt = tensor(arena, DType.F32, xs, s, b, heads, d);
            Tensor ft = tensor(arena, DType.F32, fs, s, 1, 1, r);
            Tensor out = arena.allocate(DType.F32, s, b, heads, d);
            backend.rotaryForward(xt, ft, out, interleaved);
            Function<double[], double[]> ref = v -> rotary(v, f, s, b * heads, d, r, interleaved);
            String what = "rotary d=" + d + " r=" + r + (interleaved ? " interleaved" : "");
            assertClose(what, ref.apply(x), out, 1e-6, 1e-5);

            float[] ws = gaussian(rnd, xs.length, 1f);
            Tensor dOut = tensor(arena, DType.F32, ws, s, b, heads, d);
            Tensor dx = arena.allocate(DType.F32, s, b, heads, d);
            backend.rotaryBackward(dOut, ft, dx, interleaved);
            assertClose(what + " backward", finiteDifferences(x, toDouble(ws), ref), dx, 1e-5, 1e-5);

            backend.rotaryBackward(dOut, ft, dOut, interleaved); // in place
            assertClose(what + " backward in place", asStored(dx), dOut, 0, 0);
        }
    }
}
