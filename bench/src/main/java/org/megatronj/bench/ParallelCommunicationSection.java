package org.megatronj.bench;

import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import org.megatronj.memory.Backend;
import org.megatronj.model.ActivationRecompute;
import org.megatronj.model.GPTModel;
import org.megatronj.model.MicroBatch;
import org.megatronj.parallel.CommunicationVolume;
import org.megatronj.parallel.ParallelConfig;
import org.megatronj.parallel.comm.LocalWorld;
import org.megatronj.parallel.pipeline.ParallelGptRank;

/**
 * Section 3 of {@link ParallelMemoryBenchmark}: the bytes each rank sends in one training
 * iteration (the second, so that set-up collectives are not counted), per collective, against
 * {@link CommunicationVolume} and the ring formulas.
 */
final class ParallelCommunicationSection {
    private static final int SCALAR_BYTES = 64;   // loss/norm/flag reductions: a few doubles per call

    record Layout(String name, int tp, int pp, int dp, boolean sp, boolean distOpt) {
        int worldSize() {
            return tp * pp * dp;
        }

        ParallelConfig config() {
            return new ParallelConfig(tp, pp, 0, sp);
        }
    }

    /** What one rank sent in the counted iteration, and what it holds. */
    record RankTraffic(Map<String, CountingCommunicator.Tally> tallies, long params, long flatElements) {
    }

    private ParallelCommunicationSection() {
    }

    static void write(StringBuilder md) {
        int s = ParallelMemoryBenchmark.SEQ;
        int b = ParallelMemoryBenchmark.MICRO_BATCH;
        long activation = (long) s * b * ParallelMemoryBenchmark.HIDDEN * 4;
        md.append("## 3. Communication volume per iteration and rank\n\n")
                .append("Measured: every collective and send a rank issues in its second training iteration (")
                .append(ParallelMemoryBenchmark.MICRO_BATCHES_PER_DP_RANK).append(" micro-batches of ").append(b)
                .append(" x ").append(s).append(" per DP rank, forward + backward + gradient sync + clip + Adam), counted "
                        + "by a `CountingCommunicator` wrapped around the rank's groups. Bytes are what the rank would send "
                        + "if each collective ran as a ring (all-reduce 2(n-1)/n S, reduce-scatter/all-gather (n-1)/n S, "
                        + "S the whole buffer; send S): the local communicator moves data through shared memory, so these are "
                        + "the measured payloads put through the ring formulas. Analytic: `CommunicationVolume.estimate` "
                        + "(fp32 activations and grads, parameters = the rank's count). [s,b,h] = ")
                .append(activation).append(" bytes.\n\n")
                .append("| layout | rank | TP [s,b,h] | TP other | PP | DP | tied emb. | scalars | analytic TP | analytic PP | "
                        + "analytic DP | ring formula on the flat grad store |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        List<Layout> layouts = List.of(new Layout("TP2", 2, 1, 1, false, false), new Layout("TP2 SP", 2, 1, 1, true, false),
                new Layout("PP2", 1, 2, 1, false, false), new Layout("DP2", 1, 1, 2, false, false),
                new Layout("DP2 dist-opt", 1, 1, 2, false, true), new Layout("DP4", 1, 1, 4, false, false),
                new Layout("DP4 dist-opt", 1, 1, 4, false, true));
        StringBuilder details = new StringBuilder();
        for (Layout layout : layouts) {
            ParallelMemoryBenchmark.progress("communication " + layout.name());
            Map<Integer, RankTraffic> traffic = measure(layout);
            List<Integer> shown = layout.pp() > 1 ? List.of(0, 1) : List.of(0);
            for (int r : shown) {
                RankTraffic t = traffic.get(r);
                Map<String, Double> cat = categorize(t.tallies(), activation);
                CommunicationVolume analytic = CommunicationVolume.estimate(layout.config(), layout.dp(), layout.distOpt(),
                        new CommunicationVolume.Workload(ParallelMemoryBenchmark.LAYERS, ParallelMemoryBenchmark.HIDDEN, s, b,
                                ParallelMemoryBenchmark.MICRO_BATCHES_PER_DP_RANK, t.params(), 4, 4, 4, false));
                double d = layout.dp();
                double flatBytes = 4.0 * t.flatElements();
                double ring = layout.dp() == 1 ? 0 : layout.distOpt() ? (d - 1) / d * (flatBytes + flatBytes)
                        : 2 * (d - 1) / d * flatBytes;
                md.append(String.format(Locale.ROOT, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |%n",
                        layout.name(), r, n(cat.get("tp")), n(cat.get("tp-other")), n(cat.get("pp")), n(cat.get("dp")),
                        n(cat.get("embd")), n(cat.get("scalars")), n(analytic.tensorParallelBytes()), n(analytic.pipelineBytes()),
                        n(analytic.dataParallelBytes()), n(ring)));
                details.append(detail(layout, r, t));
                check(layout, r, cat, analytic, ring);
            }
        }
        md.append("""

                Reading the table:
                - DP: the measured bytes equal the ring formula on the flat fp32 gradient store exactly (all-reduce \
                2(d-1)/d x grad bytes; distributed optimizer: reduce-scatter of the grads + all-gather of the weights, \
                (d-1)/d x (4 + 4) bytes per element, the same total as the all-reduce). The analytic value counts the \
                parameters, the measurement the flat store, which pads each tensor to 16 floats and the total to 16 x d; \
                here there is no padding, so the two agree exactly.
                - TP [s,b,h]: per layer and micro-batch two all-reduces forward and two backward, plus the embedding's \
                forward and the output layer's backward one: exactly `CommunicationVolume`'s count. Under SP each \
                all-reduce becomes an all-gather + a reduce-scatter of the same ring volume, except one: with learned \
                position embeddings the SP embedding forward all-reduces the full [s,b,h] word embeddings (to add the \
                position table on all s rows) and then takes its s/t slice, where a reduce-scatter would do; that is \
                the extra (t-1)/t [s,b,h] per micro-batch over the analytic value (RoPE models reduce-scatter).
                - TP other (not in the analytic value): the vocab-parallel cross-entropy's three [s b] fp32 reductions per \
                micro-batch, and under SP the all-reduce of the LayerNorm (and row-parallel bias) gradients over TP once \
                per iteration.
                - PP: the analytic value is an inner stage's (one activation forward and one gradient backward per \
                micro-batch); with two stages each is an end stage and sends one of the two: half. Receives are not counted \
                as sent.
                - Tied embedding (PP > 1 only, not in the analytic value): the all-reduce of the word-embedding gradient \
                ([V, h] fp32) between the first and last stage's copies, once per iteration.
                - Scalars: the loss and token sums over DP/PP, the global gradient norm over the model-parallel and DP \
                groups (a few 8-byte values per call).

                ### Per-collective detail (counted iteration)

                | layout | rank | group | operation | payload per call (bytes) | calls | ring bytes sent |
                |---|---|---|---|---:|---:|---:|
                """);
        md.append(details).append('\n');
    }

    /**
     * The identities the report states, checked so that a change in the training's communication
     * fails the benchmark instead of printing a silently different table.
     */
    static void check(Layout layout, int rank, Map<String, Double> measured, CommunicationVolume analytic, double ring) {
        String where = layout.name() + " rank " + rank + ": ";
        if (Math.abs(measured.get("dp") - ring) > 1) {
            throw new IllegalStateException(where + "DP bytes " + measured.get("dp") + " != ring formula on the flat grad store " + ring);
        }
        if (!layout.sp() && Math.abs(measured.get("tp") - analytic.tensorParallelBytes()) > 1) {
            throw new IllegalStateException(where + "TP [s,b,h] bytes " + measured.get("tp") + " != analytic "
                    + analytic.tensorParallelBytes());
        }
        if (layout.pp() == 2 && Math.abs(measured.get("pp") - analytic.pipelineBytes() / 2) > 1) {
            throw new IllegalStateException(where + "PP bytes " + measured.get("pp") + " != half the inner-stage analytic "
                    + analytic.pipelineBytes() / 2);
        }
    }

    /** Sums of ring bytes sent: tp ([s,b,h] payloads), tp-other, pp, dp, embd (tied embedding) and scalars. */
    static Map<String, Double> categorize(Map<String, CountingCommunicator.Tally> tallies, long activationBytes) {
        Map<String, Double> out = new TreeMap<>();
        for (String k : List.of("tp", "tp-other", "pp", "dp", "embd", "scalars")) {
            out.put(k, 0.0);
        }
        tallies.forEach((key, tally) -> {
            String[] p = key.split(" ");
            String group = p[0];
            long payload = Long.parseLong(p[2]);
            String cat;
            if (payload <= SCALAR_BYTES) {
                cat = "scalars";
            } else if (group.equals("tp")) {
                cat = payload == activationBytes ? "tp" : "tp-other";
            } else if (group.startsWith("pp-")) {
                cat = "pp";
            } else if (group.equals("dp")) {
                cat = "dp";
            } else if (group.equals("embd")) {
                cat = "embd";
            } else {
                throw new IllegalStateException("unexpected collective in a training iteration: " + key);
            }
            out.merge(cat, tally.sentBytes, Double::sum);
        });
        return out;
    }

    static String detail(Layout layout, int rank, RankTraffic t) {
        StringBuilder sb = new StringBuilder();
        t.tallies().forEach((key, tally) -> {
            String[] p = key.split(" ");
            sb.append(String.format(Locale.ROOT, "| %s | %d | %s | %s | %s | %d | %s |%n", layout.name(), rank, p[0], p[1],
                    n(Long.parseLong(p[2])), tally.calls, n(tally.sentBytes)));
        });
        return sb.toString();
    }

    static Map<Integer, RankTraffic> measure(Layout layout) {
        Map<Integer, RankTraffic> out = new ConcurrentHashMap<>();
        int globalBatch = ParallelMemoryBenchmark.MICRO_BATCHES_PER_DP_RANK * layout.dp();
        LocalWorld.run(layout.config(), layout.worldSize(), ctx -> {
            CountingCommunicator.Ledger ledger = new CountingCommunicator.Ledger();
            try (Backend backend = ParallelMemoryBenchmark.backend();
                 ParallelGptRank rank = ParallelMemoryBenchmark.rank(CountingCommunicator.counting(ctx, ledger), backend,
                         ActivationRecompute.none(), layout.distOpt())) {
                Map<String, CountingCommunicator.Tally> before = null;
                for (int it = 0; it < 2; it++) {
                    before = ledger.snapshot();
                    List<MicroBatch> batch = ParallelMemoryBenchmark.batch(globalBatch, it);
                    rank.trainStep(batch, ParallelMemoryBenchmark.offsets(globalBatch, it), 1e-4f, 1.0);
                }
                long params = 0;
                long flat = 0;
                for (GPTModel m : rank.chunks()) {
                    params += m.parameterCount();
                    flat += m.parameterStore().flatGrad().numel();
                }
                out.put(ctx.rank(), new RankTraffic(ledger.since(before), params, flat));
            }
        });
        return out;
    }

    private static String n(double v) {
        return ParallelMemoryBenchmark.num(v);
    }

}
