package org.megatronj.cli.evaluate;

import java.io.PrintWriter;
import java.util.Locale;

/** A one-line progress report on stderr: done/total, rate and time left, at most once a second. */
public final class EvaluationProgress {
    private final PrintWriter err;
    private final String what;
    private final long total;
    private final long start = System.nanoTime();
    private long lastPrint;

    public EvaluationProgress(PrintWriter err, String what, long total) {
        this.err = err;
        this.what = what;
        this.total = total;
    }

    public void update(long done) {
        long now = System.nanoTime();
        if (done < total && now - lastPrint < 1_000_000_000L) {
            return;
        }
        lastPrint = now;
        double seconds = (now - start) / 1e9;
        double rate = done / Math.max(seconds, 1e-9);
        double eta = rate > 0 ? (total - done) / rate : 0;
        err.printf(Locale.ROOT, "%s: %d/%d (%.1f%%), %.2f/s, elapsed %s, ETA %s%n", what, done, total,
                100.0 * done / Math.max(total, 1), rate, clock(seconds), clock(eta));
        err.flush();
    }

    private static String clock(double seconds) {
        long s = Math.round(seconds);
        return String.format(Locale.ROOT, "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
    }
}
