package org.megatronj.cli;

import com.fasterxml.jackson.databind.JsonNode;
import org.megatronj.io.checkpoint.Checkpoint;
import org.megatronj.io.checkpoint.CheckpointLayout;
import org.megatronj.io.checkpoint.OptimizerStateFiles;
import org.megatronj.io.checkpoint.ShardLayout;
import org.megatronj.io.safetensors.SafetensorsFile;
import org.megatronj.memory.Tensor;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/** {@code megatron checkpoint inspect DIR}: what a checkpoint holds, without loading a model. */
@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = "Show a checkpoint's iteration, counters, model config, optimizer and scheduler state and tensors.")
final class CheckpointInspectCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "DIR", description = "A --save folder (its latest iteration), an iter_XXXXXXX folder"
            + " or one of its rank folders (mp_rank_*: that rank's tensors).")
    Path dir;

    @CommandLine.Option(names = "--tensors", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "List every tensor (default on).")
    boolean listTensors;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        boolean rankFolder = Files.exists(dir.resolve(CheckpointLayout.METADATA_FILE));
        try (Checkpoint c = rankFolder ? Checkpoint.open(dir, -1) : Checkpoint.openLatestAnyRank(dir)) {
            JsonNode m = c.metadata();
            ShardLayout layout = ShardLayout.fromMetadata(m);
            List<String> folders = CheckpointLayout.rankDirNames(c.rankDir().getParent());
            out.println("checkpoint: " + c.rankDir());
            if (layout.sharded() || folders.size() > 1 || layout.distributedOptimizer()) {
                out.println("  layout:                 " + layout.describe());
                out.println("  rank folders:           " + folders.size() + " " + folders
                        + " (tensors below: " + c.rankDir().getFileName() + ")");
                List<Path> distrib = OptimizerStateFiles.distribFiles(c.rankDir());
                if (!distrib.isEmpty()) {
                    out.println("  distributed optimizer:  " + distrib.size() + " file(s) per rank folder "
                            + distrib.stream().map(p -> p.getFileName().toString()).toList());
                }
            }
            if (m.has("resharded_from")) {
                out.println("  resharded from:         " + m.get("resharded_from").asText());
            }
            out.println("  iteration:              " + (m.path("release").asBoolean() ? "release (weights only)" : c.iteration()));
            out.println("  consumed train samples: " + m.path("consumed_train_samples").asLong());
            out.println("  consumed valid samples: " + m.path("consumed_valid_samples").asLong());
            if (m.has("optimizer")) {
                out.println("  optimizer:              " + m.path("optimizer").path("type").asText() + ", "
                        + m.path("optimizer").path("step_count").asLong() + " steps");
                JsonNode scaler = m.path("optimizer").path("grad_scaler");
                if (scaler.isObject()) {   // a dynamic scaler's state, which an fp16 run resumes with
                    out.printf(Locale.ROOT, "  loss scaler:            dynamic, scale %.1f, growth tracker %d, hysteresis tracker %d%n",
                            scaler.path("scale").asDouble(), scaler.path("growth_tracker").asLong(),
                            scaler.path("hysteresis_tracker").asLong());
                }
            }
            if (m.has("scheduler")) {
                JsonNode s = m.get("scheduler");
                out.printf(Locale.ROOT, "  lr scheduler:           %s, max %.3E, min %.3E, warmup %.0f and decay %.0f samples, at %d%n",
                        s.path("decay_style").asText(), s.path("max_lr").asDouble(), s.path("min_lr").asDouble(),
                        s.path("warmup_steps").asDouble(), s.path("decay_steps").asDouble(), s.path("num_steps").asLong());
            }
            if (m.has("model")) {
                out.println("  model:                  " + m.get("model"));
            }
            if (m.has("args") && m.get("args").size() > 0) {
                out.println("  args:                   " + m.get("args"));
            }
            describe(out, "model", c.model());
            c.optimizer().ifPresent(o -> describe(out, "optimizer", o));
        }
        out.flush();
        return 0;
    }

    private void describe(PrintWriter out, String what, SafetensorsFile f) {
        long elements = 0;
        for (String n : f.names()) {
            elements += f.info(n).numel();
        }
        out.printf(Locale.ROOT, "  %s tensors:%s %d tensors, %,d elements, %.1f MiB (%s)%n", what,
                " ".repeat(Math.max(1, 14 - what.length())), f.names().size(), elements, f.dataBytes() / 1048576.0, f.path().getFileName());
        if (listTensors) {
            for (String n : f.names()) {
                SafetensorsFile.TensorInfo i = f.info(n);
                out.printf(Locale.ROOT, "    %-60s %-5s %s%n", n, i.dtype(), Tensor.shapeString(i.shape()));
            }
        }
    }
}
