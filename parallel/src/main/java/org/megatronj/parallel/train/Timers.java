package org.megatronj.parallel.train;

import org.megatronj.model.FlagValue;
import org.megatronj.model.PhaseTimers;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Function;

/**
 * Megatron's named wall-clock timers with log levels: a timer whose level is above
 * {@code --timing-log-level} costs nothing. {@link #log} prints the elapsed milliseconds per
 * iteration since the last log in Megatron's layout, e.g.
 * <pre>
 * (min, max) time across ranks (ms):
 *     forward-backward ...............................: (812.31, 812.31)
 * </pre>
 * With one rank min and max coincide; the layout stays so log parsers written for Megatron work.
 * Ranks running as threads each keep their own timers and pass {@link #log(List, double, Function,
 * LogOption)} the gather over the ranks, so that min and max are the fastest and slowest rank's
 * ({@code --timing-log-option} picks max, min and max, or every rank's).
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

    /** Megatron's {@code --timing-log-option}: what a report shows of the ranks' times. */
    public enum LogOption implements FlagValue {
        /** The slowest rank's. */
        MAX("max"),
        /** The fastest and the slowest rank's (Megatron's default). */
        MINMAX("minmax"),
        /** Every rank's. */
        ALL("all");

        private final String flagValue;

        LogOption(String flagValue) {
            this.flagValue = flagValue;
        }

        @Override
        public String flagValue() {
            return flagValue;
        }

        public static LogOption parse(String value) {
            return FlagValue.parse(LogOption.class, "--timing-log-option", value);
        }
    }

    /**
     * Megatron's (min, max) report of the enabled timers among {@code names}, each divided by
     * {@code normalizer} (the iterations since the last log); resets them. Empty when none ran.
     */
    public String log(List<String> names, double normalizer) {
        return format(measure(names, normalizer, values -> new double[][] {values}), LogOption.MINMAX);
    }

    /**
     * {@link #log(List, double)} over several ranks in the layout {@code option} asks for: {@code gather} takes this
     * rank's values and returns every rank's (a collective: every rank calls this with the same names at the same point).
     */
    public String log(List<String> names, double normalizer, Function<double[], double[][]> gather, LogOption option) {
        return format(measure(names, normalizer, gather), option);
    }

    /**
     * Each rank's milliseconds, divided by {@code normalizer}, of each timer among {@code names} that ran on some rank,
     * in the order of {@code names}; 0 on the ranks where it did not run. Resets them. A collective, as {@link #log}.
     */
    public Map<String, double[]> measure(List<String> names, double normalizer, Function<double[], double[][]> gather) {
        Map<String, double[]> perRank = new LinkedHashMap<>();
        if (names.stream().map(timers::get).noneMatch(t -> t != null && t.enabled)) {
            return perRank;   // nothing measured at this level, on any rank (all ranks run at the same level)
        }
        double[] local = new double[names.size()];
        for (int i = 0; i < local.length; i++) {
            Timer t = timers.get(names.get(i));
            if (t != null && t.enabled && t.starts > 0) {
                local[i] = t.elapsedMillis() / normalizer;
                t.reset();
            }
        }
        double[][] ranks = gather.apply(local);
        for (int i = 0; i < local.length; i++) {
            double[] times = new double[ranks.length];
            for (int r = 0; r < ranks.length; r++) {
                times[r] = ranks[r][i];
            }
            if (Arrays.stream(times).anyMatch(ms -> ms > 0)) {
                perRank.put(names.get(i), times);
            }
        }
        return perRank;
    }

    /** The fastest and the slowest of the ranks a timer ran on (Megatron counts the times above 0). */
    public static double[] minMax(double[] perRank) {
        double min = Double.POSITIVE_INFINITY, max = Double.NEGATIVE_INFINITY;
        for (double ms : perRank) {
            if (ms > 0) {
                min = Math.min(min, ms);
                max = Math.max(max, ms);
            }
        }
        return new double[] {min, max};
    }

    /** Megatron's report of {@link #measure}'s values in the layout of {@code option}; empty when none ran. */
    public static String format(Map<String, double[]> perRank, LogOption option) {
        StringBuilder out = new StringBuilder();
        perRank.forEach((name, times) -> {
            double[] mm = minMax(times);
            switch (option) {
                case MAX -> out.append(String.format(Locale.ROOT, "%n    %s: %s", padDots(name + " ", 48),
                        TrainingLog.pythonF(mm[1], 2)));
                case MINMAX -> out.append(String.format(Locale.ROOT, "%n    %s: (%s, %s)", padDots(name + " ", 48),
                        TrainingLog.pythonF(mm[0], 2), TrainingLog.pythonF(mm[1], 2)));
                case ALL -> {
                    out.append(String.format(Locale.ROOT, "%n  %s:", name));
                    for (int r = 0; r < times.length; r++) {
                        if (times[r] > 0) {
                            out.append(String.format(Locale.ROOT, "%n     rank %2d: %s", r, TrainingLog.pythonF(times[r], 2)));
                        }
                    }
                }
            }
        });
        if (out.isEmpty()) {
            return "";
        }
        return switch (option) {
            case MAX -> "max time across ranks (ms):";
            case MINMAX -> "(min, max) time across ranks (ms):";
            case ALL -> "times across ranks (ms):";
        } + out;
    }

    /** Python's {@code str.ljust(width, '.')}. */
    private static String padDots(String s, int width) {
        return s.length() >= width ? s : s + ".".repeat(width - s.length());
    }
}
