package org.megatronj.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code pretrain gpt --recompute-granularity selective --recompute-modules ...}: the logged losses are those of the
 * same layout without recompute, digit for digit (one rank, TP2 with sequence parallelism, PP2; dropout on), and
 * Megatron's refused combinations are refused in its words before training.
 */
class RecomputeModulesCliTest {
    @TempDir
    Path dir;

    private Path dataset() {
        return ToyCorpus.write(dir);
    }

    private List<String> args(Path data, Path csv, String... extra) {
        List<String> a = new ArrayList<>(List.of("pretrain", "gpt", "--data-path", data.toString(), "--split", "90,10,0",
                "--data-cache-path", dir.resolve("cache").toString(), "--tokenizer-type", "NullTokenizer", "--vocab-size", "51",
                "--num-layers", "4", "--hidden-size", "16", "--num-attention-heads", "4", "--seq-length", "16",
                "--make-vocab-size-divisible-by", "16", "--micro-batch-size", "1", "--global-batch-size", "8",
                "--train-iters", "4", "--lr", "1e-2", "--log-interval", "1", "--eval-interval", "2", "--eval-iters", "1",
                "--hidden-dropout", "0.1", "--attention-dropout", "0.1", "--seed", "3", "--log-loss-to", csv.toString()));
        a.addAll(List.of(extra));
        return a;
    }

    /** The train and valid rows of the loss log, as written (exact comparison of the printed digits). */
    private static List<String> losses(Path csv) throws IOException {
        return Files.readAllLines(csv).stream().filter(l -> l.startsWith("train,") || l.startsWith("valid,"))
                .map(l -> l.split(",")[0] + "," + l.split(",")[3]).toList();
    }

    private List<String> run(Path data, String name, String... extra) throws IOException {
        Path csv = dir.resolve(name + ".csv");
        CliRun r = CliRun.of(args(data, csv, extra).toArray(String[]::new));
        assertEquals(0, r.code(), r.toString());
        assertTrue(r.out().contains(" iteration        4/       4 |"), r.out());
        return losses(csv);
    }

    private static String[] with(String[] layout, String... more) {
        List<String> all = new ArrayList<>(List.of(layout));
        all.addAll(List.of(more));
        return all.toArray(String[]::new);
    }

    @Test
    void modulesLogTheLossesOfTheRunWithoutRecompute() throws IOException {
        Path data = dataset();
        String[][] layouts = {
                {},
                {"--tensor-model-parallel-size", "2", "--sequence-parallel", "--world-size", "2"},
                {"--pipeline-model-parallel-size", "2", "--world-size", "2"},
                {"--context-parallel-size", "2", "--world-size", "2"}};
        for (String[] layout : layouts) {
            String name = String.join("_", layout).replace("-", "");
            List<String> stored = run(data, "stored" + name, layout);
            assertEquals(7, stored.size(), stored.toString());   // 4 train rows, valid at 2, 4 and the end
            List<String> recomputed = run(data, "recomputed" + name, with(layout, "--recompute-granularity", "selective",
                    "--recompute-modules", "core_attn", "layernorm", "mlp"));
            assertEquals(stored, recomputed, String.join(" ", layout));
        }
        // Mixture of experts (routed experts with moe_act, shared experts), one rank and TP2 with SP.
        String[] moe = {"--num-experts", "4", "--moe-router-topk", "2", "--disable-bias-linear", "--swiglu",
                "--ffn-hidden-size", "32", "--moe-shared-expert-intermediate-size", "16", "--moe-grouped-gemm"};
        for (String[] layout : new String[][] {{}, {"--tensor-model-parallel-size", "2", "--sequence-parallel",
                "--world-size", "2"}}) {
            String name = "moe" + String.join("_", layout).replace("-", "");
            List<String> stored = run(data, name + "stored", with(moe, layout));
            List<String> recomputed = run(data, name + "recomputed", with(with(moe, layout), "--recompute-activations",
                    "--recompute-modules", "moe_act", "shared_experts", "layernorm"));
            assertEquals(stored, recomputed, "MoE " + String.join(" ", layout));
            // Megatron's deprecated --moe-layer-recompute is selective recompute of "moe" (plus the modules given).
            List<String> wholeLayer = run(data, name + "moe", with(with(moe, layout), "--moe-layer-recompute",
                    "--recompute-modules", "mlp"));
            assertEquals(stored, wholeLayer, "MoE layer recompute " + String.join(" ", layout));
        }
        // Multi-latent attention with mla_up_proj on TP2 with SP.
        String[] mla = {"--multi-latent-attention", "--q-lora-rank", "8", "--kv-lora-rank", "8", "--qk-head-dim", "4",
                "--qk-pos-emb-head-dim", "4", "--v-head-dim", "4", "--qk-layernorm", "--position-embedding-type", "rope",
                "--tensor-model-parallel-size", "2", "--sequence-parallel", "--world-size", "2"};
        assertEquals(run(data, "mla-stored", mla), run(data, "mla-recomputed", with(mla, "--recompute-activations",
                "--recompute-modules", "mla_up_proj", "layernorm", "mlp")), "MLA");
        // A repeated flag keeps its last values (argparse): "mhc" would be refused, the last list runs.
        assertEquals(run(data, "stored"), run(data, "last", "--recompute-activations", "--recompute-modules", "mhc",
                "--recompute-modules", "mlp"));
    }

    private String refusal(Path data, String... extra) {
        CliRun r = CliRun.of(args(data, dir.resolve("refused.csv"), extra).toArray(String[]::new));
        assertEquals(1, r.code(), r.toString());
        assertTrue(!r.out().contains("iteration "), "refused before training: " + r.out());
        return r.err();
    }

    @Test
    void refusesMegatronsCombinationsInItsWords() {
        Path data = dataset();
        String[] moe = {"--num-experts", "4", "--disable-bias-linear", "--moe-shared-expert-intermediate-size", "16"};
        String err = refusal(data, with(moe, "--recompute-activations", "--recompute-modules", "moe_act"));
        assertTrue(err.contains("moe_act in recompute_modules is only supported with moe_grouped_gemm."), err);
        err = refusal(data, "--recompute-activations", "--recompute-modules", "mla_up_proj");
        assertTrue(err.contains("mla_up_proj in recompute_modules is only supported with multi_latent_attention."), err);
        err = refusal(data, with(moe, "--moe-shared-expert-overlap", "--recompute-activations", "--recompute-modules",
                "shared_experts"));
        assertTrue(err.contains("shared_experts recompute cannot work with --moe-shared-expert-overlap."), err);
        err = refusal(data, "--recompute-granularity", "selective", "--recompute-modules", "mlp", "attn");
        assertTrue(err.contains("Invalid choices for recompute_modules: {'attn'}. Allowed modules are: {'core_attn',"), err);
        // outside selective granularity Megatron never reads the list: its scripts that pass it run here too
        for (String[] ignored : List.of(new String[] {"--recompute-granularity", "full", "--recompute-method", "uniform",
                "--recompute-num-layers", "1", "--recompute-modules", "mlp"}, new String[] {"--recompute-modules", "layernorm"})) {
            CliRun r = CliRun.of(args(data, dir.resolve("ignored.csv"), ignored).toArray(String[]::new));
            assertEquals(0, r.code(), r.toString());
        }
        // Megatron's modules of model variants Megatron-J does not have: refused in Megatron's words or by name.
        err = refusal(data, "--recompute-activations", "--recompute-modules", "mlp", "mhc");
        assertTrue(err.contains("'mhc' in recompute_modules requires enable_mhc_connections=True."), err);
        err = refusal(data, "--recompute-activations", "--recompute-modules", "gdn_norm_out");
        assertTrue(err.contains("gdn_norm_out in recompute_modules is only supported with"), err);
        err = refusal(data, "--recompute-activations", "--recompute-modules", "gdp_qkv");
        assertTrue(err.contains("--recompute-modules gdp_qkv recomputes part of the gated delta product"), err);
        err = refusal(data, with(moe, "--moe-layer-recompute", "--recompute-granularity", "full", "--recompute-method",
                "uniform", "--recompute-num-layers", "1"));
        assertTrue(err.contains("Do not set --moe-layer-recompute with full recompute granularity."), err);

    }
}
