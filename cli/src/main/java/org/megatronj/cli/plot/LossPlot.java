package org.megatronj.cli.plot;

import javax.imageio.ImageIO;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.geom.Path2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Loss curves of a {@code --log-loss-to} CSV, drawn with headless Java2D. Kept apart from the
 * command so that the CLI starts without {@code java.desktop} (the device bundle's runtime has
 * no AWT); only {@code plot-loss} needs it.
 */
public final class LossPlot {
    private static final int TRAIN_RGB = 0x1f77b4;
    private static final int VALID_RGB = 0xff7f0e;
    private static final int TEST_RGB = 0x2ca02c;

    private LossPlot() {
    }

    /** One curve: points (iteration, loss) in file order, drawn in colour {@code rgb}. */
    public record Series(String name, int rgb, List<double[]> points) {
    }

    /** Renders {@code series} and writes a PNG to {@code output} under a temporary name, then renames it. */
    public static void writePng(List<Series> series, String title, int width, int height, Path output) throws IOException {
        System.setProperty("java.awt.headless", "true");
        BufferedImage image = render(series, title, width, height);
        Path parent = output.toAbsolutePath().getParent();
        Files.createDirectories(parent);
        Path tmp = parent.resolve(output.getFileName() + ".tmp");
        if (!ImageIO.write(image, "png", tmp.toFile())) {
            throw new IllegalStateException("no PNG writer in this JDK");
        }
        Files.move(tmp, output, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    public static List<Series> read(Path csv) throws IOException {
        List<String> lines = Files.readAllLines(csv);
        if (lines.isEmpty() || !lines.get(0).startsWith("split,iteration,consumed_samples,lm_loss")) {
            throw new IllegalArgumentException(csv + ":1: expected the header 'split,iteration,consumed_samples,lm_loss,...'"
                    + " of a --log-loss-to file");
        }
        Series train = new Series("train", TRAIN_RGB, new ArrayList<>());
        Series valid = new Series("validation", VALID_RGB, new ArrayList<>());
        Series test = new Series("test", TEST_RGB, new ArrayList<>());
        for (int i = 1; i < lines.size(); i++) {
            String line = lines.get(i).strip();
            if (line.isEmpty() || line.startsWith("split,")) {
                continue;   // appended runs repeat nothing, but tolerate a second header
            }
            String[] f = line.split(",", -1);
            if (f.length < 4) {
                throw new IllegalArgumentException(csv + ":" + (i + 1) + ": expected at least 4 columns, found " + f.length);
            }
            double iteration;
            double loss;
            try {
                iteration = Double.parseDouble(f[1]);
                loss = f[3].equals("nan") ? Double.NaN : Double.parseDouble(f[3]);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(csv + ":" + (i + 1) + ": not a number in '" + line + "'");
            }
            if (!Double.isFinite(loss)) {
                continue;
            }
            Series s = switch (f[0]) {
                case "train" -> train;
                case "valid" -> valid;
                case "test" -> test;
                default -> throw new IllegalArgumentException(csv + ":" + (i + 1) + ": unknown split '" + f[0] + "'");
            };
            s.points().add(new double[] {iteration, loss});
        }
        if (train.points().isEmpty() && valid.points().isEmpty() && test.points().isEmpty()) {
            throw new IllegalArgumentException(csv + ": no finite losses to plot");
        }
        return List.of(train, valid, test).stream().filter(s -> !s.points().isEmpty()).toList();
    }

    /**
     * Several runs on one plot: each file's curves are named "LABEL train", "LABEL validation", ...
     * and coloured per run (a palette of distinguishable hues; validation and test darker).
     */
    public static List<Series> readRuns(List<Path> csvs, List<String> labels) throws IOException {
        if (csvs.size() == 1) {
            return read(csvs.getFirst());
        }
        if (labels.size() != csvs.size()) {
            throw new IllegalArgumentException("--labels names " + labels.size() + " runs but " + csvs.size()
                    + " CSV files were given; expected one label per file");
        }
        List<Series> all = new ArrayList<>();
        for (int r = 0; r < csvs.size(); r++) {
            int hue = RUN_RGB[r % RUN_RGB.length];
            for (Series s : read(csvs.get(r))) {
                int rgb = s.name().equals("train") ? hue : darker(hue);
                all.add(new Series(labels.get(r) + " " + s.name(), rgb, s.points()));
            }
        }
        return all;
    }

    private static final int[] RUN_RGB = {0x1F77B4, 0xFF7F0E, 0x2CA02C, 0xD62728, 0x9467BD, 0x8C564B};

    private static int darker(int rgb) {
        Color c = new Color(rgb).darker();
        return c.getRGB() & 0xFFFFFF;
    }

    static BufferedImage render(List<Series> series, String title, int width, int height) {
        BufferedImage img = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
        g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
        g.setColor(Color.WHITE);
        g.fillRect(0, 0, width, height);
        int left = 80;
        int right = 24;
        int top = 48;
        int bottom = 60;
        int plotW = width - left - right;
        int plotH = height - top - bottom;

        double xMin = Double.MAX_VALUE;
        double xMax = -Double.MAX_VALUE;
        double yMin = Double.MAX_VALUE;
        double yMax = -Double.MAX_VALUE;
        for (Series s : series) {
            for (double[] p : s.points()) {
                xMin = Math.min(xMin, p[0]);
                xMax = Math.max(xMax, p[0]);
                yMin = Math.min(yMin, p[1]);
                yMax = Math.max(yMax, p[1]);
            }
        }
        Axis x = Axis.of(xMin, xMax);
        Axis y = Axis.of(yMin, yMax);

        Font font = new Font(Font.SANS_SERIF, Font.PLAIN, 13);
        g.setFont(font);
        FontMetrics fm = g.getFontMetrics();
        // grid and tick labels
        for (double t : x.ticks()) {
            int px = left + (int) Math.round(x.fraction(t) * plotW);
            g.setColor(new Color(230, 230, 230));
            g.drawLine(px, top, px, top + plotH);
            g.setColor(Color.DARK_GRAY);
            g.drawLine(px, top + plotH, px, top + plotH + 5);
            String label = x.label(t);
            g.drawString(label, px - fm.stringWidth(label) / 2, top + plotH + 8 + fm.getAscent());
        }
        for (double t : y.ticks()) {
            int py = top + plotH - (int) Math.round(y.fraction(t) * plotH);
            g.setColor(new Color(230, 230, 230));
            g.drawLine(left, py, left + plotW, py);
            g.setColor(Color.DARK_GRAY);
            g.drawLine(left - 5, py, left, py);
            String label = y.label(t);
            g.drawString(label, left - 8 - fm.stringWidth(label), py + fm.getAscent() / 2 - 1);
        }
        g.setColor(Color.BLACK);
        g.drawRect(left, top, plotW, plotH);
        // axis titles
        String xTitle = "iteration";
        g.drawString(xTitle, left + plotW / 2 - fm.stringWidth(xTitle) / 2, height - 14);
        Graphics2D rotated = (Graphics2D) g.create();
        rotated.rotate(-Math.PI / 2);
        String yTitle = "lm loss";
        rotated.drawString(yTitle, -(top + plotH / 2 + fm.stringWidth(yTitle) / 2), 20);
        rotated.dispose();
        g.setFont(font.deriveFont(Font.BOLD, 16f));
        g.drawString(title, left + plotW / 2 - g.getFontMetrics().stringWidth(title) / 2, 30);
        g.setFont(font);

        // curves
        Graphics2D clip = (Graphics2D) g.create();
        clip.clipRect(left, top, plotW + 1, plotH + 1);
        for (Series s : series) {
            clip.setColor(new Color(s.rgb()));
            clip.setStroke(new BasicStroke(s.name().endsWith("train") ? 1.6f : 2f));
            Path2D.Double path = new Path2D.Double();
            boolean first = true;
            for (double[] p : s.points()) {
                double px = left + x.fraction(p[0]) * plotW;
                double py = top + plotH - y.fraction(p[1]) * plotH;
                if (first) {
                    path.moveTo(px, py);
                    first = false;
                } else {
                    path.lineTo(px, py);
                }
                if (!s.name().endsWith("train") || s.points().size() == 1) {
                    clip.fillOval((int) px - 3, (int) py - 3, 7, 7);
                }
            }
            clip.draw(path);
        }
        clip.dispose();

        // legend
        int legendW = 60;
        for (Series s : series) {
            legendW = Math.max(legendW, 46 + fm.stringWidth(s.name() + " (" + s.points().size() + ")"));
        }
        int lx = left + plotW - legendW;
        int ly = top + 12;
        g.setColor(new Color(255, 255, 255, 230));
        g.fillRect(lx - 8, ly - 4, legendW, series.size() * 20 + 6);
        g.setColor(Color.GRAY);
        g.drawRect(lx - 8, ly - 4, legendW, series.size() * 20 + 6);
        for (int i = 0; i < series.size(); i++) {
            Series s = series.get(i);
            int yy = ly + i * 20 + 8;
            g.setColor(new Color(s.rgb()));
            g.setStroke(new BasicStroke(2.5f));
            g.drawLine(lx, yy, lx + 26, yy);
            g.setColor(Color.BLACK);
            g.drawString(s.name() + " (" + s.points().size() + ")", lx + 34, yy + fm.getAscent() / 2 - 1);
        }
        g.dispose();
        return img;
    }

    /** A linear axis with "nice" ticks (1, 2 or 5 times a power of ten). */
    record Axis(double min, double max, double step) {
        static Axis of(double lo, double hi) {
            if (hi - lo < 1e-12) {
                double pad = Math.max(Math.abs(lo) * 0.05, 0.5);
                lo -= pad;
                hi += pad;
            }
            double raw = (hi - lo) / 6;
            double mag = Math.pow(10, Math.floor(Math.log10(raw)));
            double step = raw / mag < 1.5 ? mag : raw / mag < 3 ? 2 * mag : raw / mag < 7 ? 5 * mag : 10 * mag;
            return new Axis(Math.floor(lo / step) * step, Math.ceil(hi / step) * step, step);
        }

        double fraction(double v) {
            return (v - min) / (max - min);
        }

        List<Double> ticks() {
            List<Double> t = new ArrayList<>();
            for (double v = min; v <= max + step * 1e-6; v += step) {
                t.add(Math.abs(v) < step * 1e-9 ? 0.0 : v);
            }
            return t;
        }

        String label(double v) {
            if (step >= 1 && Math.abs(v) < 1e7) {
                return String.format(Locale.ROOT, "%d", Math.round(v));
            }
            int decimals = Math.max(0, (int) -Math.floor(Math.log10(step)));
            return String.format(Locale.ROOT, "%." + decimals + "f", v);
        }
    }
}
