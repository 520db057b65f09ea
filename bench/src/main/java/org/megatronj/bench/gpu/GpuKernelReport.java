package org.megatronj.bench.gpu;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;

import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.memory.cuda.CudaBackend;
import org.megatronj.memory.cuda.CudaTimer;

/**
 * GPU time of the CUDA backend's hot ops, measured with CUDA events (warm-up first, then the
 * median of repeated runs on random data), written as {@code gpu-kernels.md} to {@code --out}:
 * milliseconds, and TFLOP/s for the matrix products and attention or GB/s for the memory-bound
 * kernels, so each line can be held against the device's two ceilings (METHOD.md). Needs a GPU.
 *
 * <p>Usage: {@code GpuKernelReport [--out DIR] [--device N] [--reps N]}.
 */
public final class GpuKernelReport {
    private GpuKernelReport() {
    }

    /**
     * Milliseconds per call: the median of calls timed one by one (an event pair around each, as
     * the PyTorch baseline times; the host's launch latency is inside), and the mean of calls
     * queued back to back between one event pair (what a training step sees).
     */
    private record Timing(double perCall, double backToBack) {
    }

    private record Row(String op, String shape, Timing t, double flops, double bytes) {
        String rate(double ms) {
            return flops > 0 ? String.format(Locale.ROOT, "%.1f TFLOP/s", flops / (ms * 1e9))
                    : String.format(Locale.ROOT, "%.0f GB/s", bytes / (ms * 1e6));
        }

        double tflops(double ms) {
            return flops > 0 ? flops / (ms * 1e9) : 0;
        }

        double gbs(double ms) {
            return bytes > 0 ? bytes / (ms * 1e6) : 0;
        }
    }

    public static void main(String[] args) throws IOException {
        Path out = Path.of(".");
        int device = 0;
        int reps = 20;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--out" -> out = Path.of(args[++i]);
                case "--device" -> device = Integer.parseInt(args[++i]);
                case "--reps" -> reps = Integer.parseInt(args[++i]);
                default -> throw new IllegalArgumentException("unknown option " + args[i] + "; expected --out, --device, --reps");
            }
        }
        List<Row> rows = new ArrayList<>();
        try (CudaBackend gpu = new CudaBackend(device)) {
            Random rnd = new Random();
            int r = reps;
            // PyTorch's baseline times a @ b (NN) at 4096 and 8192; our linear layers run NT.
            for (int n : new int[] {2048, 4096, 8192}) {
                try (TensorArena a = TensorArena.named("gemm")) {
                    Tensor x = random(gpu, a, rnd, DType.BF16, n, n);
                    Tensor w = random(gpu, a, rnd, DType.BF16, n, n);
                    Tensor y = gpu.allocate(a, DType.BF16, n, n);
                    Timing nt = time(gpu, r, () -> gpu.gemm(false, true, 1, x, w, 0, y));
                    rows.add(new Row("gemm bf16 NT", n + "^3", nt, 2.0 * n * n * n, 0));
                    if (n >= 4096) {
                        Timing nn = time(gpu, r, () -> gpu.gemm(false, false, 1, x, w, 0, y));
                        rows.add(new Row("gemm bf16 NN", n + "^3", nn, 2.0 * n * n * n, 0));
                    }
                }
            }
            // The baseline's SDPA shapes (batch, heads, seq, dim), causal, in our [s, b, np, d] layout;
            // FLOPs as the baseline counts them: 4*B*H*T*T*D/2 forward, 3.5x that forward+backward.
            for (int[] shape : new int[][] {{8, 16, 2048, 128}, {16, 12, 1024, 64}, {4, 32, 4096, 128}}) {
                int b = shape[0], np = shape[1], s = shape[2], d = shape[3];
                try (TensorArena a = TensorArena.named("attention")) {
                    Tensor q = random(gpu, a, rnd, DType.BF16, s, b, np, d);
                    Tensor k = random(gpu, a, rnd, DType.BF16, s, b, np, d);
                    Tensor v = random(gpu, a, rnd, DType.BF16, s, b, np, d);
                    Tensor o = gpu.allocate(a, DType.BF16, s, b, np, d);
                    Tensor lse = gpu.allocate(a, DType.F32, b, np, s);
                    Tensor dO = random(gpu, a, rnd, DType.BF16, s, b, np, d);
                    Tensor dq = gpu.allocate(a, DType.BF16, s, b, np, d);
                    Tensor dk = gpu.allocate(a, DType.BF16, s, b, np, d);
                    Tensor dv = gpu.allocate(a, DType.BF16, s, b, np, d);
                    float scale = (float) (1 / Math.sqrt(d));
                    double fwdFlops = 4.0 * b * np * s * (double) s * d / 2;
                    Timing fwd = time(gpu, r, () -> gpu.attentionForward(q, k, v, o, lse, scale, true, null));
                    Timing fwdBwd = time(gpu, r, () -> {
                        gpu.attentionForward(q, k, v, o, lse, scale, true, null);
                        gpu.attentionBackward(dO, q, k, v, o, lse, dq, dk, dv, scale, true, null);
                    });
                    String name = "(" + b + "," + np + "," + s + "," + d + ")";
                    rows.add(new Row("flash attention fwd bf16 causal", name, fwd, fwdFlops, 0));
                    rows.add(new Row("flash attention fwd+bwd bf16 causal", name, fwdBwd, 3.5 * fwdFlops, 0));
                }
            }
            long tokens = 8192, h = 4096;
            try (TensorArena a = TensorArena.named("norm")) {
                Tensor x = random(gpu, a, rnd, DType.BF16, tokens, h);
                Tensor g = random(gpu, a, rnd, DType.BF16, h);
                Tensor y = gpu.allocate(a, DType.BF16, tokens, h);
                Tensor mean = gpu.allocate(a, DType.F32, tokens);
                Tensor rstd = gpu.allocate(a, DType.F32, tokens);
                Timing ms = time(gpu, r, () -> gpu.layerNormForward(x, g, null, 1e-5f, y, mean, rstd));
                rows.add(new Row("layernorm fwd bf16", tokens + "x" + h, ms, 0, 2.0 * 2 * tokens * h));
                Timing gelu = time(gpu, r, () -> gpu.geluForward(x, y, true));
                rows.add(new Row("gelu tanh bf16", tokens + "x" + h, gelu, 0, 2.0 * 2 * tokens * h));
            }
            long params = 1L << 28;
            try (TensorArena a = TensorArena.named("adam")) {
                Tensor p = random(gpu, a, rnd, DType.F32, params);
                Tensor gr = random(gpu, a, rnd, DType.F32, params);
                Tensor m = gpu.allocate(a, DType.F32, params);
                Tensor v = gpu.allocate(a, DType.F32, params);
                Timing ms = time(gpu, r, () -> gpu.adamW(p, gr, m, v, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1));
                rows.add(new Row("adamW fp32", params + " params", ms, 0, 7.0 * 4 * params));
                // A bf16 training step's optimizer: the clip's scale and the compute-weight cast as passes of their
                // own (8 + 28 + 6 bytes a parameter), and folded into the AdamW launch (28 + 2).
                Tensor copy = gpu.allocate(a, DType.BF16, params);
                List<Tensor> pList = List.of(p), gList = List.of(gr), mList = List.of(m), vList = List.of(v);
                float[] wd = {0.1f};
                Timing separate = time(gpu, r, () -> {
                    gpu.scale(gr, 0.999f);
                    gpu.multiTensorAdamW(pList, gList, mList, vList, wd, 1e-4f, 0.9f, 0.95f, 1e-8f, 1);
                    gpu.cast(p, copy);
                });
                rows.add(new Row("scale + multiTensorAdamW + cast bf16", params + " params", separate, 0, 42.0 * params));
                List<Tensor> copies = List.of(copy);
                Timing fused = time(gpu, r,
                        () -> gpu.multiTensorAdamW(pList, gList, mList, vList, wd, 1e-4f, 0.9f, 0.95f, 1e-8f, 1, 0.999f, copies));
                rows.add(new Row("multiTensorAdamW, scale + cast bf16 fused", params + " params", fused, 0, 30.0 * params));
            }
            long vocab = 50304; // GPT-2's padded vocabulary, over the same 8192 tokens
            try (TensorArena a = TensorArena.named("cross-entropy")) {
                Tensor logits = random(gpu, a, rnd, DType.BF16, tokens, vocab);
                Tensor rowMax = gpu.allocate(a, DType.F32, tokens);
                Tensor sumExp = gpu.allocate(a, DType.F32, tokens);
                double bytes = 2.0 * tokens * vocab;
                Timing two = time(gpu, r, () -> {
                    gpu.crossEntropyRowMax(logits, rowMax);
                    gpu.crossEntropySumExp(logits, rowMax, sumExp);
                });
                rows.add(new Row("ce rowMax, sumExp bf16 (two passes)", tokens + "x" + vocab, two, 0, 2 * bytes));
                Timing one = time(gpu, r, () -> gpu.crossEntropyRowMaxSumExp(logits, rowMax, sumExp));
                rows.add(new Row("ce rowMax + sumExp bf16 (one pass)", tokens + "x" + vocab, one, 0, bytes));
            }
            write(out, gpu.toString(), rows);
        }
    }

    private static Tensor random(CudaBackend gpu, TensorArena a, Random rnd, DType dt, long... shape) {
        Tensor host = a.allocate(dt, shape);
        for (long i = 0; i < host.numel(); i++) {
            host.setFloat(i, rnd.nextFloat() * 2 - 1);
        }
        Tensor d = gpu.allocate(a, dt, shape);
        gpu.copy(host, d);
        return d;
    }

    /** Per-call median and back-to-back mean GPU milliseconds of {@code reps} runs after three warm-up runs. */
    private static Timing time(CudaBackend gpu, int reps, Runnable op) {
        for (int i = 0; i < 3; i++) {
            op.run();
        }
        gpu.synchronize();
        double[] ms = new double[reps];
        double batch;
        try (CudaTimer t = gpu.timer()) {
            for (int i = 0; i < reps; i++) {
                t.start();
                op.run();
                t.stop();
                ms[i] = t.elapsedMillis();
            }
            t.start();
            for (int i = 0; i < reps; i++) {
                op.run();
            }
            t.stop();
            batch = t.elapsedMillis() / reps;
        }
        Arrays.sort(ms);
        return new Timing(ms[reps / 2], batch);
    }

    private static void write(Path dir, String device, List<Row> rows) throws IOException {
        StringBuilder md = new StringBuilder("# CUDA backend kernels\n\n").append(device)
                .append("\n\nGPU time from CUDA events, random inputs, after warm-up: one call per event pair (median;"
                        + " the host's launch latency included, as the PyTorch baseline times) and calls queued back to back"
                        + " (mean; what a training step sees).\n\n")
                .append("| op | shape | ms per call | rate | ms back to back | rate |\n| --- | --- | ---: | ---: | ---: | ---: |\n");
        for (Row r : rows) {
            md.append(String.format(Locale.ROOT, "| %s | %s | %.3f | %s | %.3f | %s |%n", r.op(), r.shape(), r.t().perCall(),
                    r.rate(r.t().perCall()), r.t().backToBack(), r.rate(r.t().backToBack())));
        }
        Files.createDirectories(dir);
        Path tmp = dir.resolve("gpu-kernels.md.tmp");
        Files.writeString(tmp, md);
        Files.move(tmp, dir.resolve("gpu-kernels.md"), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        // One JSON object per line for bench/gpu-report.py, which sets these beside PyTorch's figures.
        StringBuilder json = new StringBuilder();
        for (Row r : rows) {
            json.append(String.format(Locale.ROOT, "{\"op\": \"%s\", \"shape\": \"%s\", \"ms\": %.5f, \"tflops\": %.3f,"
                    + " \"gbs\": %.1f, \"ms_b2b\": %.5f, \"tflops_b2b\": %.3f, \"gbs_b2b\": %.1f}%n", r.op(), r.shape(),
                    r.t().perCall(), r.tflops(r.t().perCall()), r.gbs(r.t().perCall()), r.t().backToBack(),
                    r.tflops(r.t().backToBack()), r.gbs(r.t().backToBack())));
        }
        Files.writeString(tmp, json);
        Files.move(tmp, dir.resolve("gpu-kernels.jsonl"), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        System.out.print(md);
    }
}
