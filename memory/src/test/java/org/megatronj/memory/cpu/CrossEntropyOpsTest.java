package org.megatronj.memory.cpu;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

import java.util.Random;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.megatronj.memory.cpu.OpTesting.assertClose;
import static org.megatronj.memory.cpu.OpTesting.asStored;
import static org.megatronj.memory.cpu.OpTesting.finiteDifferences;
import static org.megatronj.memory.cpu.OpTesting.gaussian;
import static org.megatronj.memory.cpu.OpTesting.tensor;

/**
 * Softmax cross-entropy from its vocab-parallel pieces, on one rank and split over two
 * simulated tensor-parallel ranks (the all-reduces done by hand); argmax and log-softmax.
 */
class CrossEntropyOpsTest {

    static java.util.stream.Stream<CpuBackend> backends() {
        return OpTesting.backends();
    }

    /** loss[i] = logsumexp(logits[i]) - logits[i, target[i]] in float64. */
    static double[] loss(double[] logits, int[] targets, int v) {
        double[] loss = new double[targets.length];
        for (int i = 0; i < targets.length; i++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < v; j++) {
                max = Math.max(max, logits[i * v + j]);
            }
            double sum = 0;
            for (int j = 0; j < v; j++) {
                sum += Math.exp(logits[i * v + j] - max);
            }
            loss[i] = Math.log(sum) + max - logits[i * v + targets[i]];
        }
        return loss;
    }

    @ParameterizedTest
    @MethodSource("backends")
    void singleRankLossAndGradient(CpuBackend backend) {
        Random rnd = OpTesting.random(30);
        int n = 3 + rnd.nextInt(4);
        int v = 37 + rnd.nextInt(50);
        try (TensorArena arena = new TensorArena("test")) {
            float[] ls = gaussian(rnd, n * v, 3f);
            int[] targets = new int[n];
            for (int i = 0; i < n; i++) {
                targets[i] = rnd.nextInt(v);
            }
            Tensor logits = tensor(arena, DType.F32, ls, n, v);
            double[] x = asStored(logits);
            Tensor tt = arena.fromInts(targets, n);
            Tensor rowMax = arena.allocate(DType.F32, n);
            Tensor sumExp = arena.allocate(DType.F32, n);
            Tensor target = arena.allocate(DType.F32, n);
            Tensor lossT = arena.allocate(DType.F32, n);
            backend.crossEntropyRowMax(logits, rowMax);
            backend.crossEntropyTargetLogit(logits, tt, 0, target);
            backend.crossEntropySumExp(logits, rowMax, sumExp);
            backend.crossEntropyLoss(rowMax, sumExp, target, lossT);
            assertClose("loss", loss(x, targets, v), lossT, 1e-5, 1e-5);

            float[] dl = gaussian(rnd, n, 1f);
            Tensor dLoss = tensor(arena, DType.F32, dl, n);
            Tensor dLogits = arena.allocate(DType.F32, n, v);
            backend.crossEntropyBackward(logits, tt, 0, rowMax, sumExp, dLoss, dLogits);
            Function<double[], double[]> f = l -> loss(l, targets, v);
            double[] fd = finiteDifferences(x, OpTesting.toDouble(dl), f);
            assertClose("dLogits", fd, dLogits, 1e-5, 1e-4);

            backend.crossEntropyBackward(logits, tt, 0, rowMax, sumExp, dLoss, logits); // in place
            assertClose("dLogits in place", fd, logits, 1e-5, 1e-4);
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void fusedRowMaxSumExpEqualsTheTwoPieces(CpuBackend backend) {
        Random rnd = OpTesting.random(32);
        int n = 4;
        int v = 50 + rnd.nextInt(60);
        for (DType dtype : new DType[] {DType.F32, DType.BF16}) {
            try (TensorArena arena = new TensorArena("test")) {
                Tensor logits = tensor(arena, dtype, gaussian(rnd, n * v, 4f), n, v);
                Tensor rowMax = arena.allocate(DType.F32, n);
                Tensor sumExp = arena.allocate(DType.F32, n);
                backend.crossEntropyRowMax(logits, rowMax);
                backend.crossEntropySumExp(logits, rowMax, sumExp);
                Tensor fusedMax = arena.allocate(DType.F32, n);
                Tensor fusedSum = arena.allocate(DType.F32, n);
                backend.crossEntropyRowMaxSumExp(logits, fusedMax, fusedSum);
                assertArrayEquals(rowMax.toFloatArray(), fusedMax.toFloatArray(), dtype + " rowMax");
                assertArrayEquals(sumExp.toFloatArray(), fusedSum.toFloatArray(), dtype + " sumExp");
            }
        }
    }

    /** The one-pass loss and gradient: the same bits as the four pieces, in place over the logits too. */
    @ParameterizedTest
    @MethodSource("backends")
    void fusedForwardBackwardEqualsThePieces(CpuBackend backend) {
        Random rnd = OpTesting.random(33);
        int n = 5;
        int v = 50 + rnd.nextInt(60); // a vector tail on most draws
        for (DType dtype : new DType[] {DType.F32, DType.BF16}) {
            try (TensorArena arena = new TensorArena("test")) {
                float[] ls = gaussian(rnd, n * v, 4f);
                int[] ids = new int[n];
                float[] d = new float[n];
                for (int i = 0; i < n; i++) {
                    ids[i] = rnd.nextInt(v);
                    d[i] = i == 2 ? 0f : rnd.nextFloat(); // a masked token
                }
                Tensor targets = arena.fromInts(ids, n);
                Tensor dLoss = tensor(arena, DType.F32, d, n);
                Tensor[] pieces = perRow(arena, n, 4);
                Tensor logits = tensor(arena, dtype, ls, n, v);
                Tensor dLogits = arena.allocate(dtype, n, v);
                backend.crossEntropyTargetLogit(logits, targets, 0, pieces[2]);
                backend.crossEntropyRowMaxSumExp(logits, pieces[0], pieces[1]);
                backend.crossEntropyLoss(pieces[0], pieces[1], pieces[2], pieces[3]);
                backend.crossEntropyBackward(logits, targets, 0, pieces[0], pieces[1], dLoss, dLogits);
                Tensor[] fused = perRow(arena, n, 4);
                backend.crossEntropyForwardBackward(logits, targets, dLoss, fused[0], fused[1], fused[2], fused[3], logits);
                String[] names = {"rowMax", "sumExp", "targetLogit", "loss"};
                for (int k = 0; k < 4; k++) {
                    assertArrayEquals(pieces[k].toFloatArray(), fused[k].toFloatArray(), dtype + " " + names[k]);
                }
                assertArrayEquals(dLogits.toFloatArray(), logits.toFloatArray(), dtype + " dLogits (in place)");
            }
        }
    }

    private static Tensor[] perRow(TensorArena arena, int n, int count) {
        Tensor[] ts = new Tensor[count];
        for (int k = 0; k < count; k++) {
            ts[k] = arena.allocate(DType.F32, n);
        }
        return ts;
    }

    @ParameterizedTest
    @MethodSource("backends")
    void vocabParallelPiecesMatchSingleRank(CpuBackend backend) {
        Random rnd = OpTesting.random(31);
        int n = 5;
        int v = 2 * (40 + rnd.nextInt(30));
        int half = v / 2;
        try (TensorArena arena = new TensorArena("test")) {
            float[] ls = gaussian(rnd, n * v, 3f);
            int[] targets = new int[n];
            for (int i = 0; i < n; i++) {
                targets[i] = rnd.nextInt(v);
            }
            Tensor tt = arena.fromInts(targets, n);
            Tensor full = tensor(arena, DType.BF16, ls, n, v);
            double[] x = asStored(full);
            Tensor[] shards = new Tensor[2];
            Tensor[] max = new Tensor[2];
            Tensor[] sum = new Tensor[2];
            Tensor[] tgt = new Tensor[2];
            for (int rank = 0; rank < 2; rank++) {
                float[] part = new float[n * half];
                for (int i = 0; i < n; i++) {
                    System.arraycopy(ls, i * v + rank * half, part, i * half, half);
                }
                shards[rank] = tensor(arena, DType.BF16, part, n, half);
                max[rank] = arena.allocate(DType.F32, n);
                sum[rank] = arena.allocate(DType.F32, n);
                tgt[rank] = arena.allocate(DType.F32, n);
                backend.crossEntropyRowMax(shards[rank], max[rank]);
                backend.crossEntropyTargetLogit(shards[rank], tt, (long) rank * half, tgt[rank]);
            }
            Tensor globalMax = arena.allocate(DType.F32, n);
            Tensor globalSum = arena.allocate(DType.F32, n);
            Tensor globalTarget = arena.allocate(DType.F32, n);
            for (int i = 0; i < n; i++) { // all-reduce max and target (sum)
                globalMax.setFloat(i, Math.max(max[0].getFloat(i), max[1].getFloat(i)));
                globalTarget.setFloat(i, tgt[0].getFloat(i) + tgt[1].getFloat(i));
            }
            for (int rank = 0; rank < 2; rank++) {
                backend.crossEntropySumExp(shards[rank], globalMax, sum[rank]);
            }
            for (int i = 0; i < n; i++) { // all-reduce sum
                globalSum.setFloat(i, sum[0].getFloat(i) + sum[1].getFloat(i));
            }
            Tensor lossT = arena.allocate(DType.F32, n);
            backend.crossEntropyLoss(globalMax, globalSum, globalTarget, lossT);
            assertClose("vocab-parallel loss", loss(x, targets, v), lossT, 1e-5, 1e-5);

            Tensor dLoss = tensor(arena, DType.F32, new float[] {1, 1, 1, 1, 1}, n);
            double[] fd = finiteDifferences(x, new double[] {1, 1, 1, 1, 1}, l -> loss(l, targets, v));
            for (int rank = 0; rank < 2; rank++) {
                Tensor d = arena.allocate(DType.F32, n, half);
                backend.crossEntropyBackward(shards[rank], tt, (long) rank * half, globalMax, globalSum, dLoss, d);
                double[] expected = new double[n * half];
                for (int i = 0; i < n; i++) {
                    System.arraycopy(fd, i * v + rank * half, expected, i * half, half);
                }
                assertClose("vocab-parallel dLogits rank " + rank, expected, d, 1e-5, 1e-4);
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void argmaxAndLogSoftmax(CpuBackend backend) {
        Random rnd = OpTesting.random(32);
        int n = 4;
        int v = 53;
        try (TensorArena arena = new TensorArena("test")) {
            float[] ls = gaussian(rnd, n * v, 2f);
            ls[v + 7] = 100f;
            ls[v + 30] = 100f; // tie: lowest index wins
            ls[2 * v + 52] = 50f;
            ls[3 * v + 11] = Float.NaN; // NaN counts as the maximum
            Tensor logits = tensor(arena, DType.F32, ls, n, v);
            Tensor out = arena.allocate(DType.I32, n);
            backend.argmax(logits, out);
            int first = 0;
            for (int j = 1; j < v; j++) {
                if (ls[j] > ls[first]) {
                    first = j;
                }
            }
            assertEquals(first, out.getLong(0));
            assertEquals(7, out.getLong(1));
            assertEquals(52, out.getLong(2));
            assertEquals(11, out.getLong(3));

            float temperature = 0.7f;
            Tensor lp = arena.allocate(DType.F32, n - 1, v);
            Tensor clean = logits.view(0, n - 1);
            backend.logSoftmax(clean, temperature, lp);
            double[] expected = new double[(n - 1) * v];
            for (int i = 0; i < n - 1; i++) {
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < v; j++) {
                    max = Math.max(max, ls[i * v + j] / (double) temperature);
                }
                double sum = 0;
                for (int j = 0; j < v; j++) {
                    sum += Math.exp(ls[i * v + j] / (double) temperature - max);
                }
                for (int j = 0; j < v; j++) {
                    expected[i * v + j] = ls[i * v + j] / (double) temperature - max - Math.log(sum);
                }
            }
            assertClose("logSoftmax", expected, lp, 1e-5, 1e-5);
        }
    }
}
