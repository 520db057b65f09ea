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

    private record Row(String op, String shape, double ms, double flops, double bytes) {
        String rate() {
            return flops > 0 ? String.format(Locale.ROOT, "%.1f TFLOP/s", flops / (ms * 1e9))
                    : String.format(Locale.ROOT, "%.0f GB/s", bytes / (ms * 1e6));
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
                    double nt = time(gpu, r, () -> gpu.gemm(false, true, 1, x, w, 0, y));
                    rows.add(new Row("gemm bf16 NT", n + "^3", nt, 2.0 * n * n * n, 0));
                    if (n >= 4096) {
                        double nn = time(gpu, r, () -> gpu.gemm(false, false, 1, x, w, 0, y));
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
                    double fwd = time(gpu, r, () -> gpu.attentionForward(q, k, v, o, lse, scale, true, null));
                    double fwdBwd = time(gpu, r, () -> {
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
                double ms = time(gpu, r, () -> gpu.layerNormForward(x, g, null, 1e-5f, y, mean, rstd));
                rows.add(new Row("layernorm fwd bf16", tokens + "x" + h, ms, 0, 2.0 * 2 * tokens * h));
                double gelu = time(gpu, r, () -> gpu.geluForward(x, y, true));
                rows.add(new Row("gelu tanh bf16", tokens + "x" + h, gelu, 0, 2.0 * 2 * tokens * h));
            }
            long params = 1L << 28;
            try (TensorArena a = TensorArena.named("adam")) {
                Tensor p = random(gpu, a, rnd, DType.F32, params);
                Tensor gr = random(gpu, a, rnd, DType.F32, params);
                Tensor m = gpu.allocate(a, DType.F32, params);
                Tensor v = gpu.allocate(a, DType.F32, params);
                double ms = time(gpu, r, () -> gpu.adamW(p, gr, m, v, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1));
                rows.add(new Row("adamW fp32", params + " params", ms, 0, 7.0 * 4 * params));
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

    /** Median GPU milliseconds of {@code reps} timed runs after three warm-up runs. */
    private static double time(CudaBackend gpu, int reps, Runnable op) {
        for (int i = 0; i < 3; i++) {
            op.run();
        }
        gpu.synchronize();
        double[] ms = new double[reps];
        try (CudaTimer t = gpu.timer()) {
            for (int i = 0; i < reps; i++) {
                t.start();
                op.run();
                t.stop();
                ms[i] = t.elapsedMillis();
            }
        }
        Arrays.sort(ms);
        return ms[reps / 2];
    }

    private static void write(Path dir, String device, List<Row> rows) throws IOException {
        StringBuilder md = new StringBuilder("# CUDA backend kernels\n\n").append(device)
                .append("\n\nMedian of repeated runs, GPU time from CUDA events, random inputs.\n\n")
                .append("| op | shape | ms | rate |\n| --- | --- | ---: | ---: |\n");
        for (Row r : rows) {
            md.append(String.format(Locale.ROOT, "| %s | %s | %.3f | %s |%n", r.op(), r.shape(), r.ms(), r.rate()));
        }
        Files.createDirectories(dir);
        Path tmp = dir.resolve("gpu-kernels.md.tmp");
        Files.writeString(tmp, md);
        Files.move(tmp, dir.resolve("gpu-kernels.md"), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        // One JSON object per line for bench/gpu-report.py, which sets these beside PyTorch's figures.
        StringBuilder json = new StringBuilder();
        for (Row r : rows) {
            json.append(String.format(Locale.ROOT, "{\"op\": \"%s\", \"shape\": \"%s\", \"ms\": %.5f, \"tflops\": %.3f, \"gbs\": %.1f}%n",
                    r.op(), r.shape(), r.ms(), r.flops() > 0 ? r.flops() / (r.ms() * 1e9) : 0, r.bytes() > 0 ? r.bytes() / (r.ms() * 1e6) : 0));
        }
        Files.writeString(tmp, json);
        Files.move(tmp, dir.resolve("gpu-kernels.jsonl"), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        System.out.print(md);
    }
}
