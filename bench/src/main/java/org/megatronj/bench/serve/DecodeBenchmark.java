package org.megatronj.bench.serve;

import org.megatronj.cli.serve.GenerationEngine;
import org.megatronj.cli.serve.GenerationJob;
import org.megatronj.cli.serve.GenerationRequest;
import org.megatronj.cli.serve.SpecialTokens;
import org.megatronj.memory.Backend;
import org.megatronj.memory.Backends;
import org.megatronj.model.GPTModel;
import org.megatronj.model.Precision;
import org.megatronj.model.TransformerConfig;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Greedy decode with the serving engine's KV cache, measured as the PyTorch baseline
 * ({@code /work/shared/baselines/gpt_torch_cpu.py --decode N}) measures it: a random prompt of
 * {@code P} tokens per sequence, batch {@code B}; first-token latency = median time to generate 1
 * token (prefill + first step); decode rate = B·(N - 1) / (median time for N tokens - first-token
 * time). GPT-2 124M shape (12 layers, 768 hidden, vocab 50257 padded to 50304), random weights;
 * {@code precision=bf16} (or fp16) computes with 16-bit weights, activations and KV cache, as
 * {@code megatron generate --bf16}.
 *
 * <pre>java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -cp ... \
 *      org.megatronj.bench.serve.DecodeBenchmark [device=cpu] [precision=fp32] [prompt=64] [new=32] [runs=3] [batches=1,8]</pre>
 */
public final class DecodeBenchmark {
    public static void main(String[] args) {
        String device = arg(args, "device", "cpu");
        Precision precision = Precision.parse(arg(args, "precision", "fp32"));
        int prompt = Integer.parseInt(arg(args, "prompt", "64"));
        int newTokens = Integer.parseInt(arg(args, "new", "32"));
        int runs = Integer.parseInt(arg(args, "runs", "3"));
        int[] batches = Arrays.stream(arg(args, "batches", "1,8").split(",")).mapToInt(Integer::parseInt).toArray();
        TransformerConfig config = TransformerConfig.builder().numLayers(12).hiddenSize(768).numAttentionHeads(12)
                .seqLength(1024).maxPositionEmbeddings(1024).vocabSize(50257).build();
        try (Backend backend = Backends.create(device); GPTModel model = new GPTModel(config, backend, 1234, precision)) {
            GenerationEngine engine = new GenerationEngine(model, new SpecialTokens(-1, -1, -1, -1));   // never stops early
            System.out.printf(Locale.ROOT, "GPT-2 124M shape (%,d parameters), %s, %s, prompt %d, %d new tokens, median of %d%n",
                    model.parameterCount(), device, precision.flagValue(), prompt, newTokens, runs);
            for (int b : batches) {
                int[][] prompts = new int[b][prompt];
                SplittableRandom random = new SplittableRandom(b);
                for (int[] p : prompts) {
                    for (int i = 0; i < p.length; i++) {
                        p[i] = random.nextInt(config.vocabSize());
                    }
                }
                time(engine, prompts, 4);   // warm-up: JIT, buffers
                double first = median(engine, prompts, 1, runs);
                double total = median(engine, prompts, newTokens, runs);
                double rate = b * (newTokens - 1) / (total - first);
                System.out.printf(Locale.ROOT, "batch %d: first token %.1f ms, decode %.1f tokens/s (%.1f ms/step), total %.2f s%n",
                        b, first * 1e3, rate, (total - first) / (newTokens - 1) * 1e3, total);
            }
        }
    }

    private static double median(GenerationEngine engine, int[][] prompts, int n, int runs) {
        List<Double> times = new ArrayList<>();
        for (int r = 0; r < runs; r++) {
            times.add(time(engine, prompts, n));
        }
        times.sort(Double::compare);
        return times.get(times.size() / 2);
    }

    private static double time(GenerationEngine engine, int[][] prompts, int n) {
        GenerationRequest greedy = new GenerationRequest(List.of("bench"), n, false, 1.0, 1, 0.0, 0.0, 0.0, false, false,
                false, false, 0, true, null, null, 1.0);
        long t0 = System.nanoTime();
        engine.generate(List.of(new GenerationJob(greedy, prompts, 0)));
        return (System.nanoTime() - t0) / 1e9;
    }

    private static String arg(String[] args, String key, String fallback) {
        for (String a : args) {
            if (a.startsWith(key + "=")) {
                return a.substring(key.length() + 1);
            }
        }
        return fallback;
    }
}
