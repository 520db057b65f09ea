package org.megatronj.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentHashMap;
import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.memory.cpu.CpuBackend;
import org.megatronj.model.ActivationRecompute;
import org.megatronj.model.GPTModel;
import org.megatronj.model.MicroBatch;
import org.megatronj.model.Normalization;
import org.megatronj.model.PositionEmbeddingType;
import org.megatronj.model.TransformerConfig;
import org.megatronj.model.optim.AdamW;
import org.megatronj.parallel.CommunicationVolume;
import org.megatronj.parallel.ModelStateMemory;
import org.megatronj.parallel.ParallelConfig;
import org.megatronj.parallel.comm.LocalWorld;
import org.megatronj.parallel.comm.RankContext;
import org.megatronj.parallel.pipeline.ParallelGptRank;

/**
 * Measures what the parallel GPT training holds and sends per rank, against Megatron's analytic
 * numbers, on the CPU backend with ranks as threads ({@link LocalWorld}):
 * <ol>
 *   <li>model-state bytes per parameter (weights, fp32 grads, Adam moments: the bytes their arenas
 *       allocated over the parameters the rank holds) against {@link ModelStateMemory#FP32};</li>
 *   <li>activation bytes per micro-batch for each recompute setting (the activation arena after a
 *       forward, before its backward) against Korthikanti et al.'s per-layer formula;</li>
 *   <li>bytes each rank sends in one training iteration, per collective, counted by
 *       {@link CountingCommunicator}, against {@link CommunicationVolume}.</li>
 * </ol>
 * Usage: {@code ParallelMemoryBenchmark --out bench/results/parallel-memory.md}. Writes markdown.
 */
public final class ParallelMemoryBenchmark {
    static final int LAYERS = 4;
    static final int HIDDEN = 256;
    static final int HEADS = 8;
    static final int SEQ = 128;
    static final int VOCAB = 4096;
    static final int MICRO_BATCH = 2;
    static final int MICRO_BATCHES_PER_DP_RANK = 2;
    static final long SEED = 1234;
    private static final ParallelGptRank.AdamSettings ADAM = new ParallelGptRank.AdamSettings(0.9f, 0.95f, 1e-8f, 0.1f);

    private ParallelMemoryBenchmark() {
    }

    public static void main(String[] args) throws IOException {
        if (args.length != 2 || !args[0].equals("--out")) {
            throw new IllegalArgumentException("usage: ParallelMemoryBenchmark --out FILE.md (got " + String.join(" ", args) + ")");
        }
        Path out = Path.of(args[1]);
        StringBuilder md = new StringBuilder();
        md.append("# Parallel training: model-state memory, activation memory, communication volume\n\n")
                .append(String.format(Locale.ROOT, "GPT, %d layers, hidden %d, %d heads, seq %d, vocab %d (padded %d), fp32, "
                        + "micro-batch %d, LayerNorm, learned positions, tied embeddings; CPU backend, ranks as threads "
                        + "(`bench/parallel-memory.sh`, `ParallelMemoryBenchmark`).\n\n",
                        LAYERS, HIDDEN, HEADS, SEQ, VOCAB, config().paddedVocabSize(1), MICRO_BATCH));
        ModelStateSection.write(md);
        ActivationSection.write(md);
        ParallelCommunicationSection.write(md);
        Path tmp = out.resolveSibling(out.getFileName() + ".tmp");
        Files.createDirectories(out.toAbsolutePath().getParent());
        Files.writeString(tmp, md.toString());
        Files.move(tmp, out, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        System.err.println("parallel-memory: wrote " + out);
    }

    static TransformerConfig config() {
        return TransformerConfig.builder().numLayers(LAYERS).hiddenSize(HIDDEN).numAttentionHeads(HEADS).numQueryGroups(HEADS)
                .seqLength(SEQ).maxPositionEmbeddings(SEQ).positionEmbeddingType(PositionEmbeddingType.LEARNED_ABSOLUTE)
                .normalization(Normalization.LAYER_NORM).swiglu(false).ffnHiddenSize(0).attentionDropout(0f).hiddenDropout(0f)
                .vocabSize(VOCAB).makeVocabSizeDivisibleBy(128).build();
    }

    /** Each rank's backend: the vector kernels on one CPU thread (the ranks are threads already). */
    static Backend backend() {
        return new CpuBackend(1, true);
    }

    static ParallelGptRank rank(RankContext ctx, Backend backend, ActivationRecompute recompute, boolean distributedOptimizer) {
        var options = new ParallelGptRank.Options(recompute, false, 0, distributedOptimizer ? ADAM : null);
        return new ParallelGptRank(config(), backend, SEED, ctx, options,
                params -> new AdamW(params, backend, ADAM.beta1(), ADAM.beta2(), ADAM.eps(), ADAM.weightDecay()));
    }

    /** {@code count} micro-batches of random tokens (the same for every layout). */
    static List<MicroBatch> batch(int count, int iteration) {
        SplittableRandom random = new SplittableRandom(SEED * 31 + iteration);
        List<MicroBatch> out = new ArrayList<>();
        for (int m = 0; m < count; m++) {
            int n = MICRO_BATCH * SEQ;
            int[] tokens = new int[n];
            int[] labels = new int[n];
            float[] mask = new float[n];
            for (int i = 0; i < n; i++) {
                tokens[i] = random.nextInt(VOCAB);
                labels[i] = random.nextInt(VOCAB);
                mask[i] = 1f;
            }
            out.add(new MicroBatch(MICRO_BATCH, SEQ, tokens, labels, mask, null));
        }
        return out;
    }

    static long[] offsets(int count, int iteration) {
        long[] o = new long[count];
        for (int m = 0; m < count; m++) {
            o[m] = iteration * 1000L + m;
        }
        return o;
    }

    /** Bytes allocated by the distinct arenas behind {@code tensors}. */
    static long arenaBytes(Iterable<Tensor> tensors) {
        Map<TensorArena, Boolean> seen = new IdentityHashMap<>();
        long bytes = 0;
        for (Tensor t : tensors) {
            if (seen.put(t.arena(), Boolean.TRUE) == null) {
                bytes += t.arena().bytesAllocated();
            }
        }
        return bytes;
    }

    static String mib(double bytes) {
        return String.format(Locale.ROOT, "%.2f MiB", bytes / (1 << 20));
    }

    static String num(double v) {
        return String.format(Locale.ROOT, "%,.0f", v);
    }

    static String fixed(double v, int decimals) {
        return String.format(Locale.ROOT, "%." + decimals + "f", v);
    }

    static void progress(String what) {
        System.err.println("parallel-memory: " + what);
    }

    // ---------------------------------------------------------------------------------------------------------------

    /** 1. Model-state bytes per parameter on one rank. */
    static final class ModelStateSection {
        record Row(String layout, int tp, int dp, boolean distOpt) {
        }

        record Measured(long params, long flatElements, long weightGradBytes, long optimizerBytes) {
        }

        static void write(StringBuilder md) {
            md.append("## 1. Model-state memory per rank (bytes per parameter)\n\n")
                    .append("Measured: bytes allocated by rank 0's parameter arena (flat fp32 weights + flat fp32 main grads) and "
                            + "its optimizer-state arena(s) (Adam `exp_avg`, `exp_avg_sq`), divided by the parameters rank 0 holds "
                            + "(its TP shard, tied embedding counted once). Megatron: the distributed-optimizer guide's fp32 row, "
                            + "`ModelStateMemory.FP32` (4 param + 4 grad + 8 Adam = 16; distributed: 8 + 8/d).\n\n")
                    .append("| layout | params on rank | flat store elements | weights+grads B/param | Adam B/param | "
                            + "total B/param | Megatron | measured - Megatron |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
            List<Row> rows = List.of(new Row("DP1", 1, 1, false), new Row("DP2", 1, 2, false), new Row("DP4", 1, 4, false),
                    new Row("DP1 dist-opt", 1, 1, true), new Row("DP2 dist-opt", 1, 2, true), new Row("DP4 dist-opt", 1, 4, true),
                    new Row("TP2 DP2", 2, 2, false), new Row("TP2 DP2 dist-opt", 2, 2, true));
            for (Row row : rows) {
                progress("model states " + row.layout());
                Measured m = measure(row);
                double wg = (double) m.weightGradBytes() / m.params();
                double opt = (double) m.optimizerBytes() / m.params();
                double megatron = ModelStateMemory.FP32.bytesPerParameter(row.distOpt(), row.dp());
                md.append(String.format(Locale.ROOT, "| %s | %s | %s | %.3f | %.3f | %.3f | %.3f | %+.3f |%n", row.layout(),
                        num(m.params()), num(m.flatElements()), wg, opt, wg + opt, megatron, wg + opt - megatron));
            }
            md.append("""

                    Where the measurement differs from the table:
                    - The flat parameter/gradient store pads every tensor to 16 floats and the whole store to a multiple of \
                    16 x DP elements (so the distributed optimizer cuts equal shards), and arenas align to 64 bytes. Every \
                    tensor of this model is a multiple of 16 floats (flat store elements = parameters), so the measurement \
                    meets the table exactly; a model whose tensor sizes are not multiples of 16 (e.g. hidden 100: its biases \
                    and norms) would show a small excess above 8 (and above 8/d for the sharded moments).
                    - fp32 training has no separate fp32 main copy of the weights (Megatron neither: the table's fp32 row is \
                    the same 4 + 4 + 8); the gradient buffer *is* the fp32 main grad, kept whole on every DP rank, as in \
                    Megatron, so only Adam's 8 bytes shrink with d. Megatron's bf16 rows (18 = 6 + 12/d with fp32 main \
                    params) do not apply: Megatron-J trains fp32 only.
                    - Without the distributed optimizer, Adam's moments are per-tensor and unpadded (exactly 8 B/param).

                    """);
        }

        static Measured measure(Row row) {
            Measured[] result = new Measured[1];
            LocalWorld.run(ParallelConfig.of(row.tp(), 1), row.tp() * row.dp(), ctx -> {
                try (Backend backend = backend();
                     ParallelGptRank rank = rank(ctx, backend, ActivationRecompute.none(), row.distOpt())) {
                    if (ctx.rank() == 0) {
                        long params = 0;
                        long flat = 0;
                        List<Tensor> stores = new ArrayList<>();
                        for (GPTModel m : rank.chunks()) {
                            params += m.parameterCount();
                            flat += m.parameterStore().flatData().numel();
                            stores.add(m.parameterStore().flatData());
                        }
                        long optimizer = arenaBytes(rank.optimizer().stateTensors().values());
                        result[0] = new Measured(params, flat, arenaBytes(stores), optimizer);
                    }
                }
            });
            return result[0];
        }
    }

    // ---------------------------------------------------------------------------------------------------------------

    /** 2. Activation bytes of one micro-batch per rank, per recompute setting. */
    static final class ActivationSection {
        record Row(String layout, int tp, boolean sp, String recomputeName, ActivationRecompute recompute) {
        }

        static void write(StringBuilder md) {
            long sbh = (long) SEQ * MICRO_BATCH * HIDDEN;
            md.append("## 2. Activation memory per micro-batch and rank\n\n")
                    .append("Measured: bytes of rank 0's activation arena after the forward of one micro-batch (s = ")
                    .append(SEQ).append(", b = ").append(MICRO_BATCH).append("), before its backward; the arena is planned "
                            + "for the micro-batch shape and recompute setting, so this is also its peak. It holds the "
                            + "L + 1 residual-stream tensors, the per-layer saved sets, one workspace and the fp32 logits "
                            + "(s b x V/t). Megatron: Korthikanti et al. per transformer layer, 16-bit activations, "
                            + "sbh(34 + 5as/h) without recompute, 34 sbh selective; with TP t sbh(10 + 24/t + 5as/(ht)), with SP "
                            + "sbh(34 + 5as/h)/t; full recompute keeps only each recomputed group's 2 sbh input (uniform N: "
                            + "L/N groups; block N: N recomputed layers, the others stored); embedding and logits excluded.\n\n")
                    .append("| layout | recompute | measured | measured / (L sbh) | Megatron L layers (16-bit) | "
                            + "Megatron / (L sbh) |\n|---|---|---:|---:|---:|---:|\n");
            List<Row> rows = new ArrayList<>();
            for (String r : List.of("none", "selective", "full uniform 1", "full uniform 2", "full block 2", "full block 4")) {
                rows.add(new Row("1 rank", 1, false, r, parse(r)));
            }
            for (String r : List.of("none", "full uniform 1")) {
                rows.add(new Row("TP2", 2, false, r, parse(r)));
                rows.add(new Row("TP2 SP", 2, true, r, parse(r)));
            }
            Map<String, Long> measured = new ConcurrentHashMap<>();
            for (Row row : rows) {
                progress("activations " + row.layout() + " " + row.recomputeName());
                long bytes = measure(row);
                measured.put(row.layout() + "/" + row.recomputeName(), bytes);
                double megatron = megatronTotal(row);
                md.append(String.format(Locale.ROOT, "| %s | %s | %s | %.1f | %s | %.1f |%n", row.layout(), row.recomputeName(),
                        mib(bytes), (double) bytes / (LAYERS * sbh), mib(megatron), megatron / (LAYERS * sbh)));
            }
            long none = measured.get("1 rank/none");
            long uniform1 = measured.get("1 rank/full uniform 1");
            double perSet = (double) (none - uniform1) / (LAYERS - 1);
            md.append(String.format(Locale.ROOT, """

                    One layer's saved set (from none - full uniform 1 over L - 1 = %d sets): %s = %.1f sbh bytes, plus its \
                    fp32 input in the residual stream (4 sbh): %.1f sbh, against Megatron's 34 sbh, which counts \
                    16-bit tensors and 1-byte dropout masks (the same tensors in fp32 come to roughly twice that), + 5as/h \
                    = %.1f sbh for the attention scores, softmax and its dropout, which the memory-efficient attention \
                    never stores (it keeps the output and a per-row log-sum-exp).
                    - Selective recompute saves nothing here, by design (README): it recomputes the attention scores and \
                    softmax, which this attention never keeps; Megatron's 5as/h term is already absent.
                    - Full recompute keeps all L + 1 layer inputs (they are the pipeline's residual-stream buffers) plus \
                    working sets planned in the arena: uniform N keeps N sets (a group's N layers are rerun together \
                    just before their backward, and share the sets with the other groups), block N keeps 1 set for the \
                    N recomputed layers and one per other layer. Megatron counts only the inputs of the recomputed \
                    groups; its memory for the group being rerun is transient (allocator), ours is planned up front.
                    - The fp32 logits (s b x V/t x 4 bytes = %s here) and the workspace are in every row and are not in \
                    Megatron's per-layer formula; with V = %d they dominate the full-recompute rows.
                    - TP2 halves the column/row-parallel parts (qkv, MLP hidden) but keeps the s b h residual tensors \
                    whole; SP shards those too (s/t), as in the formula's 34/t.

                    """, LAYERS - 1, mib(perSet), perSet / sbh, perSet / sbh + 4, 5.0 * HEADS * SEQ / HIDDEN,
                    mib(4.0 * SEQ * MICRO_BATCH * config().paddedVocabSize(1)), config().paddedVocabSize(1)));
        }

        static ActivationRecompute parse(String name) {
            String[] p = name.split(" ");
            return switch (p[0]) {
                case "none" -> ActivationRecompute.none();
                case "selective" -> ActivationRecompute.selective();
                default -> ActivationRecompute.full(ActivationRecompute.Method.parse(p[1]), Integer.parseInt(p[2]));
            };
        }

        /**
         * Korthikanti et al., bytes of the L transformer layers for 16-bit activations: a stored layer
         * keeps sbh(34 + 5as/h) (TP/SP forms in the section text), a recomputed group of layers only its
         * 2 sbh input (sharded s/t under SP).
         */
        static double megatronTotal(Row row) {
            double s = SEQ;
            double b = MICRO_BATCH;
            double h = HIDDEN;
            double t = row.tp();
            double scores = 5.0 * HEADS * s / (h * t);
            double input = 2 * s * b * h / (row.sp() ? t : 1);
            double stored = s * b * h * (row.sp() ? 34 / t + scores : 10 + 24 / t + scores);
            ActivationRecompute r = row.recompute();
            return switch (r.granularity()) {
                case NONE -> LAYERS * stored;
                case SELECTIVE -> LAYERS * (stored - s * b * h * scores);
                case FULL -> r.method() == ActivationRecompute.Method.UNIFORM
                        ? Math.ceil((double) LAYERS / r.numLayers()) * input
                        : Math.min(r.numLayers(), LAYERS) * input + Math.max(0, LAYERS - r.numLayers()) * stored;
            };
        }

        static long measure(Row row) {
            long[] result = new long[1];
            ParallelConfig pc = new ParallelConfig(row.tp(), 1, 0, row.sp());
            MicroBatch mb = batch(1, 0).getFirst();
            LocalWorld.run(pc, row.tp(), ctx -> {
                try (Backend backend = backend(); ParallelGptRank rank = rank(ctx, backend, row.recompute(), false)) {
                    GPTModel model = rank.chunks().getFirst();
                    // Forward only: every TP rank runs it (its collectives), then the arena is read before any backward.
                    model.forwardStep(0, mb, 0, true);
                    if (ctx.rank() == 0) {
                        result[0] = model.activationBytes();
                    }
                }
            });
            return result[0];
        }
    }
}
