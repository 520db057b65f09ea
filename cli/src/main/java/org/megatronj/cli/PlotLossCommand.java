package org.megatronj.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

import org.megatronj.cli.plot.LossPlot;

/** {@code megatron plot-loss FILE -o loss.png}: the loss curve of a {@code --log-loss-to} CSV as a PNG (headless Java2D). */
@Command(name = "plot-loss", mixinStandardHelpOptions = true,
        description = {"Draw the losses of a --log-loss-to CSV (training, validation, test) as a PNG.",
                "Several CSVs are drawn on one plot to compare runs (e.g. CPU fp32 against GPU bf16).",
                "Columns: split,iteration,consumed_samples,lm_loss,learning_rate,grad_norm."})
final class PlotLossCommand implements Callable<Integer> {
    @Parameters(arity = "1..*", paramLabel = "FILE.csv", description = "CSVs written by pretrain --log-loss-to.")
    List<Path> csvs;

    @Option(names = "--labels", split = ",", paramLabel = "A,B,...",
            description = "Run names for the legend when several CSVs are given (default: the file names).")
    List<String> labels;

    @Option(names = {"-o", "--output"}, required = true, paramLabel = "FILE.png", description = "PNG to write.")
    Path output;

    @Option(names = "--title", paramLabel = "TEXT", description = "Title (default: the CSV's file name).")
    String title;

    @Option(names = "--width", paramLabel = "PX", defaultValue = "960", description = "Width in pixels (default ${DEFAULT-VALUE}).")
    int width;

    @Option(names = "--height", paramLabel = "PX", defaultValue = "560", description = "Height in pixels (default ${DEFAULT-VALUE}).")
    int height;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws IOException {
        if (width < 200 || height < 150) {
            throw new IllegalArgumentException("--width and --height must be at least 200 x 150, got " + width + " x " + height);
        }
        if (ModuleLayer.boot().findModule("java.desktop").isEmpty()) {
            throw new IllegalStateException("plot-loss draws with Java2D, which this Java runtime lacks (no java.desktop module,"
                    + " as in the device bundle); run it with a full JDK");
        }
        List<String> names = labels != null ? labels : csvs.stream().map(p -> p.getFileName().toString()).toList();
        List<LossPlot.Series> series = LossPlot.readRuns(csvs, names);
        LossPlot.writePng(series, title != null ? title : String.join(" vs ", names), width, height, output);
        int n = series.stream().mapToInt(s -> s.points().size()).sum();
        spec.commandLine().getOut().printf(Locale.ROOT, "wrote %s (%d points)%n", output, n);
        spec.commandLine().getOut().flush();
        return 0;
    }
}
