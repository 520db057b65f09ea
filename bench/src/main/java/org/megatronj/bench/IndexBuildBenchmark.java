package org.megatronj.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;

import org.megatronj.io.gpt.GptIndexBuilder;
import org.megatronj.io.random.RandomState;
import org.megatronj.io.gpt.GptIndices;
import org.megatronj.io.npy.NpyFile;

/**
 * How long building a GPT split's document, sample and shuffle indices takes, single-threaded, for
 * 10 M samples (the target: under a second of CPU). Synthetic sequence lengths, so no data needed.
 *
 * <pre>
 * java -cp io/target/classes:memory/target/classes:bench/target/classes org.megatronj.bench.IndexBuildBenchmark [samples] [seq-length]
 * </pre>
 * Two scenarios: a corpus about one epoch long, and a small corpus repeated over many epochs.
 * Prints the best of 5 runs after 2 warm-ups, plus the time to write the three .npy files.
 */
public final class IndexBuildBenchmark {
    private IndexBuildBenchmark() {
    }

    public static void main(String[] args) throws IOException {
        long samples = args.length > 0 ? Long.parseLong(args[0]) : 10_000_000L;
        int seqLength = args.length > 1 ? Integer.parseInt(args[1]) : 1024;
        System.out.printf("GPT index build, %,d samples of %d tokens, seed 1234, 1 thread (%s, %d cpus)%n", samples, seqLength,
                Runtime.version(), Runtime.getRuntime().availableProcessors());
        // ~1 epoch: 8 M documents of 1..2600 tokens (mean ~1300) = ~10.4 G tokens >= 10 M x 1024
        run("one epoch (8 M sequences)", lengths(8_000_000, 2600, 1), samples, seqLength);
        // many epochs: 200 k documents of mean ~1300 tokens = 260 M tokens per epoch
        run("many epochs (200 k sequences)", lengths(200_000, 2600, 2), samples, seqLength);
    }

    /** CPU seconds of each step, best of 3: where the time goes. */
    private static void phases(ThreadMXBean threads, GptIndices built, int[] lengths, int seqLength) {
        double doc = Double.MAX_VALUE;
        double sample = Double.MAX_VALUE;
        double shuffle = Double.MAX_VALUE;
        long samples = built.sampleCount();
        for (int i = 0; i < 3; i++) {
            RandomState rng = new RandomState(1234);
            long c0 = threads.getCurrentThreadCpuTime();
            int[] d = GptIndexBuilder.buildDocumentIndex(0, lengths.length, built.epochs(), built.separateFinalEpoch(), rng);
            long c1 = threads.getCurrentThreadCpuTime();
            GptIndexBuilder.buildSampleIndex(lengths, d, seqLength, built.epochs(), built.tokensPerEpoch(), true, 1);
            long c2 = threads.getCurrentThreadCpuTime();
            GptIndexBuilder.buildShuffleIndex(samples, samples, rng);
            long c3 = threads.getCurrentThreadCpuTime();
            doc = Math.min(doc, (c1 - c0) / 1e9);
            sample = Math.min(sample, (c2 - c1) / 1e9);
            shuffle = Math.min(shuffle, (c3 - c2) / 1e9);
        }
        System.out.printf("  cpu: document index %.3f s, sample index %.3f s, shuffle index %.3f s%n", doc, sample, shuffle);
    }

    private static int[] lengths(int n, int max, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] lengths = new int[n];
        for (int i = 0; i < n; i++) {
            lengths[i] = 1 + r.nextInt(max);
        }
        return lengths;
    }

    private static void run(String name, int[] lengths, long samples, int seqLength) throws IOException {
        GptIndexBuilder.Request request = new GptIndexBuilder.Request(lengths, 0, lengths.length, samples, seqLength, 1234, true, true);
        ThreadMXBean threads = ManagementFactory.getThreadMXBean();
        GptIndices last = null;
        double best = Double.MAX_VALUE;
        double bestCpu = Double.MAX_VALUE;
        for (int i = 0; i < 7; i++) {
            long t0 = System.nanoTime();
            long c0 = threads.getCurrentThreadCpuTime();
            last = GptIndexBuilder.build(request);
            double cpu = (threads.getCurrentThreadCpuTime() - c0) / 1e9;
            double s = (System.nanoTime() - t0) / 1e9;
            if (i >= 2) {
                best = Math.min(best, s);
                bestCpu = Math.min(bestCpu, cpu);
            }
        }
        phases(threads, last, lengths, seqLength);
        Path dir = Files.createTempDirectory("index-bench");
        long t0 = System.nanoTime();
        NpyFile.write(dir.resolve("d.npy"), last.documentIndexArray());
        NpyFile.write(dir.resolve("s.npy"), last.sampleIndexArray());
        NpyFile.write(dir.resolve("sh.npy"), last.shuffleIndexArray());
        double write = (System.nanoTime() - t0) / 1e9;
        long bytes = 0;
        try (var files = Files.list(dir)) {
            for (Path p : files.toList()) {
                bytes += Files.size(p);
                Files.delete(p);
            }
        }
        Files.delete(dir);
        System.out.printf("%-30s epochs %3d  doc index %,12d  samples %,12d  separate last epoch %-5s  build %.3f s wall, %.3f s cpu  write .npy %.3f s (%,d MiB)%n",
                name, last.epochs(), last.documentIndex().length, last.sampleCount(), last.separateFinalEpoch(), best, bestCpu, write, bytes >> 20);
    }
}
