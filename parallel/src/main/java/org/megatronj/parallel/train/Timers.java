package org.megatronj.parallel.train;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Megatron's named wall-clock timers with log levels: a timer whose level is above
 * {@code --timing-log-level} costs nothing. {@link #log} prints the elapsed milliseconds per
 * iteration since the last log in Megatron's layout, e.g.
 * <pre>
 * (min, max) time across ranks (ms):
 *     forward-backward ...............................: (812.31, 812.31)
 * </pre>
 * With one rank min and max coincide; the layout stays so log parsers written for Megatron work.
 */
public final class Timers {
    private final int logLevel;
    private final Map<String, Timer> timers = new LinkedHashMap<>();

    public Timers(int logLevel) {
        this.logLevel = logLevel;
    }

    /** One named stopwatch; accumulates across start/stop pairs until {@link #reset}. */
    public static final class Timer {
        private final boolean enabled;
        private long startedAt = -1;
        private long elapsedNanos;
        private int starts;

        private Timer(boolean enabled) {
            this.enabled = enabled;
        }

        public void start() {
            if (enabled) {
                if (startedAt >= 0) {
                    throw new IllegalStateException("timer started twice without a stop");
                }
                startedAt = System.nanoTime();
                starts++;
            }
        }

        public void stop() {
            if (enabled && startedAt >= 0) {
                elapsedNanos += System.nanoTime() - startedAt;
                startedAt = -1;
            }
        }

        public double elapsedMillis() {
            return elapsedNanos / 1e6;
        }

        void reset() {
            elapsedNanos = 0;
            starts = 0;
        }

        public boolean enabled() {
            return enabled;
        }
    }

    /** The timer {@code name}, created on first use; disabled when {@code level} exceeds the log level. */
    public Timer timer(String name, int level) {
        return timers.computeIfAbsent(name, n -> new Timer(level <= logLevel));
    }

    /**
     * Megatron's min/max report of the enabled timers among {@code names}, each divided by
     * {@code normalizer} (the iterations since the last log); resets them. Empty when none ran.
     */
    public String log(List<String> names, double normalizer) {
        StringBuilder out = new StringBuilder();
        for (String name : names) {
            Timer t = timers.get(name);
            if (t == null || !t.enabled || t.starts == 0) {
                continue;   // not measured at this level, or did not run in this interval
            }
            double ms = t.elapsedMillis() / normalizer;
            out.append(String.format(Locale.ROOT, "%n    %s: (%.2f, %.2f)", padDots(name + " ", 48), ms, ms));
            t.reset();
        }
        return out.isEmpty() ? "" : "(min, max) time across ranks (ms):" + out;
    }

    /** Python's {@code str.ljust(width, '.')}. */
    private static String padDots(String s, int width) {
        return s.length() >= width ? s : s + ".".repeat(width - s.length());
    }
}
