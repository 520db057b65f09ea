package org.megatronj.parallel.train;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Locale;

/**
 * {@code --log-loss-to FILE}: one CSV row per training iteration and per evaluation, flushed as
 * written so a crashed run keeps its curve. Columns:
 * {@code split,iteration,consumed_samples,lm_loss,learning_rate,grad_norm} ({@code split} is
 * {@code train}, {@code valid} or {@code test}; the last two are empty for evaluations).
 * A run that starts at iteration k keeps the file's rows up to k and appends: a run resumed from an
 * earlier checkpoint than the file's last row (a kill between saves) replaces the rows it repeats
 * instead of adding a second copy.
 */
public final class LossCsvWriter implements AutoCloseable {
    public static final String HEADER = "split,iteration,consumed_samples,lm_loss,learning_rate,grad_norm";
    private final BufferedWriter out;

    public LossCsvWriter(Path file, long startIteration) {
        try {
            Path parent = file.toAbsolutePath().getParent();
            if (parent != null) {
                Files.createDirectories(parent);
            }
            dropRowsAfter(file, startIteration);
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

    /** Rewrites {@code file} without its rows past {@code iteration} (under a temporary name, then renamed). */
    private static void dropRowsAfter(Path file, long iteration) throws IOException {
        if (!Files.isRegularFile(file)) {
            return;
        }
        List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        List<String> kept = lines.stream().filter(l -> !isRowAfter(l, iteration)).toList();
        if (kept.size() == lines.size()) {
            return;
        }
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        Files.write(tmp, kept, StandardCharsets.UTF_8);
        Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    private static boolean isRowAfter(String line, long iteration) {
        String[] fields = line.split(",", 3);
        if (fields.length < 3) {
            return false;
        }
        try {
            return Long.parseLong(fields[1]) > iteration;
        } catch (NumberFormatException e) {
            return false;   // the header, or a line this writer did not write: kept as it is
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
