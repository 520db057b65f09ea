package org.megatronj.parallel.train;

import org.megatronj.model.PhaseTimers;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.UnaryOperator;

/**
 * Megatron's named wall-clock timers with log levels: a timer whose level is above
 * {@code --timing-log-level} costs nothing. {@link #log} prints the elapsed milliseconds per
 * iteration since the last log in Megatron's layout, e.g.
 * <pre>
 * (min, max) time across ranks (ms):
 *     forward-backward ...............................: (812.31, 812.31)
 * </pre>
 * With one rank min and max coincide; the layout stays so log parsers written for Megatron work.
 * Ranks running as threads each keep their own timers and pass {@link #log(List, double,
 * UnaryOperator)} the reduction over the ranks, so that min and max are the slowest and fastest rank's.
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

    /**
     * These timers as the model and the pipeline schedule see them ({@link PhaseTimers}): each phase
     * is a timer of {@code level}, so below that level nothing is timed and no device is synchronised.
     */
    public PhaseTimers phases(int level) {
        boolean enabled = level <= logLevel;
        return !enabled ? PhaseTimers.NONE : new PhaseTimers() {
            @Override
            public boolean enabled() {
                return true;
            }

            @Override
            public void start(String phase) {
                timer(phase, level).start();
            }

            @Override
            public void stop(String phase) {
                timer(phase, level).stop();
            }
        };
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
        return log(names, normalizer, UnaryOperator.identity());
    }

    /**
     * {@link #log(List, double)} over several ranks: {@code maxOverRanks} takes this rank's values
     * and returns their element-wise maximum over all ranks (a collective: every rank calls this
     * with the same names at the same point). As Megatron, a rank where a timer did not run does not
     * count toward its min and max.
     */
    public String log(List<String> names, double normalizer, UnaryOperator<double[]> maxOverRanks) {
        return format(measure(names, normalizer, maxOverRanks));
    }

    /**
     * The (min, max) over ranks of each timer among {@code names} that ran, in milliseconds divided by
     * {@code normalizer}, in the order of {@code names}; resets them. A collective, as {@link #log}.
     */
    public Map<String, double[]> measure(List<String> names, double normalizer, UnaryOperator<double[]> maxOverRanks) {
        Map<String, double[]> minMax = new LinkedHashMap<>();
        if (names.stream().map(timers::get).noneMatch(t -> t != null && t.enabled)) {
            return minMax;   // nothing measured at this level, on any rank (all ranks run at the same level)
        }
        int n = names.size();
        double[] local = new double[2 * n];   // [-min candidates..., max candidates...]
        for (int i = 0; i < n; i++) {
            Timer t = timers.get(names.get(i));
            boolean ran = t != null && t.enabled && t.starts > 0;
            double ms = ran ? t.elapsedMillis() / normalizer : 0;
            local[i] = ran ? -ms : Double.NEGATIVE_INFINITY;
            local[n + i] = ran ? ms : Double.NEGATIVE_INFINITY;
            if (ran) {
                t.reset();
            }
        }
        double[] reduced = maxOverRanks.apply(local);
        for (int i = 0; i < n; i++) {
            if (reduced[n + i] != Double.NEGATIVE_INFINITY) {   // else not measured, or did not run, on any rank
                minMax.put(names.get(i), new double[] {-reduced[i], reduced[n + i]});
            }
        }
        return minMax;
    }

    /** Megatron's report of {@link #measure}'s values; empty when none ran. */
    public static String format(Map<String, double[]> minMax) {
        StringBuilder out = new StringBuilder();
        minMax.forEach((name, mm) -> out.append(String.format(Locale.ROOT, "%n    %s: (%s, %s)", padDots(name + " ", 48),
                TrainingLog.pythonF(mm[0], 2), TrainingLog.pythonF(mm[1], 2))));
        return out.isEmpty() ? "" : "(min, max) time across ranks (ms):" + out;
    }

    /** Python's {@code str.ljust(width, '.')}. */
    private static String padDots(String s, int width) {
        return s.length() >= width ? s : s + ".".repeat(width - s.length());
    }
}
