package org.megatronj.parallel.train;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Locale;

/**
 * {@code --log-loss-to FILE}: one CSV row per training iteration and per evaluation, flushed as
 * written so a crashed run keeps its curve. Columns:
 * {@code split,iteration,consumed_samples,lm_loss,learning_rate,grad_norm} ({@code split} is
 * {@code train}, {@code valid} or {@code test}; the last two are empty for evaluations).
 * A resumed run appends to an existing file.
 */
public final class LossCsvWriter implements AutoCloseable {
    public static final String HEADER = "split,iteration,consumed_samples,lm_loss,learning_rate,grad_norm";
    private final BufferedWriter out;

    public LossCsvWriter(Path file) {
        try {
            Path parent = file.toAbsolutePath().getParent();
            if (parent != null) {
                Files.createDirectories(parent);
            }
            boolean fresh = !Files.exists(file) || Files.size(file) == 0;
            out = Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
            if (fresh) {
                out.write(HEADER);
                out.newLine();
                out.flush();
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open --log-loss-to file " + file + ": " + e.getMessage(), e);
        }
    }

    public void train(long iteration, long consumedSamples, double loss, double lr, double gradNorm) {
        row(String.format(Locale.ROOT, "train,%d,%d,%s,%s,%s", iteration, consumedSamples, num(loss), num(lr), num(gradNorm)));
    }

    public void eval(String split, long iteration, long consumedSamples, double loss) {
        row(String.format(Locale.ROOT, "%s,%d,%d,%s,,", split, iteration, consumedSamples, num(loss)));
    }

    private static String num(double v) {
        return Double.isNaN(v) ? "nan" : Double.toString(v);
    }

    private void row(String line) {
        try {
            out.write(line);
            out.newLine();
            out.flush();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the loss CSV: " + e.getMessage(), e);
        }
    }

    @Override
    public void close() {
        try {
            out.close();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
